"""logs / events / stats: reading what the controllers did."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from controllers.api.kinds import kind_by_name
from controllers.runtime import logread

ROOT = Path(__file__).resolve().parents[2]


def record(ts: str, msg: str, level: str = "info", **kv) -> str:
    return json.dumps({"level": level, "ts": ts, "msg": msg, **kv}) + "\n"


def test_lines_merge_across_controllers_in_time_order_and_filter(tmp_path):
    (tmp_path / "source-controller.log").write_text(
        record("2026-01-01T00:00:01.000Z", "stored artifact", kind="GitRepository", namespace="flux-system",
               name="repo", reconcileID="a1")
        + record("2026-01-01T00:00:03.000Z", "auth failed", "error", kind="GitRepository", namespace="apps",
                 name="other", reconcileID="a2")
        + "not json at all\n")
    (tmp_path / "kustomize-controller.log").write_text(
        record("2026-01-01T00:00:02.000Z", "applied", kind="Kustomization", namespace="flux-system", name="apps",
               reconcileID="b1")
        + record("2026-01-01T00:00:00.500Z", "starting manager"))
    lines = logread.merge(logread.read_files(logread.local_log_files(tmp_path)))
    assert [line.ts for line in lines if line.ts] == sorted(line.ts for line in lines if line.ts)
    assert [line.component for line in lines if line.ts][:3] == ["kustomize-controller", "source-controller",
                                                               "kustomize-controller"]
    only_git = [line for line in lines if logread.LogFilter(kind="GitRepository", namespace=None).matches(line)]
    assert [line.name for line in only_git] == ["repo", "other"]
    errors = [line for line in lines if logread.LogFilter(level="error").matches(line)]
    assert [line.message for line in errors] == ["auth failed"]
    in_ns = [line for line in lines if logread.LogFilter(kind="Kustomization", namespace="flux-system").matches(line)]
    assert [line.name for line in in_ns] == ["apps"]
    assert logread.last_reconciliation(lines, "GitRepository", "apps", "other")[0].reconcile_id == "a2"


@pytest.fixture(scope="module")
def dev_cluster(tmp_path_factory):
    """A `fluxpy dev` cluster of its own with two controllers running as local processes."""
    from controllers.localcluster import dev

    state = tmp_path_factory.mktemp("dev")
    cluster = dev.up(state, timeout=90)
    try:
        dev.start_controllers(state, ["source-controller", "kustomize-controller"])
        yield state, cluster
    finally:
        dev.stop_controllers(state)
        dev.down(state)


def fluxpy_process(*args: str) -> list[str]:
    return [sys.executable, "-m", "flux_cli", *args]


def test_logs_merges_local_controllers_and_follows(dev_cluster):
    state, cluster = dev_cluster
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(ROOT))
    base = ["logs", "--state-dir", str(state), "--kubeconfig", str(cluster.kubeconfig)]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # both controllers have taken their leader Lease
        out = subprocess.run(fluxpy_process(*base), env=env, capture_output=True, text=True, timeout=30)
        if out.stdout.count("successfully acquired lease") >= 2:
            break
        time.sleep(0.5)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(" source-controller - " in line for line in lines)
    assert any(" kustomize-controller - " in line for line in lines)
    assert [line.split()[0] for line in lines] == sorted(line.split()[0] for line in lines)

    as_json = subprocess.run(fluxpy_process(*base, "-o", "json", "--tail", "2"), env=env, capture_output=True,
                             text=True, timeout=30)
    assert [json.loads(line)["msg"] for line in as_json.stdout.splitlines()] and len(as_json.stdout.splitlines()) == 2

    follower = subprocess.Popen(fluxpy_process(*base, "-f", "--tail", "0"), env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(2)
        log = Path(state) / "logs" / "kustomize-controller.log"
        with open(log, "a") as f:  # a new line, as the controller would write it
            f.write(record("2099-01-01T00:00:00.000Z", "a new line", kind="Kustomization", namespace="flux-system",
                           name="apps"))
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(follower.stdout.readline, "")), daemon=True)
        reader.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not any("a new line" in s for s in seen):
            time.sleep(0.1)
        assert any("Kustomization/apps.flux-system - a new line" in s for s in seen), seen
    finally:
        follower.kill()
        follower.wait(5)


def test_logs_without_controllers_says_so(fluxpy, kubeconfig, tmp_path):
    res = fluxpy("logs", "--state-dir", str(tmp_path), "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and "no fluxpy controller Pods found" in res.stderr


def test_events_for_an_object_in_time_order(fluxpy, kube, kubeconfig, flux_crds, namespace):
    from controllers.runtime.events import EventRecorder

    git = kind_by_name("source git")
    obj = kube.create(git, {"apiVersion": git.api_version, "kind": git.kind,
                            "metadata": {"name": "repo", "namespace": namespace},
                            "spec": {"interval": "1m", "url": "https://example.com/repo"}})
    recorder = EventRecorder(kube, "source-controller").start()
    try:
        recorder.event(obj, "Warning", "AuthenticationFailed", "failed to authenticate")
        time.sleep(1.1)
        recorder.event(obj, "Normal", "NewArtifact", "stored artifact for commit 'abc'")
    finally:
        recorder.stop(5)
    res = fluxpy("events", "--for", "GitRepository/repo", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    rows = res.stdout.splitlines()[1:]
    assert [r.split()[2] for r in rows] == ["AuthenticationFailed", "NewArtifact"]
    warnings = fluxpy("events", "--types", "Warning", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert "AuthenticationFailed" in warnings.stdout and "NewArtifact" not in warnings.stdout
    bad = fluxpy("events", "--for", "repo", "--kubeconfig", str(kubeconfig))
    assert bad.exit_code == 1 and "expected <kind>/<name>" in bad.stderr


def test_stats_counts_per_kind(fluxpy, kube, kubeconfig, flux_crds, namespace):
    git = kind_by_name("source git")
    for name, suspend in (("a", False), ("b", True)):
        kube.create(git, {"apiVersion": git.api_version, "kind": git.kind,
                          "metadata": {"name": name, "namespace": namespace},
                          "spec": {"interval": "1m", "url": "https://example.com/repo", "suspend": suspend}})
    kube.patch(git, "a", {"status": {"artifact": {"path": "x", "url": "http://x/x", "revision": "sha1:1",
                                                  "digest": "sha256:" + "0" * 64, "size": 2048,
                                                  "lastUpdateTime": "2026-01-01T00:00:00Z"},
                                     "conditions": [{"type": "Ready", "status": "False", "reason": "Failed",
                                                     "message": "x", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
               namespace, subresource="status")
    res = fluxpy("stats", "-n", namespace, "-o", "json", "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    row = next(c for c in json.loads(res.stdout) if c["kind"] == "GitRepository")
    assert row == {"kind": "GitRepository", "reconcilers": 2, "running": 1, "failing": 1, "suspended": 1,
                   "storage": 2048}


def test_the_ui_object_page_shows_the_controllers_lines_for_it(dev_cluster):
    """``fluxpy ui`` on a ``fluxpy dev`` cluster reads the local controllers' log files, as ``fluxpy logs``,
    and its object page keeps the lines about that object only."""
    from controllers.api.kustomize import KUSTOMIZATION
    from controllers.runtime.kube import KubeClient
    from flux_cli.web import launch
    from servers.ui import Client

    from ..conftest import install_flux_crds

    state, cluster = dev_cluster
    kube = KubeClient.from_kubeconfig(cluster.kubeconfig)
    install_flux_crds(kube)
    kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                "metadata": {"name": "shown", "namespace": "default"},
                                "spec": {"interval": "1h", "path": "./", "prune": True,
                                         "sourceRef": {"kind": "GitRepository", "name": "none"}}}, "default")
    with open(Path(state) / "logs" / "kustomize-controller.log", "a") as f:  # as the controller writes them
        f.write(record("2099-01-01T00:00:00.000Z", "about the shown one", kind="Kustomization",
                       namespace="default", name="shown"))
        f.write(record("2099-01-01T00:00:01.000Z", "about another one", kind="Kustomization",
                       namespace="default", name="other"))
    ui = launch.workstation(kube, port=0, namespaces=("default",), state_dir=str(state))
    try:
        page = Client(ui.url).get("/api/object?id=Kustomization/default/shown")
    finally:
        ui.stop()
    assert page["logsNote"] == ""
    messages = [(line["controller"], line["message"]) for line in page["logs"]]
    assert ("kustomize-controller", "about the shown one") in messages
    assert not [m for _, m in messages if m == "about another one"]
