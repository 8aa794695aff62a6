"""Helm-controller benchmark: prints figures, asserts nothing.

For 100 and 500 HelmReleases, each releasing one small chart (a ConfigMap and a Service, ``disableWait``
off: the controller waits for readiness as Flux's does) from one HelmChart whose artifact is served by a real
ArtifactServer on loopback (``chartRef``: the source-controller's work is not part of the figure), against the
embedded local control plane and a real helm-controller *process* (``python -m controllers helm-controller``,
Flux's default ``--concurrent 4``), it measures:

- the time until every HelmRelease is Ready, and the apiserver requests it took (the apiserver's own
  ``apiserver_request_total``, scraped before and after), per release;
- the controller's peak RSS (VmHWM).

Anchor (Flux 2.7's published flux-benchmark, a 16-core runner): 100 → 27 s at 190 MiB, 500 → 2 m 9 s at
255 MiB.

Run: ``python tests/bench/helmreleases.py [--sizes 100,500] [--timeout 1800]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import bench.kustomizations as ks_bench  # noqa: E402 - scrape, report, the controller process
import bench.sources as sources_bench  # noqa: E402
from controllers.api.builtin import NAMESPACE  # noqa: E402
from controllers.api.helm import HELM_RELEASE  # noqa: E402
from controllers.api.objects import find_condition  # noqa: E402
from controllers.api.source import HELM_CHART  # noqa: E402
from controllers.localcluster.plane import ControlPlane  # noqa: E402
from controllers.runtime.apply import apply_staged  # noqa: E402
from controllers.runtime.conditions import now  # noqa: E402
from controllers.runtime.kube import KubeClient  # noqa: E402
from controllers.source.storage import ArtifactServer, Storage  # noqa: E402
from manifestgen.crds import crd_manifests  # noqa: E402
from servers.helmrepo import make_chart  # noqa: E402

SERVICE = ("apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  ports:\n"
           "  - port: 80\n")


class Controller(sources_bench.Controller):
    """One helm-controller process watching one namespace."""

    def __init__(self, kubeconfig: Path, namespace: str, workdir: Path, concurrent: int):
        self.log = workdir / f"helm-controller-{namespace}.log"
        argv = [sys.executable, "-m", "controllers", "helm-controller", f"--kubeconfig={kubeconfig}",
                "--metrics-addr=0", "--health-addr=0", "--log-level=error", "--log-encoding=console",
                "--enable-leader-election", "--watch-all-namespaces=false", f"--concurrent={concurrent}"]
        self.spawn(argv, namespace)


def publish_chart(kube: KubeClient, storage: Storage, workdir: Path, namespace: str) -> None:
    """A HelmChart ``bench`` whose artifact is the chart directory, Ready, as a source-controller stores it."""
    chart = make_chart(workdir / f"chart-{namespace}", "bench", "1.0.0", files={"templates/service.yaml": SERVICE})
    kube.create(HELM_CHART, {"apiVersion": HELM_CHART.api_version, "kind": "HelmChart",
                             "metadata": {"name": "bench", "namespace": namespace},
                             "spec": {"chart": "bench", "interval": "1h",
                                      "sourceRef": {"kind": "HelmRepository", "name": "unused"}}}, namespace)
    artifact = storage.archive(storage.artifact_path("HelmChart", namespace, "bench", "bench-1.0.0.tar.gz"),
                               chart.parent)
    artifact["revision"] = "1.0.0"
    kube.patch(HELM_CHART, "bench", {"status": {"artifact": artifact, "observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "ChartPullSucceeded", "message": "pulled 'bench' chart with "
         "version '1.0.0'", "lastTransitionTime": now(), "observedGeneration": 1}]}}, namespace, subresource="status")


def ready_count(kube: KubeClient, namespace: str) -> tuple[int, int]:
    items = kube.list(HELM_RELEASE, namespace)["items"]
    ready = sum(1 for o in items if (find_condition(o, "Ready") or {}).get("status") == "True")
    failed = sum(1 for o in items if (find_condition(o, "Stalled") or {}).get("status") == "True")
    return ready, failed


def bench(kube, plane, storage, workdir: Path, size: int, args) -> None:
    namespace = f"bench-hr-{size}"
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    publish_chart(kube, storage, workdir, namespace)
    controller = Controller(plane.kubeconfig, namespace, workdir, args.concurrent)
    try:
        time.sleep(3)  # process start-up, lease, informers (not part of the figure)
        before = ks_bench.scrape(plane)
        started = time.monotonic()
        for i in range(size):
            kube.create(HELM_RELEASE, {
                "apiVersion": HELM_RELEASE.api_version, "kind": "HelmRelease",
                "metadata": {"name": f"app-{i:04d}", "namespace": namespace},
                "spec": {"interval": "10m", "chartRef": {"kind": "HelmChart", "name": "bench"}}}, namespace)
        created = time.monotonic() - started
        elapsed, ready, failed = None, 0, 0
        while time.monotonic() - started < args.timeout:
            ready, failed = ready_count(kube, namespace)
            if ready == size:
                elapsed = time.monotonic() - started
                break
            time.sleep(1.0)
        after = ks_bench.scrape(plane)
        if elapsed is None:
            print(f"{size:>5} HelmReleases: only {ready} Ready ({failed} stalled) after {args.timeout:.0f} s "
                  f"(bounded); peak RSS {controller.peak_rss_mib():6.1f} MiB")
            return
        delta = after - before
        print(f"{size:>5} HelmReleases Ready in {elapsed:7.1f} s ({size / elapsed:5.1f}/s; creating them took "
              f"{created:.1f} s)   peak RSS {controller.peak_rss_mib():6.1f} MiB")
        total = ks_bench.report(delta, top=0)
        print(f"      apiserver requests until all Ready: {total:.0f} ({total / size:.1f} per release, creations by "
              f"the benchmark and its polling included)")
        ks_bench.report(delta)
    finally:
        controller.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,500")
    parser.add_argument("--concurrent", type=int, default=4)
    parser.add_argument("--timeout", type=float, default=1800.0, help="bound on the wait for all Ready, per size")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fluxpy-bench-hr-"))
    plane = ControlPlane(workdir / "plane", log=lambda m: None)
    storage = Storage(workdir / "storage", "127.0.0.1:0")
    server = ArtifactServer(storage, "127.0.0.1:0")
    try:
        plane.start(timeout=120)
        kube = KubeClient.from_kubeconfig(plane.kubeconfig)
        apply_staged(kube, crd_manifests(["source-controller", "helm-controller"]))
        kube.forget_discovery()
        time.sleep(1)
        server.start()
        storage.advertised_address = f"127.0.0.1:{server.port}"
        from controllers.localcluster.tools import ensure

        helm = subprocess.run([str(ensure("helm")), "version", "--short"], capture_output=True, text=True).stdout
        print(f"helm {helm.strip()}, Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
              f"--concurrent {args.concurrent}")
        for size in [int(s) for s in args.sizes.split(",") if s]:
            bench(kube, plane, storage, workdir, size, args)
    finally:
        server.stop()
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
