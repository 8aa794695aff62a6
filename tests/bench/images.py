"""Image automation benchmark: prints figures, asserts nothing.

Measures, on this machine, against the embedded local control plane, Debian's docker-registry and a local git
smart-HTTP server, with the real controller *processes* (``python -m controllers image-reflector-controller`` and
``image-automation-controller``):

- an ImageRepository with 5 000 tags: time from creation to Ready (the scan: ``/v2/`` ping, ``tags/list`` over
  ``Link`` pages, the tag database write), and the reflector's peak RSS (VmHWM);
- 100 ImagePolicies (semver ranges) over those tags: time until all are Ready, and the peak RSS after;
- an ImageUpdateAutomation over a repository of 1 000 YAML files, 50 of them with a ``$imagepolicy`` marker:
  time from creation to the pushed commit (clone, setters over every file, commit, push), and the automation
  controller's peak RSS.

Run: ``python tests/bench/images.py [--tags 5000] [--policies 100] [--files 1000] [--markers 50]``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

import bench.sources as sources_bench  # noqa: E402 - the controller process
from controllers.api.builtin import NAMESPACE  # noqa: E402
from controllers.api.image import IMAGE_POLICY, IMAGE_REPOSITORY, IMAGE_UPDATE_AUTOMATION  # noqa: E402
from controllers.api.objects import dig, find_condition  # noqa: E402
from controllers.api.source import GIT_REPOSITORY  # noqa: E402
from controllers.localcluster.plane import ControlPlane  # noqa: E402
from controllers.runtime.kube import KubeClient  # noqa: E402
from servers.git import GitHTTPServer, git  # noqa: E402
from servers.registry import Registry  # noqa: E402

NS = "bench-images"


def install_crds(kube: KubeClient) -> None:
    from controllers.runtime.apply import apply_staged
    from manifestgen.crds import crd_manifests

    apply_staged(kube, crd_manifests(["source-controller", "image-reflector-controller",
                                      "image-automation-controller"]))  # waits until Established
    kube.forget_discovery()


def wait(predicate, timeout: float, what: str, poll: float = 0.2, log: Path | None = None) -> float:
    """Seconds until ``predicate()`` holds; SystemExit after ``timeout`` (with the tail of ``log``)."""
    started = time.monotonic()
    while not predicate():
        if time.monotonic() - started > timeout:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}\n{tail}")
        time.sleep(poll)
    return time.monotonic() - started


def ready(obj: dict) -> bool:
    return (find_condition(obj, "Ready") or {}).get("status") == "True" and \
        dig(obj, "status.observedGeneration") == obj["metadata"]["generation"]


class Controller(sources_bench.Controller):
    """One controller process (a registered component) watching the benchmark's namespace."""

    def __init__(self, component: str, kubeconfig: Path, workdir: Path, *extra: str):
        self.log = workdir / f"{component}.log"
        self.spawn([sys.executable, "-m", "controllers", component, f"--kubeconfig={kubeconfig}", "--metrics-addr=0",
                    "--health-addr=0", "--log-level=error", "--log-encoding=console",
                    "--watch-all-namespaces=false", *extra], NS)
        time.sleep(2)  # start-up, informers (not part of the figures)
        if self.proc.poll() is not None:
            raise SystemExit(f"{component} exited: {self.log.read_text()[-2000:]}")


def new_object(kind, name: str, spec: dict) -> dict:
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name, "namespace": NS},
            "spec": spec}


