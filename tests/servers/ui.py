"""Helpers for the UI's tests: Flux objects with statuses on the control plane (no controllers), an HTTP
client of ``fluxpy ui`` that holds the session cookie, and a Server-Sent Events reader."""
from __future__ import annotations

import gzip
import http.client
import json
import queue
import threading
import urllib.parse
from pathlib import Path

from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.source import GIT_REPOSITORY


def set_ready(kube, kind, namespace: str, name: str, status: str, reason: str = "Succeeded", message: str = "ok",
              **extra) -> dict:
    """Write the object's Ready condition (as its controller would)."""
    obj = kube.get(kind, name, namespace)
    obj["status"] = {**(obj.get("status") or {}), **extra, "conditions": [
        {"type": "Ready", "status": status, "reason": reason, "message": message,
         "lastTransitionTime": "2026-12-07T10:00:00Z", "observedGeneration": obj["metadata"].get("generation", 1)}]}
    return kube.replace(kind, obj, subresource="status")


def make_pipeline(kube, namespace: str, *, source_ready: str = "True") -> None:
    """A GitRepository ``repo`` and Kustomizations ``infra`` (applied a ConfigMap) and ``apps`` (dependsOn
    infra), all with statuses."""
    kube.create(GIT_REPOSITORY, {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                                 "metadata": {"name": "repo", "namespace": namespace},
                                 "spec": {"url": "http://127.0.0.1:1/repo.git", "interval": "1m",
                                          "ref": {"branch": "main"}}}, namespace)
    for name, depends in (("infra", []), ("apps", [{"name": "infra"}])):
        kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                    "metadata": {"name": name, "namespace": namespace},
                                    "spec": {"interval": "1m", "path": "./", "prune": True, "dependsOn": depends,
                                             "sourceRef": {"kind": "GitRepository", "name": "repo"}}}, namespace)
    set_ready(kube, GIT_REPOSITORY, namespace, "repo", source_ready, message="stored artifact for revision",
              artifact={"revision": "main@sha1:0123456789abcdef0123456789abcdef01234567", "path": "x",
                        "url": "http://127.0.0.1:1/x.tar.gz", "digest": "sha256:" + "0" * 64,
                        "lastUpdateTime": "2026-12-07T10:00:00Z"})
    set_ready(kube, KUSTOMIZATION, namespace, "infra", "True", "ReconciliationSucceeded", "Applied revision",
              lastAppliedRevision="main@sha1:0123456789abcdef0123456789abcdef01234567",
              inventory={"entries": [{"id": f"{namespace}_settings__ConfigMap", "v": "v1"},
                                     {"id": f"{namespace}_web_apps_Deployment", "v": "v1"}]})
    set_ready(kube, KUSTOMIZATION, namespace, "apps", "True", "ReconciliationSucceeded", "Applied revision")


class Client:
    """An HTTP client of the UI that exchanged the token for the session cookie."""

    def __init__(self, url: str):
        parts = urllib.parse.urlsplit(url)
        self.host, self.port = parts.hostname, parts.port
        self.token = urllib.parse.parse_qs(parts.query)["token"][0]
        status, headers, _ = self.request("GET", f"/?token={self.token}", cookie=False)
        assert status == 303, status
        self.cookie = headers["Set-Cookie"].split(";", 1)[0]

    def request(self, method: str, path: str, body=None, *, cookie=True, headers=None, timeout=20.0):
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        sent = {"Host": f"127.0.0.1:{self.port}", **(headers or {})}
        if cookie:
            sent["Cookie"] = self.cookie
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        conn.request(method, path, body=data, headers=sent)
        resp = conn.getresponse()
        raw = resp.read()
        conn.close()
        if resp.getheader("Content-Encoding") == "gzip":
            raw = gzip.decompress(raw)
        payload = json.loads(raw) if resp.getheader("Content-Type") == "application/json" and raw else raw
        return resp.status, dict(resp.getheaders()), payload

    def get(self, path: str):
        status, _, payload = self.request("GET", path)
        assert status == 200, (status, payload)
        return payload

    def action(self, body: dict, **kw):
        headers = {"X-Fluxpy-Token": self.token, **kw.pop("headers", {})}
        return self.request("POST", "/api/action", body, headers=headers, **kw)


class Events:
    """Reads ``/api/events`` in a thread; :meth:`next` returns ``(event, data)`` in order."""

    def __init__(self, client: Client):
        self.queue: queue.Queue = queue.Queue()
        self.conn = http.client.HTTPConnection(client.host, client.port, timeout=60)
        self.conn.request("GET", "/api/events", headers={"Host": f"127.0.0.1:{client.port}", "Cookie": client.cookie})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200 and self.resp.getheader("Content-Type") == "text/event-stream"
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        event, data = "message", []
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    data.append(line[6:])
                elif not line and data:
                    self.queue.put((event, json.loads("\n".join(data))))
                    event, data = "message", []
        except (OSError, ValueError):
            return

    def next(self, timeout: float = 5.0):
        return self.queue.get(timeout=timeout)

    def until(self, predicate, timeout: float = 5.0):
        """The first ``(event, data)`` for which ``predicate`` holds (others are skipped)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError("no matching event in time")
            try:
                message = self.next(left)
            except queue.Empty:
                raise AssertionError("no matching event in time") from None
            if predicate(*message):
                return message

    def close(self) -> None:
        self.conn.close()


#: where the browser tests save their screenshots (``make screenshots`` copies them to docs/images/).
SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


def screenshot(page, name: str) -> Path:
    """Save the page as ``build/screenshots/<name>``."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return Path(page.screenshot(str(SCREENSHOTS / name)))
