"""Side by side: Flux's own kustomize-controller against fluxpy's, on the same machine. Prints figures, asserts nothing.

For each N (100, 500, 1000) and each implementation in turn, a fresh local control plane gets Flux's CRDs
taken from the Go modules of Flux's controllers, Flux's own source-controller serves one GitRepository (a real
repository over smart HTTP on loopback) holding a 4-object app (a Deployment scaled to 0, a ServiceAccount, a
Service, a ConfigMap), and N Kustomizations at ``spec.interval: 1m`` apply it (``namePrefix`` keeps them
apart) with ``--concurrent 4``. Flux's controllers and CLI are built from Go modules by
``controllers.localcluster.tools`` (cached by version; benchmark only, never part of ``make test``).

Each controller talks to the apiserver as its own user, and the apiserver writes an audit log (metadata level),
so the request counts are exactly the kustomize-controller's: not the benchmark's, not the
source-controller's. Figures per N:

- time from the first Kustomization created to all Ready, and the kustomize-controller's requests per
  Kustomization in that time;
- the kustomize-controller's peak RSS (VmHWM);
- its requests per idle minute afterwards (every Kustomization comes due once a minute);
- time to correct a drift: a ConfigMap edited directly (an update by another field manager) and
  ``kubectl scale`` of a Deployment (the scale subresource);

and, once, with 100 Kustomizations in the cluster: the wall time of ``fluxpy get ks -A`` against the Go
``flux get ks -A``, and of ``--help`` / ``version --client`` (median of 7 runs each, the installed console
script).

``--workload helmreleases`` runs Flux's helm-controller against fluxpy's instead: N HelmReleases of a chart
with the same four objects, from the same GitRepository (Flux's source-controller builds the HelmCharts for
both), drift detection enabled, no waiting (no kubelet runs the Deployment).

Run: ``python tests/bench/vs_flux.py [--sizes 100,500,1000] [--idle 60] [--only flux|fluxpy]
[--workload kustomizations|helmreleases]`` (``make bench-vs-flux BENCH_ARGS=...``).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import bench.sources as sources_bench  # noqa: E402 - tests/bench/sources.py (controller process, peak RSS)
import yaml  # noqa: E402
from bench.kustomizations import APP, wait_until  # noqa: E402
import dataclasses  # noqa: E402
import textwrap  # noqa: E402
from typing import Callable  # noqa: E402

from controllers.api.builtin import CONFIGMAP, DEPLOYMENT, NAMESPACE  # noqa: E402
from controllers.api.helm import HELM_RELEASE  # noqa: E402
from controllers.api.kustomize import KUSTOMIZATION  # noqa: E402
from controllers.api.objects import find_condition  # noqa: E402
from controllers.api.source import GIT_REPOSITORY  # noqa: E402
from controllers.localcluster import tools  # noqa: E402
from controllers.localcluster.plane import ControlPlane, free_port  # noqa: E402
from controllers.runtime.apply import apply_staged  # noqa: E402
from controllers.runtime.kube import KubeClient  # noqa: E402
from servers.git import GitHTTPServer  # noqa: E402

SOURCE_NAMESPACE = "flux-system"
INTERVAL = "1m"
AUDIT_POLICY = {"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
                "rules": [{"level": "Metadata"}]}
IMPLEMENTATIONS = ("flux", "fluxpy")
#: the Helm chart of the helmreleases workload: APP's four objects, named after the release
CHART = {
    "chart/Chart.yaml": "apiVersion: v2\nname: app\nversion: 0.1.0\n",
    **{f"chart/templates/{Path(path).name}": textwrap.dedent(text).replace("name: ", "name: {{ .Release.Name }}-", 1)
       .replace("serviceAccountName: web", "serviceAccountName: {{ .Release.Name }}-web")
       for path, text in APP.items() if path != "app/kustomization.yaml"},
}


@dataclasses.dataclass(frozen=True)
class Workload:
    """What the N objects are and which controller reconciles them."""

    controller: str
    """The Flux component (its binary, its user in the audit log, ``python -m controllers <name>``)."""
    kind: object
    files: dict[str, str]
    """The Git repository the GitRepository serves."""
    make: Callable[[int, str], dict]
    """The i-th object in a namespace."""


def _kustomization(i: int, namespace: str) -> dict:
    return {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
            "metadata": {"name": f"app-{i:04d}", "namespace": namespace},
            "spec": {"interval": INTERVAL, "path": "./app", "prune": True, "targetNamespace": namespace,
                     "namePrefix": f"k{i:04d}-",
                     "sourceRef": {"kind": "GitRepository", "name": "repo", "namespace": SOURCE_NAMESPACE}}}


def _helmrelease(i: int, namespace: str) -> dict:
    """Objects named as the Kustomizations' (release ``k0001``); no waiting (no kubelet runs the Deployment);
    drift detection on, so both implementations correct edits."""
    return {"apiVersion": HELM_RELEASE.api_version, "kind": "HelmRelease",
            "metadata": {"name": f"app-{i:04d}", "namespace": namespace},
            "spec": {"interval": INTERVAL, "releaseName": f"k{i:04d}", "targetNamespace": namespace,
                     "chart": {"spec": {"chart": "./chart", "sourceRef": {
                         "kind": "GitRepository", "name": "repo", "namespace": SOURCE_NAMESPACE}}},
                     "install": {"disableWait": True}, "upgrade": {"disableWait": True},
                     "driftDetection": {"mode": "enabled"}}}


WORKLOADS = {
    "kustomizations": Workload("kustomize-controller", KUSTOMIZATION, APP, _kustomization),
    "helmreleases": Workload("helm-controller", HELM_RELEASE, CHART, _helmrelease),
}


# ---------------------------------------------------------------------------------------------- the cluster

class Audit:
    """The apiserver's audit log: requests counted per user between two marks."""

    def __init__(self, path: Path):
        self.path = path

    def mark(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0

    def requests(self, users: tuple[str, ...], since: int, until: int | None = None) -> collections.Counter:
        """(verb, resource) -> count of the ``users``' requests logged between two marks (a watch counts once)."""
        counts: collections.Counter = collections.Counter()
        with open(self.path, "rb") as f:
            f.seek(since)
            data = f.read((until - since) if until is not None else -1)
        for line in data.splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if event.get("user", {}).get("username") not in users:
                continue
            if event.get("verb") == "watch" and event.get("stage") != "ResponseStarted":
                continue  # a watch logs when it starts and again when it ends
            ref = event.get("objectRef") or {}
            resource = ref.get("resource", "") + ("/" + ref["subresource"] if ref.get("subresource") else "")
            counts[(event.get("verb"), resource)] += 1
        return counts


def flux_crds(controller: str) -> list[dict]:
    """The CRDs of Flux's source-controller and ``controller``, read from their Go modules (never committed)."""
    docs = []
    for name in ("source-controller", controller):
        tool = tools.TOOLS[name]
        for path in sorted((tools.module_dir(tool.module, tool.version) / "config" / "crd" / "bases").glob("*.yaml")):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


class Cluster:
    """A fresh control plane with an audit log, Flux's CRDs and Flux's source-controller serving ``repo``."""

    def __init__(self, workdir: Path, git_url: str, controller: str):
        self.workdir, self.controller = workdir, controller
        audit_policy = workdir / "audit-policy.yaml"
        workdir.mkdir(parents=True, exist_ok=True)
        audit_policy.write_text(yaml.safe_dump(AUDIT_POLICY))
        self.audit = Audit(workdir / "audit.log")
        self.plane = ControlPlane(workdir / "plane", log=lambda m: None, extra_apiserver_args=(
            f"--audit-policy-file={audit_policy}", f"--audit-log-path={self.audit.path}", "--audit-log-format=json",
            "--audit-log-mode=batch", "--audit-log-batch-max-wait=1s"))
        self.git_url = git_url
        self.processes: list[Process] = []

    def start(self) -> "Cluster":
        self.plane.start(timeout=120)
        self.kube = KubeClient.from_kubeconfig(self.plane.kubeconfig)
        apply_staged(self.kube, flux_crds(self.controller))
        self.kube.forget_discovery()
        for ns in (SOURCE_NAMESPACE,):
            self.kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        port = free_port()
        (self.workdir / "storage").mkdir(parents=True, exist_ok=True)
        self.source = self.spawn("source-controller", [
            str(tools.ensure("source-controller")), f"--storage-path={self.workdir / 'storage'}",
            f"--storage-addr=127.0.0.1:{port}", f"--storage-adv-addr=127.0.0.1:{port}", "--metrics-addr=0",
            "--health-addr=0", "--log-level=error", "--concurrent=4"])
        self.kube.create(GIT_REPOSITORY, {
            "apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
            "metadata": {"name": "repo", "namespace": SOURCE_NAMESPACE},
            "spec": {"url": self.git_url, "interval": "10m", "ref": {"branch": "main"}}}, SOURCE_NAMESPACE)
        if wait_until(lambda: _ready(self.kube.get(GIT_REPOSITORY, "repo", SOURCE_NAMESPACE)), 120, 0.2) is None:
            raise SystemExit(f"Flux's source-controller did not make GitRepository/repo Ready; see {self.source.log}")
        return self

    def spawn(self, user: str, argv: list[str]) -> "Process":
        proc = Process(argv, self.plane.kubeconfig_for(user, ["system:masters"]), self.workdir / f"{user}.log")
        self.processes.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.processes:
            proc.stop()
        self.plane.stop()


class Process(sources_bench.Controller):
    """A controller process out of cluster, as its own user (peak RSS and stop as the sources benchmark)."""

    def __init__(self, argv: list[str], kubeconfig: Path, log: Path):
        self.log = log
        self.spawn(list(argv), SOURCE_NAMESPACE, {"KUBECONFIG": str(kubeconfig)})


SHARD_KEY = "sharding.fluxcd.io/key"


def start_controller(cluster: Cluster, workload: Workload, implementation: str, concurrent: int,
                     shard: str | None = None) -> Process:
    """Flux's binary or fluxpy's process of the workload's controller, as its own user; with a ``shard``,
    one shard of Flux's sharding recipe (docs/sharding.md)."""
    common = [f"--concurrent={concurrent}", "--metrics-addr=0", "--health-addr=0", "--log-level=error"]
    if shard:
        common.append(f"--watch-label-selector={SHARD_KEY} in ({shard})")
    if implementation == "flux":
        argv = [str(tools.ensure(workload.controller)), *common]
    else:
        argv = [sys.executable, "-m", "controllers", workload.controller, "--log-encoding=console", *common]
    return cluster.spawn(_user(workload, shard), argv)


def _user(workload: Workload, shard: str | None) -> str:
    """The controller's user in the audit log (one per shard)."""
    return workload.controller + (f"-{shard}" if shard else "")


def _ready(obj: dict) -> bool:
    return (find_condition(obj, "Ready") or {}).get("status") == "True"


# ---------------------------------------------------------------------------------------------- one run

def run(workload: Workload, implementation: str, size: int, git_url: str, workdir: Path, args) -> dict:
    """One implementation at one N on a fresh cluster: its figures (None where not reached). With
    ``--shards K``, K controllers each reconcile N objects of their own shard (K×N in all)."""
    cluster = Cluster(workdir / f"{implementation}-{size}", git_url, workload.controller).start()
    kube, audit, figures = cluster.kube, cluster.audit, {}
    shards = [f"shard{k + 1}" for k in range(args.shards)] if args.shards > 1 else [None]
    users = tuple(_user(workload, shard) for shard in shards)
    namespace, total = "apps", size * len(shards)
    try:
        kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
        controllers = [start_controller(cluster, workload, implementation, args.concurrent, shard) for shard in shards]
        time.sleep(5)  # process start-up and informers: not part of the figures
        since, started = audit.mark(), time.monotonic()
        for i in range(total):
            obj = workload.make(i, namespace)
            if shards[0]:
                obj["metadata"]["labels"] = {SHARD_KEY: shards[i % len(shards)]}
            kube.create(workload.kind, obj, namespace)

        seen_ready: set[str] = set()

        def all_ready() -> bool:
            """Every object has been Ready (Flux's periodic runs mark objects Unknown again while they run: at
            K×1000 some always are)."""
            seen_ready.update(o["metadata"]["name"] for o in kube.list(workload.kind, namespace)["items"] if _ready(o))
            return len(seen_ready) == total

        elapsed = wait_until(all_ready, args.timeout, 0.5)
        if elapsed is None:
            print(f"  {implementation}: not all {total} Ready within {args.timeout:.0f} s; see {controllers[0].log}")
            return figures
        figures["ready_s"] = time.monotonic() - started
        time.sleep(2)  # the audit log is written in batches of up to 1 s
        requests = audit.requests(users, since)
        figures["requests_per_ks"] = sum(requests.values()) / total
        figures["top_requests"] = requests.most_common(14)
        if args.cli and size == 100 and workload.kind is KUSTOMIZATION and not shards[0]:
            figures["cli"] = measure_cli(cluster)
        if args.idle:
            time.sleep(10)
            since = audit.mark()
            time.sleep(args.idle)
            time.sleep(2)
            idle = audit.requests(users, since, audit.mark())
            figures["idle_per_min"] = sum(idle.values()) * 60 / args.idle
            figures["idle_top"] = idle.most_common(14)
        figures["edit_s"], figures["scale_s"] = correct_drift(kube, namespace, total, args.drift_timeout)
        figures["rss_mib"] = sum(c.peak_rss_mib() for c in controllers)  # all shards together
        for c in controllers:
            if c.proc.poll() is not None:
                print(f"  {implementation}: a controller exited ({c.proc.returncode}); see {c.log}")
        shutil.rmtree(cluster.workdir, ignore_errors=True)
        return figures
    finally:
        cluster.stop()


def correct_drift(kube: KubeClient, namespace: str, size: int, timeout: float) -> tuple[float | None, float | None]:
    """Seconds until a direct edit of a ConfigMap and a ``kubectl scale`` are undone (None: not within timeout)."""
    i = size // 2
    cm_name, deploy_name = f"k{i:04d}-settings", f"k{i:04d}-web"
    cm = kube.get(CONFIGMAP, cm_name, namespace)
    cm["data"] = {"color": "red"}
    started = time.monotonic()
    kube.request("PUT", CONFIGMAP.path(namespace, cm_name), body=cm, params={"fieldManager": "kubectl-edit"})
    edit = wait_until(lambda: kube.get(CONFIGMAP, cm_name, namespace).get("data", {}).get("color") == "blue",
                      timeout, 0.1)
    edit = time.monotonic() - started if edit is not None else None
    started = time.monotonic()
    kube.patch(DEPLOYMENT, deploy_name, {"spec": {"replicas": 3}}, namespace, subresource="scale",
               field_manager="kubectl")
    scale = wait_until(lambda: kube.get(DEPLOYMENT, deploy_name, namespace)["spec"]["replicas"] == 0, timeout, 0.1)
    scale = time.monotonic() - started if scale is not None else None
    return edit, scale


# ---------------------------------------------------------------------------------------------- the CLI

def _median_wall(argv: list[str], env: dict, runs: int = 7) -> float | None:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        proc = subprocess.run(argv, env=env, capture_output=True)
        times.append(time.perf_counter() - started)
        if proc.returncode != 0:
            print(f"  {' '.join(argv)} failed: {proc.stderr.decode()[-300:]}")
            return None
    return statistics.median(times)


def measure_cli(cluster: Cluster) -> dict:
    """Median wall times of the installed ``fluxpy`` console script and of the Go ``flux`` CLI."""
    env = {**os.environ, "KUBECONFIG": str(cluster.plane.kubeconfig), "NO_COLOR": "1"}
    installed = Path(sys.executable).with_name("fluxpy")  # the console script itself, not a version manager's shim
    fluxpy = str(installed) if installed.exists() else shutil.which("fluxpy")
    try:
        flux = str(tools.ensure("flux"))
    except tools.ToolError as exc:
        print(f"  the Go flux CLI is not available ({exc}); measuring fluxpy alone")
        flux = None
    out = {}
    for label, args in (("get ks -A", ["get", "ks", "-A"]), ("--help", ["--help"]),
                        ("version --client", ["version", "--client"])):
        out[label] = (_median_wall([fluxpy, *args], env), _median_wall([flux, *args], env) if flux else None)
    return out


# ---------------------------------------------------------------------------------------------- report

ROWS = (
    ("time to all Ready", "ready_s", "{:.1f} s"),
    ("requests per object", "requests_per_ks", "{:.1f}"),
    ("peak RSS", "rss_mib", "{:.0f} MiB"),
    (f"idle requests per minute ({INTERVAL})", "idle_per_min", "{:.0f}"),
    ("drift: ConfigMap edit undone", "edit_s", "{:.1f} s"),
    ("drift: kubectl scale undone", "scale_s", "{:.1f} s"),
)


def _fmt(template: str, value) -> str:
    return template.format(value) if isinstance(value, (int, float)) else "—"


def _ratio(ours, theirs) -> str:
    if isinstance(ours, (int, float)) and isinstance(theirs, (int, float)) and theirs:
        return f"{ours / theirs:.2f}×"
    return "—"


def report(results: dict[str, dict[str, dict]]) -> None:
    print("\n| N | figure | Flux | fluxpy | fluxpy/Flux |\n|---|---|---|---|---|")
    for size, by_impl in results.items():
        flux, ours = by_impl.get("flux", {}), by_impl.get("fluxpy", {})
        for label, key, template in ROWS:
            print(f"| {size} | {label} | {_fmt(template, flux.get(key))} | {_fmt(template, ours.get(key))} | "
                  f"{_ratio(ours.get(key), flux.get(key))} |")
    for size, by_impl in results.items():
        for impl, figures in by_impl.items():
            for key in ("top_requests", "idle_top"):
                if figures.get(key):
                    listing = ", ".join(f"{verb} {res} {n}" for (verb, res), n in figures[key])
                    print(f"  N={size} {impl} {key.replace('_', ' ')}: {listing}")
    cli = next((f["cli"] for by in results.values() for f in by.values() if f.get("cli")), None)
    if cli:
        print("\n| CLI (100 Kustomizations, median of 7) | Go flux | fluxpy | fluxpy/flux |\n|---|---|---|---|")
        for label, (ours, theirs) in cli.items():
            print(f"| {label} | {_fmt('{:.3f} s', theirs)} | {_fmt('{:.3f} s', ours)} | {_ratio(ours, theirs)} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--only", choices=IMPLEMENTATIONS, help="run one implementation only")
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement (0: none)")
    parser.add_argument("--drift-timeout", type=float, default=90.0)
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound on the wait for all Ready, per run")
    parser.add_argument("--cli", type=lambda v: v.lower() in ("1", "true", "yes"), default=True,
                        help="measure the CLIs at N=100")
    parser.add_argument("--workload", choices=sorted(WORKLOADS), default="kustomizations")
    parser.add_argument("--shards", type=int, default=1, help="K controllers, each with N objects of its shard")
    args = parser.parse_args()
    workload = WORKLOADS[args.workload]
    for name in ("source-controller", workload.controller):
        tools.ensure(name)
    workdir = Path(tempfile.mkdtemp(prefix="fluxpy-bench-vs-flux-"))
    git = GitHTTPServer(workdir / "git")
    git.repo("fleet", workload.files)
    git.start()
    results: dict[str, dict[str, dict]] = {}
    impls = [args.only] if args.only else list(IMPLEMENTATIONS)
    print(f"{args.workload}: Flux {workload.controller} {tools.TOOLS[workload.controller].version} vs fluxpy, Flux "
          f"source-controller {tools.TOOLS['source-controller'].version} for both, Python "
          f"{sys.version.split()[0]}, {os.cpu_count()} CPUs, --concurrent {args.concurrent}, interval {INTERVAL}")
    try:
        for size in [int(s) for s in args.sizes.split(",") if s]:
            for impl in impls:
                print(f"N={size} {impl} ...", flush=True)
                label = f"{args.shards}×{size}" if args.shards > 1 else str(size)
                results.setdefault(label, {})[impl] = figures = run(workload, impl, size, git.url("fleet"), workdir,
                                                                   args)
                print("  " + ", ".join(f"{k}={v:.2f}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in figures.items() if k not in ("top_requests", "idle_top", "cli")),
                      flush=True)
        report(results)
        shutil.rmtree(workdir, ignore_errors=True)
    finally:
        git.stop()  # a failed run keeps its work directory (controller logs) for a post-mortem


if __name__ == "__main__":
    main()