def bench_scan_and_policies(kube, registry: Registry, reflector: Controller, tags: int, policies: int) -> str:
    repository = registry.new_repository("bench")
    started = time.monotonic()
    registry.push(repository, "0.0.0", {"app.yaml": "v: 0\n"})
    names = [f"{major}.{minor}.{patch}" for major in range(10) for minor in range(25) for patch in range(20)]
    registry.tag(repository, "0.0.0", names[1:tags])
    print(f"pushed {tags} tags in {time.monotonic() - started:.1f} s (setup, not a figure)")
    image = f"{registry.host}/{repository}"

    kube.create(IMAGE_REPOSITORY, new_object(IMAGE_REPOSITORY, "app", {"image": image, "interval": "1h"}), NS)
    elapsed = wait(lambda: ready(kube.get(IMAGE_REPOSITORY, "app", NS)), 600, "the ImageRepository", poll=0.05,
                   log=reflector.log)
    count = dig(kube.get(IMAGE_REPOSITORY, "app", NS), "status.lastScanResult.tagCount")
    print(f"ImageRepository scan of {count} tags: Ready in {elapsed:6.2f} s   reflector peak RSS "
          f"{reflector.peak_rss_mib():6.1f} MiB")

    started = time.monotonic()
    for i in range(policies):  # each range picks a different tag that exists (a patch range over the tags)
        major, minor, _ = names[i * tags // policies].split(".")
        kube.create(IMAGE_POLICY, new_object(IMAGE_POLICY, f"app-{i}", {
            "imageRepositoryRef": {"name": "app"}, "policy": {"semver": {"range": f"~{major}.{minor}"}}}), NS)
    created = time.monotonic() - started
    elapsed = wait(lambda: sum(ready(o) for o in kube.list(IMAGE_POLICY, NS)["items"]) == policies, 600,
                   f"{policies} ImagePolicies", poll=0.2, log=reflector.log) + created
    print(f"{policies} ImagePolicies over {count} tags: all Ready in {elapsed:6.2f} s "
          f"({policies / elapsed:5.1f}/s; creating them took {created:.1f} s)   reflector peak RSS "
          f"{reflector.peak_rss_mib():6.1f} MiB")
    return image


def bench_automation(kube, server: GitHTTPServer, kubeconfig: Path, workdir: Path, image: str, files: int,
                     markers: int) -> None:
    content = {}
    for i in range(files):
        marked = i * markers // files != (i + 1) * markers // files  # spread the markers over the tree
        policy = f"app-{i * markers // files}"
        comment = f'  # {{"$imagepolicy": "{NS}:{policy}"}}' if marked else ""
        content[f"apps/dir-{i // 100:02d}/app-{i:04d}.yaml"] = (
            f"# service {i}\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\nspec:\n"
            f"  template:\n    spec:\n      containers:\n        - name: app\n"
            f"          image: {image}:0.0.0{comment}\n          ports:\n            - containerPort: 80\n")
    repo = server.repo("fleet", content).allow_push()
    kube.create(GIT_REPOSITORY, new_object(GIT_REPOSITORY, "fleet", {
        "url": server.url(repo), "interval": "1h", "ref": {"branch": "main"}}), NS)
    automation = Controller("image-automation-controller", kubeconfig, workdir)
    try:
        before = repo.head()
        kube.create(IMAGE_UPDATE_AUTOMATION, new_object(IMAGE_UPDATE_AUTOMATION, "fleet", {
            "sourceRef": {"kind": "GitRepository", "name": "fleet"}, "interval": "1h",
            "git": {"checkout": {"ref": {"branch": "main"}},
                    "commit": {"author": {"name": "fluxpy", "email": "fluxpy@example.com"}},
                    "push": {"branch": "main"}},
            "update": {"path": "./apps", "strategy": "Setters"}}), NS)
        elapsed = wait(lambda: dig(kube.get(IMAGE_UPDATE_AUTOMATION, "fleet", NS), "status.lastPushCommit"), 600,
                       "the automation's push", poll=0.05, log=automation.log)
        changed = git("diff", "--name-only", before, repo.head(), cwd=repo.bare).split()
        print(f"ImageUpdateAutomation over {files} files, {markers} markers: pushed a commit changing "
              f"{len(changed)} files in {elapsed:6.2f} s   automation peak RSS {automation.peak_rss_mib():6.1f} MiB")
    finally:
        automation.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=5000)
    parser.add_argument("--policies", type=int, default=100)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--markers", type=int, default=50)
    args = parser.parse_args()
    if args.markers > args.policies:
        raise SystemExit("--markers cannot exceed --policies (each marker names its own policy)")
    workdir = Path(tempfile.mkdtemp(prefix="fluxpy-bench-images-"))
    plane = ControlPlane(workdir / "plane", log=lambda m: None)
    registry = Registry(workdir / "registry")
    server = GitHTTPServer(workdir / "git")
    reflector = None
    try:
        plane.start(timeout=120)
        kube = KubeClient.from_kubeconfig(plane.kubeconfig)
        install_crds(kube)
        kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
        registry.start()
        server.start()
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
        reflector = Controller("image-reflector-controller", plane.kubeconfig, workdir,
                               f"--storage-path={workdir / 'reflector'}")
        image = bench_scan_and_policies(kube, registry, reflector, args.tags, args.policies)
        bench_automation(kube, server, plane.kubeconfig, workdir, image, args.files, args.markers)
    finally:
        if reflector:
            reflector.stop()
        server.stop()
        registry.stop()
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
