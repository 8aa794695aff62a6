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
from flux_cli.commands.create import LABEL_HELP, create_secret_app, parse_labels


def helm_secret(name: str, namespace: str, *, username: str = "", password: str = "", ca: bytes = b"",
                cert: bytes = b"", key: bytes = b"", labels: dict[str, str] | None = None) -> dict:
    """The Secret flux's sourcesecret.GenerateHelm makes (``stringData``; empty without credentials)."""
    from flux_cli.commands.create_secret_tls import CA_CERT_KEY, tls_secret

    meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
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
    username: str = typer.Option("", "--username", "-u", help="Basic authentication username."),
    password: str = typer.Option("", "--password", "-p", help="Basic authentication password."),
    tls_crt_file: Optional[str] = typer.Option(None, "--tls-crt-file", help="TLS authentication cert file path."),
    tls_key_file: Optional[str] = typer.Option(None, "--tls-key-file", help="TLS authentication key file path."),
    ca_crt_file: Optional[str] = typer.Option(None, "--ca-crt-file", help="TLS authentication CA file path."),
    export: bool = typer.Option(False, "--export", help="Print the Secret as YAML instead of applying it."),
    label: Optional[list[str]] = typer.Option(None, "--label", help=LABEL_HELP),
) -> None:
    """Create or update a Kubernetes secret for Helm repository authentication."""
    from flux_cli.commands.create_secret_tls import _read, upsert_secret

    a: App = ctx.obj
    secret = helm_secret(name, a.namespace, username=username, password=password, ca=_read(ca_crt_file, "TLS CA"),
                         cert=_read(tls_crt_file, "cert"), key=_read(tls_key_file, "key"), labels=parse_labels(label))
    if export:
        a.terminal.yaml([secret])
        return
    upsert_secret(a, secret)
    a.terminal.action(f"helm secret '{name}' created in '{a.namespace}' namespace")
