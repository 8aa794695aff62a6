"""``fluxpy create secret tls NAME``: a Secret with a TLS client certificate/key pair and/or a CA certificate.

As ``flux create secret tls``: ``tls.crt``/``tls.key`` make a ``kubernetes.io/tls`` Secret, a CA alone an
``Opaque`` one (``ca.crt``); the pair must match. ``--export`` prints the Secret (``stringData``) instead of
applying it.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, handle_errors
from flux_cli.commands.create import (CA_CRT_FILE_OPTION, LABEL_OPTION, SECRET_EXPORT_OPTION, TLS_CRT_FILE_OPTION,
                                      TLS_KEY_FILE_OPTION, create_secret_app, export_or_upsert_secret, object_meta,
                                      parse_labels, read_file)

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
    return {"apiVersion": "v1", "kind": "Secret", "metadata": object_meta(name, namespace, labels),
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


@create_secret_app.command("tls")
@handle_errors
def create_secret_tls(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Secret."),
    tls_crt_file: Optional[str] = TLS_CRT_FILE_OPTION,
    tls_key_file: Optional[str] = TLS_KEY_FILE_OPTION,
    ca_crt_file: Optional[str] = CA_CRT_FILE_OPTION,
    export: bool = SECRET_EXPORT_OPTION,
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Kubernetes secret with TLS certificates (files are PEM-encoded)."""
    a: App = ctx.obj
    ca = read_file(ca_crt_file, "TLS CA")
    cert = read_file(tls_crt_file, "cert")
    key = read_file(tls_key_file, "key")
    secret = tls_secret(name, a.namespace, cert=cert, key=key, ca=ca, labels=parse_labels(label))
    export_or_upsert_secret(a, secret, "tls", export=export)
