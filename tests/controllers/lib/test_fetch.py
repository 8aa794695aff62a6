"""Downloading artifacts from a real HTTP server on loopback: digest check, unsafe archives, retries,
timeouts, and the host override."""
from __future__ import annotations

import hashlib
import http.server
import io
import tarfile
import threading
import time

import pytest

from controllers.lib.fetch import ArtifactNotFound, FetchError, fetch_artifact, localhost_override


def tarball(files: dict[str, bytes], *, evil: str | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in {**files, **({evil: b"pwned"} if evil else {})}.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


GOOD = tarball({"apps/cm.yaml": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n", "README.md": b"hi"})
EVIL = tarball({"ok.yaml": b"a: 1\n"}, evil="../../escape.txt")


def digest(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


class ArtifactServer:
    """A threaded HTTP server with a few behaviours keyed by path."""

    def __init__(self):
        self.hits: dict[str, int] = {}
        self.agents: list[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                server.hits[self.path] = server.hits.get(self.path, 0) + 1
                if self.path == "/good.tar.gz":
                    return self.send(200, GOOD)
                if self.path == "/evil.tar.gz":
                    return self.send(200, EVIL)
                if self.path == "/flaky.tar.gz" and server.hits[self.path] < 3:
                    return self.send(503, b"busy")
                if self.path == "/flaky.tar.gz":
                    return self.send(200, GOOD)
                if self.path == "/broken.tar.gz":
                    return self.send(500, b"boom")
                server.agents.append(self.headers.get("User-Agent"))
                if self.path == "/unimplemented.tar.gz":
                    return self.send(501, b"no")
                if self.path == "/throttled.tar.gz" and server.hits[self.path] < 2:
                    return self.send(429, b"slow down", {"Retry-After": "1"})
                if self.path == "/throttled.tar.gz":
                    return self.send(200, GOOD)
                if self.path == "/forbidden.tar.gz":
                    return self.send(403, b"no")
                if self.path == "/slow.tar.gz":
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(GOOD)))
                    self.end_headers()
                    for byte in GOOD:  # a trickle that never finishes within the timeout
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                        time.sleep(0.05)
                    return None
                return self.send(404, b"404 page not found\n")

            def send(self, status: int, body: bytes, headers: dict | None = None):
                self.send_response(status)
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}/{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ArtifactServer()
    yield srv
    srv.close()


def test_download_verify_extract(server, tmp_path):
    out = fetch_artifact({"url": server.url("good.tar.gz"), "digest": digest(GOOD)}, tmp_path / "work")
    assert (out / "apps" / "cm.yaml").read_text().startswith("apiVersion: v1")
    assert (out / "README.md").read_bytes() == b"hi"


@pytest.mark.parametrize("algorithm", ["sha384", "sha512"])
def test_other_digest_algorithms(server, tmp_path, algorithm):
    fetch_artifact({"url": server.url("good.tar.gz"), "digest": digest(GOOD, algorithm)}, tmp_path)
    assert (tmp_path / "apps" / "cm.yaml").exists()


def test_digest_mismatch_extracts_nothing(server, tmp_path):
    wrong = "sha256:" + "0" * 64
    with pytest.raises(FetchError) as err:
        fetch_artifact({"url": server.url("good.tar.gz"), "digest": wrong}, tmp_path / "work")
    assert err.value.message == (f"failed to verify archive: computed digest doesn't match provided '{wrong}' "
                                 "(check whether file size exceeds max download size)")
    assert not any((tmp_path / "work").iterdir())


def test_unsupported_or_empty_digest(server, tmp_path):
    with pytest.raises(FetchError, match="unsupported digest algorithm"):
        fetch_artifact({"url": server.url("good.tar.gz"), "digest": "md5:abc"}, tmp_path)
    with pytest.raises(FetchError, match="^failed to verify archive: empty digest$"):
        fetch_artifact({"url": server.url("good.tar.gz"), "digest": ""}, tmp_path)


def test_unsafe_archive_is_refused(server, tmp_path):
    with pytest.raises(FetchError) as err:
        fetch_artifact({"url": server.url("evil.tar.gz"), "digest": digest(EVIL)}, tmp_path / "a" / "work")
    assert err.value.message.startswith("failed to extract archive (check whether file size exceeds max "
                                        "download size): ")
    assert "../../escape.txt" in err.value.message
    assert not (tmp_path / "escape.txt").exists()


def test_not_found_and_client_errors_are_not_retried(server, tmp_path):
    with pytest.raises(ArtifactNotFound, match="^file not found$"):
        fetch_artifact({"url": server.url("gone.tar.gz"), "digest": digest(GOOD)}, tmp_path, retries=3,
                       retry_wait=(0.01, 0.01))
    with pytest.raises(FetchError, match=r"\(status: 403 Forbidden\)$"):
        fetch_artifact({"url": server.url("forbidden.tar.gz"), "digest": digest(GOOD)}, tmp_path, retries=3,
                       retry_wait=(0.01, 0.01))
    assert server.hits["/gone.tar.gz"] == server.hits["/forbidden.tar.gz"] == 1


def test_server_errors_are_retried(server, tmp_path):
    fetch_artifact({"url": server.url("flaky.tar.gz"), "digest": digest(GOOD)}, tmp_path, retries=3,
                   retry_wait=(0.01, 0.05))
    assert server.hits["/flaky.tar.gz"] == 3
    with pytest.raises(FetchError) as err:
        fetch_artifact({"url": server.url("broken.tar.gz"), "digest": digest(GOOD)}, tmp_path, retries=1,
                       retry_wait=(0.01, 0.01))
    assert err.value.message == f"failed to download archive: GET {server.url('broken.tar.gz')} giving up after 2 attempt(s)"
    assert server.hits["/broken.tar.gz"] == 2


def test_timeout_bounds_a_slow_download(server, tmp_path):
    started = time.monotonic()
    with pytest.raises(FetchError, match="timed out"):
        fetch_artifact({"url": server.url("slow.tar.gz"), "digest": digest(GOOD)}, tmp_path, timeout=1.0, retries=5)
    assert time.monotonic() - started < 5


def test_unreachable_server(tmp_path):
    with pytest.raises(FetchError, match="^failed to download archive: "):
        fetch_artifact({"url": "http://127.0.0.1:9/a.tar.gz", "digest": digest(GOOD)}, tmp_path, retries=1,
                       retry_wait=(0.01, 0.01))


def test_hostname_override(server, tmp_path):
    artifact = {"url": "http://source-controller.flux-system.svc.cluster.local./good.tar.gz", "digest": digest(GOOD)}
    fetch_artifact(artifact, tmp_path, hostname=f"127.0.0.1:{server.port}")
    assert (tmp_path / "apps" / "cm.yaml").exists()


def test_501_is_final_as_go_retryablehttp(server, tmp_path):
    with pytest.raises(FetchError, match=r"\(status: 501 Not Implemented\)$"):
        fetch_artifact({"url": server.url("unimplemented.tar.gz"), "digest": digest(GOOD)}, tmp_path, retries=3,
                       retry_wait=(0.01, 0.01))
    assert server.hits["/unimplemented.tar.gz"] == 1


def test_retry_after_of_a_429_is_waited_instead_of_the_backoff(server, tmp_path):
    started = time.monotonic()
    fetch_artifact({"url": server.url("throttled.tar.gz"), "digest": digest(GOOD)}, tmp_path, retries=2,
                   retry_wait=(0.01, 0.01), user_agent="fluxpy-source-watcher")
    assert server.hits["/throttled.tar.gz"] == 2 and time.monotonic() - started >= 1.0
    assert set(server.agents) == {"fluxpy-source-watcher"}


def test_source_controller_localhost_replaces_the_host(server, tmp_path, monkeypatch):
    artifact = {"url": "http://source-controller.flux-system.svc.cluster.local./good.tar.gz", "digest": digest(GOOD)}
    monkeypatch.setenv("SOURCE_CONTROLLER_LOCALHOST", f"127.0.0.1:{server.port}")
    assert localhost_override(artifact["url"]) == f"127.0.0.1:{server.port}"
    fetch_artifact(artifact, tmp_path)
    assert (tmp_path / "apps" / "cm.yaml").exists()
    monkeypatch.setenv("SOURCE_WATCHER_LOCALHOST", "127.0.0.1:9")
    assert localhost_override("http://source-watcher.flux-system.svc/a.tar.gz") == "127.0.0.1:9"
