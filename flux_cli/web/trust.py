"""Who the in-cluster ``fluxpy ui`` acts for: the identity a trusted proxy vouches for (stdlib only).

Threat model. In the cluster the ui has no login of its own: an authenticating proxy (oauth2-proxy, an ingress
with authentication) logs the user in and forwards each request with ``X-Forwarded-User`` and
``X-Forwarded-Groups``, and the ui impersonates that user, so its service account may impersonate anyone. Any
client that reaches the ui's port could send those headers too, so they are believed only from the proxy,
proven per connection by a client certificate signed by the proxy CA (mTLS, optionally one of a few allowed
names) or, weaker, per request by a shared secret (anything that learns it can pass). Anything else is
refused before a header is read: 403 for an unproven peer, 401 for a proven one that names no user, 400 for
a malformed name. The proxy must drop the client's own copies of these headers; a repeated user header is refused.
"""
from __future__ import annotations

import dataclasses
import hmac
import socketserver
import ssl
import unicodedata
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = ["USER_HEADER", "GROUPS_HEADER", "SECRET_HEADER", "Identity", "ProxyTrust", "TrustConfigError",
           "Untrusted", "server_ssl_context", "wrap_server", "HandshakeInThread"]

USER_HEADER = "X-Forwarded-User"
GROUPS_HEADER = "X-Forwarded-Groups"
#: the header that carries the shared secret, in shared-secret mode.
SECRET_HEADER = "X-Fluxpy-Proxy-Secret"

_NOT_CONFIGURED = (
    "no trusted proxy configured: the in-cluster ui needs a proxy CA file (mTLS: the CA that signs the proxy's "
    "client certificate) or a shared secret file, or it would believe any client's identity headers")
_HEADER_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")

# Unicode control, format (zero-width, bidi overrides) and line/paragraph separator characters.
_REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp"})


class TrustConfigError(Exception):
    """The proxy trust is not configured, or its files cannot be used: the server must not start."""


class Untrusted(Exception):
    """A request whose identity cannot be believed; ``status`` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclasses.dataclass(frozen=True)
class Identity:
    """The user (and groups) the ui impersonates for a request."""

    user: str
    groups: tuple[str, ...] = ()

    @property
    def key(self) -> tuple[str, tuple[str, ...]]:
        """What names one RBAC view, e.g. one watch cache: the user and the set of groups (order and
        duplicates do not matter). A tuple, so no user or group name can make two identities collide."""
        return self.user, tuple(sorted(set(self.groups)))


def server_ssl_context(cert_file: str | Path, key_file: str | Path,
                       ca_file: str | Path | None = None) -> ssl.SSLContext:
    """A server-side context serving ``cert_file``/``key_file`` over TLS 1.2 or later; with ``ca_file``, every
    client must present a certificate that CA signed for client authentication (``CERT_REQUIRED``).

    Raises TrustConfigError naming the file that cannot be read or used.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(str(cert_file), str(key_file))
    except (OSError, ssl.SSLError) as e:
        raise TrustConfigError(f"cannot use the TLS certificate {cert_file} with the key {key_file}: {e}") from None
    if ca_file:
        try:
            context.load_verify_locations(cafile=str(ca_file))
        except (OSError, ssl.SSLError) as e:
            raise TrustConfigError(f"cannot read the proxy CA file {ca_file}: {e}") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def wrap_server(server: socketserver.BaseServer, context: ssl.SSLContext) -> None:
    """Serve TLS on ``server``'s listening socket without handshaking in ``accept()`` (one slow or silent
    client would block every other); :class:`HandshakeInThread` then handshakes in each request's thread."""
    server.socket = context.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)


class HandshakeInThread:
    """Mix into a ``socketserver.ThreadingMixIn`` server before it (``class S(HandshakeInThread,
    QuietHTTPServer)``) whose socket :func:`wrap_server` wrapped: the TLS handshake runs in the request's
    thread, bounded by :attr:`handshake_timeout`. A failed handshake (no client certificate, one the CA did not
    sign, a client that hangs up) closes the connection quietly; the handler never runs."""

    handshake_timeout: float = 10.0

    def finish_request(self, request, client_address) -> None:
        if isinstance(request, ssl.SSLSocket):
            previous = request.gettimeout()
            try:
                request.settimeout(self.handshake_timeout)
                request.do_handshake()
                request.settimeout(previous)
            except (ssl.SSLError, OSError):
                return  # shutdown_request closes it
        super().finish_request(request, client_address)  # type: ignore[misc]


