"""``fluxpy create secret helm NAME``: a Secret for Helm repository authentication, as
``flux create secret helm``.

A client certificate (``--tls-crt-file``/``--tls-key-file``, with ``--ca-crt-file``) makes a
``kubernetes.io/tls`` Secret (and wins over basic auth, as in flux); ``--username``/``--password`` a
``kubernetes.io/basic-auth`` one (with ``ca.crt`` when given); a CA alone an ``Opaque`` one. ``--export``
prints the Secret instead of applying it. :func:`helm_secret` is shared with ``create source helm``.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (CA_CRT_FILE_OPTION, LABEL_OPTION, PASSWORD_OPTION, SECRET_EXPORT_OPTION,
                                      TLS_CRT_FILE_OPTION, TLS_KEY_FILE_OPTION, USERNAME_OPTION, create_secret_app,
                                      export_or_upsert_secret, object_meta, parse_labels, read_file)


def helm_secret(name: str, namespace: str, *, username: str = "", password: str = "", ca: bytes = b"",
                cert: bytes = b"", key: bytes = b"", labels: dict[str, str] | None = None) -> dict:
    """The Secret flux's sourcesecret.GenerateHelm makes (``stringData``; empty without credentials)."""
    from flux_cli.commands.create_secret_tls import CA_CERT_KEY, tls_secret

    meta = object_meta(name, namespace, labels)
    try:
        if cert or key:
            return tls_secret(name, namespace, cert=cert, key=key, ca=ca, labels=labels)
        if username or password:
            for value, field in ((username, "username"), (password, "password")):
                if not value:
                    raise ValueError(f"{field} is required")
            data = {"username": username, "password": password}
            if ca:
                data[CA_CERT_KEY] = ca.decode()
            return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "kubernetes.io/basic-auth",
                    "stringData": data}
        if ca:
            return tls_secret(name, namespace, ca=ca, labels=labels)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": {}}


@create_secret_app.command("helm")
@handle_errors
def create_secret_helm(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Secret."),
    username: str = USERNAME_OPTION,
    password: str = PASSWORD_OPTION,
    tls_crt_file: Optional[str] = TLS_CRT_FILE_OPTION,
    tls_key_file: Optional[str] = TLS_KEY_FILE_OPTION,
    ca_crt_file: Optional[str] = CA_CRT_FILE_OPTION,
    export: bool = SECRET_EXPORT_OPTION,
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Kubernetes secret for Helm repository authentication."""
    a: App = ctx.obj
    secret = helm_secret(name, a.namespace, username=username, password=password, ca=read_file(ca_crt_file, "TLS CA"),
                         cert=read_file(tls_crt_file, "cert"), key=read_file(tls_key_file, "key"),
                         labels=parse_labels(label))
    export_or_upsert_secret(a, secret, "helm", export=export)
