"""The README's story on the embedded control plane: a local Git server with an example repository,
``fluxpy bootstrap git``, everything Ready, a change pushed and applied, a direct edit reverted, a HelmRelease
from a chart repository on loopback installed and read by the real ``helm list``, and a push that reaches the
cluster at once through a Receiver's webhook (the Git server calls it, as GitHub would), with an Alert's
notifications landing in the Git server's sink (``<state>/notifications.jsonl``).

::

    fluxpy dev up                    # control plane + controllers (the demo needs them running)
    python -m bootstrap.demo up      # the story (idempotent: a second run reuses the server and repository)
    python -m bootstrap.demo down    # stop the demo's Git server (then: fluxpy dev down)

The pieces, usable on their own:

- :class:`GitServer` — Git's smart HTTP (``git http-backend``) on loopback with token authentication,
  serving the bare repositories of a directory; ``python -m bootstrap.demo serve`` runs it in the foreground,
  :func:`start_git_server` detached (its pid and port in ``<state>/git-server.json``);
- :func:`example_files` — the example repository: an ``infrastructure`` layer, an ``apps`` layer that
  ``dependsOn`` it, a ``postBuild`` substitution, and a Secret encrypted with SOPS (age) that the cluster
  decrypts with the ``sops-age`` Secret;
- :func:`publish_chart` — a small chart packaged by the real ``helm`` into the Helm repository the same server
  serves (``/charts/index.yaml``), which a HelmRelease in the repository installs;
- :func:`story` — the steps, each printed as the command a user would type (``$ fluxpy ...``) and run.

State lives in ``<fluxpy dev state dir>/demo`` (``$FLUXPY_STATE_DIR``, as ``fluxpy dev``).
"""
from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import hmac
import http.server
import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path
from typing import Callable, Sequence

DEMO_DIR = "demo"
SERVER_FILE = "git-server.json"
REPOSITORY = "fleet"
GIT_USER = "fluxbot"
CLUSTER_PATH = "clusters/demo"
APPS_NAMESPACE = "demo"
GREETING, NEW_GREETING = "hello from fluxpy", "hello again, from Git"
CHARTS_DIR, CHART, CHART_VERSION = "charts", "greeter", "1.0.0"
#: the push webhooks the Git server calls, and where its notification sink writes (under the demo state)
WEBHOOKS_FILE, NOTIFICATIONS_FILE, NOTIFICATIONS_PATH = "webhooks.json", "notifications.jsonl", "/notifications"

Log = Callable[[str], None]


class DemoError(RuntimeError):
    """A step of the demo failed; the message says which and why."""


# ------------------------------------------------------------------------------------------ Git server


