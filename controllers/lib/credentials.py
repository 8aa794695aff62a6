"""Credentials from Secrets, as every Flux controller reads them: basic auth, bearer tokens, TLS material
(``ca.crt``/``tls.crt``/``tls.key``) and SSH identities; errors name the Secret and keys, never values."""
from __future__ import annotations

import base64
import dataclasses
import ssl
import tempfile
import urllib.parse
from pathlib import Path

from controllers.api.builtin import SECRET
from controllers.runtime.kube import KubeClient, KubeError

class SecretError(Exception):
    """A Secret is missing or lacks what is needed; the message names the Secret and keys, never values."""


def get_secret(kube: KubeClient, namespace: str, name: str) -> dict[str, bytes]:
    """The decoded data of a Secret (``stringData`` is folded in by the apiserver)."""
    try:
        secret = kube.get(SECRET, name, namespace)
    except KubeError as exc:
        raise SecretError(f"failed to get secret '{namespace}/{name}': {exc.message}") from None
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    for k, v in (secret.get("stringData") or {}).items():
        data.setdefault(k, v.encode())
    return data


def _text(data: dict[str, bytes], key: str) -> str | None:
    value = data.get(key)
    return value.decode() if value is not None else None


def basic_auth(data: dict[str, bytes]) -> tuple[str, str] | None:
    """``(username, password)`` from a Secret's data, None when it has neither."""
    username, password = _text(data, "username"), _text(data, "password")
    if username is None and password is None:
        return None
    return username or "", password or ""


def bearer_token(data: dict[str, bytes]) -> str | None:
    return _text(data, "bearerToken")


def proxy_url(data: dict[str, bytes], secret: str) -> str:
    """The proxy URL of a ``proxySecretRef`` Secret: ``address`` with ``username``/``password`` folded in."""
    address = (data.get("address") or b"").decode().strip()
    if not address:
        raise SecretError(f"secret '{secret}': key 'address' not found")
    user, password = _text(data, "username") or "", _text(data, "password") or ""
    if user or password:
        parts = urllib.parse.urlsplit(address)
        creds = f"{urllib.parse.quote(user, safe='')}:{urllib.parse.quote(password, safe='')}@"
        address = urllib.parse.urlunsplit(parts._replace(netloc=creds + parts.netloc))
    return address


@dataclasses.dataclass
class TLSMaterial:
    """A CA bundle and/or a client certificate and key (``ca.crt``, ``tls.crt``, ``tls.key``; the
    deprecated ``caFile``, ``certFile``, ``keyFile`` are read too)."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None

    @classmethod
    def from_secret(cls, data: dict[str, bytes], secret: str = "") -> "TLSMaterial | None":
        """None when the data has no TLS keys; SecretError when only one of certificate and key is given."""
        ca = data.get("ca.crt") or data.get("caFile")
        cert = data.get("tls.crt") or data.get("certFile")
        key = data.get("tls.key") or data.get("keyFile")
        if bool(cert) != bool(key):
            where = f" '{secret}'" if secret else ""
            raise SecretError(f"secret{where} must contain both 'tls.crt' and 'tls.key' for client authentication")
        if not (ca or cert):
            return None
        return cls(ca or None, cert or None, key or None)

    def ssl_context(self) -> ssl.SSLContext:
        """A client context trusting the system CAs plus :attr:`ca`, presenting the client certificate."""
        ctx = ssl.create_default_context()
        if self.ca:
            try:
                ctx.load_verify_locations(cadata=self.ca.decode())
            except (ssl.SSLError, ValueError, UnicodeDecodeError) as exc:
                raise SecretError(f"invalid CA certificate in 'ca.crt': {exc}") from None
        if self.cert and self.key:
            with tempfile.TemporaryDirectory() as tmp:
                cert, key = self.write(Path(tmp))[1:]
                try:
                    ctx.load_cert_chain(cert, key)
                except ssl.SSLError as exc:
                    raise SecretError(f"invalid client certificate or key in 'tls.crt'/'tls.key': {exc}") from None
        return ctx

    def write(self, directory: Path) -> tuple[str | None, str | None, str | None]:
        """Write the files (mode 0600) for tools that take paths; returns (ca, cert, key) paths."""
        paths = []
        for name, value in (("ca.crt", self.ca), ("tls.crt", self.cert), ("tls.key", self.key)):
            if value:
                path = directory / name
                path.touch(0o600)
                path.write_bytes(value)
                paths.append(str(path))
            else:
                paths.append(None)
        return paths[0], paths[1], paths[2]


@dataclasses.dataclass
class SSHAuth:
    """An SSH identity (private key, optional passphrase in ``password``) and the known_hosts to trust."""

    identity: bytes
    known_hosts: bytes
    password: str | None = None


def ssh_auth(data: dict[str, bytes]) -> SSHAuth:
    """The SSH credentials of a Secret (keys ``identity``, ``known_hosts``, optional ``password``)."""
    for key in ("identity", "known_hosts"):
        if not data.get(key):
            raise SecretError(f"invalid 'ssh' auth option: '{key}' is required")
    return SSHAuth(data["identity"], data["known_hosts"], _text(data, "password"))
