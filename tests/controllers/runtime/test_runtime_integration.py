"""The runtime against a real kube-apiserver: a tiny reconciler for a test CRD (``Widget``).

Shows: finalizer added / finalize called on delete, requestedAt -> lastHandledReconcileAt, Ready/Stalled
with observedGeneration, status-only updates ignored, suspend, requeue with backoff and aggregated events,
watch re-list after 410 Gone, leader election hand-over, /metrics and /healthz, the entrypoint process.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from controllers.api.builtin import CONFIGMAP, CRD, EVENT, LEASE
from controllers.api.types import ResourceType
from controllers.runtime import conditions as cond
from controllers.runtime.conditions import Conditions
from controllers.runtime.controller import Controller, Reconciler, Watch
from controllers.runtime.events import EventRecorder
from controllers.runtime.kube import Gone, NotFound
from controllers.runtime.leader import lease_name
from controllers.runtime.manager import Manager
from controllers.runtime.outcomes import RetryableError, StalledError, Success, Waiting
from controllers.runtime.settings import (ControllerSettings, LeaderElectionSettings, ManagerSettings,
                                          WatchSettings)
from controllers.runtime.status import Patcher
from controllers.runtime.watch import Informer

ROOT = Path(__file__).resolve().parents[3]
WIDGET = ResourceType("test.fluxpy.io", "v1", "Widget", "widgets", True)
TIMEOUT = 15.0


def wait_for(fn, timeout: float = TIMEOUT, interval: float = 0.05, what: str = "condition"):
    """Poll ``fn`` until it returns a truthy value; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except NotFound:
            last = None
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def widget_crd(kube):
    """A small namespaced CRD with a status subresource."""
    any_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    crd = {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.test.fluxpy.io"},
        "spec": {"group": "test.fluxpy.io", "scope": "Namespaced",
                 "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
                 "versions": [{"name": "v1", "served": True, "storage": True, "subresources": {"status": {}},
                               "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                                   "spec": any_object, "status": any_object}}}}]},
    }
    kube.apply(crd, field_manager="fluxpy-tests")

    def ready():
        got = kube.get(CRD, "widgets.test.fluxpy.io")
        established = any(c["type"] == "Established" and c["status"] == "True"
                          for c in (got.get("status") or {}).get("conditions") or [])
        return established and kube.list(WIDGET) is not None
    wait_for(ready, what="Widget CRD established")
    return WIDGET


class WidgetReconciler(Reconciler):
    """Behaves as ``spec.mode`` says: ok, fail, stall, wait."""

    kind = WIDGET

    def __init__(self):
        self.calls: list[tuple[str, int, float]] = []
        self.finalized: list[str] = []
        self.lock = threading.Lock()

    def reconcile(self, ctx, obj):
        meta = obj["metadata"]
        with self.lock:
            self.calls.append((meta["name"], meta["generation"], time.monotonic()))
        assert "finalizers.fluxcd.io" in meta["finalizers"]  # added before the first reconciliation
        mode = obj["spec"].get("mode", "ok")
        if mode == "fail":
            raise RetryableError("failing on purpose", reason="TestFailed")
        if mode == "stall":
            raise StalledError("spec.mode stall cannot work", reason="InvalidSpec")
        if mode == "wait":
            raise Waiting("dependency 'other' is not ready")
        if mode == "progress-steps":  # a quick step's report waits for the next write; a later one is written
            ctx.progress("step one")
            ctx.progress("step two", throttle=True)
            self.seen_steps = [_reconciling_message(ctx.kube.get(WIDGET, meta["name"], meta["namespace"]))]
            time.sleep(1.1)
            ctx.progress("step three", throttle=True)
            self.seen_steps.append(_reconciling_message(ctx.kube.get(WIDGET, meta["name"], meta["namespace"])))
        if mode == "progress-fail":
            ctx.progress("Fetching revision main@sha1:abc")
            self.seen_mid_way = ctx.kube.get(WIDGET, meta["name"], meta["namespace"])
            raise RetryableError("fetch failed", reason="GitOperationFailed", requeue_after=3600)
        if mode == "wake":  # wake a dependent, then take a while before the run's status is written
            ctx.enqueue_after_status(f"{meta['namespace']}/{obj['spec']['dependent']}")
            time.sleep(0.5)
        if mode == "depend":  # what a dependent reads of its dependency when it runs
            try:
                ready = cond.is_ready(ctx.kube.get(WIDGET, obj["spec"]["on"], meta["namespace"]))
            except NotFound:
                ready = None
            with self.lock:
                self.seen_dependency = [*getattr(self, "seen_dependency", []), ready]
        obj["status"]["value"] = obj["spec"].get("value")
        return Success(f"value {obj['spec'].get('value')} applied", reason="ReconciliationSucceeded")

    def finalize(self, ctx, obj):
        self.finalized.append(obj["metadata"]["name"])

    def count(self, name: str) -> int:
        with self.lock:
            return sum(1 for c in self.calls if c[0] == name)


def _reconciling_message(obj: dict) -> str | None:
    return next((c["message"] for c in (obj.get("status") or {}).get("conditions") or []
                 if c["type"] == "Reconciling"), None)


def settings_for(namespace: str, **controller) -> ManagerSettings:
    cs = dict(concurrent=2, min_retry_delay=0.05, max_retry_delay=2.0, interval_jitter_percentage=0,
              requeue_dependency=0.5)
    cs.update(controller)
    return ManagerSettings(component="test-controller", metrics_addr="", health_addr="",
                           controller=ControllerSettings(**cs),
                           watch=WatchSettings(all_namespaces=False, namespace=namespace, timeout_seconds=20))


def widget(name: str, namespace: str, **spec) -> dict:
    return {"apiVersion": "test.fluxpy.io/v1", "kind": "Widget", "metadata": {"name": name, "namespace": namespace},
            "spec": spec}


@pytest.fixture
def running(kube, namespace, widget_crd):
    """Start a controller (events on) for the test namespace; yields (controller, reconciler, recorder)."""
    started = []

    def start(**controller):
        reconciler = WidgetReconciler()
        recorder = EventRecorder(kube, "test-controller").start()
        ctl = Controller(reconciler, kube, settings_for(namespace, **controller), events=recorder).start()
        assert ctl.wait_synced(TIMEOUT)
        started.append((ctl, recorder))
        return ctl, reconciler, recorder

    yield start
    for ctl, recorder in started:
        ctl.stop(5)
        recorder.stop(2)


def ready_of(kube, namespace, name):
    return cond.get(kube.get(WIDGET, name, namespace), "Ready")


def test_finalizer_added_and_finalize_called_on_delete(kube, namespace, running):
    ctl, rec, _ = running()
    kube.create(WIDGET, widget("w1", namespace, value=1), namespace)
    wait_for(lambda: cond.is_ready(kube.get(WIDGET, "w1", namespace)), what="Ready")
    assert kube.get(WIDGET, "w1", namespace)["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    kube.delete(WIDGET, "w1", namespace)

    def gone():
        try:
            kube.get(WIDGET, "w1", namespace)
            return False
        except NotFound:
            return True
    wait_for(gone, what="object deleted")
    assert rec.finalized == ["w1"]


def test_ready_conditions_observed_generation_and_status_only_updates_ignored(kube, namespace, running):
    ctl, rec, _ = running()
    kube.create(WIDGET, widget("w2", namespace, value="a", interval="1h"), namespace)
    wait_for(lambda: (ready_of(kube, namespace, "w2") or {}).get("status") == "True", what="Ready")
    obj = kube.get(WIDGET, "w2", namespace)
    st = obj["status"]
    assert st["observedGeneration"] == 1 and st["value"] == "a"
    assert [c["type"] for c in st["conditions"]] == ["Ready"]
    assert st["conditions"][0]["observedGeneration"] == 1
    assert st["conditions"][0]["message"] == "value a applied"
    first_transition = st["conditions"][0]["lastTransitionTime"]
    # interval requeue was scheduled from spec.interval
    assert 3500 < ctl.queue.deadline(f"{namespace}/w2") <= 3600
    calls = rec.count("w2")
    # A status-only update (someone else writing status) must not trigger a reconciliation.
    kube.patch(WIDGET, "w2", {"status": {"note": "external"}}, namespace, subresource="status")
    time.sleep(0.5)
    assert rec.count("w2") == calls
    # A spec change does: generation 2, observedGeneration follows; transition time kept (same state).
    kube.patch(WIDGET, "w2", {"spec": {"value": "a"}, "metadata": {"labels": {"x": "y"}}}, namespace)
    kube.patch(WIDGET, "w2", {"spec": {"value": "b"}}, namespace)
    wait_for(lambda: kube.get(WIDGET, "w2", namespace)["status"].get("observedGeneration") == 2,
             what="observedGeneration 2")
    st = kube.get(WIDGET, "w2", namespace)["status"]
    assert st["value"] == "b" and st["note"] == "external"  # only what changed was patched
    ready = cond.get({"status": st}, "Ready")
    assert ready["observedGeneration"] == 2 and ready["message"] == "value b applied"


def test_requested_at_reconciles_and_sets_last_handled(kube, namespace, running):
    ctl, rec, _ = running()
    kube.create(WIDGET, widget("w3", namespace, value=1), namespace)
    wait_for(lambda: cond.is_ready(kube.get(WIDGET, "w3", namespace)), what="Ready")
    calls = rec.count("w3")
    token = "2024-05-01T10:00:00.123456789Z"
    kube.patch(WIDGET, "w3", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": token}}}, namespace)
    wait_for(lambda: kube.get(WIDGET, "w3", namespace)["status"].get("lastHandledReconcileAt") == token,
             what="lastHandledReconcileAt")
    obj = kube.get(WIDGET, "w3", namespace)
    assert obj["metadata"]["generation"] == 1 and rec.count("w3") == calls + 1


def test_stalled_until_spec_changes(kube, namespace, running):
    ctl, rec, recorder = running()
    kube.create(WIDGET, widget("w4", namespace, mode="stall"), namespace)
    wait_for(lambda: cond.is_true(kube.get(WIDGET, "w4", namespace), "Stalled"), what="Stalled")
    obj = kube.get(WIDGET, "w4", namespace)
    stalled, ready = cond.get(obj, "Stalled"), cond.get(obj, "Ready")
    assert stalled["reason"] == ready["reason"] == "InvalidSpec" and ready["status"] == "False"
    assert stalled["observedGeneration"] == 1 and obj["status"]["observedGeneration"] == 1
    assert cond.get(obj, "Reconciling") is None
    time.sleep(0.5)
    assert rec.count("w4") == 1  # no requeue
    assert ctl.queue.deadline(f"{namespace}/w4") is None
    kube.patch(WIDGET, "w4", {"spec": {"mode": "ok", "value": 2}}, namespace)
    wait_for(lambda: cond.is_ready(kube.get(WIDGET, "w4", namespace)), what="Ready after fix")
    obj = kube.get(WIDGET, "w4", namespace)
    assert [c["type"] for c in obj["status"]["conditions"]] == ["Ready"]
    assert obj["status"]["observedGeneration"] == 2


def test_waiting_requeues_after_dependency_interval(kube, namespace, running):
    ctl, rec, _ = running(requeue_dependency=0.3)
    kube.create(WIDGET, widget("w5", namespace, mode="wait"), namespace)
    wait_for(lambda: rec.count("w5") >= 3, what="three waiting runs")
    times = [t for n, _, t in rec.calls if n == "w5"]
    assert all(b - a >= 0.25 for a, b in zip(times, times[1:]))
    ready = ready_of(kube, namespace, "w5")
    assert (ready["status"], ready["reason"]) == ("False", "DependencyNotReady")


def test_requeue_on_error_with_backoff_and_reset(kube, namespace, running):
    ctl, rec, recorder = running(min_retry_delay=0.05, max_retry_delay=5.0)
    kube.create(WIDGET, widget("w6", namespace, mode="fail"), namespace)
    wait_for(lambda: rec.count("w6") >= 5, timeout=20, what="five failing runs")
    obj = kube.get(WIDGET, "w6", namespace)
    ready, reconciling = cond.get(obj, "Ready"), cond.get(obj, "Reconciling")
    assert (ready["status"], ready["reason"], ready["message"]) == ("False", "TestFailed", "failing on purpose")
    assert (reconciling["status"], reconciling["reason"]) == ("True", "ProgressingWithRetry")
    assert "observedGeneration" not in obj["status"]
    times = [t for n, _, t in rec.calls if n == "w6"][:5]
    gaps = [b - a for a, b in zip(times, times[1:])]
    # waits of 0.05, 0.1, 0.2, 0.4s (+ the same per-run overhead): growing exponentially
    assert gaps[3] - gaps[0] >= 0.3 and gaps[3] >= 0.38
    assert gaps[2] - gaps[0] >= 0.12
    key = f"{namespace}/w6"
    assert ctl.queue.backoff.failures(key) >= 5
    # Repeated identical failures are one Event with a growing count.
    assert recorder.flush(5)

    def warning_count():
        events = [e for e in kube.list(EVENT, namespace)["items"]
                  if e["involvedObject"]["name"] == "w6" and e["reason"] == "TestFailed"]
        return len(events) == 1 and events[0]["count"] >= 3 and events[0]
    event = wait_for(warning_count, what="aggregated warning event")
    assert event["type"] == "Warning" and event["source"]["component"] == "test-controller"
    assert event["involvedObject"]["kind"] == "Widget" and event["message"] == "failing on purpose"
    # Fix it: success resets the backoff.
    kube.patch(WIDGET, "w6", {"spec": {"mode": "ok"}}, namespace)
    wait_for(lambda: cond.is_ready(kube.get(WIDGET, "w6", namespace)), what="Ready after fix")
    wait_for(lambda: ctl.queue.backoff.failures(key) == 0, what="backoff reset")
    assert cond.get(kube.get(WIDGET, "w6", namespace), "Reconciling") is None


def test_suspended_object_is_not_reconciled(kube, namespace, running):
    ctl, rec, _ = running()
    token = "t-1"
    obj = widget("w7", namespace, suspend=True)
    obj["metadata"]["annotations"] = {"reconcile.fluxcd.io/requestedAt": token}
    kube.create(WIDGET, obj, namespace)
    wait_for(lambda: kube.get(WIDGET, "w7", namespace).get("status", {}).get("lastHandledReconcileAt") == token,
             what="request acknowledged")
    assert rec.count("w7") == 0
    kube.patch(WIDGET, "w7", {"spec": {"suspend": False}}, namespace)
    wait_for(lambda: cond.is_ready(kube.get(WIDGET, "w7", namespace)), what="Ready after resume")


def test_object_deleting_without_our_finalizer_is_ignored(kube, namespace, running):
    ctl, rec, _ = running()
    obj = widget("w8", namespace)
    obj["metadata"]["finalizers"] = ["example.com/keep"]
    kube.create(WIDGET, obj, namespace)
    wait_for(lambda: cond.is_ready(kube.get(WIDGET, "w8", namespace)), what="Ready")
    # Remove our finalizer behind the controller's back, then delete: the object is left alone.
    kube.patch(WIDGET, "w8", {"metadata": {"finalizers": ["example.com/keep"]}}, namespace)
    kube.delete(WIDGET, "w8", namespace)
    time.sleep(0.5)
    assert rec.finalized == []
    assert kube.get(WIDGET, "w8", namespace)["metadata"]["finalizers"] == ["example.com/keep"]
    kube.patch(WIDGET, "w8", {"metadata": {"finalizers": None}}, namespace)


def test_watch_relists_after_gone(kube, namespace, widget_crd):
    kube.create(WIDGET, widget("g1", namespace), namespace)
    seen: list[tuple[str, str]] = []
    informer = Informer(kube, WIDGET, lambda t, old, new: seen.append((t, (new or old)["metadata"]["name"])),
                        namespace=namespace, timeout_seconds=20)
    informer.resource_version = "1"  # far too old: the apiserver answers 410 Gone
    with pytest.raises(Gone):
        informer.watch_once()
    informer.start()  # run(): a too-old resourceVersion makes it re-list, then watch from the list
    try:
        wait_for(lambda: informer.relists == 1 and ("ADDED", "g1") in seen, what="re-list")
        assert informer.errors == 0
        kube.create(WIDGET, widget("g2", namespace), namespace)
        wait_for(lambda: ("ADDED", "g2") in seen, what="watch event after re-list")
        # Force another expiry mid-stream: the next watch starts from a too-old version again.
        informer.resource_version = "1"
        kube.delete(WIDGET, "g1", namespace)
        wait_for(lambda: ("DELETED", "g1") in seen, what="delete seen")
    finally:
        informer.stop()


def test_watch_reconnects_with_backoff_after_errors(kube, namespace, widget_crd):
    bogus = ResourceType("test.fluxpy.io", "v1", "Nothing", "nothings", True)
    informer = Informer(kube, bogus, lambda *a: None, namespace=namespace, backoff_base=0.05, backoff_cap=0.2)
    informer.start()
    try:
        wait_for(lambda: informer.errors >= 3, what="retries")
        assert not informer.synced.is_set()
    finally:
        informer.stop()


def manager_for(kube, namespace, reconciler, identity, *, release=True, lease="test-controller-leader-election"):
    s = settings_for(namespace)
    s.leader_election = LeaderElectionSettings(enabled=True, lease_duration=2.0, renew_deadline=1.5,
                                               retry_period=0.2, release_on_cancel=release, namespace=namespace,
                                               lease_name=lease, identity=identity)
    return Manager(kube, s, [reconciler])


def test_leader_election_handover_on_release(kube, namespace, widget_crd):
    rec_a, rec_b = WidgetReconciler(), WidgetReconciler()
    a = manager_for(kube, namespace, rec_a, "candidate-a").start()
    b = None
    try:
        wait_for(lambda: a.leading, what="a leads")
        b = manager_for(kube, namespace, rec_b, "candidate-b").start()
        kube.create(WIDGET, widget("l1", namespace), namespace)
        wait_for(lambda: rec_a.count("l1") >= 1, what="leader reconciles")
        time.sleep(0.6)
        assert not b.leading and rec_b.count("l1") == 0  # only the leader runs reconcilers
        lease = kube.get(LEASE, "test-controller-leader-election", namespace)
        assert lease["spec"]["holderIdentity"] == "candidate-a" and lease["spec"]["leaseDurationSeconds"] == 2
        t0 = time.monotonic()
        a.stop()  # clean shutdown releases the lease
        wait_for(lambda: b.leading, timeout=5, what="b takes over")
        assert time.monotonic() - t0 < 1.5  # at once (a retry period), not after the lease duration
        lease = kube.get(LEASE, "test-controller-leader-election", namespace)
        assert lease["spec"]["holderIdentity"] == "candidate-b" and lease["spec"]["leaseTransitions"] >= 1
        kube.patch(WIDGET, "l1", {"spec": {"value": 9}}, namespace)
        wait_for(lambda: rec_b.count("l1") >= 1, what="new leader reconciles")
    finally:
        a.stop()
        if b:
            b.stop()
    assert "holderIdentity" not in kube.get(LEASE, "test-controller-leader-election", namespace)["spec"]


def test_leader_election_takeover_when_leader_dies(kube, namespace, widget_crd):
    a = manager_for(kube, namespace, WidgetReconciler(), "dying-a", release=False, lease="dies").start()
    b = None
    try:
        wait_for(lambda: a.leading, what="a leads")
        b = manager_for(kube, namespace, WidgetReconciler(), "survivor-b", lease="dies").start()
        time.sleep(0.5)
        assert not b.leading
        t0 = time.monotonic()
        a.stop()  # stops renewing without releasing, as a crashed process would
        wait_for(lambda: b.leading, timeout=10, what="b takes over after the lease expires")
        waited = time.monotonic() - t0
        assert 1.5 <= waited < 5  # after the 2s lease duration
    finally:
        a.stop()
        if b:
            b.stop()


def test_leader_stops_when_lease_is_taken(kube, namespace, widget_crd):
    a = manager_for(kube, namespace, WidgetReconciler(), "victim", lease="stolen").start()
    try:
        wait_for(lambda: a.leading, what="a leads")
        lease = kube.get(LEASE, "stolen", namespace)
        lease["spec"]["holderIdentity"] = "usurper"
        lease["spec"]["leaseDurationSeconds"] = 60
        kube.replace(LEASE, lease)
        wait_for(lambda: a.stopped.is_set(), timeout=5, what="manager stops after losing the lease")
        assert a.lost_leadership and not a.leading
    finally:
        a.stop()


def test_metrics_and_health_endpoints(kube, namespace, widget_crd):
    s = settings_for(namespace)
    s.metrics_addr, s.health_addr = "127.0.0.1:0", "127.0.0.1:0"
    mgr = Manager(kube, s, [WidgetReconciler()]).start()
    try:
        kube.create(WIDGET, widget("m1", namespace, mode="ok"), namespace)
        kube.create(WIDGET, widget("m2", namespace, mode="stall"), namespace)
        wait_for(lambda: cond.is_ready(kube.get(WIDGET, "m1", namespace)), what="Ready")
        wait_for(lambda: cond.is_true(kube.get(WIDGET, "m2", namespace), "Stalled"), what="Stalled")
        for path in ("/healthz", "/readyz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{mgr.health_server.port}{path}", timeout=5) as resp:
                assert resp.status == 200 and resp.read() == b"ok"
        with urllib.request.urlopen(f"http://127.0.0.1:{mgr.metrics_server.port}/metrics", timeout=5) as resp:
            body = resp.read().decode()
            assert resp.headers["Content-Type"].startswith("text/plain")
        assert 'controller_runtime_reconcile_total{controller="widget",result="success"}' in body
        assert 'controller_runtime_reconcile_errors_total{controller="widget"} 1' in body
        assert 'controller_runtime_terminal_reconcile_errors_total{controller="widget"} 1' in body
        assert 'controller_runtime_max_concurrent_reconciles{controller="widget"} 2' in body
        assert f'gotk_reconcile_duration_seconds_count{{kind="Widget",name="m1",namespace="{namespace}"}} 1' in body
        assert 'workqueue_adds_total{controller="widget",name="widget"}' in body
        assert 'workqueue_depth{controller="widget",name="widget"} 0' in body
    finally:
        mgr.stop()


def test_entrypoint_process_runs_and_shuts_down_gracefully(kube, kubeconfig, namespace, tmp_path):
    log_file = tmp_path / "controller.log"
    env = {**os.environ, "RUNTIME_NAMESPACE": namespace, "PYTHONPATH": str(ROOT)}
    env.pop("KUBECONFIG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "controllers", "kustomize-controller", f"--kubeconfig={kubeconfig}",
         "--metrics-addr=127.0.0.1:0", "--health-addr=127.0.0.1:0", "--enable-leader-election",
         "--leader-election-lease-duration=3s", "--leader-election-renew-deadline=2s",
         "--leader-election-retry-period=500ms", f"--log-file={log_file}",
         # only this test's namespace: the shared cluster holds other tests' objects, whose in-flight
         # reconciliations a graceful shutdown would wait for
         "--watch-all-namespaces=false"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        name = lease_name("kustomize-controller")
        lease = wait_for(lambda: kube.get(LEASE, name, namespace), what="lease acquired")
        assert lease["spec"]["holderIdentity"]
        wait_for(lambda: "health" in log_file.read_text() if log_file.exists() else False, what="log file")
        records = [json.loads(line) for line in log_file.read_text().splitlines()]
        ports = {r["msg"]: r.get("port") for r in records if "port" in r}
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['starting health probes server']}/healthz",
                                    timeout=5) as resp:
            assert resp.read() == b"ok"
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read()
    assert proc.returncode == 0, stderr
    lines = [json.loads(line) for line in stderr.splitlines() if line.startswith("{")]
    assert any(r["msg"] == "starting manager" and r.get("logger") == "setup" for r in lines)
    assert all({"level", "ts", "msg"} <= r.keys() for r in lines)
    assert "holderIdentity" not in kube.get(LEASE, lease_name("kustomize-controller"), namespace)["spec"]


def test_progress_is_written_mid_way_and_kept_on_failure(kube, namespace, running):
    ctl, rec, _ = running()
    kube.create(WIDGET, widget("p1", namespace, mode="progress-fail"), namespace)
    wait_for(lambda: getattr(rec, "seen_mid_way", None), what="mid-way status")
    mid = rec.seen_mid_way
    assert cond.get(mid, "Reconciling")["reason"] == "Progressing"
    assert cond.get(mid, "Ready")["status"] == "Unknown"
    wait_for(lambda: cond.is_false(kube.get(WIDGET, "p1", namespace), "Ready"), what="Ready=False")
    obj = kube.get(WIDGET, "p1", namespace)
    rc = cond.get(obj, "Reconciling")
    assert (rc["reason"], rc["message"]) == ("ProgressingWithRetry", "Fetching revision main@sha1:abc")
    assert 3000 < ctl.queue.deadline(f"{namespace}/p1") <= 3600  # explicit retry delay, no backoff


def test_a_dependent_woken_after_status_reads_its_dependency_ready(kube, namespace, running):
    _, rec, _ = running()
    kube.create(WIDGET, widget("dependent", namespace, mode="depend", on="dependency"), namespace)
    wait_for(lambda: getattr(rec, "seen_dependency", None), what="the dependent's first run")
    assert rec.seen_dependency == [None]
    kube.create(WIDGET, widget("dependency", namespace, mode="wake", dependent="dependent"), namespace)
    wait_for(lambda: len(rec.seen_dependency) == 2, what="the woken dependent's run")
    assert rec.seen_dependency == [None, True]  # woken once the dependency's Ready=True is written


def test_secondary_watch_queues_mapped_objects(kube, namespace, widget_crd):
    class Watching(WidgetReconciler):
        def watches(self):
            return [Watch(CONFIGMAP, lambda cm: [f"{cm['metadata']['namespace']}/{cm['metadata']['name']}"])]

    rec = Watching()
    ctl = Controller(rec, kube, settings_for(namespace)).start()
    try:
        assert ctl.wait_synced(TIMEOUT)
        kube.create(WIDGET, widget("s1", namespace), namespace)
        wait_for(lambda: cond.is_ready(kube.get(WIDGET, "s1", namespace)), what="Ready")
        calls = rec.count("s1")
        kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap",
                                "metadata": {"name": "s1", "namespace": namespace}, "data": {"a": "1"}}, namespace)
        wait_for(lambda: rec.count("s1") == calls + 1, what="reconcile triggered by the ConfigMap")
        kube.patch(CONFIGMAP, "s1", {"data": {"a": "2"}}, namespace)
        wait_for(lambda: rec.count("s1") == calls + 2, what="reconcile triggered by the ConfigMap update")
    finally:
        ctl.stop(5)


def test_status_patch_is_conflict_safe(kube, namespace, widget_crd):
    kube.create(WIDGET, widget("c1", namespace), namespace)
    ours = kube.get(WIDGET, "c1", namespace)
    patcher = Patcher(kube, WIDGET, ours, field_manager="gotk-test")
    # Someone else writes status (a condition of their own and a field) after we read the object.
    kube.patch(WIDGET, "c1", {"status": {"conditions": [
        {"type": "Custom", "status": "True", "reason": "Theirs", "message": "", "lastTransitionTime":
         "2024-01-01T00:00:00Z"}], "theirs": 1}}, namespace, subresource="status")
    ours.setdefault("status", {})["mine"] = 2
    cond.mark_true(ours, "Ready", "Succeeded", "ok")
    assert patcher.patch_status(ours)
    assert patcher.requests == 3  # conflict, re-read, patch again
    st = kube.get(WIDGET, "c1", namespace)["status"]
    assert st["mine"] == 2 and st["theirs"] == 1
    assert sorted(c["type"] for c in st["conditions"]) == ["Custom", "Ready"]
    assert not patcher.patch_status(ours)  # nothing changed since: no request
    assert patcher.requests == 3
    ours["status"]["mine"] = 3
    assert patcher.patch_status(ours) and patcher.requests == 4


def test_events_are_also_posted_to_the_events_webhook(kube, namespace, widget_crd):
    import http.server

    received: list[dict] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            received.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(202)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    recorder = EventRecorder(kube, "test-controller", webhook=f"http://127.0.0.1:{server.server_address[1]}/")
    recorder.start()
    try:
        obj = kube.create(WIDGET, widget("e1", namespace), namespace)
        obj["metadata"]["annotations"] = {"event.toolkit.fluxcd.io/team": "a", "other": "x"}
        recorder.event(obj, "Warning", "TestFailed", "it broke", {"test.fluxpy.io/revision": "main@sha1:abc"})
        assert recorder.flush(10)
        assert len(received) == 1
        ev = received[0]
        assert ev["severity"] == "error" and ev["reason"] == "TestFailed" and ev["message"] == "it broke"
        assert ev["involvedObject"]["kind"] == "Widget" and ev["involvedObject"]["name"] == "e1"
        assert ev["reportingController"] == "test-controller"
        assert ev["metadata"] == {"event.toolkit.fluxcd.io/team": "a", "test.fluxpy.io/revision": "main@sha1:abc"}
        k8s = [e for e in kube.list(EVENT, namespace)["items"] if e["involvedObject"]["name"] == "e1"]
        assert len(k8s) == 1 and k8s[0]["type"] == "Warning" and k8s[0]["count"] == 1
    finally:
        recorder.stop()
        server.shutdown()


FOREIGN = {"type": "PolicyCompliant", "status": "True", "reason": "Checked", "message": "written by another manager",
           "lastTransitionTime": "2024-01-01T00:00:00Z"}


class OwningReconciler(WidgetReconciler):
    """Declares its conditions; its reconcile rebuilds the condition list from scratch (as a careless
    reconciler might), dropping the other manager's condition from its copy."""

    conditions = Conditions(owned=("Ready", "Reconciling", "Stalled", "Built"), summarize=("Built", "Stalled",
                                                                                          "Reconciling"))

    def reconcile(self, ctx, obj):
        obj["status"]["conditions"] = [c for c in cond.conditions_of(obj) if c["type"] in self.conditions.owned]
        cond.mark_true(obj, "Built", "Succeeded", f"built {obj['spec'].get('value')}")
        if obj["spec"].get("break"):
            cond.mark_false(obj, "Built", "BuildFailed", "cannot build")  # positive polarity: Ready=False
        return Success("all built")


def test_conditions_of_another_manager_survive_a_reconcile(kube, namespace, widget_crd):
    rec = OwningReconciler()
    ctl = Controller(rec, kube, settings_for(namespace)).start()
    try:
        assert ctl.wait_synced(TIMEOUT)
        kube.create(WIDGET, widget("own1", namespace, value=1), namespace)
        wait_for(lambda: cond.is_ready(kube.get(WIDGET, "own1", namespace)), what="Ready")
        # another client writes a condition of its own type onto the status
        obj = kube.get(WIDGET, "own1", namespace)
        kube.patch(WIDGET, "own1", {"status": {"conditions": [*obj["status"]["conditions"], FOREIGN]}}, namespace,
                   subresource="status", field_manager="policy-checker")
        kube.patch(WIDGET, "own1", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "t1"}},
                                    "spec": {"value": 2, "break": True}}, namespace)

        def reconciled():
            got = kube.get(WIDGET, "own1", namespace)
            return got if got["status"].get("lastHandledReconcileAt") == "t1" and cond.is_false(got, "Ready") else None
        got = wait_for(reconciled, what="the request handled")
        assert cond.get(got, "Built")["reason"] == "BuildFailed"
        ready = cond.get(got, "Ready")
        assert (ready["reason"], ready["message"]) == ("BuildFailed", "cannot build")  # summarised from Built
        foreign = cond.get(got, "PolicyCompliant")
        assert foreign and {k: foreign[k] for k in FOREIGN} == FOREIGN
    finally:
        ctl.stop(5)


