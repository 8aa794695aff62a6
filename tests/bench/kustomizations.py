"""Kustomize-controller benchmark: prints figures, asserts nothing.

For 100, 500 and 1000 Kustomizations, each applying a 4-object app (a Deployment scaled to 0, a
ServiceAccount, a Service, a ConfigMap; ``namePrefix`` keeps them apart) from one GitRepository whose
artifact is served by a real ArtifactServer on loopback, against the embedded local control plane and a real
kustomize-controller *process* (the ``python -m controllers kustomize-controller`` entrypoint, Flux's default
``--concurrent 4``), it measures:

- the time until every Kustomization is Ready, and the apiserver requests it took (the apiserver's own
  ``apiserver_request_total``, scraped before and after);
- the controller's peak RSS (VmHWM);
- the apiserver requests per idle minute afterwards (``spec.interval`` 10m: about a tenth of the
  Kustomizations run again in a minute, plus the watches);
- the time to correct a drift: a Deployment scaled by hand, reverted by the controller (the watch of applied
  objects), and a ConfigMap deleted by hand, recreated.

Run: ``python tests/bench/kustomizations.py [--sizes 100,500,1000] [--idle 60] [--timeout 1800]``.
"""
from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import bench.sources as sources_bench  # noqa: E402 - tests/bench/sources.py (scrape, controller process)
from controllers.api.builtin import CONFIGMAP, DEPLOYMENT, NAMESPACE  # noqa: E402
from controllers.api.kustomize import KUSTOMIZATION  # noqa: E402
from controllers.api.objects import find_condition  # noqa: E402
from controllers.localcluster.plane import ControlPlane  # noqa: E402
from controllers.runtime.kube import KubeClient, NotFound  # noqa: E402
from controllers.source.storage import ArtifactServer, Storage  # noqa: E402
from servers.sources import ArtifactSources  # noqa: E402

#: the kustomize-controller's component entry (as controllers/components.py registers it)
COMPONENT_ENTRY = {"reconcilers": ("controllers.kustomize.reconciler:new_reconciler",),
                   "add_arguments": "controllers.kustomize.reconciler:add_arguments"}
CHILD = ("import sys; from controllers import components as c; "
         f"c.COMPONENTS['kustomize-controller'] = c.Component('kustomize-controller', **{COMPONENT_ENTRY!r}); "
         "from controllers.__main__ import main; sys.exit(main(sys.argv[1:]))")

APP = {
    "app/kustomization.yaml": "resources: [deployment.yaml, serviceaccount.yaml, service.yaml, configmap.yaml]\n",
    "app/deployment.yaml": """\
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: web
        spec:
          replicas: 0
          selector:
            matchLabels: {app: web}
          template:
            metadata:
              labels: {app: web}
            spec:
              serviceAccountName: web
              containers:
              - name: web
                image: ghcr.io/stefanprodan/podinfo:6.7.0
                ports:
                - containerPort: 9898
        """,
    "app/serviceaccount.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n",
    "app/service.yaml": """\
        apiVersion: v1
        kind: Service
        metadata:
          name: web
        spec:
          selector: {app: web}
          ports:
          - port: 80
            targetPort: 9898
        """,
    "app/configmap.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  color: blue\n",
}


def install_crds(kube: KubeClient) -> None:
    from controllers.runtime.apply import apply_staged
    from manifestgen.crds import crd_manifests

    apply_staged(kube, crd_manifests(["source-controller", "kustomize-controller"]))  # waits until Established
    kube.forget_discovery()
    time.sleep(1)


class Controller(sources_bench.Controller):
    """One kustomize-controller process watching one namespace (peak RSS and stop as the sources benchmark)."""

    def __init__(self, kubeconfig: Path, namespace: str, workdir: Path, concurrent: int, extra: list[str]):
        self.log = workdir / f"controller-{namespace}.log"
        argv = [sys.executable, "-c", CHILD, "kustomize-controller", f"--kubeconfig={kubeconfig}", "--metrics-addr=0",
                "--health-addr=0", "--log-level=error", "--log-encoding=console", "--enable-leader-election",
                "--watch-all-namespaces=false", f"--concurrent={concurrent}", *extra]
        self.spawn(argv, namespace)


scrape = sources_bench.scrape


def report(delta: collections.Counter, indent: str = "       ", top: int = 8) -> float:
    delta = collections.Counter({k: v for k, v in delta.items() if v > 0})
    for (verb, resource, sub), count in delta.most_common(top):
        print(f"{indent}{verb:<6} {resource + ('/' + sub if sub else ''):<28} {count:8.0f}")
    return sum(delta.values())


def ready_count(kube: KubeClient, namespace: str) -> tuple[int, int]:
    items = kube.list(KUSTOMIZATION, namespace)["items"]
    ready = sum(1 for o in items if (find_condition(o, "Ready") or {}).get("status") == "True")
    failed = sum(1 for o in items if (find_condition(o, "Ready") or {}).get("status") == "False")
    return ready, failed


