"""A real OCI registry on loopback: Debian's ``/usr/bin/docker-registry`` (distribution 2.8).

Three ways to run it, one session fixture each:

- :func:`registry` — no authentication;
- :func:`registry_htpasswd` — basic authentication against an ``htpasswd -B`` file;
- :func:`registry_tls` — HTTPS with a certificate of a generated CA (``.ca_pem``), no authentication;
- :func:`registry_token` — the registry's own ``token`` authentication: a small token service on loopback
  answers ``GET /token?scope=…&service=…`` (basic credentials required) with an ES256 JWT signed by a
  generated key whose certificate is the registry's ``rootcertbundle`` — the Bearer flow of ghcr.io,
  Docker Hub and friends, checked by the real registry.

Each test uses its own repository names, so the servers are shared by the session.

    from servers.registry import registry, registry_htpasswd  # noqa: F401
"""
from __future__ import annotations

import base64
import http.server
import json
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from controllers.localcluster.plane import _die_with_parent, _tail, _terminate, free_port
from servers.net import PausableProcess, serve_http, stop_http
from servers.tls import client_context, new_ca, serving_certificate

BINARY = "/usr/bin/docker-registry"
START_TIMEOUT = 30.0
SERVICE = "fluxpy-test-registry"
ISSUER = "fluxpy-test-token-issuer"


class Registry(PausableProcess):
    """One docker-registry process with a temporary storage directory; ``auth`` is none|htpasswd|token.
    ``stop()`` then ``start()`` serves the same storage again on the same port (a TLS one with a new CA),
    ``pause()`` hangs it."""

    def __init__(self, workdir: Path, auth: str = "none", *, tls: bool = False):
        if auth not in ("none", "htpasswd", "token"):
            raise ValueError(f"unknown registry auth {auth!r}")
        self.workdir, self.auth, self.tls = Path(workdir), auth, tls
        self.ca_pem = b""
        self.username = "fluxpy" if auth != "none" else ""
        self.password = secrets.token_hex(12) if auth != "none" else ""
        self.port = 0
        self.log = self.workdir / "registry.log"
        self._popen: subprocess.Popen | None = None
        self._tokens: _TokenService | None = None

    @property
    def host(self) -> str:
        """``127.0.0.1:<port>``, the registry part of references."""
        return f"127.0.0.1:{self.port}"

    def url(self, repository: str = "") -> str:
        """``oci://<host>/<repository>`` (a fresh repository name when empty)."""
        return f"oci://{self.host}/{repository or self.new_repository()}"

    @staticmethod
    def new_repository(prefix: str = "test") -> str:
        return f"{prefix}/{uuid.uuid4().hex[:10]}"

    @property
    def creds(self) -> str:
        """``<username>:<password>`` for ``--creds``."""
        return f"{self.username}:{self.password}"

    def client(self, timeout: float = 30.0):
        """An OCI client with this registry's credentials (and CA)."""
        from controllers.lib.oci import registry as oci_registry

        credentials = oci_registry.Credentials(self.username, self.password) if self.username else None
        context = client_context(self.ca_pem) if self.tls else None
        return oci_registry.RegistryClient(self.host, credentials=credentials, ssl_context=context, timeout=timeout)

    def push(self, repository: str, tag: str, files: dict[str, str | bytes] | None = None, *,
             tarball: bytes | None = None, annotations: dict[str, str] | None = None) -> str:
        """Push a Flux artifact of ``files`` (name → content), or of the raw ``tarball`` bytes, as
        ``<repository>:<tag>``; the annotations default to a source and revision. Returns the manifest digest."""
        import tempfile

        from controllers.lib.oci import artifact as oci_artifact
        from controllers.lib.oci import registry as oci_registry

        with tempfile.TemporaryDirectory() as tmp:
            layer = Path(tmp) / "layer.tgz"
            if tarball is None:
                src = Path(tmp) / "src"
                src.mkdir()
                for name, content in (files or {}).items():
                    (src / name).parent.mkdir(parents=True, exist_ok=True)
                    (src / name).write_bytes(content.encode() if isinstance(content, str) else content)
                oci_artifact.build_tarball(src, layer)
            else:
                layer.write_bytes(tarball)
            if annotations is None:
                annotations = oci_artifact.artifact_annotations("https://github.com/org/repo", f"{tag}@sha1:abc")
            with self.client() as client:
                return oci_artifact.push_artifact(client, oci_registry.Reference(self.host, repository, tag), layer,
                                                  annotations)

    def tag(self, repository: str, source: str, tags, *, workers: int = 8) -> None:
        """Put the manifest of ``repository:source`` under each of ``tags`` too (no blobs move: fast)."""
        from concurrent.futures import ThreadPoolExecutor

        from controllers.lib.oci import registry as oci_registry

        with self.client() as client:
            manifest = client.get_manifest(oci_registry.Reference(self.host, repository, source))
        tags = list(tags)

        def put(chunk: list[str]) -> None:
            with self.client(timeout=120) as client:
                for tag in chunk:
                    client.put_manifest(oci_registry.Reference(self.host, repository, tag), manifest.raw,
                                        manifest.media_type)

        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(put, [tags[i::workers] for i in range(workers)]))

    def start(self, timeout: float = START_TIMEOUT) -> "Registry":
        if not Path(BINARY).exists():
            pytest.skip(f"{BINARY} is not installed (Debian package docker-registry)")
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        auth = self._write_auth()
        tls = self._write_tls() if self.tls else {}
        deadline = time.monotonic() + timeout
        restart_on = self.port
        while True:  # the port is chosen before the registry binds it: retry if another process took it
            self.port = restart_on or free_port()
            config = self.workdir / "config.yml"
            config.write_text(json.dumps({
                "version": "0.1",
                "log": {"level": "warn", "accesslog": {"disabled": True}},
                "storage": {"filesystem": {"rootdirectory": str(self.workdir / "storage")},
                            "delete": {"enabled": True}},
                "http": {"addr": self.host, "secret": secrets.token_hex(16), **tls},
                **({"auth": auth} if auth else {}),
            }))
            with open(self.log, "ab") as out:
                self._popen = subprocess.Popen(
                    [BINARY, "serve", str(config)], stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                    cwd=self.workdir, preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            if self._wait_ready(deadline):
                return self
            self._stop_process()
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"docker-registry did not start within {timeout}s:\n{_tail(self.log, 15)}")

    def _write_auth(self) -> dict:
        if self.auth == "htpasswd":
            htpasswd = self.workdir / "htpasswd"
            subprocess.run([shutil.which("htpasswd") or "htpasswd", "-Bbc", str(htpasswd), self.username,
                            self.password], check=True, capture_output=True, timeout=30)
            return {"htpasswd": {"realm": "fluxpy-test-realm", "path": str(htpasswd)}}
        if self.auth == "token":
            self._tokens = _TokenService(self.username, self.password).start()
            bundle = self.workdir / "token-ca.pem"
            bundle.write_bytes(self._tokens.cert_pem)
            return {"token": {"realm": self._tokens.realm, "service": SERVICE, "issuer": ISSUER,
                              "rootcertbundle": str(bundle)}}
        return {}

    def _write_tls(self) -> dict:
        serving = serving_certificate(self.workdir, "docker-registry", "fluxpy-registry-test-ca")
        self.ca_pem = serving.ca_pem
        return {"tls": {"certificate": str(serving.cert_file), "key": str(serving.key_file)}}

    def _wait_ready(self, deadline: float) -> bool:
        context = client_context(self.ca_pem) if self.tls else None
        scheme = "https" if self.tls else "http"
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{scheme}://{self.host}/v2/", timeout=2, context=context):
                    return True
            except urllib.error.HTTPError as exc:
                if exc.code == 401:
                    return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def _stop_process(self) -> None:
        if self._popen is not None:
            _terminate(self._popen, 5)
            self._popen = None

    def stop(self) -> None:
        self._stop_process()
        if self._tokens is not None:
            self._tokens.stop()
            self._tokens = None


