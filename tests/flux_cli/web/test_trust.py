"""flux_cli.web.trust: the in-cluster ui believes identity headers only from the proxy.

Real TLS on loopback: a CA for the ui's serving certificate, a proxy CA with a good proxy client certificate,
and a second CA whose client certificate nobody trusts; a tiny ThreadingHTTPServer (the handshake in the
request's thread, through trust.wrap_server and trust.HandshakeInThread) answers with the identity that
trust.identify found, or with the Untrusted status.
"""
from __future__ import annotations

import contextlib
import http.client
import http.server
import json
import ssl
import threading
from pathlib import Path

import pytest

from flux_cli.web import trust
from flux_cli.web.trust import Identity, ProxyTrust, TrustConfigError, Untrusted
from servers.tls import LOOPBACK_NAMES, issue, new_ca

pytestmark = pytest.mark.timeout(30)

TIMEOUT = 5.0
SECRET = "s3cret-shared-with-the-proxy"


class PKI:
    """The certificate files of one test module."""

    def __init__(self, root: Path):
        self.root = root
        serving_ca = new_ca("ui-serving-ca")
        self.serving_ca_pem = serving_ca.cert_pem
        self.cert_file, self.key_file = self._write("ui", issue(serving_ca, "ui", server_names=LOOPBACK_NAMES))
        proxy_ca = new_ca("proxy-ca")
        self.proxy_ca_file = root / "proxy-ca.crt"
        self.proxy_ca_file.write_bytes(proxy_ca.cert_pem)
        self.proxy = self._write("proxy", issue(proxy_ca, "oauth2-proxy", client=True,
                                                server_names=("oauth2-proxy.auth.svc",)))
        # signed by the proxy CA, but for serving, not for client authentication
        self.server_purpose = self._write("server-purpose", issue(proxy_ca, "oauth2-proxy",
                                                                  server_names=("oauth2-proxy.auth.svc",)))
        self.untrusted = self._write("untrusted", issue(new_ca("someone-else"), "oauth2-proxy", client=True))

    def _write(self, name: str, issued) -> tuple[Path, Path]:
        cert, key = self.root / f"{name}.crt", self.root / f"{name}.key"
        cert.write_bytes(issued.cert_pem)
        key.write_bytes(issued.key_pem)
        return cert, key


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return PKI(tmp_path_factory.mktemp("ui-trust-pki"))


class EchoServer(trust.HandshakeInThread, http.server.ThreadingHTTPServer):
    daemon_threads = True
    handshake_timeout = TIMEOUT
    proxy_trust: ProxyTrust
    handled: list  # the requests that reached the handler


class EchoHandler(http.server.BaseHTTPRequestHandler):
    timeout = TIMEOUT

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self.server.handled.append(self.path)
        try:
            identity = self.server.proxy_trust.identify(self.headers, self.connection.getpeercert())
            status, body = 200, {"user": identity.user, "groups": list(identity.groups)}
        except Untrusted as e:
            status, body = e.status, {"error": e.message}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args) -> None:
        pass


@contextlib.contextmanager
def serving(pki: PKI, proxy_trust: ProxyTrust):
    server = EchoServer(("127.0.0.1", 0), EchoHandler)
    server.proxy_trust, server.handled = proxy_trust, []
    trust.wrap_server(server, proxy_trust.ssl_context or proxy_trust.server_context(pki.cert_file, pki.key_file))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(TIMEOUT)


def client_context(pki: PKI, cert: tuple[Path, Path] | None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=pki.serving_ca_pem.decode())
    if cert:
        context.load_cert_chain(*cert)
    return context


def get(server, context: ssl.SSLContext, headers: list[tuple[str, str | tuple[str, ...]]] = ()):
    """GET / with ``headers`` (a tuple value is sent folded over several lines); (status, JSON body)."""
    conn = http.client.HTTPSConnection("127.0.0.1", server.server_address[1], context=context, timeout=TIMEOUT)
    try:
        conn.putrequest("GET", "/")
        for name, value in headers:
            conn.putheader(name, *(value if isinstance(value, tuple) else (value,)))
        conn.endheaders()
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


