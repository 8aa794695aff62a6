"""``fluxpy ui`` benchmark: prints figures, asserts nothing.

On a private local control plane (no controllers; statuses are written as a controller would):

- **status change → on screen**: a GitRepository's Ready flips (the status subresource written at t0); t1 is
  when the page in headless Chromium shows the node's new class (polled every animation frame, so the figure
  includes the paint). Median, p90 and max over ``--changes`` changes 0.2 s apart, and the server half alone
  (write → the SSE ``change`` frame read by a client);
- **page weight**: the bytes a first load transfers (assets, then the graph JSON), as sent (gzip) and raw;
- **server memory**: VmRSS / VmHWM of a real ``fluxpy ui`` process with ``--objects`` objects watched
  (GitRepositories, Kustomizations with ``dependsOn`` chains and inventories of ConfigMaps, and the ConfigMaps),
  against the same process with none.

Run: ``python tests/bench/ui.py [--objects 1000] [--changes 20]`` (needs chromium; ``make bench`` runs it).
"""
from __future__ import annotations

import argparse
import concurrent.futures
import gzip
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from controllers.api.builtin import CONFIGMAP, NAMESPACE  # noqa: E402
from controllers.api.kustomize import KUSTOMIZATION  # noqa: E402
from controllers.api.source import GIT_REPOSITORY  # noqa: E402
from controllers.localcluster.plane import ControlPlane  # noqa: E402
from controllers.runtime.kube import KubeClient  # noqa: E402
from servers.browser import Browser  # noqa: E402
from servers.ui import Client, Events, set_ready  # noqa: E402


#: between two measured changes: more than the hub's rate limit (50 ms), so each is measured on its own, as
#: changes a person watches are; a burst within 50 ms is one rebuild and one message (hub.py).
GAP = 0.2


def install_crds(kube: KubeClient) -> None:
    from controllers.runtime.apply import apply_staged
    from manifestgen.crds import crd_manifests

    apply_staged(kube, crd_manifests(["source-controller", "kustomize-controller"]))
    kube.forget_discovery()


def populate(kube: KubeClient, namespace: str, total: int) -> int:
    """About ``total`` objects: 10 % GitRepositories, 40 % Kustomizations (a source each, dependsOn chains of 4,
    5 ConfigMaps in each inventory... of the ones created), 50 % ConfigMaps. Returns how many were made."""
    repos, kss = max(total // 10, 1), max(total * 4 // 10, 1)
    maps = total - repos - kss
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})

    def repo(i: int) -> None:
        kube.create(GIT_REPOSITORY, {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                                     "metadata": {"name": f"repo-{i}", "namespace": namespace},
                                     "spec": {"url": f"http://127.0.0.1:1/{i}.git", "interval": "10m"}}, namespace)
        set_ready(kube, GIT_REPOSITORY, namespace, f"repo-{i}", "True", message="stored artifact")

    def ks(i: int) -> None:
        spec = {"interval": "10m", "path": "./", "prune": True,
                "sourceRef": {"kind": "GitRepository", "name": f"repo-{i % repos}"}}
        if i % 4:
            spec["dependsOn"] = [{"name": f"ks-{i - 1}"}]
        kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                    "metadata": {"name": f"ks-{i}", "namespace": namespace}, "spec": spec}, namespace)
        owned = [j for j in range(maps) if j % kss == i]
        set_ready(kube, KUSTOMIZATION, namespace, f"ks-{i}", "True", "ReconciliationSucceeded", "Applied revision",
                  inventory={"entries": [{"id": f"{namespace}_cm-{j}__ConfigMap", "v": "v1"} for j in owned]})

    def configmap(j: int) -> None:
        kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {
            "name": f"cm-{j}", "namespace": namespace,
            "labels": {"kustomize.toolkit.fluxcd.io/name": f"ks-{j % kss}"}}, "data": {"k": "v"}}, namespace)

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(repo, range(repos)))
        list(pool.map(ks, range(kss)))
        list(pool.map(configmap, range(maps)))
    return repos + kss + maps


def start_ui(kubeconfig: Path, workdir: Path) -> tuple[subprocess.Popen, str]:
    """A real ``fluxpy ui`` process on a free port; returns it and the URL it printed."""
    log = open(workdir / "ui.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "flux_cli", "ui", "--port", "0", f"--kubeconfig={kubeconfig}"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("http://"):
            return proc, line.strip()
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"fluxpy ui did not start: see {workdir / 'ui.log'}")


def memory(pid: int) -> tuple[float, float]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def figures(label: str, values: list[float]) -> str:
    values = sorted(values)
    p90 = values[min(len(values) - 1, int(len(values) * 0.9))]
    return (f"{label:<46} median {statistics.median(values) * 1000:6.1f} ms   p90 {p90 * 1000:6.1f} ms"
            f"   max {values[-1] * 1000:6.1f} ms   ({len(values)} changes)")