class _TokenService:
    """A Docker token service: basic credentials in, a JWT granting the requested scopes out."""

    def __init__(self, username: str, password: str):
        self.username, self.password = username, password
        signer = new_ca("fluxpy-test-token-signer")
        self.key, self.cert, self.cert_pem = signer.key, signer.cert, signer.cert_pem
        self.requests: list[dict] = []
        self._server: http.server.ThreadingHTTPServer | None = None

    @property
    def realm(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/token"

    def start(self) -> "_TokenService":
        service = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                from urllib.parse import parse_qs, urlsplit

                query = parse_qs(urlsplit(self.path).query)
                expected = "Basic " + base64.b64encode(f"{service.username}:{service.password}".encode()).decode()
                authorized = self.headers.get("Authorization") == expected
                service.requests.append({"scope": query.get("scope", []), "authorized": authorized})
                if not authorized:
                    self._answer(401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]})
                    return
                self._answer(200, {"token": service.token(query.get("scope", []))})

            def _answer(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

        self._server = serve_http(Handler, "token-service")
        return self

    def token(self, scopes: list[str]) -> str:
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        for scope in " ".join(scopes).split():
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": [a for a in actions.split(",") if a]})
        now = int(time.time())
        der = self.cert.public_bytes(serialization.Encoding.DER)
        header = {"typ": "JWT", "alg": "ES256", "x5c": [base64.b64encode(der).decode()]}
        claims = {"iss": ISSUER, "sub": self.username, "aud": SERVICE, "exp": now + 300, "nbf": now - 10,
                  "iat": now, "jti": uuid.uuid4().hex, "access": access}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def stop(self) -> None:
        stop_http(self._server)
        self._server = None


def tarball_with(entries: list[tuple[str, str, str]]) -> bytes:
    """A tar.gz of (name, type, content or link target) entries, type 'file', 'dir' or 'symlink' — for
    layers no honest tool makes (``../`` names, absolute paths, escaping links)."""
    import gzip
    import io
    import tarfile

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        for name, kind, value in entries:
            info = tarfile.TarInfo(name)
            if kind == "file":
                info.size = len(value.encode())
                tar.addfile(info, io.BytesIO(value.encode()))
            elif kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            else:
                info.type, info.linkname = tarfile.SYMTYPE, value
                tar.addfile(info)
    return gzip.compress(raw.getvalue())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _session_registry(tmp_path_factory, auth: str, tls: bool = False):
    server = Registry(tmp_path_factory.mktemp(f"registry-{auth}"), auth, tls=tls).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory):
    """A docker-registry without authentication for the whole session."""
    yield from _session_registry(tmp_path_factory, "none")


@pytest.fixture(scope="session")
def registry_htpasswd(tmp_path_factory):
    """A docker-registry with basic authentication (``.username``, ``.password``, ``.creds``)."""
    yield from _session_registry(tmp_path_factory, "htpasswd")


@pytest.fixture(scope="session")
def registry_token(tmp_path_factory):
    """A docker-registry with token (Bearer) authentication through a loopback token service."""
    yield from _session_registry(tmp_path_factory, "token")


@pytest.fixture(scope="session")
def registry_tls(tmp_path_factory):
    """A docker-registry serving HTTPS with a certificate of a generated CA (``.ca_pem``), no authentication."""
    yield from _session_registry(tmp_path_factory, "none", tls=True)