class GitServer:
    """Smart HTTP for the bare repositories under ``root`` (``/<name>.git``); clients authenticate with
    any user name and ``token`` as the password (reads and pushes)."""

    def __init__(self, root: Path, token: str, port: int = 0, host: str = "127.0.0.1"):
        self.root, self.token, self.host = Path(root), token, host
        self._server = http.server.ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.port}/{name}.git"

    def _handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                if self.path.startswith("/charts/"):
                    server._chart_file(self)
                else:
                    server._cgi(self)

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                if self.path == NOTIFICATIONS_PATH:
                    server._notification(self)
                else:
                    server._cgi(self)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass

        return Handler

    def _authorized(self, header: str) -> bool:
        if not header.startswith("Basic "):
            return False
        try:
            _, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return secrets.compare_digest(password, self.token)

    def _chart_file(self, req: http.server.BaseHTTPRequestHandler) -> None:
        """The demo's Helm chart repository: the files of ``<state>/charts`` under ``/charts/``, read-only."""
        name = req.path.partition("?")[0].removeprefix("/charts/")
        path = self.root.parent / CHARTS_DIR / name
        if "/" in name or name.startswith(".") or not path.is_file():
            req.send_response(404)
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        payload = path.read_bytes()
        req.send_response(200)
        req.send_header("Content-Type", "text/yaml" if name.endswith(".yaml") else "application/gzip")
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)

    def _notification(self, req: http.server.BaseHTTPRequestHandler) -> None:
        """The demo's notification sink (a generic Provider's address): each event appended, one JSON per line,
        to ``<state>/notifications.jsonl``."""
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        with open(self.root.parent / NOTIFICATIONS_FILE, "ab") as sink:
            sink.write(body.replace(b"\n", b" ") + b"\n")
        req.send_response(202)
        req.send_header("Content-Length", "0")
        req.end_headers()

    def _push_webhooks(self, path: str) -> None:
        """After a push, call the webhooks of ``<state>/webhooks.json`` (``[{"url", "secret"}]``) as GitHub
        does: a ``push`` event signed with ``X-Hub-Signature-256``."""
        hooks = json.loads((self.root.parent / WEBHOOKS_FILE).read_text() or "[]") \
            if (self.root.parent / WEBHOOKS_FILE).exists() else []
        repo = path.removesuffix("/git-receive-pack").strip("/")
        after = subprocess.run(["git", "--git-dir", str(self.root / repo), "rev-parse", "HEAD"], capture_output=True,
                               text=True, timeout=30).stdout.strip()
        payload = json.dumps({"ref": "refs/heads/main", "after": after,
                              "repository": {"full_name": repo.removesuffix(".git"),
                                             "clone_url": f"http://{self.host}:{self.port}/{repo}"}}).encode()
        for hook in hooks:
            signature = "sha256=" + hmac.new(hook["secret"].encode(), payload, hashlib.sha256).hexdigest()
            request = urllib.request.Request(hook["url"], data=payload, method="POST", headers={
                "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature})
            try:
                urllib.request.urlopen(request, timeout=10).close()
            except OSError:
                pass  # a webhook that fails does not fail the push (as on GitHub)

    def _cgi(self, req: http.server.BaseHTTPRequestHandler) -> None:
        if not self._authorized(req.headers.get("Authorization") or ""):
            req.send_response(401)
            req.send_header("WWW-Authenticate", 'Basic realm="fluxpy-demo"')
            req.send_header("Content-Length", "0")
            req.end_headers()
            return
        path, _, query = req.path.partition("?")
        body = req.rfile.read(int(req.headers.get("Content-Length") or 0))
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "GIT_PROJECT_ROOT": str(self.root),
               "GIT_HTTP_EXPORT_ALL": "1", "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": req.command,
               "CONTENT_TYPE": req.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
               "REMOTE_USER": GIT_USER, "REMOTE_ADDR": req.client_address[0], "GIT_CONFIG_NOSYSTEM": "1",
               "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(self.root)}
        if req.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = req.headers["Git-Protocol"]
        out = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=120).stdout
        head, sep, payload = out.partition(b"\r\n\r\n")
        if not sep:
            head, _, payload = out.partition(b"\n\n")
        status, headers = 200, []
        for line in head.decode(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.split()[0])
            elif key:
                headers.append((key.strip(), value.strip()))
        req.send_response(status)
        for key, value in headers:
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(payload)))
        req.end_headers()
        req.wfile.write(payload)
        if req.command == "POST" and path.endswith("/git-receive-pack") and status == 200:
            threading.Thread(target=self._push_webhooks, args=(path,), daemon=True).start()

    def serve_forever(self) -> None:
        self._server.serve_forever()

    def start(self) -> "GitServer":
        threading.Thread(target=self._server.serve_forever, name="demo-git", daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclasses.dataclass(frozen=True)
class RunningServer:
    pid: int
    port: int
    token: str
    root: Path

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    try:
        return b"bootstrap.demo" in Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True


def start_git_server(state: Path, log: Log) -> RunningServer:
    """The demo's Git server, started detached unless it already runs (``<state>/git-server.json``)."""
    record = state / SERVER_FILE
    if record.exists():
        data = json.loads(record.read_text())
        if _alive(data["pid"]):
            log(f"✔ Git server already running at http://127.0.0.1:{data['port']}")
            return RunningServer(data["pid"], data["port"], data["token"], Path(data["root"]))
    root = state / "repositories"
    root.mkdir(parents=True, exist_ok=True)
    token = secrets.token_hex(16)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    token_file = state / "git-token"
    token_file.touch(0o600)
    token_file.write_text(token)
    logfile = open(state / "git-server.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "bootstrap.demo", "serve", "--root", str(root), "--port", str(port),
                             "--token-file", str(token_file)], stdout=logfile, stderr=logfile,
                            stdin=subprocess.DEVNULL, start_new_session=True, env=_child_env())
    logfile.close()
    deadline = time.monotonic() + 15
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise DemoError(f"the demo Git server did not start (log: {state / 'git-server.log'})") from None
            time.sleep(0.05)
    record.write_text(json.dumps({"pid": proc.pid, "port": port, "token": token, "root": str(root)}))
    record.chmod(0o600)
    log(f"✔ Git server running at http://127.0.0.1:{port} (pid {proc.pid})")
    return RunningServer(proc.pid, port, token, root)


