"""Kubeconfigs for authentication tests: an exec credential plugin that hands out a kubeconfig's client
certificate, a CONNECT proxy on loopback, and a loopback HTTP server that records request headers."""
from __future__ import annotations

import base64
import http.server
import json
import select
import socket
import socketserver
import sys
import threading
from pathlib import Path

import yaml

PLUGIN = """#!{python}
import json, sys, pathlib
counter = pathlib.Path({counter!r})
counter.write_text(str(int(counter.read_text() or 0) + 1) if counter.exists() else "1")
status = {{"clientCertificateData": {cert!r}, "clientKeyData": {key!r}}}
if {expires!r}:
    status["expirationTimestamp"] = {expires!r}
json.dump({{"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential", "status": status}}, sys.stdout)
"""


def exec_kubeconfig(admin_kubeconfig: Path, directory: Path, *, expires: str = "",
                    api_version: str = "client.authentication.k8s.io/v1") -> tuple[Path, Path]:
    """A kubeconfig whose user gets the admin's client certificate from an exec plugin (a script written
    here). Returns the kubeconfig and the file counting the plugin's runs."""
    admin = yaml.safe_load(admin_kubeconfig.read_text())
    user = admin["users"][0]["user"]
    counter = directory / "plugin-runs"
    plugin = directory / "credential-plugin"
    plugin.write_text(PLUGIN.format(python=sys.executable, counter=str(counter), expires=expires,
                                    cert=base64.b64decode(user["client-certificate-data"]).decode(),
                                    key=base64.b64decode(user["client-key-data"]).decode()))
    plugin.chmod(0o755)
    config = {**admin, "users": [{"name": "exec-user", "user": {"exec": {
        "apiVersion": api_version, "command": str(plugin), "interactiveMode": "Never"}}}]}
    config["contexts"] = [{"name": c["name"], "context": {**c["context"], "user": "exec-user"}}
                          for c in admin["contexts"]]
    path = directory / "exec.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    return path, counter


class ConnectProxy(socketserver.ThreadingTCPServer):
    """An HTTP CONNECT proxy on loopback; ``tunnels`` lists the ``host:port`` targets it connected to."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        self.tunnels: list[str] = []

        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = self.request.recv(4096)
                    if not chunk:
                        return
                    head += chunk
                method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
                if method != "CONNECT":
                    self.request.sendall(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                    return
                host, port = target.rsplit(":", 1)
                upstream = socket.create_connection((host, int(port)), timeout=10)
                proxy.tunnels.append(target)
                self.request.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                sockets = [self.request, upstream]
                try:
                    while True:
                        ready, _, _ = select.select(sockets, [], [], 30)
                        if not ready:
                            return
                        for s in ready:
                            data = s.recv(65536)
                            if not data:
                                return
                            (upstream if s is self.request else self.request).sendall(data)
                finally:
                    upstream.close()

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()


class HeaderRecorder(http.server.ThreadingHTTPServer):
    """A loopback HTTP server answering every GET with ``{}``; ``headers`` holds each request's headers."""

    def __init__(self):
        self.headers: list[dict[str, str]] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - http.server's naming
                recorder.headers.append(dict(self.headers))
                body = json.dumps({"major": "1", "minor": "36"}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.shutdown()
        self.server_close()
