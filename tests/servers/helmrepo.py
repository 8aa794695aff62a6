"""Helm chart repositories on loopback, made with the real ``helm``.

- :func:`make_chart` writes a small chart directory (Chart.yaml, values.yaml, a ConfigMap template, extra
  files, dependencies); :func:`package` packages it with ``helm package``;
- :class:`HelmRepoServer` serves a directory of packaged charts and the ``index.yaml`` that
  ``helm repo index`` made for it over a threaded ``http.server``, optionally with basic auth (``username``,
  ``password``) or HTTPS (a generated CA, ``.ca_pem``); it records every request (path, whether
  credentials were sent) so tests can check where credentials go;
- :func:`push_oci` pushes packaged charts with ``helm push`` into a registry of ``servers.registry``.

    from servers.helmrepo import helm_repo, helm_repo_auth  # noqa: F401

:func:`helm_controllers` runs fluxpy's HelmRepository, HelmChart and HelmRelease reconcilers on the test
namespace (it needs ``artifact_storage`` from :mod:`servers.git` imported too).
"""
from __future__ import annotations

import base64
import dataclasses
import http.server
import secrets
import ssl
import threading
from pathlib import Path

import pytest
import yaml

from controllers.lib.helm import HelmCLI
from servers.net import PausableHandlers, serve_http, stop_http
from servers.tls import serving_certificate

TIMEOUT = 60.0


def make_chart(directory: Path, name: str, version: str = "0.1.0", *, values: dict | None = None,
               files: dict[str, str] | None = None, dependencies: list[dict] | None = None,
               api_version: str = "v2") -> Path:
    """A chart directory ``directory/name`` rendering one ConfigMap from its values."""
    chart = Path(directory) / name
    (chart / "templates").mkdir(parents=True, exist_ok=True)
    meta = {"apiVersion": api_version, "name": name, "version": version, "description": f"The {name} chart",
            "type": "application", "appVersion": "1.0.0"}
    if dependencies:
        meta["dependencies"] = dependencies
    (chart / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    (chart / "values.yaml").write_text(yaml.safe_dump(values if values is not None else {"replicas": 1,
                                                                                         "message": "hello"}))
    (chart / "templates" / "configmap.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-" + name + "\n"
        "data:\n  values: {{ toJson .Values | quote }}\n")
    for rel, content in (files or {}).items():
        (chart / rel).parent.mkdir(parents=True, exist_ok=True)
        (chart / rel).write_text(content)
    return chart


def package(chart_dir: Path, dest: Path, version: str = "") -> Path:
    """``helm package`` of a chart directory into ``dest``; the archive's path."""
    with HelmCLI(TIMEOUT) as helm:
        return helm.package(chart_dir, dest, version)


@dataclasses.dataclass
class Request:
    path: str
    authorized: bool
    """Whether the request carried the server's credentials."""
    credentials_sent: bool
    """Whether it carried any Authorization header."""


class HelmRepoServer(PausableHandlers):
    """A static Helm repository: ``root`` holds the charts and ``index.yaml``; ``url`` is where it is served.
    ``stop()`` then ``start()`` serves again on the same port, ``pause()`` hangs it."""

    def __init__(self, root: Path, *, username: str = "", password: str = "", tls: bool = False):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.username, self.password, self.tls = username, password, tls
        self.ca_pem = b""
        self.requests: list[Request] = []
        self.delay = 0.0
        """Seconds to wait before answering (to test timeouts)."""
        self._server: http.server.ThreadingHTTPServer | None = None
        self._context: ssl.SSLContext | None = None
        self.port = 0

    @property
    def url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def add_chart(self, chart_dir: Path, version: str = "", *, reindex: bool = True) -> Path:
        """Package a chart directory into the repository (and index it again)."""
        archive = package(chart_dir, self.root, version)
        if reindex:
            self.index()
        return archive

    def index(self, base_url: str | None = None) -> bytes:
        """``helm repo index`` of the repository (``--url`` defaults to the served address)."""
        with HelmCLI(TIMEOUT) as helm:
            args = ["repo", "index", str(self.root)]
            if base_url != "":
                args += ["--url", base_url or self.url]
            helm.run(*args)
        return (self.root / "index.yaml").read_bytes()

    def start(self) -> "HelmRepoServer":
        server = self
        expected = ""
        if self.username:
            expected = "Basic " + base64.b64encode(f"{self.username}:{self.password}".encode()).decode()

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, directory=str(server.root), **kwargs)

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                header = self.headers.get("Authorization") or ""
                authorized = not expected or header == expected
                server.requests.append(Request(self.path, authorized and bool(expected), bool(header)))
                server.held()
                if server.delay:
                    threading.Event().wait(server.delay)
                if not authorized:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="helm"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

        if self.tls and self._context is None:  # once: a restart keeps the certificate
            self._context = self._tls_context()
        self._server = serve_http(Handler, "helm-repo", self._context, self.port)
        self.port = self._server.server_address[1]
        return self

    def _tls_context(self) -> ssl.SSLContext:
        serving = serving_certificate(self.root.parent, "helm-repo", "fluxpy-helm-test-ca")
        self.ca_pem = serving.ca_pem
        return serving.context()

    def stop(self) -> None:
        stop_http(self._server)
        self._server = None


