"""Test certificates, made with the local control plane's PKI helpers (``controllers.localcluster.plane``).

- :func:`new_ca` / :func:`issue`: a CA and the certificates it signs (server names, client use), with their
  keys as objects (:class:`Issued`: ``.cert``, ``.key``) and as PEM (``.cert_pem``, ``.key_pem``);
- :func:`serving_certificate`: what every TLS test server needs — a fresh CA and a certificate for
  ``127.0.0.1``/``localhost`` written as ``tls.crt``/``tls.key`` into the server's directory
  (:class:`ServingCertificate`: ``.ca_pem`` for the clients, ``.cert_file``/``.key_file``, ``.context()``);
- :func:`client_context`: a client context that trusts one CA.
"""
from __future__ import annotations

import dataclasses
import ssl
from pathlib import Path
from typing import Any

from controllers.localcluster.plane import _name, _new_key, _pem_cert, _pem_key, _sign

#: The names a loopback test server answers to.
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


@dataclasses.dataclass
class Issued:
    """A certificate and its private key (cryptography objects)."""

    cert: Any
    key: Any

    @property
    def cert_pem(self) -> bytes:
        return _pem_cert(self.cert)

    @property
    def key_pem(self) -> bytes:
        return _pem_key(self.key)


def new_key_pem() -> bytes:
    """A fresh private key (PEM) that belongs to no certificate."""
    return _pem_key(_new_key())


def new_ca(common_name: str) -> Issued:
    """A self-signed CA certificate."""
    key = _new_key()
    return Issued(_sign(None, None, key, _name(common_name), ca=True), key)


def issue(ca: Issued, common_name: str, *, server_names: tuple[str, ...] = (), client: bool = False) -> Issued:
    """A certificate signed by ``ca``: for serving ``server_names``, or for client authentication."""
    key = _new_key()
    return Issued(_sign(ca.cert, ca.key, key, _name(common_name), client=client, server_names=server_names), key)


@dataclasses.dataclass
class ServingCertificate:
    """A test server's certificate files and the PEM of the CA that signed them."""

    ca_pem: bytes
    cert_file: Path
    key_file: Path

    def context(self) -> ssl.SSLContext:
        """A server-side context presenting the certificate."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def serving_certificate(directory: Path, common_name: str, ca_name: str) -> ServingCertificate:
    """A fresh CA ``ca_name`` and a certificate ``common_name`` for the loopback names, written as
    ``tls.crt``/``tls.key`` into ``directory``."""
    ca = new_ca(ca_name)
    cert = issue(ca, common_name, server_names=LOOPBACK_NAMES)
    directory = Path(directory)
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.cert_pem)
    key_file.write_bytes(cert.key_pem)
    return ServingCertificate(ca.cert_pem, cert_file, key_file)


def client_context(ca_pem: bytes) -> ssl.SSLContext:
    """A client context trusting the CA ``ca_pem`` (and verifying host names)."""
    return ssl.create_default_context(cadata=ca_pem.decode())