def wait_until(predicate, timeout: float, interval: float = 0.05) -> float | None:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if predicate():
            return time.monotonic() - started
        time.sleep(interval)
    return None


def bench(kube, plane, storage, workdir: Path, size: int, args) -> None:
    namespace = f"bench-{size}"
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    ArtifactSources(kube, storage).publish(namespace, "repo", APP)
    extra = [] if args.watch_applied else ["--watch-applied=false"]
    controller = Controller(plane.kubeconfig, namespace, workdir, args.concurrent, extra)
    try:
        time.sleep(3)  # process start-up, lease, informers (not part of the figure)
        before = scrape(plane)
        started = time.monotonic()
        for i in range(size):
            kube.create(KUSTOMIZATION, {
                "apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                "metadata": {"name": f"app-{i:04d}", "namespace": namespace},
                "spec": {"interval": args.interval, "path": "./app", "prune": True, "targetNamespace": namespace,
                         "namePrefix": f"k{i:04d}-", "sourceRef": {"kind": "GitRepository", "name": "repo"}}},
                namespace)
        created = time.monotonic() - started
        elapsed = None
        while time.monotonic() - started < args.timeout:
            ready, failed = ready_count(kube, namespace)
            if ready == size:
                elapsed = time.monotonic() - started
                break
            time.sleep(1.0)
        after = scrape(plane)
        if elapsed is None:
            print(f"{size:>5} Kustomizations: only {ready} Ready ({failed} failed) after {args.timeout:.0f} s "
                  f"(bounded); peak RSS {controller.peak_rss_mib():6.1f} MiB")
            return
        delta = after - before
        delta[("GET", "", "")] -= 1
        print(f"{size:>5} Kustomizations Ready in {elapsed:7.1f} s ({size / elapsed:5.1f}/s; creating them took "
              f"{created:.1f} s)   peak RSS {controller.peak_rss_mib():6.1f} MiB")
        total = report(delta, top=0)
        print(f"      apiserver requests until all Ready: {total:.0f} ({total / size:.1f} per Kustomization, "
              f"creations by the benchmark and its polling included)")
        report(delta)

        if args.idle:
            time.sleep(5)
            before = scrape(plane)
            time.sleep(args.idle)
            after = scrape(plane)
            delta = after - before
            delta[("GET", "", "")] -= 1
            total = sum(v for v in delta.values() if v > 0)
            print(f"      idle: {total:.0f} apiserver requests in {args.idle:.0f} s = {total * 60 / args.idle:.0f}/min "
                  f"(interval {args.interval})")
            report(delta)
            print(f"      peak RSS after the idle period {controller.peak_rss_mib():6.1f} MiB")

        name = f"k{size // 2:04d}-web"
        started = time.monotonic()
        kube.patch(DEPLOYMENT, name, {"spec": {"replicas": 3}}, namespace)
        scaled = wait_until(lambda: kube.get(DEPLOYMENT, name, namespace)["spec"]["replicas"] == 0, 60)
        cm = f"k{size // 2:04d}-settings"
        kube.delete(CONFIGMAP, cm, namespace)

        def recreated() -> bool:
            try:
                kube.get(CONFIGMAP, cm, namespace)
                return True
            except NotFound:
                return False

        deleted = wait_until(recreated, 60)
        show = lambda t: f"{t:.2f} s" if t is not None else "not within 60 s"  # noqa: E731
        print(f"      drift corrected: scaled Deployment reverted in {show(scaled)}, deleted ConfigMap recreated in "
              f"{show(deleted)}")
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500,1000")
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--interval", default="10m")
    parser.add_argument("--idle", type=float, default=60.0, help="seconds of idle measurement per size (0: none)")
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound on the wait for all Ready, per size")
    parser.add_argument("--watch-applied", type=lambda v: v.lower() in ("1", "true", "yes"), default=True)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fluxpy-bench-ks-"))
    plane = ControlPlane(workdir / "plane", log=lambda m: None)
    storage = Storage(workdir / "storage", "127.0.0.1:0")
    server = ArtifactServer(storage, "127.0.0.1:0")
    try:
        plane.start(timeout=120)
        kube = KubeClient.from_kubeconfig(plane.kubeconfig)
        install_crds(kube)
        server.start()
        storage.advertised_address = f"127.0.0.1:{server.port}"
        from controllers.localcluster.tools import ensure

        kustomize = subprocess.run([str(ensure("kustomize")), "version"], capture_output=True, text=True).stdout
        print(f"kustomize {kustomize.strip()}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
              f"--concurrent {args.concurrent}, interval {args.interval}, watch of applied objects "
              f"{'on' if args.watch_applied else 'off'}")
        for size in [int(s) for s in args.sizes.split(",") if s]:
            bench(kube, plane, storage, workdir, size, args)
    finally:
        server.stop()
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
