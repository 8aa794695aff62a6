"""``fluxpy create secret tls NAME``: a Secret with a TLS client certificate/key pair and/or a CA certificate.

As ``flux create secret tls``: ``tls.crt``/``tls.key`` make a ``kubernetes.io/tls`` Secret, a CA alone an
``Opaque`` one (``ca.crt``); the pair must match. ``--export`` prints the Secret (``stringData``) instead of
applying it.
"""
from __future__ import annotations

import base64
from pathlib import Path
from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import LABEL_HELP, create_secret_app, parse_labels

TLS_CERT_KEY, TLS_KEY_KEY, CA_CERT_KEY = "tls.crt", "tls.key", "ca.crt"


def tls_secret(name: str, namespace: str, *, cert: bytes = b"", key: bytes = b"", ca: bytes = b"",
               labels: dict[str, str] | None = None) -> dict:
    """The TLS Secret flux generates; ValueError (flux's message) for a lone cert/key, nothing at all, or a
    pair that does not belong together."""
    if bool(cert) != bool(key):
        raise ValueError("found certificate but missing private key" if cert
                         else "found private key but missing certificate")
    if not cert and not ca:
        raise ValueError("no CA certificate or client certificate pair found")
    data: dict[str, str] = {}
    if cert:
        _check_key_pair(cert, key)
        data[TLS_CERT_KEY], data[TLS_KEY_KEY] = cert.decode(), key.decode()
    if ca:
        data[CA_CERT_KEY] = ca.decode()
    meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
            "type": "kubernetes.io/tls" if cert else "Opaque", "stringData": data}


def _check_key_pair(cert_pem: bytes, key_pem: bytes) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    try:
        cert = x509.load_pem_x509_certificate(cert_pem)
    except ValueError:
        raise ValueError("invalid TLS certificate and key pair: tls: failed to find any PEM data in certificate "
                         "input") from None
    try:
        key = serialization.load_pem_private_key(key_pem, None)
    except (ValueError, TypeError):
        raise ValueError("invalid TLS certificate and key pair: tls: failed to parse private key") from None
    der = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    if cert.public_key().public_bytes(*der) != key.public_key().public_bytes(*der):
        raise ValueError("invalid TLS certificate and key pair: tls: private key does not match public key")


def upsert_secret(a: App, secret: dict) -> dict:
    """Create or update a Secret (server-side apply of its ``data``, field manager ``flux``)."""
    from controllers.runtime.apply import CLI_FIELD_MANAGER

    body = {k: v for k, v in secret.items() if k != "stringData"}
    body["data"] = {**(secret.get("data") or {}),
                    **{k: base64.b64encode(v.encode()).decode() for k, v in (secret.get("stringData") or {}).items()}}
    return a.kube.apply(body, field_manager=CLI_FIELD_MANAGER)


def _read(path: Optional[str], what: str) -> bytes:
    if not path:
        return b""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"failed to read {what} file: open {path}: {(exc.strerror or str(exc)).lower()}") from None


@create_secret_app.command("tls")
@handle_errors
def create_secret_tls(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Secret."),
    tls_crt_file: Optional[str] = typer.Option(None, "--tls-crt-file", help="TLS authentication cert file path."),
    tls_key_file: Optional[str] = typer.Option(None, "--tls-key-file", help="TLS authentication key file path."),
    ca_crt_file: Optional[str] = typer.Option(None, "--ca-crt-file", help="TLS authentication CA file path."),
    export: bool = typer.Option(False, "--export", help="Print the Secret as YAML instead of applying it."),
    label: Optional[list[str]] = typer.Option(None, "--label", help=LABEL_HELP),
) -> None:
    """Create or update a Kubernetes secret with TLS certificates (files are PEM-encoded)."""
    a: App = ctx.obj
    ca = _read(ca_crt_file, "TLS CA")
    cert = _read(tls_crt_file, "cert")
    key = _read(tls_key_file, "key")
    secret = tls_secret(name, a.namespace, cert=cert, key=key, ca=ca, labels=parse_labels(label))
    if export:
        a.terminal.yaml([secret])
        return
    upsert_secret(a, secret)
    a.terminal.action(f"tls secret '{name}' created in '{a.namespace}' namespace")