ALICE = [("X-Forwarded-User", "alice"), ("X-Forwarded-Groups", "dev, ops"), ("X-Forwarded-Groups", "dev,qa")]


@pytest.fixture(scope="module")
def mtls_server(pki):
    proxy_trust = ProxyTrust.from_options(ca_file=pki.proxy_ca_file, cert_file=pki.cert_file, key_file=pki.key_file)
    assert proxy_trust.ssl_context.verify_mode == ssl.CERT_REQUIRED
    with serving(pki, proxy_trust) as server:
        yield server


def test_the_proxy_certificate_and_its_headers_give_the_identity(pki, mtls_server):
    status, body = get(mtls_server, client_context(pki, pki.proxy), ALICE)
    assert (status, body) == (200, {"user": "alice", "groups": ["dev", "ops", "qa"]})


@pytest.mark.parametrize("cert", [None, "untrusted", "server_purpose"])
def test_a_client_without_the_proxy_certificate_fails_the_handshake(pki, mtls_server, cert):
    before = len(mtls_server.handled)
    with pytest.raises(OSError):  # ssl.SSLError, or a reset / RemoteDisconnected (TLS 1.3 reports it late)
        get(mtls_server, client_context(pki, getattr(pki, cert) if cert else None), ALICE)
    assert len(mtls_server.handled) == before, "the handler never sees such a request"
    # the server is still serving the proxy
    assert get(mtls_server, client_context(pki, pki.proxy), ALICE)[0] == 200


def test_the_proxy_without_a_user_is_401(pki, mtls_server):
    status, body = get(mtls_server, client_context(pki, pki.proxy), [("X-Forwarded-Groups", "dev")])
    assert status == 401 and "X-Forwarded-User" in body["error"]
    assert get(mtls_server, client_context(pki, pki.proxy), [("X-Forwarded-User", "")])[0] == 401


@pytest.mark.parametrize("headers", [
    [("X-Forwarded-User", "alice\x01")],
    [("X-Forwarded-User", ("alice", "system:masters"))],  # folded over two lines: a CR LF in the value
    [("X-Forwarded-User", "alice"), ("X-Forwarded-Groups", "dev,ops\x7f")],
    [("X-Forwarded-User", "alice"), ("X-Forwarded-Groups", "dev,\x85ops")],
    [("X-Forwarded-User", "alice"), ("X-Forwarded-Groups", "dev,,ops")],
    [("X-Forwarded-User", "alice"), ("X-Forwarded-User", "admin")],
], ids=["control-char", "folded-newline", "del-in-group", "c1-in-group", "empty-group", "two-users"])
def test_malformed_identity_headers_are_refused(pki, mtls_server, headers):
    status, body = get(mtls_server, client_context(pki, pki.proxy), headers)
    assert status == 400, body
    assert any(why in body["error"] for why in ("control character", "2 times", "empty group")), body


def test_allowed_names_match_the_common_name_or_a_subject_alt_name(pki):
    proxy = client_context(pki, pki.proxy)
    for names in [("oauth2-proxy",), ("oauth2-proxy.auth.svc",)]:
        with serving(pki, ProxyTrust.from_options(ca_file=pki.proxy_ca_file, allowed_names=names)) as server:
            assert get(server, proxy, ALICE)[0] == 200, names
    with serving(pki, ProxyTrust.from_options(ca_file=pki.proxy_ca_file, allowed_names=("dex",))) as server:
        status, body = get(server, proxy, ALICE)
    assert status == 403 and "oauth2-proxy" in body["error"] and "allowed" in body["error"]