def stop_git_server(state: Path, log: Log) -> bool:
    record = state / SERVER_FILE
    if not record.exists():
        return False
    data = json.loads(record.read_text())
    if _alive(data["pid"]):
        os.kill(data["pid"], signal.SIGTERM)
        log(f"✔ Git server (pid {data['pid']}) stopped")
    record.unlink()
    return True


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    return env


# ------------------------------------------------------------------------------------------ the repository


def _doc(text: str) -> str:
    return "\n".join(line[4:] if line.startswith("    ") else line for line in text.strip("\n").splitlines()) + "\n"


def age_key() -> tuple[str, str]:
    """A new age identity and its recipient (``age-keygen``)."""
    from controllers.localcluster import tools

    out = subprocess.run([str(tools.ensure("age-keygen"))], capture_output=True, check=True, timeout=60).stdout.decode()
    recipient = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("# public key:"))
    return out, recipient


def encrypt(manifest: str, recipient: str) -> str:
    """``manifest`` (a Secret) with its data encrypted for ``recipient`` by the real sops."""
    from controllers.localcluster import tools

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "secret.yaml")
        path.write_text(manifest)
        subprocess.run([str(tools.ensure("sops")), "--encrypt", "--age", recipient, "--encrypted-regex",
                        "^(data|stringData)$", "--in-place", str(path)], check=True, capture_output=True, timeout=60,
                       env={**os.environ, "HOME": tmp})
        return path.read_text()


def example_files(recipient: str) -> dict[str, str]:
    """The example repository (before bootstrap adds ``clusters/demo/flux-system``)."""
    secret = _doc(f"""
    apiVersion: v1
    kind: Secret
    metadata:
      name: podinfo-credentials
      namespace: {APPS_NAMESPACE}
    stringData:
      username: podinfo
      password: {secrets.token_hex(12)}
    """)
    return {
        "README.md": ("# fleet\n\nThe example repository of the fluxpy demo: `clusters/demo` is what the cluster "
                      "syncs;\n`infrastructure` comes first, `apps` depends on it.\n"),
        f"{CLUSTER_PATH}/infrastructure.yaml": _doc("""
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata:
              name: infrastructure
              namespace: flux-system
            spec:
              interval: 10m
              path: ./infrastructure
              prune: true
              sourceRef:
                kind: GitRepository
                name: flux-system
            """),
        f"{CLUSTER_PATH}/apps.yaml": _doc(f"""
            apiVersion: kustomize.toolkit.fluxcd.io/v1
            kind: Kustomization
            metadata:
              name: apps
              namespace: flux-system
            spec:
              dependsOn:
                - name: infrastructure
              interval: 10m
              path: ./apps
              prune: true
              sourceRef:
                kind: GitRepository
                name: flux-system
              postBuild:
                substitute:
                  greeting: "{GREETING}"
              decryption:
                provider: sops
                secretRef:
                  name: sops-age
            """),
        "infrastructure/kustomization.yaml": _doc("""
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources:
              - namespace.yaml
              - settings.yaml
            """),
        "infrastructure/namespace.yaml": _doc(f"""
            apiVersion: v1
            kind: Namespace
            metadata:
              name: {APPS_NAMESPACE}
            """),
        "infrastructure/settings.yaml": settings_file(),
        "apps/kustomization.yaml": _doc("""
            apiVersion: kustomize.config.k8s.io/v1beta1
            kind: Kustomization
            resources:
              - config.yaml
              - credentials.enc.yaml
              - deployment.yaml
            """),
        "apps/config.yaml": _doc(f"""
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: podinfo
              namespace: {APPS_NAMESPACE}
            data:
              greeting: "${{greeting}}"
            """),
        "apps/credentials.enc.yaml": encrypt(secret, recipient),
        "apps/deployment.yaml": _doc(f"""
            apiVersion: apps/v1
            kind: Deployment
            metadata:
              name: podinfo
              namespace: {APPS_NAMESPACE}
            spec:
              replicas: 1
              selector:
                matchLabels:
                  app: podinfo
              template:
                metadata:
                  labels:
                    app: podinfo
                spec:
                  containers:
                    - name: podinfo
                      image: ghcr.io/stefanprodan/podinfo:6.7.0
                      envFrom:
                        - configMapRef:
                            name: podinfo
            """),
    }