def test_patcher_takes_owned_conditions_from_ours_and_the_rest_from_the_server(kube, namespace, widget_crd):
    kube.create(WIDGET, widget("own2", namespace), namespace)
    ours = kube.get(WIDGET, "own2", namespace)
    patcher = Patcher(kube, WIDGET, ours, field_manager="gotk-test", owned=("Ready", "Built"))
    # after our read, the other manager writes its condition and one of a type we own (a conflict)
    kube.patch(WIDGET, "own2", {"status": {"conditions": [
        FOREIGN, {**FOREIGN, "type": "Built", "reason": "NotOurs"}]}}, namespace, subresource="status")
    ours.setdefault("status", {})
    cond.mark_true(ours, "Ready", "Succeeded", "ok")
    cond.mark_true(ours, "Built", "Succeeded", "built")
    cond.mark_false(ours, "PolicyCompliant", "Overwritten", "ours must not win")  # not owned: ignored
    assert patcher.patch_status(ours)
    got = kube.get(WIDGET, "own2", namespace)
    assert cond.get(got, "PolicyCompliant")["reason"] == "Checked"
    assert cond.get(got, "Built")["reason"] == "Succeeded" and cond.is_ready(got)
    assert cond.get(ours, "PolicyCompliant")["reason"] == "Checked"  # our copy shows the server's