class ProxyTrust:
    """How a request proves it comes from the trusted proxy, and where the proxy puts the identity.

    - mTLS (``ca_file``): the connection carries a client certificate verified against ``ca_file`` (the SSL
      context does that: :meth:`ssl_context`); with ``allowed_names``, its subject CN or one of its
      subjectAltNames must be one of them (exact match).
    - shared secret (``secret``): the request carries it in ``X-Fluxpy-Proxy-Secret``.
    Both may be configured; then both are required. Neither is a configuration error (fail closed).

    :attr:`ssl_context` is the server's TLS context when the serving certificate was given (``from_options``
    with ``cert_file``/``key_file``), else None; :meth:`server_context` builds one.
    """

    #: the listening socket's context (requires the proxy's client certificate in mTLS mode), or None.
    ssl_context: ssl.SSLContext | None = None

    def __init__(self, *, ca_file: str | Path | None = None, allowed_names: tuple[str, ...] = (),
                 secret: str | None = None, user_header: str = USER_HEADER, groups_header: str = GROUPS_HEADER):
        if not ca_file and not secret:
            raise TrustConfigError(_NOT_CONFIGURED)
        if allowed_names and not ca_file:
            raise TrustConfigError("allowed proxy names need a proxy CA file (they name client certificates)")
        for name in (user_header, groups_header):
            if not name or not set(name) <= _HEADER_NAME_CHARS:
                raise TrustConfigError(f"invalid identity header name {name!r}: letters, digits and '-' only")
        if user_header.lower() == groups_header.lower():
            raise TrustConfigError(f"the user and groups headers must differ (both {user_header!r})")
        self.ca_file = str(ca_file) if ca_file else None
        self.allowed_names = tuple(allowed_names)
        self._secret = secret.encode() if secret else None
        self.user_header = user_header
        self.groups_header = groups_header

    @classmethod
    def from_options(cls, ca_file: str | Path | None = None, allowed_names: tuple[str, ...] = (),
                     secret_file: str | Path | None = None, user_header: str = USER_HEADER,
                     groups_header: str = GROUPS_HEADER, *, cert_file: str | Path | None = None,
                     key_file: str | Path | None = None) -> "ProxyTrust":
        """From the server's flags: checks that ``ca_file`` is a readable CA bundle and reads the secret from
        ``secret_file`` (surrounding whitespace stripped); with ``cert_file`` and ``key_file`` (the serving
        certificate) also sets :attr:`ssl_context`. TrustConfigError when neither ``ca_file`` nor
        ``secret_file`` is given, or a file cannot be used."""
        if not ca_file and not secret_file:
            raise TrustConfigError(_NOT_CONFIGURED)
        if bool(cert_file) != bool(key_file):
            raise TrustConfigError("the TLS certificate and its key go together: give both files or neither")
        if ca_file:
            try:
                ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_verify_locations(cafile=str(ca_file))
            except (OSError, ssl.SSLError) as e:
                raise TrustConfigError(f"cannot read the proxy CA file {ca_file}: {e}") from None
        secret = None
        if secret_file:
            try:
                secret = Path(secret_file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as e:
                raise TrustConfigError(f"cannot read the proxy secret file {secret_file}: {e}") from None
            if not secret:
                raise TrustConfigError(f"the proxy secret file {secret_file} is empty")
        proxy_trust = cls(ca_file=ca_file, allowed_names=tuple(allowed_names), secret=secret,
                          user_header=user_header, groups_header=groups_header)
        if cert_file and key_file:
            proxy_trust.ssl_context = proxy_trust.server_context(cert_file, key_file)
        return proxy_trust

    @property
    def mtls(self) -> bool:
        return self.ca_file is not None

    def server_context(self, cert_file: str | Path, key_file: str | Path) -> ssl.SSLContext:
        """A server context serving ``cert_file``: requires the proxy's client certificate in mTLS mode."""
        return server_ssl_context(cert_file, key_file, self.ca_file)

    def identify(self, headers: Mapping[str, str], peer_cert: dict[str, Any] | None) -> Identity:
        """The identity of one request, from its headers (an ``http.client.HTTPMessage``: repeated headers are
        read with ``get_all``) and the connection's ``SSLSocket.getpeercert()``; raises :class:`Untrusted`."""
        if self.mtls:
            if not peer_cert:
                raise Untrusted("no verified proxy client certificate on this connection", 403)
            if self.allowed_names:
                names = _certificate_names(peer_cert)
                if not any(name in self.allowed_names for name in names):
                    raise Untrusted(f"proxy certificate {', '.join(names) or '(no names)'} is not one of the "
                                    "allowed proxy names", 403)
        if self._secret is not None:
            given = _values(headers, SECRET_HEADER)
            if len(given) != 1 or not hmac.compare_digest(given[0].strip().encode(), self._secret):
                raise Untrusted(f"missing or wrong {SECRET_HEADER}", 403)

        users = _values(headers, self.user_header)
        if len(users) > 1:
            raise Untrusted(f"{self.user_header} given {len(users)} times", 400)
        user = users[0].strip(" \t") if users else ""
        if not user:
            raise Untrusted(f"no identity: the proxy sent no {self.user_header}", 401)
        _check_name(self.user_header, user)
        groups: list[str] = []
        for value in _values(headers, self.groups_header):
            value = value.strip(" \t")
            if not value:
                continue  # an empty header: no groups
            for group in value.split(","):
                group = group.strip(" \t")
                if not group:
                    raise Untrusted(f"{self.groups_header} has an empty group name", 400)
                _check_name(self.groups_header, group)
                if group not in groups:
                    groups.append(group)
        return Identity(user, tuple(groups))


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    get_all = getattr(headers, "get_all", None)
    if get_all is not None:
        return [str(v) for v in get_all(name) or []]
    wanted = name.lower()
    return [str(v) for k, v in headers.items() if k.lower() == wanted]


def _check_name(header: str, value: str) -> None:
    if any(unicodedata.category(ch) in _REFUSED_CATEGORIES for ch in value):
        raise Untrusted(f"{header} contains a control character", 400)


def _certificate_names(peer_cert: dict[str, Any]) -> list[str]:
    """The subject's common names, then the subjectAltName values (DNS, URI, email, IP address)."""
    names = [value for rdn in peer_cert.get("subject", ()) for key, value in rdn if key == "commonName"]
    names += [value for _, value in peer_cert.get("subjectAltName", ())]
    return names