def settings_file(last_push: str = "") -> str:
    """The infrastructure layer's ConfigMap (``last-push``: what the webhook step changes)."""
    extra = f'\n  last-push: "{last_push}"' if last_push else ""
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: platform-settings\n  namespace: {APPS_NAMESPACE}\n"
            f"data:\n  cluster: demo{extra}\n")


def publish_chart(state: Path) -> None:
    """The ``greeter`` chart (a ConfigMap and a Service) packaged with ``helm package`` into
    ``<state>/charts`` and indexed with ``helm repo index`` (relative URLs: any port serves it)."""
    from controllers.lib.helm import HelmCLI

    charts = state / CHARTS_DIR
    if (charts / "index.yaml").exists():
        return
    with tempfile.TemporaryDirectory(prefix="fluxpy-demo-chart-") as tmp:
        chart = Path(tmp) / CHART
        (chart / "templates").mkdir(parents=True)
        (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {CHART}\nversion: {CHART_VERSION}\n"
                                          "appVersion: \"1.0\"\ndescription: The fluxpy demo's chart\n")
        (chart / "values.yaml").write_text("greeting: hello from a Helm chart\nport: 8080\n")
        (chart / "templates" / "configmap.yaml").write_text(textwrap.dedent("""
            apiVersion: v1
            kind: ConfigMap
            metadata:
              name: {{ .Release.Name }}
            data:
              greeting: {{ .Values.greeting | quote }}
            """))
        (chart / "templates" / "service.yaml").write_text(textwrap.dedent("""
            apiVersion: v1
            kind: Service
            metadata:
              name: {{ .Release.Name }}
            spec:
              selector:
                app: {{ .Release.Name }}
              ports:
                - port: {{ .Values.port }}
            """))
        with HelmCLI(120) as helm:
            helm.package(chart, charts)
            helm.run("repo", "index", str(charts))


def greeter_files(chart_url: str) -> dict[str, str]:
    """The HelmRepository and the HelmRelease the demo adds to the repository."""
    return {f"{CLUSTER_PATH}/greeter.yaml": textwrap.dedent(f"""
        apiVersion: source.toolkit.fluxcd.io/v1
        kind: HelmRepository
        metadata:
          name: demo-charts
          namespace: flux-system
        spec:
          interval: 10m
          url: {chart_url}
        ---
        apiVersion: helm.toolkit.fluxcd.io/v2
        kind: HelmRelease
        metadata:
          name: greeter
          namespace: flux-system
        spec:
          interval: 10m
          targetNamespace: {APPS_NAMESPACE}
          install:
            createNamespace: true
          chart:
            spec:
              chart: {CHART}
              version: "1.x"
              sourceRef:
                kind: HelmRepository
                name: demo-charts
          values:
            greeting: hello from a HelmRelease
        """).lstrip("\n")}


# ------------------------------------------------------------------------------------------ the story


@dataclasses.dataclass
class Story:
    """What the story needs: where it keeps state, the cluster, the CLI to run, and how to talk."""

    state: Path
    kubeconfig: Path
    components: Sequence[str] = ()
    log: Log = print
    #: the fluxpy command line (the module, so the demo runs the checkout it belongs to).
    fluxpy: Sequence[str] = (sys.executable, "-m", "flux_cli")
    timeout: str = "5m"

    def run_fluxpy(self, *args: str, env: dict[str, str] | None = None) -> str:
        line = " ".join(shlex.quote(a) for a in ("fluxpy", *args))
        self.log(f"$ {line}")
        proc = subprocess.run([*self.fluxpy, *args, "--kubeconfig", str(self.kubeconfig)],
                              env={**_child_env(), **(env or {})}, capture_output=True, text=True, timeout=900)
        for stream in (proc.stderr, proc.stdout):
            if stream.strip():
                self.log(stream.rstrip("\n"))
        if proc.returncode != 0:
            raise DemoError(f"'{line}' failed (exit {proc.returncode})")
        return proc.stdout


def _kube(kubeconfig: Path):
    from controllers.runtime.kube import KubeClient

    return KubeClient.from_kubeconfig(str(kubeconfig))


