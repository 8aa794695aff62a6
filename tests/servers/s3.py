"""A real S3-compatible server on loopback: versitygw (github.com/versity/versitygw, posix backend).

versitygw is built from Go modules like the other tools (``controllers.localcluster.tools.ensure``). The
fixtures start one server per session (plain HTTP, and one serving TLS with a generated CA) and hand each
test a fresh bucket; the root credentials are the access/secret keys a Bucket's Secret carries.

    from servers.s3 import s3_server, s3_bucket  # noqa: F401
"""
from __future__ import annotations

import secrets
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from controllers.localcluster.plane import _die_with_parent, _tail, _terminate, free_port
from controllers.localcluster.tools import ensure
from controllers.source.s3client import S3Client, S3Error
from servers.net import PausableProcess
from servers.tls import client_context, serving_certificate

START_TIMEOUT = 30.0
REGION = "us-east-1"

class S3Server(PausableProcess):
    """One versitygw process serving the directories under ``root`` as buckets; ``stop()`` then ``start()``
    serves them again on the same port (a TLS one with a new CA), ``pause()`` hangs it."""

    def __init__(self, workdir: Path, *, tls: bool = False, region: str = REGION):
        self.workdir, self.tls, self.region = Path(workdir), tls, region
        self.access_key = "fluxpy" + secrets.token_hex(4)
        self.secret_key = secrets.token_hex(16)
        self.ca_pem = b""
        self.port = 0
        self._popen: subprocess.Popen | None = None
        self.log = self.workdir / "versitygw.log"

    @property
    def endpoint(self) -> str:
        """``host:port`` as a Bucket's ``spec.endpoint``."""
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = START_TIMEOUT) -> "S3Server":
        root = self.workdir / "root"
        root.mkdir(parents=True, exist_ok=True)
        argv = [str(ensure("versitygw")), "--access", self.access_key, "--secret", self.secret_key,
                "--region", self.region, "--quiet"]
        if self.tls:
            argv += self._write_tls()
        deadline = time.monotonic() + timeout
        restart_on = self.port
        while True:  # the port is chosen before the server binds it: retry if another process took it
            self.port = restart_on or free_port()
            with open(self.log, "ab") as out:
                self._popen = subprocess.Popen(
                    [*argv, "--port", self.endpoint, "posix", str(root)],
                    stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, cwd=self.workdir,
                    preexec_fn=_die_with_parent if sys.platform == "linux" else None)
            if self._wait_ready(deadline):
                return self
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"versitygw did not start within {timeout}s:\n{_tail(self.log, 15)}")

    def _wait_ready(self, deadline: float) -> bool:
        client = self.client()
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                return False
            try:
                client.bucket_exists("fluxpy-probe")
                return True
            except S3Error:
                time.sleep(0.05)
            finally:
                client.close()
        return False

    def _write_tls(self) -> list[str]:
        serving = serving_certificate(self.workdir, "versitygw", "fluxpy-s3-test-ca")
        self.ca_pem = serving.ca_pem
        return ["--cert", str(serving.cert_file), "--key", str(serving.key_file)]

    def stop(self) -> None:
        if self._popen is not None:
            _terminate(self._popen, 5)
            self._popen = None

    def client(self, **kw) -> S3Client:
        """A client with the root credentials (trusting the test CA when serving TLS)."""
        context = client_context(self.ca_pem) if self.tls else None
        kw = {"access_key": self.access_key, "secret_key": self.secret_key, "region": self.region,
              "secure": self.tls, "ssl_context": context, "timeout": 10.0, **kw}
        return S3Client(self.endpoint, **kw)

    def secret_data(self) -> dict[str, str]:
        """``stringData`` of a Bucket credentials Secret (Flux's keys)."""
        return {"accesskey": self.access_key, "secretkey": self.secret_key}

    def make_bucket(self, files: dict[str, str | bytes] | None = None, name: str = "") -> str:
        """Create a bucket (a fresh name unless given) holding ``files`` (key → content); return its name."""
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        client = self.client()
        try:
            client.create_bucket(name)
            self.put(name, files or {}, client)
        finally:
            client.close()
        return name

    def put(self, bucket: str, files: dict[str, str | bytes], client: S3Client | None = None) -> None:
        """Upload ``files`` (key → content) to ``bucket``."""
        own = client is None
        client = client or self.client()
        try:
            for key, content in files.items():
                client.put_object(bucket, key, content.encode() if isinstance(content, str) else content)
        finally:
            if own:
                client.close()

    def delete(self, bucket: str, *keys: str) -> None:
        client = self.client()
        try:
            for key in keys:
                client.delete_object(bucket, key)
        finally:
            client.close()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A plain-HTTP versitygw on loopback for the whole session."""
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def s3_tls_server(tmp_path_factory):
    """A versitygw serving HTTPS with a certificate of a generated CA (``.ca_pem``)."""
    server = S3Server(tmp_path_factory.mktemp("s3-tls"), tls=True).start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket(s3_server) -> str:
    """The name of a fresh, empty bucket on :func:`s3_server`."""
    return s3_server.make_bucket()