class CountingReconciler(Reconciler):
    """Counts its runs in ``status.count`` and runs again at once until ``spec.upTo``, then at ``spec.interval``."""

    kind = WIDGET
    finalizer = None

    def __init__(self):
        self.seen: list[int] = []

    def reconcile(self, ctx, obj):
        count = int(obj["status"].get("count") or 0)
        self.seen.append(count)
        if count < obj["spec"]["upTo"]:
            obj["status"]["count"] = count + 1
            return Success("counting", requeue_after=0.01)
        return Success("counted")


def test_reads_come_from_the_cache_but_never_older_than_the_last_write(kube, namespace, widget_crd, monkeypatch):
    gets = []
    original = kube.get

    def get(rt, name, namespace=None):
        if rt is WIDGET and threading.current_thread().name.startswith("widget-worker"):
            gets.append(name)
        return original(rt, name, namespace)
    monkeypatch.setattr(kube, "get", get)
    watch = kube.watch

    def slow_watch(rt, *args, **kwargs):  # the cache lags behind the controller's own writes
        for event in watch(rt, *args, **kwargs):
            if rt is WIDGET:
                time.sleep(0.1)
            yield event
    monkeypatch.setattr(kube, "watch", slow_watch)
    reconciler = CountingReconciler()
    ctl = Controller(reconciler, kube, settings_for(namespace, concurrent=1)).start()
    try:
        assert ctl.wait_synced(TIMEOUT)
        kube.create(WIDGET, widget("w", namespace, upTo=8, interval="200ms"), namespace)
        wait_for(lambda: (kube.get(WIDGET, "w", namespace).get("status") or {}).get("count") == 8, what="count 8")
        wait_for(lambda: len(reconciler.seen) >= 9, what="the counted run")
        # each run saw the previous run's write (a stale read would count one twice, or conflict)
        assert reconciler.seen[:9] == list(range(9)), reconciler.seen
        latest = kube.get(WIDGET, "w", namespace)["metadata"]["resourceVersion"]
        wait_for(lambda: (ctl.informer.get(f"{namespace}/w") or {}).get("metadata", {}).get("resourceVersion")
                 == latest, what="the cache caught up")
        gets.clear()
        runs = len(reconciler.seen)
        time.sleep(1.5)
        assert len(reconciler.seen) - runs >= 4, "the periodic runs"
        assert gets == [], "the periodic runs read the object from the informer's cache"
    finally:
        ctl.stop(5)


def test_throttled_progress_reports_are_written_only_a_second_apart(kube, namespace, running):
    _, reconciler, _ = running()
    kube.create(WIDGET, widget("steps", namespace, mode="progress-steps"), namespace)
    wait_for(lambda: getattr(reconciler, "seen_steps", None) and len(reconciler.seen_steps) == 2, what="the steps")
    assert reconciler.seen_steps == ["step one", "step three"]