def _wait(what: str, done: str, predicate: Callable[[], object], timeout: float, log: Log,
          nudge: Callable[[], None] | None = None):
    """Poll ``predicate`` until true (``◎ waiting for <what>``, then ``✔ <done>``); ``nudge`` (a reconcile
    request) once a fifth of the time has passed."""
    log(f"◎ waiting for {what}")
    deadline, nudged = time.monotonic() + timeout, False
    while True:
        value = predicate()
        if value:
            log(f"✔ {done}")
            return value
        if nudge and not nudged and time.monotonic() > deadline - timeout * 0.8:
            nudge()
            nudged = True
        if time.monotonic() > deadline:
            raise DemoError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.5)


def story(s: Story) -> None:
    """Run the whole story (see the module notes)."""
    from bootstrap.git import Checkout, Credentials
    from controllers.api.builtin import CONFIGMAP, NAMESPACE, SECRET
    from controllers.api.kinds import kind_by_name
    from controllers.api.objects import dig, find_condition
    from controllers.runtime.kube import AlreadyExists, NotFound
    from controllers.runtime.protocol import request_reconcile
    from manifestgen.sync import File

    log = s.log
    s.state.mkdir(parents=True, exist_ok=True)
    kube = _kube(s.kubeconfig)
    ks_kind, git_kind = kind_by_name("Kustomization"), kind_by_name("GitRepository")

    log("► 1. a local Git server with an example repository")
    server = start_git_server(s.state, log)
    bare = server.root / f"{REPOSITORY}.git"
    credentials = Credentials(username=GIT_USER, password=server.token)
    url = server.url(REPOSITORY)
    key_file = s.state / "age.agekey"
    if not bare.exists():
        import git

        git.Repo.init(str(bare), bare=True, initial_branch="main")
        identity, recipient = age_key()
        key_file.touch(0o600)
        key_file.write_text(identity)
        with Checkout(url, "main", credentials, author_name="Demo", author_email="demo@fluxpy.local").clone() as c:
            files = example_files(recipient)
            c.write([File(path, content) for path, content in files.items()])
            c.commit("Example fleet: infrastructure, apps, an encrypted Secret", list(files))
            c.push()
        log(f"✔ repository {url} with {', '.join(sorted({p.split('/')[0] for p in files}))}")
    else:
        log(f"✔ repository {url} exists")

    log("► 2. the age key the cluster decrypts SOPS Secrets with")
    try:
        kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})
    except AlreadyExists:
        pass
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "sops-age", "namespace": "flux-system"},
              "data": {"age.agekey": base64.b64encode(key_file.read_bytes()).decode()}}
    try:
        kube.create(SECRET, secret, "flux-system")
        log("✔ Secret flux-system/sops-age created")
    except AlreadyExists:
        log("✔ Secret flux-system/sops-age exists")

    log("► 3. bootstrap: fluxpy commits its manifests to the repository and the cluster syncs itself from it")
    args = ["bootstrap", "git", "--url", url, "--allow-insecure-http", "--token-auth", "--username", GIT_USER,
            "--path", CLUSTER_PATH, "--timeout", s.timeout]
    if s.components:
        args += ["--components", ",".join(s.components)]
    s.run_fluxpy(*args, env={"GIT_PASSWORD": server.token})

    def ready(name: str) -> bool:
        try:
            obj = kube.get(ks_kind, name, "flux-system")
        except NotFound:
            return False
        return (find_condition(obj, "Ready") or {}).get("status") == "True"

    def nudge(name: str) -> Callable[[], None]:
        return lambda: request_reconcile(kube, ks_kind, name, "flux-system")

    _wait("Kustomization infrastructure", "Kustomization infrastructure is Ready", lambda: ready("infrastructure"),
          120, log, nudge("infrastructure"))
    _wait("Kustomization apps (dependsOn infrastructure)", "Kustomization apps is Ready", lambda: ready("apps"), 180,
          log, nudge("apps"))
    s.run_fluxpy("get", "all", "-A")

    def greeting() -> str:
        try:
            return (kube.get(CONFIGMAP, "podinfo", APPS_NAMESPACE).get("data") or {}).get("greeting", "")
        except NotFound:
            return ""

    decrypted = kube.get(SECRET, "podinfo-credentials", APPS_NAMESPACE)
    log(f"✔ ConfigMap {APPS_NAMESPACE}/podinfo greeting={greeting()!r} (postBuild substitution); Secret "
        f"{APPS_NAMESPACE}/podinfo-credentials decrypted ({', '.join(sorted(decrypted.get('data') or {}))})")

    log("► 4. a change pushed to Git reaches the cluster")
    with Checkout(url, "main", credentials, author_name="Demo", author_email="demo@fluxpy.local").clone() as c:
        path = f"{CLUSTER_PATH}/apps.yaml"
        text = c.read(path) or ""
        current = GREETING if GREETING in text else NEW_GREETING
        wanted = NEW_GREETING if current == GREETING else GREETING
        c.write([File(path, text.replace(current, wanted))])
        sha = c.commit(f"apps: greeting {wanted!r}", [path])
        c.push()
    log(f"✔ pushed {sha[:12]}: greeting {current!r} → {wanted!r}")
    s.run_fluxpy("reconcile", "source", "git", "flux-system")
    _wait("the change to reach the cluster", f"ConfigMap {APPS_NAMESPACE}/podinfo greeting={wanted!r}",
          lambda: greeting() == wanted, 120, log, nudge("apps"))

    log("► 5. a direct edit is reverted")
    log(f"$ kubectl -n {APPS_NAMESPACE} patch configmap podinfo -p '{{\"data\":{{\"greeting\":\"edited by hand\"}}}}'")
    kube.patch(CONFIGMAP, "podinfo", {"data": {"greeting": "edited by hand"}}, APPS_NAMESPACE)
    _wait("kustomize-controller to correct the drift", f"ConfigMap {APPS_NAMESPACE}/podinfo greeting={wanted!r} "
          "again, as in Git", lambda: greeting() == wanted, 120, log, nudge("apps"))

    log("► 6. a HelmRelease from a Helm chart repository on loopback")
    publish_chart(s.state)
    chart_url = f"http://127.0.0.1:{server.port}/{CHARTS_DIR}"
    with Checkout(url, "main", credentials, author_name="Demo", author_email="demo@fluxpy.local").clone() as c:
        files = greeter_files(chart_url)
        if any(c.read(path) != content for path, content in files.items()):
            c.write([File(path, content) for path, content in files.items()])
            sha = c.commit("greeter: a HelmRelease of the demo chart repository", list(files))
            c.push()
            log(f"✔ pushed {sha[:12]}: HelmRepository demo-charts ({chart_url}) and HelmRelease greeter")
    s.run_fluxpy("reconcile", "source", "git", "flux-system")
    hr_kind = kind_by_name("HelmRelease")

    def released() -> bool:
        try:
            obj = kube.get(hr_kind, "greeter", "flux-system")
        except NotFound:
            return False
        return (find_condition(obj, "Ready") or {}).get("status") == "True"

    _wait("HelmRelease greeter", "HelmRelease greeter is Ready", released, 180, log, nudge("flux-system"))
    s.run_fluxpy("get", "helmreleases", "-A")
    from controllers.lib.helm import HelmCLI

    log("$ helm list -A")
    with HelmCLI(60) as helm:
        log(helm.run("list", "-A", "--kubeconfig", str(s.kubeconfig)).rstrip("\n"))

    if "notification-controller" in (s.components or ("notification-controller",)):
        webhook_step(s, kube, server, url, credentials)

    revision = dig(kube.get(git_kind, "flux-system", "flux-system"), "status.artifact.revision")
    s.run_fluxpy("get", "all", "-A")
    log(f"✔ the cluster follows {url} at {revision}")