def test_shared_secret_mode(pki, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    anyone = client_context(pki, None)  # no client certificate in this mode
    with serving(pki, ProxyTrust.from_options(secret_file=secret_file, user_header="X-Auth-Request-User",
                                              groups_header="X-Auth-Request-Groups")) as server:
        right = [("X-Fluxpy-Proxy-Secret", SECRET)]
        assert get(server, anyone, [*right, ("X-Auth-Request-User", "bob"), ("X-Auth-Request-Groups", "ops")]) == (
            200, {"user": "bob", "groups": ["ops"]})
        assert get(server, anyone, [*right, ("X-Forwarded-User", "bob")])[0] == 401, "only the configured header"
        assert get(server, anyone, right)[0] == 401
        for wrong in ([("X-Fluxpy-Proxy-Secret", SECRET + "x")], [("X-Fluxpy-Proxy-Secret", "")], [],
                      [*right, ("X-Fluxpy-Proxy-Secret", "guess")]):
            status, body = get(server, anyone, [*wrong, ("X-Auth-Request-User", "bob")])
            assert status == 403 and "X-Fluxpy-Proxy-Secret" in body["error"], wrong


def test_both_modes_together_need_both(pki, tmp_path):
    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET)
    with serving(pki, ProxyTrust.from_options(ca_file=pki.proxy_ca_file, secret_file=secret_file)) as server:
        proxy = client_context(pki, pki.proxy)
        assert get(server, proxy, [("X-Fluxpy-Proxy-Secret", SECRET), ("X-Forwarded-User", "alice")])[0] == 200
        assert get(server, proxy, [("X-Forwarded-User", "alice")])[0] == 403


# ------------------------------------------------------------------------------------------------ no network


def test_neither_mode_configured_fails_closed():
    with pytest.raises(TrustConfigError, match="no trusted proxy configured"):
        ProxyTrust.from_options()
    with pytest.raises(TrustConfigError, match="no trusted proxy configured"):
        ProxyTrust()


def test_unusable_files_are_configuration_errors(pki, tmp_path):
    with pytest.raises(TrustConfigError, match="cannot read the proxy CA file"):
        ProxyTrust.from_options(ca_file=tmp_path / "absent.crt")
    not_pem = tmp_path / "not.pem"
    not_pem.write_text("hello\n")
    with pytest.raises(TrustConfigError, match="cannot read the proxy CA file"):
        ProxyTrust.from_options(ca_file=not_pem)
    with pytest.raises(TrustConfigError, match="cannot read the proxy secret file"):
        ProxyTrust.from_options(secret_file=tmp_path / "absent")
    empty = tmp_path / "empty"
    empty.write_text(" \n")
    with pytest.raises(TrustConfigError, match="is empty"):
        ProxyTrust.from_options(secret_file=empty)
    with pytest.raises(TrustConfigError, match="need a proxy CA file"):
        ProxyTrust(secret=SECRET, allowed_names=("proxy",))
    with pytest.raises(TrustConfigError, match="invalid identity header name"):
        ProxyTrust(secret=SECRET, user_header="X-User\r\n")
    with pytest.raises(TrustConfigError, match="cannot use the TLS certificate"):
        trust.server_ssl_context(pki.cert_file, pki.proxy[1])  # the key of another certificate
    with pytest.raises(TrustConfigError, match="give both files"):
        ProxyTrust.from_options(ca_file=pki.proxy_ca_file, cert_file=pki.cert_file)
    assert ProxyTrust.from_options(ca_file=pki.proxy_ca_file).ssl_context is None


def test_server_context(pki):
    mtls = trust.server_ssl_context(pki.cert_file, pki.key_file, pki.proxy_ca_file)
    assert mtls.verify_mode == ssl.CERT_REQUIRED
    assert mtls.minimum_version >= ssl.TLSVersion.TLSv1_2
    assert trust.server_ssl_context(pki.cert_file, pki.key_file).verify_mode == ssl.CERT_NONE


def test_identify_without_a_peer_certificate_in_mtls_mode_is_403(pki):
    proxy_trust = ProxyTrust(ca_file=pki.proxy_ca_file)
    for peer in (None, {}):
        with pytest.raises(Untrusted) as refused:
            proxy_trust.identify({"X-Forwarded-User": "alice"}, peer)
        assert refused.value.status == 403
    # a plain mapping works too, case-insensitively
    cert = {"subject": ((("commonName", "oauth2-proxy"),),)}
    assert proxy_trust.identify({"x-forwarded-user": "alice"}, cert) == Identity("alice", ())


def test_identity_key_ignores_group_order_and_duplicates():
    assert Identity("alice", ("b", "a")).key == Identity("alice", ("a", "b", "a")).key == ("alice", ("a", "b"))
    assert Identity("alice", ("a",)).key != Identity("alice,a", ()).key
    assert {Identity("alice", ("a",)): 1}[Identity("alice", ("a",))] == 1