def _served(tmp_path: Path, **kwargs):
    server = HelmRepoServer(tmp_path / "helm-repo" / "charts", **kwargs).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def helm_repo(tmp_path):
    """An empty Helm HTTP repository without authentication (add charts with ``add_chart``)."""
    yield from _served(tmp_path)


@pytest.fixture
def helm_repo_auth(tmp_path):
    """An empty Helm HTTP repository with basic authentication (``.username``, ``.password``)."""
    yield from _served(tmp_path, username="fluxpy", password=secrets.token_hex(12))


@pytest.fixture
def helm_repo_tls(tmp_path):
    """An empty Helm HTTPS repository with a certificate of a generated CA (``.ca_pem``)."""
    yield from _served(tmp_path, tls=True)


def push_oci(registry, archive: Path, repository: str) -> str:
    """``helm push`` of a packaged chart to ``oci://<registry>/<repository>`` (logging in when the registry
    wants credentials); the pushed reference."""
    with HelmCLI(TIMEOUT) as helm:
        plain = [] if registry.tls else ["--plain-http"]
        tls: list[str] = []
        if registry.tls:
            ca = helm.home / "ca.pem"
            ca.write_bytes(registry.ca_pem)
            tls = ["--ca-file", str(ca)]
        if registry.username:
            helm.run("registry", "login", registry.host, "--username", registry.username, "--password-stdin",
                     *plain, *tls, stdin=registry.password)
        out = helm.run("push", str(archive), f"oci://{registry.host}/{repository}", *plain, *tls)
    return out.strip().splitlines()[0].removeprefix("Pushed: ") if out.strip() else ""


@pytest.fixture
def helm_controllers(start_controller, artifact_storage, namespace, flux_crds):
    """fluxpy's HelmRepository and HelmChart reconcilers (one source-controller, artifacts in the served
    ``artifact_storage`` of :mod:`servers.git`) and the helm-controller, running on the test namespace."""
    from controllers.helm.reconciler import HelmReleaseReconciler, Options
    from controllers.source.helmchart import HelmChartReconciler
    from controllers.source.helmrepo import HelmRepositoryReconciler

    start_controller(HelmRepositoryReconciler(artifact_storage), namespace)
    start_controller(HelmChartReconciler(artifact_storage), namespace)
    return start_controller(HelmReleaseReconciler(Options(health_interval=0.5)), namespace)


#: a chart template that renders only while ``.Values.extra`` is true (an object an upgrade can delete)
OPTIONAL_EXTRA = ("{{ if .Values.extra }}apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-extra\n"
                  "data: {k: v}\n{{ end }}")


def install_app_release(kube, namespace: str, helm_repo, tmp_path) -> dict:
    """Chart ``app`` 1.0.0 (values message=hello, extra=true, with :data:`OPTIONAL_EXTRA`) in ``helm_repo``,
    a HelmRepository ``charts`` and a HelmRelease ``app`` (message=live) installed by the running
    helm_controllers; returns the installed HelmRelease."""
    from controllers.api.helm import HELM_RELEASE
    from controllers.api.objects import find_condition
    from controllers.api.source import HELM_REPOSITORY
    from servers.objects import apply_source
    from servers.waiting import wait

    helm_repo.add_chart(make_chart(tmp_path, "app", "1.0.0", files={"templates/extra.yaml": OPTIONAL_EXTRA},
                                   values={"message": "hello", "extra": True}))
    apply_source(kube, HELM_REPOSITORY, namespace, "charts", {"url": helm_repo.url, "interval": "10m"})
    apply_source(kube, HELM_RELEASE, namespace, "app", {
        "interval": "10m", "values": {"message": "live"},
        "chart": {"spec": {"chart": "app", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}})
    return wait(kube, HELM_RELEASE, namespace, "app",
                lambda o: (find_condition(o, "Ready") or {}).get("reason") == "InstallSucceeded", "installed", 60)
