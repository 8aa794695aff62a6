"""Notification-controller benchmark: prints figures, asserts nothing.

Against the embedded local control plane and real controller *processes* (source-controller,
kustomize-controller and notification-controller, started as ``fluxpy dev`` starts them: every controller
posts its events to the notification-controller), it measures:

- **push → applied through a Receiver**: a commit pushed to a Git repository on loopback, then the
  GitHub-signed push webhook a Git host would send to the Receiver, until the ConfigMap the commit changes
  is updated in the cluster (GitRepository and Kustomization intervals 1h: the webhook is the only trigger);
  median and p95 over ``--pushes`` (20) pushes;
- **event ingest**: ``--events`` (2000) distinct events posted to the events endpoint by 8 threads, each
  matching one Alert whose generic Provider is a local sink: events accepted per second, the time until the
  sink has received them all, and the notification-controller's peak RSS (VmHWM).

Run: ``python tests/bench/notifications.py [--pushes 20] [--events 2000]``.
"""
from __future__ import annotations

import argparse
import concurrent.futures
import hashlib
import hmac
import http.server
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from controllers.api.builtin import CONFIGMAP, NAMESPACE  # noqa: E402
from controllers.api.objects import dig, find_condition  # noqa: E402
from controllers.localcluster import dev  # noqa: E402
from controllers.localcluster.plane import ControlPlane  # noqa: E402
from controllers.runtime.kube import KubeClient, NotFound  # noqa: E402
from servers.git import GitHTTPServer  # noqa: E402

COMPONENTS = ("source-controller", "kustomize-controller", "notification-controller")
NS, TOKEN = "bench", "bench-token"


def apply(kube: KubeClient, *objects: dict) -> None:
    for obj in objects:
        kube.apply({**obj, "metadata": {**obj["metadata"], "namespace": NS}}, field_manager="fluxpy-bench")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.02)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def install(kube: KubeClient) -> None:
    from controllers.api.builtin import CRD
    from manifestgen.crds import crd_manifests

    for crd in crd_manifests(list(COMPONENTS)):
        kube.apply(crd, field_manager="fluxpy-bench")
        wait_for(lambda: any(c["type"] == "Established" and c["status"] == "True" for c in
                             (kube.get(CRD, crd["metadata"]["name"]).get("status") or {}).get("conditions") or []),
                 60, f"CRD {crd['metadata']['name']}")
    kube.forget_discovery()
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS}})
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "flux-system"}})
    time.sleep(1)


def ready(kube: KubeClient, kind_name: str, name: str) -> dict | None:
    from controllers.api.kinds import kind_by_name

    try:
        obj = kube.get(kind_by_name(kind_name), name, NS)
    except NotFound:
        return None
    return obj if (find_condition(obj, "Ready") or {}).get("status") == "True" else None