def latency(kube: KubeClient, url: str, namespace: str, changes: int, workdir: Path) -> None:
    client = Client(url)
    events = Events(client)
    events.next(30)
    node = f"GitRepository/{namespace}/repo-0"
    server_side = []
    for i in range(changes):
        status = "False" if i % 2 == 0 else "True"
        time.sleep(GAP)
        t0 = time.perf_counter()
        set_ready(kube, GIT_REPOSITORY, namespace, "repo-0", status, "GitOperationFailed" if status == "False"
                  else "Succeeded", f"change {i}")
        events.until(lambda e, d: e == "change" and any(n["id"] == node and n["message"] == f"change {i}"
                                                      for n in d["nodes"]), timeout=10)
        server_side.append(time.perf_counter() - t0)
    events.close()
    set_ready(kube, GIT_REPOSITORY, namespace, "repo-0", "True", message="stored artifact")
    with Browser.launch() as browser:
        page = browser.new_page(1280, 800)
        started = time.perf_counter()
        page.goto(url)
        page.wait_for(f"document.querySelector('g.node[data-id=\"{node}\"]')", timeout=60)
        first_paint = time.perf_counter() - started
        weights = page.network_bytes()
        on_screen = []
        for i in range(changes):
            status = "False" if i % 2 == 0 else "True"
            wanted = "state-failed" if status == "False" else "state-ready"
            time.sleep(GAP)
            t0 = time.perf_counter()
            set_ready(kube, GIT_REPOSITORY, namespace, "repo-0", status, "GitOperationFailed" if status == "False"
                      else "Succeeded", f"screen {i}")
            page.wait_for(f"document.querySelector('g.node[data-id=\"{node}\"]')?.classList.contains('{wanted}')",
                          timeout=10)
            on_screen.append(time.perf_counter() - t0)
        page.screenshot(str(workdir / "bench-graph.png"))
    print(figures("status write → SSE change frame (server half)", server_side))
    print(figures("status write → node repainted in Chromium", on_screen))
    print(f"{'first load → graph drawn':<46} {first_paint * 1000:6.0f} ms")
    assets = {u: b for u, b in weights.items() if "/static/" in u or urllib.parse.urlsplit(u).path == "/"}
    print(f"{'page weight: assets (as sent, gzip)':<46} {sum(assets.values()) / 1024:6.1f} KB in {len(assets)} files"
          " (the page's; the SharedWorker fetches stream.js itself)")
    static = ROOT / "flux_cli" / "web" / "static"
    raw = sum(p.stat().st_size for p in static.iterdir())
    zipped = sum(len(gzip.compress(p.read_bytes())) for p in static.iterdir())
    print(f"{'page weight: assets on disk (raw / gzipped)':<46} {raw / 1024:6.1f} KB / {zipped / 1024:.1f} KB")
    _, zipped_headers, _ = client.request("GET", "/api/graph", headers={"Accept-Encoding": "gzip"})
    _, plain_headers, _ = client.request("GET", "/api/graph")
    print(f"{'page weight: /api/graph (gzip / raw JSON)':<46} {int(zipped_headers['Content-Length']) / 1024:6.1f} KB"
          f" / {int(plain_headers['Content-Length']) / 1024:.1f} KB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=1000)
    parser.add_argument("--changes", type=int, default=20)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fluxpy-bench-ui-"))
    plane = ControlPlane(workdir / "plane", log=lambda m: None)
    procs = []
    try:
        plane.start(timeout=120)
        kube = KubeClient.from_kubeconfig(plane.kubeconfig)
        install_crds(kube)
        time.sleep(1)
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {args.objects} objects, screenshots in {workdir}")
        empty, _ = start_ui(plane.kubeconfig, workdir)
        procs.append(empty)
        time.sleep(2)
        empty_rss = memory(empty.pid)
        started = time.perf_counter()
        made = populate(kube, "bench", args.objects)
        print(f"{'created objects':<46} {made} in {time.perf_counter() - started:.1f} s")
        proc, url = start_ui(plane.kubeconfig, workdir)
        procs.append(proc)
        client = Client(url)
        deadline = time.monotonic() + 60
        while len(client.get("/api/graph")["nodes"]) < made and time.monotonic() < deadline:
            time.sleep(0.2)
        nodes = len(client.get("/api/graph")["nodes"])
        full_rss = memory(proc.pid)
        print(f"{'server memory, no objects (RSS / peak)':<46} {empty_rss[0]:6.1f} MB / {empty_rss[1]:.1f} MB")
        print(f"{'server memory, ' + str(nodes) + ' nodes (RSS / peak)':<46} {full_rss[0]:6.1f} MB / {full_rss[1]:.1f} MB")
        latency(kube, url, "bench", args.changes, workdir)
        print(f"{'server memory after the run (RSS / peak)':<46} {memory(proc.pid)[0]:6.1f} MB / {memory(proc.pid)[1]:.1f} MB")
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(10)
        plane.stop()


if __name__ == "__main__":
    main()