def webhook_step(s: Story, kube, server: RunningServer, url: str, credentials) -> None:
    """A push reaches the cluster at once: the Git server calls a Receiver's webhook (GitHub's push event,
    signed), which asks the GitRepository to reconcile; an Alert sends the resulting events to a generic
    Provider (the Git server's notification sink)."""
    from bootstrap.git import Checkout
    from controllers.api.builtin import CONFIGMAP
    from controllers.api.kinds import kind_by_name
    from controllers.api.objects import dig, find_condition
    from controllers.localcluster import dev
    from manifestgen.sync import File

    log = s.log
    log("► 7. a push notifies the cluster: a Receiver for the Git server's webhook, an Alert for the events")
    token = hashlib.sha256(f"{server.token}/receiver".encode()).hexdigest()[:32]
    sink = f"http://127.0.0.1:{server.port}{NOTIFICATIONS_PATH}"
    objects = [
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "webhook-token", "namespace": "flux-system"},
         "stringData": {"token": token}},
        {"apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver",
         "metadata": {"name": "fleet-push", "namespace": "flux-system"},
         "spec": {"type": "github", "events": ["push"], "secretRef": {"name": "webhook-token"},
                  "resources": [{"kind": "GitRepository", "name": "flux-system"}]}},
        {"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Provider",
         "metadata": {"name": "demo-sink", "namespace": "flux-system"}, "spec": {"type": "generic", "address": sink}},
        {"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert",
         "metadata": {"name": "demo", "namespace": "flux-system"},
         "spec": {"providerRef": {"name": "demo-sink"}, "summary": "demo cluster",
                  "eventSources": [{"kind": "Kustomization", "name": "*"}, {"kind": "GitRepository", "name": "*"}]}},
    ]
    for obj in objects:
        kube.apply(obj, field_manager="fluxpy-demo")
        log(f"✔ {obj['kind']} flux-system/{obj['metadata']['name']} applied")
    receiver_kind = kind_by_name("Receiver")

    def webhook_path() -> str:
        obj = kube.get(receiver_kind, "fleet-push", "flux-system")
        ready = find_condition(obj, "Ready") or {}
        return dig(obj, "status.webhookPath") if ready.get("status") == "True" else ""

    path = _wait("Receiver fleet-push", "Receiver fleet-push is Ready", webhook_path, 60, log)
    hook = f"http://127.0.0.1:{dev.notification_endpoints(s.state.parent)['receiver']}{path}"
    (s.state / WEBHOOKS_FILE).write_text(json.dumps([{"url": hook, "secret": token}]))
    log(f"✔ the Git server calls {hook} on every push (GitHub's push event, signed with the token)")
    s.run_fluxpy("get", "receivers", "-n", "flux-system")

    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with Checkout(url, "main", credentials, author_name="Demo", author_email="demo@fluxpy.local").clone() as c:
        settings = "infrastructure/settings.yaml"
        c.write([File(settings, settings_file(stamp))])
        sha = c.commit(f"infrastructure: last-push {stamp}", [settings])
        c.push()
    pushed = time.monotonic()
    log(f"✔ pushed {sha[:12]} (no reconcile requested: the webhook is the only trigger, the interval is 1m)")

    def applied() -> bool:
        data = kube.get(CONFIGMAP, "platform-settings", APPS_NAMESPACE).get("data") or {}
        return data.get("last-push") == stamp

    _wait("the push to reach the cluster", f"ConfigMap {APPS_NAMESPACE}/platform-settings last-push={stamp!r}",
          applied, 50, log)
    log(f"✔ applied {time.monotonic() - pushed:.1f}s after the push")

    def notified() -> list[dict]:
        sink_file = s.state / NOTIFICATIONS_FILE
        lines = sink_file.read_text().splitlines() if sink_file.exists() else []
        events = [json.loads(line) for line in lines if line.strip()]
        return [e for e in events if sha in json.dumps(e.get("metadata") or {}) or sha[:12] in e.get("message", "")]

    for event in _wait("the notifications of the push", "the Alert's notifications reached the sink", notified,
                       30, log)[-3:]:
        obj = event.get("involvedObject") or {}
        log(f"  {obj.get('kind')}/{obj.get('name')}: {event.get('reason')}: {event.get('message', '').splitlines()[0]}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bootstrap.demo", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the story against the running dev cluster")
    up.add_argument("--state-dir", default=None, help="fluxpy dev's state directory")
    up.add_argument("--components", default="", help="controllers to bootstrap (default: fluxpy's defaults)")
    sub.add_parser("down", help="stop the demo's Git server").add_argument("--state-dir", default=None)
    serve = sub.add_parser("serve", help="run the Git server in the foreground")
    serve.add_argument("--root", required=True)
    serve.add_argument("--port", type=int, required=True)
    serve.add_argument("--token-file", required=True)
    args = parser.parse_args(argv)

    if args.command == "serve":
        server = GitServer(Path(args.root), Path(args.token_file).read_text().strip(), args.port)
        signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
        server.serve_forever()
        return 0
    from controllers.localcluster import dev

    state_dir = Path(args.state_dir) if args.state_dir else dev.default_state_dir()
    if args.command == "down":
        if not stop_git_server(state_dir / DEMO_DIR, print):
            print("✔ no demo Git server was running")
        return 0
    try:
        cluster = dev.cluster(state_dir)
    except dev.DevError as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    components = [c for c in args.components.split(",") if c]
    try:
        story(Story(state_dir / DEMO_DIR, cluster.kubeconfig, components))
    except (DemoError, subprocess.CalledProcessError) as exc:
        print(f"✗ {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