def bench_pushes(kube: KubeClient, git_server: GitHTTPServer, receiver_port: int, pushes: int) -> None:
    repo = git_server.repo("app", {"deploy/config.yaml": config_map(0)})
    apply(kube,
          {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "webhook-token"}, "stringData": {"token": TOKEN}},
          {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository", "metadata": {"name": "app"},
           "spec": {"url": git_server.url(repo), "interval": "1h", "ref": {"branch": "main"}}},
          {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "metadata": {"name": "app"},
           "spec": {"interval": "1h", "path": "./deploy", "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "app"}}},
          {"apiVersion": "notification.toolkit.fluxcd.io/v1", "kind": "Receiver", "metadata": {"name": "push"},
           "spec": {"type": "github", "events": ["push"], "secretRef": {"name": "webhook-token"},
                    "resources": [{"kind": "GitRepository", "name": "app"}]}})
    receiver = wait_for(lambda: ready(kube, "Receiver", "push"), 60, "the Receiver")
    wait_for(lambda: ready(kube, "Kustomization", "app"), 120, "the first apply")
    hook = f"http://127.0.0.1:{receiver_port}{dig(receiver, 'status.webhookPath')}"
    times = []
    for i in range(1, pushes + 1):
        repo.commit({"deploy/config.yaml": config_map(i)}, f"push {i}")
        started = time.monotonic()
        body = json.dumps({"ref": "refs/heads/main", "after": repo.head()}).encode()
        signature = "sha256=" + hmac.new(TOKEN.encode(), body, hashlib.sha256).hexdigest()
        request = urllib.request.Request(hook, data=body, method="POST", headers={
            "Content-Type": "application/json", "X-GitHub-Event": "push", "X-Hub-Signature-256": signature})
        urllib.request.urlopen(request, timeout=10).close()
        wait_for(lambda: (kube.get(CONFIGMAP, "pushed", NS).get("data") or {}).get("push") == str(i), 60,
                 f"push {i} to be applied")
        times.append(time.monotonic() - started)
    times.sort()
    p95 = times[min(len(times) - 1, int(round(0.95 * len(times))) - 1)]
    print(f"  push → applied through a Receiver ({pushes} pushes): median {statistics.median(times):.2f} s, "
          f"p95 {p95:.2f} s, min {times[0]:.2f} s, max {times[-1]:.2f} s")


def config_map(i: int) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pushed\n  namespace: {NS}\ndata:\n  push: \"{i}\"\n"


class Sink:
    """A generic Provider's address: counts what it receives."""

    def __init__(self):
        self.count, self.lock, self.done = 0, threading.Lock(), threading.Event()
        self.expected = 0
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with sink.lock:
                    sink.count += 1
                    if sink.count >= sink.expected:
                        sink.done.set()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def bench_events(kube: KubeClient, events_port: int, count: int, pid: int) -> None:
    sink = Sink()
    sink.expected = count
    apply(kube,
          {"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Provider", "metadata": {"name": "sink"},
           "spec": {"type": "generic", "address": f"http://127.0.0.1:{sink.server.server_address[1]}/"}},
          {"apiVersion": "notification.toolkit.fluxcd.io/v1beta3", "kind": "Alert",
           "metadata": {"name": "ingest", "annotations": {"fluxpy.io/root-cause-grouping": "disabled"}},
           "spec": {"providerRef": {"name": "sink"}, "eventSources": [{"kind": "Kustomization", "name": "*"}]}})
    time.sleep(2)  # the dispatcher's informers pick the Alert up
    url = f"http://127.0.0.1:{events_port}/"

    def post(i: int) -> int:
        body = json.dumps({"involvedObject": {"kind": "Kustomization", "namespace": NS, "name": f"app-{i % 50}",
                                              "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
                           "severity": "info", "timestamp": "2026-12-05T00:00:00Z", "message": f"event {i}",
                           "reason": "ReconciliationSucceeded", "reportingController": "kustomize-controller"}).encode()
        request = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as resp:
                return resp.status
        except urllib.error.HTTPError as exc:
            return exc.code

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(post, range(count)))
    accepted = time.monotonic() - started
    delivered = sink.done.wait(300)
    total = time.monotonic() - started
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024
    print(f"  event ingest ({count} events, 8 clients): {count / accepted:.0f} events/s accepted "
          f"({statuses.count(202)} × 202), {'all' if delivered else sink.count} delivered to the sink in "
          f"{total:.1f} s ({sink.count / total:.0f}/s); notification-controller peak RSS {rss:.1f} MiB")
    sink.server.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pushes", type=int, default=20)
    parser.add_argument("--events", type=int, default=2000)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="fluxpy-bench-notifications-"))
    plane = ControlPlane(workdir / "plane", log=lambda m: None)
    git_server = GitHTTPServer(workdir / "git")
    state = workdir / "state"
    try:
        plane.start(timeout=120)
        kube = KubeClient.from_kubeconfig(plane.kubeconfig)
        install(kube)
        git_server.start()

        def command(component, kubeconfig):
            argv = dev.controller_command(component, kubeconfig) + ["--log-level=error"]
            return argv + (["--storage-addr=127.0.0.1:0"] if component == "source-controller" else [])

        controllers = dev.start_controllers(state, COMPONENTS, kubeconfig=plane.kubeconfig, command=command)
        endpoints = dev.notification_endpoints(state)
        print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {', '.join(COMPONENTS)} as processes")
        bench_pushes(kube, git_server, endpoints["receiver"], args.pushes)
        pid = next(c.pid for c in controllers if c.component == "notification-controller")
        bench_events(kube, endpoints["events"], args.events, pid)
    except SystemExit:
        for log in sorted((state / "logs").glob("*.log")):
            print(f"--- {log.name}\n" + "\n".join(log.read_text().splitlines()[-8:]), file=sys.stderr)
        raise
    finally:
        dev.stop_controllers(state)
        git_server.stop()
        plane.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
