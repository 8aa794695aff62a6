"""Source-controller benchmark (GitRepositories): prints figures, asserts nothing.

Measures, on this machine, against the embedded local control plane and a local git smart-HTTP server
(``git http-backend``, tests/servers/git.py):

- time for 100 and 500 GitRepositories (each its own repository) to reach Ready, and the peak RSS (VmHWM)
  of the source-controller — a real controller *process* (``python -m controllers source-controller``
  entrypoint, leader election on), one per run, with Flux's default ``--concurrent 2`` and with
  ``--concurrent 10``;
- apiserver requests per idle minute with 500 sources at ``interval: 1m``, from the apiserver's own
  ``apiserver_request_total`` (the benchmark itself sends nothing meanwhile except the two scrapes);
- the artifact build time for one repository of 10 000 files: the checkout, the archive alone, and a full
  reconciliation by the controller.

Run: ``python tests/bench/sources.py [--sizes 100,500] [--idle 60] [--files 10000]``.
"""
from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from controllers.api.builtin import CRD, NAMESPACE  # noqa: E402
from controllers.api.objects import find_condition  # noqa: E402
from controllers.api.source import GIT_REPOSITORY  # noqa: E402
from controllers.localcluster.plane import ControlPlane, free_port  # noqa: E402
from controllers.runtime.kube import KubeClient  # noqa: E402
from servers.git import GitHTTPServer, git  # noqa: E402

#: the source-controller's component entry (as controllers/components.py registers it)
COMPONENT_ENTRY = {"concurrent": 2, "reconcilers": ("controllers.source.git:new_reconciler",),
                   "add_arguments": "controllers.source.common:add_arguments"}
CHILD = ("import sys; from controllers import components as c; "
         f"c.COMPONENTS['source-controller'] = c.Component('source-controller', **{COMPONENT_ENTRY!r}); "
         "from controllers.__main__ import main; sys.exit(main(sys.argv[1:]))")


def install_crds(kube: KubeClient) -> None:
    from manifestgen.crds import crd_manifests

    crds = crd_manifests(["source-controller"])
    for crd in crds:
        kube.apply(crd, field_manager="fluxpy-bench")
    deadline = time.monotonic() + 60
    for crd in crds:
        while not any(c["type"] == "Established" and c["status"] == "True"
                      for c in (kube.get(CRD, crd["metadata"]["name"]).get("status") or {}).get("conditions") or []):
            if time.monotonic() > deadline:
                raise SystemExit(f"CRD {crd['metadata']['name']} not established")
            time.sleep(0.1)
    kube.forget_discovery()
    time.sleep(1)


class Controller:
    """One source-controller process watching one namespace."""

    def __init__(self, kubeconfig: Path, namespace: str, workdir: Path, concurrent: int):
        self.port = free_port()
        self.log = workdir / f"controller-{namespace}.log"
        argv = [sys.executable, "-c", CHILD, "source-controller", f"--kubeconfig={kubeconfig}", "--metrics-addr=0",
                "--health-addr=0", "--log-level=error", "--log-encoding=console", "--enable-leader-election",
                "--watch-all-namespaces=false", f"--concurrent={concurrent}",
                f"--storage-path={workdir / ('storage-' + namespace)}", f"--storage-addr=127.0.0.1:{self.port}"]
        self.spawn(argv, namespace)

    def spawn(self, argv: list[str], namespace: str, extra_env: dict[str, str] | None = None) -> None:
        """Start the controller process: ``RUNTIME_NAMESPACE=namespace`` (plus ``extra_env``), out of cluster,
        output to ``self.log``."""
        env = {**os.environ, "RUNTIME_NAMESPACE": namespace, "PYTHONPATH": str(ROOT), **(extra_env or {})}
        env.pop("KUBERNETES_SERVICE_HOST", None)
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=ROOT)

    def peak_rss_mib(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024

    def stop(self) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)


def make_repos(server: GitHTTPServer, count: int, prefix: str) -> list[str]:
    """``count`` distinct repositories (copies of one template) served by ``server``; their URLs."""
    template = server.root / f"{prefix}-template.git"
    if not template.exists():
        server.repo(f"{prefix}-template", {f"deploy/app-{i}.yaml": f"kind: ConfigMap\nindex: {i}\n"
                                           for i in range(10)})
    urls = []
    for i in range(count):
        target = server.root / f"{prefix}-{i}.git"
        if not target.exists():
            shutil.copytree(template, target)
        urls.append(server.url(f"{prefix}-{i}"))
    return urls


def new_namespace(kube: KubeClient, name: str) -> str:
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def create_sources(kube: KubeClient, namespace: str, urls: list[str], interval: str = "1m") -> None:
    for i, url in enumerate(urls):
        kube.create(GIT_REPOSITORY, {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                                     "metadata": {"name": f"repo-{i}", "namespace": namespace},
                                     "spec": {"url": url, "interval": interval, "ref": {"branch": "main"}}}, namespace)


def wait_all_ready(kube: KubeClient, namespace: str, count: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        items = kube.list(GIT_REPOSITORY, namespace)["items"]
        ready = sum(1 for o in items if (find_condition(o, "Ready") or {}).get("status") == "True")
        if ready == count:
            return time.monotonic() - started
        time.sleep(0.5)
    raise SystemExit(f"only some of {count} GitRepositories in {namespace} became Ready within {timeout}s")


def scrape(plane: ControlPlane) -> collections.Counter:
    """apiserver_request_total summed by (verb, resource, subresource)."""
    context = plane.ssl_context("admin")
    with urllib.request.urlopen(f"{plane.server}/metrics", context=context, timeout=30) as resp:
        text = resp.read().decode()
    totals: collections.Counter = collections.Counter()
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            key = (labels.get("verb", ""), labels.get("resource", ""), labels.get("subresource", ""))
            totals[key] += float(line.rsplit(" ", 1)[1])
    return totals


def bench_ready(kube, plane, server, workdir: Path, size: int, concurrent: int, idle: float) -> None:
    namespace = new_namespace(kube, f"bench-{size}-c{concurrent}")
    urls = make_repos(server, size, "app")
    controller = Controller(plane.kubeconfig, namespace, workdir, concurrent)
    try:
        time.sleep(2)  # process start-up, lease, informers (not part of the figure)
        started = time.monotonic()
        create_sources(kube, namespace, urls)
        created = time.monotonic() - started
        elapsed = wait_all_ready(kube, namespace, size, timeout=1800) + created
        print(f"{size:>4} GitRepositories Ready  --concurrent {concurrent:<3} {elapsed:7.1f} s "
              f"({size / elapsed:5.1f}/s; creating them took {created:.1f} s)   peak RSS {controller.peak_rss_mib():6.1f} MiB")
        if idle:
            time.sleep(5)
            before = scrape(plane)
            time.sleep(idle)
            after = scrape(plane)
            delta = after - before
            delta[("GET", "", "")] -= 1  # our own second scrape (the first one counted before 'before')
            total = sum(v for v in delta.values() if v > 0)
            per_minute = total * 60 / idle
            print(f"     apiserver requests in {idle:.0f} s idle at {size} sources (interval 1m): {total:.0f} "
                  f"= {per_minute:.0f}/min")
            for (verb, resource, sub), count in sorted(delta.items(), key=lambda kv: -kv[1]):
                if count > 0:
                    print(f"       {verb:<6} {resource + ('/' + sub if sub else ''):<24} {count:6.0f}")
            print(f"     peak RSS after the idle minute {controller.peak_rss_mib():6.1f} MiB")
    finally:
        controller.stop()


def bench_big_repo(kube, plane, server, workdir: Path, files: int) -> None:
    from controllers.lib.gitauth import GitAuth
    from controllers.lib.git_client import CheckoutOptions, GitClient
    from controllers.lib.ignore import source_filter
    from controllers.source.storage import Storage

    repo = server.repo("big", {})
    for i in range(files):
        path = repo.work / f"dir-{i // 100:03d}" / f"file-{i:05d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}\ndata:\n  index: '{i}'\n")
    git("add", "-A", cwd=repo.work)
    git("commit", "-q", "-m", f"{files} files", cwd=repo.work)
    git("push", "-q", "origin", "HEAD:refs/heads/main", cwd=repo.work)

    checkout = Path(tempfile.mkdtemp(dir=workdir))
    started = time.monotonic()
    with GitAuth(server.url(repo)) as auth:
        GitClient(server.url(repo), auth, 300).checkout(checkout / "repo", CheckoutOptions(branch="main"))
    cloned = time.monotonic() - started
    shutil.rmtree(checkout / "repo" / ".git")
    storage = Storage(workdir / "big-storage", "127.0.0.1:1")
    started = time.monotonic()
    artifact = storage.archive("gitrepository/bench/big/x.tar.gz", checkout / "repo",
                               ignore=source_filter(checkout / "repo", None))
    archived = time.monotonic() - started
    print(f"artifact of {files} files: checkout {cloned:5.2f} s, archive {archived:5.2f} s "
          f"({artifact['size'] / 1024:.0f} KiB tar.gz)")

    namespace = new_namespace(kube, "bench-big")
    controller = Controller(plane.kubeconfig, namespace, workdir, 2)
    try:
        time.sleep(2)
        started = time.monotonic()
        kube.create(GIT_REPOSITORY, {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                                     "metadata": {"name": "big", "namespace": namespace},
                                     "spec": {"url": server.url(repo), "interval": "1h", "ref": {"branch": "main"}}},
                    namespace)
        elapsed = wait_all_ready(kube, namespace, 1, timeout=600)
        print(f"  full reconciliation by the controller (clone + archive + status): {elapsed:5.2f} s, "
              f"peak RSS {controller.peak_rss_mib():.1f} MiB")
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--concurrency", default="2,10", help="--concurrent values to run each size with")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement at the largest size")
    parser.add_argument("--files", type=int, default=10_000)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",") if s]
    concurrency = [int(c) for c in args.concurrency.split(",") if c]
    workdir = Path(tempfile.mkdtemp(prefix="fluxpy-bench-sources-"))
    plane = ControlPlane(workdir / "plane", log=lambda m: None)
    server = GitHTTPServer(workdir / "git")
    try:
        plane.start(timeout=120)
        kube = KubeClient.from_kubeconfig(plane.kubeconfig)
        install_crds(kube)
        server.start()
        print(f"git {git('--version').split()[-1]}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        for size in sizes:
            for concurrent in concurrency:
                idle = args.idle if size == max(sizes) and concurrent == concurrency[0] else 0
                bench_ready(kube, plane, server, workdir, size, concurrent, idle)
        if args.files:
            bench_big_repo(kube, plane, server, workdir, args.files)
    finally:
        server.stop()
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()

