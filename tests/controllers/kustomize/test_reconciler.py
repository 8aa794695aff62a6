"""The Kustomization reconciler against the real apiserver and kustomize, with artifacts served from a real
Storage (tests/servers/sources.py): apply and Flux's status, events, prune, a broken commit, drift corrected
by the watch of applied objects, hand-over on rename, health, suspend and deletion policies."""
from __future__ import annotations

import time

import pytest

from controllers.api.builtin import CONFIGMAP, DEPLOYMENT, EVENT, SERVICE_ACCOUNT
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig, find_condition
from controllers.kustomize.reconciler import KustomizationReconciler, Options, upsert_history
from controllers.runtime.kube import NotFound
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture
from servers.waiting import events, ready_with, until, wait, wait_gone

WAIT = 30.0


# --------------------------------------------------------------------------- helpers (shared by the other test modules)

def configmap(name: str, namespace: str | None = None, **data: str) -> str:
    ns = f"  namespace: {namespace}\n" if namespace else ""
    body = "".join(f"  {k}: \"{v}\"\n" for k, v in data.items()) or "  k: v\n"
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n{ns}data:\n{body}"


def deployment(name: str, replicas: int = 0) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: app
        image: nginx:1.27
"""


def ks_object(name: str, namespace: str, *, source: str = "app", path: str = "./", **spec) -> dict:
    body = {"interval": "10m", "path": path, "prune": True, "sourceRef": {"kind": "GitRepository", "name": source}}
    body.update(spec)
    return {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
            "metadata": {"name": name, "namespace": namespace}, "spec": body}


def ready(kube, name: str, namespace: str, status: str = "True", reason: str | None = None,
          timeout: float = WAIT) -> dict:
    """The Kustomization once Ready has ``status`` (and ``reason``) for its current generation."""
    return wait(kube, KUSTOMIZATION, namespace, name, ready_with(status, reason),
                f"Kustomization {name} Ready={status} {reason or ''}", timeout)


def applied(kube, name: str, namespace: str, revision: str, what: str = "the revision applied") -> dict:
    """The Kustomization once its ``lastAppliedRevision`` is ``revision``."""
    return wait(kube, KUSTOMIZATION, namespace, name, lambda o: dig(o, "status.lastAppliedRevision") == revision, what)


def existing(kube, rt, namespace: str, name: str) -> dict | None:
    try:
        return kube.get(rt, name, namespace)
    except NotFound:
        return None


def event_messages(kube, namespace: str, name: str) -> dict[str, dict]:
    """The Kustomization's events by message."""
    return {e["message"]: e for e in events(kube, namespace, name, "Kustomization")}


@pytest.fixture
def ks_controller(start_controller, namespace, flux_crds):
    """``ks_controller(controller={settings}, **options)``: a KustomizationReconciler running on the test
    namespace (quick health polls, a short minimum timeout), its watches of applied objects stopped afterwards."""
    started = []

    def start(controller: dict | None = None, **options) -> KustomizationReconciler:
        options.setdefault("health_interval", 0.5)
        options.setdefault("min_timeout", 5.0)
        reconciler = KustomizationReconciler(Options(**options))
        start_controller(reconciler, namespace, **(controller or {}))
        started.append(reconciler)
        return reconciler

    yield start
    for reconciler in started:
        reconciler.stop()


APP = {
    "deploy/kustomization.yaml": "resources: [cm.yaml, sa.yaml, web.yaml]\n",
    "deploy/cm.yaml": configmap("settings", color="blue"),
    "deploy/sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n",
    "deploy/web.yaml": deployment("web"),
}


# --------------------------------------------------------------------------- apply and status

def test_applies_a_revision_with_flux_status_and_events(kube, namespace, ks_controller, artifact_sources):
    artifact = artifact_sources.publish(namespace, "app", APP)
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, path="./deploy", targetNamespace=namespace), namespace)
    ks = ready(kube, "app", namespace, reason="ReconciliationSucceeded")
    revision = artifact["revision"]
    status = ks["status"]
    assert find_condition(ks, "Ready")["message"] == f"Applied revision: {revision}"
    assert status["lastAppliedRevision"] == status["lastAttemptedRevision"] == revision
    assert "lastAppliedOriginRevision" not in status
    assert status["observedGeneration"] == ks["metadata"]["generation"]
    assert find_condition(ks, "Reconciling") is None and find_condition(ks, "Healthy") is None
    assert [e["id"] for e in status["inventory"]["entries"]] == [
        f"{namespace}_web__ServiceAccount", f"{namespace}_settings__ConfigMap", f"{namespace}_web_apps_Deployment"]
    assert [e["v"] for e in status["inventory"]["entries"]] == ["v1", "v1", "v1"]
    (snapshot,) = status["history"]
    assert snapshot["digest"].startswith("sha256:") and len(snapshot["digest"]) == 71
    assert snapshot["lastReconciledStatus"] == "ReconciliationSucceeded"
    assert snapshot["totalReconciliations"] == 1 and snapshot["metadata"] == {"revision": revision}
    assert snapshot["firstReconciled"] == snapshot["lastReconciled"]
    assert "finalizers.fluxcd.io" in ks["metadata"]["finalizers"]

    cm = kube.get(CONFIGMAP, "settings", namespace)
    assert cm["data"] == {"color": "blue"}
    assert cm["metadata"]["labels"] == {"kustomize.toolkit.fluxcd.io/name": "app",
                                        "kustomize.toolkit.fluxcd.io/namespace": namespace}
    assert {m["manager"] for m in cm["metadata"]["managedFields"]} == {"kustomize-controller"}

    found = until(lambda: (ev := event_messages(kube, namespace, "app")) and any(
        m.startswith("Reconciliation finished in") for m in ev) and ev, "the success event")
    created = found[f"ServiceAccount/{namespace}/web created\nConfigMap/{namespace}/settings created\n"
                    f"Deployment/{namespace}/web created"]
    assert created["type"] == "Normal" and created["reason"] == "Progressing"
    assert created["metadata"]["annotations"] == {"kustomize.toolkit.fluxcd.io/revision": revision}
    finished = next(e for m, e in found.items() if m.startswith("Reconciliation finished in"))
    assert finished["message"].endswith(", next run in 10m0s")
    assert finished["reason"] == "ReconciliationSucceeded"
    assert finished["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/commit_status"] == "update"

    # the next revision: configured objects only in the event; history counts by digest
    artifact2 = artifact_sources.publish(namespace, "app", {**APP, "deploy/cm.yaml": configmap("settings",
                                                                                               color="red")},
                                         origin_revision="v1.2.3@sha1:abc")
    ks = applied(kube, "app", namespace, artifact2["revision"])
    assert ks["status"]["lastAppliedOriginRevision"] == "v1.2.3@sha1:abc"
    assert [h["metadata"]["revision"] for h in ks["status"]["history"]] == [artifact2["revision"], revision]
    assert ks["status"]["history"][0]["metadata"]["originRevision"] == "v1.2.3@sha1:abc"
    assert kube.get(CONFIGMAP, "settings", namespace)["data"] == {"color": "red"}
    until(lambda: f"ConfigMap/{namespace}/settings configured" in event_messages(kube, namespace, "app"),
          "the configured event")


def test_history_upsert_keeps_five_snapshots_newest_first():
    status: dict = {}
    for i in range(7):
        upsert_history(status, f"sha256:{i}", reason="ReconciliationSucceeded", duration=1.5,
                       metadata={"revision": f"r{i}"}, now=f"2025-01-01T00:00:0{i}Z")
    upsert_history(status, "sha256:4", reason="ReconciliationSucceeded", duration=0.25, metadata={"revision": "r4"},
                   now="2025-01-01T00:01:00Z")
    upsert_history(status, "sha256:4", reason="HealthCheckFailed", duration=0.25, metadata={"revision": "r4"},
                   now="2025-01-01T00:02:00Z")
    history = status["history"]
    assert [h["digest"] for h in history] == ["sha256:4", "sha256:4", "sha256:6", "sha256:5", "sha256:3"]
    assert history[1] == {"digest": "sha256:4", "firstReconciled": "2025-01-01T00:00:04Z",
                          "lastReconciled": "2025-01-01T00:01:00Z", "lastReconciledDuration": "250ms",
                          "lastReconciledStatus": "ReconciliationSucceeded", "totalReconciliations": 2,
                          "metadata": {"revision": "r4"}}
    assert history[0]["lastReconciledStatus"] == "HealthCheckFailed" and history[0]["totalReconciliations"] == 1


def test_prune_after_a_file_is_removed(kube, namespace, ks_controller, artifact_sources):
    files = {"a.yaml": configmap("a"), "b.yaml": configmap("b")}
    artifact_sources.publish(namespace, "app", files)
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace), namespace)
    ready(kube, "app", namespace)
    uid_a = kube.get(CONFIGMAP, "a", namespace)["metadata"]["uid"]
    artifact = artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a")})
    ks = applied(kube, "app", namespace, artifact["revision"], "prune")
    assert [e["id"] for e in ks["status"]["inventory"]["entries"]] == [f"{namespace}_a__ConfigMap"]
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "b", namespace)
    assert kube.get(CONFIGMAP, "a", namespace)["metadata"]["uid"] == uid_a
    until(lambda: f"ConfigMap/{namespace}/b deleted" in event_messages(kube, namespace, "app"), "the prune event")

    # prune: false keeps objects that left the source (only the inventory forgets them)
    patch = {"spec": {"prune": False}}
    kube.patch(KUSTOMIZATION, "app", patch, namespace)
    ready(kube, "app", namespace)
    artifact = artifact_sources.publish(namespace, "app", {"c.yaml": configmap("c")})
    ks = applied(kube, "app", namespace, artifact["revision"], "no prune")
    assert [e["id"] for e in ks["status"]["inventory"]["entries"]] == [f"{namespace}_c__ConfigMap"]
    assert kube.get(CONFIGMAP, "a", namespace)["metadata"]["uid"] == uid_a

    # objects marked prune: disabled survive
    artifact_sources.publish(namespace, "app", {"c.yaml": configmap("c"), "d.yaml": configmap("d").replace(
        "metadata:\n", "metadata:\n  annotations: {kustomize.toolkit.fluxcd.io/prune: disabled}\n")})
    kube.patch(KUSTOMIZATION, "app", {"spec": {"prune": True}}, namespace)
    until(lambda: existing(kube, CONFIGMAP, namespace, "d"), "d applied")
    artifact = artifact_sources.publish(namespace, "app", {"c.yaml": configmap("c")})
    applied(kube, "app", namespace, artifact["revision"], "prune with d disabled")
    kube.get(CONFIGMAP, "d", namespace)


def test_a_broken_commit_leaves_the_previous_state_untouched(kube, namespace, ks_controller, artifact_sources):
    good = artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a", v="1")})
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, retryInterval="1s"), namespace)
    before = ready(kube, "app", namespace)

    bad = artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a", v="2"),
                                                      "b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                                                "  name: b\ndata: [unclosed\n"})
    ks = ready(kube, "app", namespace, status="False", reason="BuildFailed")
    message = find_condition(ks, "Ready")["message"]
    assert "b.yaml" in message and "line" in message, message
    assert ks["status"]["lastAttemptedRevision"] == bad["revision"]
    assert ks["status"]["lastAppliedRevision"] == good["revision"]
    assert ks["status"]["inventory"] == before["status"]["inventory"]
    assert find_condition(ks, "Reconciling")["reason"] == "ProgressingWithRetry"
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"v": "1"}

    # an object the apiserver refuses: the dry run of the whole set fails, nothing is applied
    invalid = artifact_sources.publish(namespace, "app", {
        "a.yaml": configmap("a", v="3"), "c.yaml": configmap("c"),
        "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n  - port: 700000\n"})
    ks = wait(kube, KUSTOMIZATION, namespace, "app", lambda o: dig(o, "status.lastAttemptedRevision") ==
              invalid["revision"] and (find_condition(o, "Ready") or {}).get("reason") == "ReconciliationFailed",
              "dry-run failure")
    message = find_condition(ks, "Ready")["message"]
    assert message.startswith(f"Service/{namespace}/web dry-run failed") and "700000" in message, message
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"v": "1"}
    with pytest.raises(NotFound):
        kube.get(CONFIGMAP, "c", namespace)
    assert ks["status"]["inventory"] == before["status"]["inventory"]
    assert ks["status"]["history"][0]["lastReconciledStatus"] == "ReconciliationFailed"

    fixed = artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a", v="4")})
    wait(kube, KUSTOMIZATION, namespace, "app", lambda o: dig(o, "status.lastAppliedRevision") == fixed["revision"] and
             (find_condition(o, "Ready") or {}).get("status") == "True", "recovery")
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"v": "4"}


# --------------------------------------------------------------------------- drift

def test_drift_is_corrected_within_seconds_by_the_watch(kube, namespace, ks_controller, artifact_sources):
    artifact_sources.publish(namespace, "app", APP)
    reconciler = ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, path="./deploy", targetNamespace=namespace), namespace)
    ready(kube, "app", namespace)
    until(lambda: len(reconciler.drift.watched_kinds()) == 3, "the watches of applied kinds")
    time.sleep(0.5)  # let the watches list

    timings = {}
    started = time.monotonic()
    kube.patch(DEPLOYMENT, "web", {"spec": {"replicas": 3}}, namespace)
    wait(kube, DEPLOYMENT, namespace, "web", lambda d: d["spec"]["replicas"] == 0, "replicas reverted", 10)
    timings["scaled deployment"] = time.monotonic() - started

    # kubectl scale: a change through the scale subresource is corrected as fast as a direct edit
    started = time.monotonic()
    # (the request `kubectl scale deployment web --replicas=3` makes)
    kube.patch(DEPLOYMENT, "web", {"spec": {"replicas": 3}}, namespace, subresource="scale", field_manager="kubectl")
    wait(kube, DEPLOYMENT, namespace, "web", lambda d: d["spec"]["replicas"] == 0, "scale reverted", 10)
    timings["kubectl scale"] = time.monotonic() - started

    started = time.monotonic()
    kube.patch(CONFIGMAP, "settings", {"data": {"color": "green"}}, namespace)
    wait(kube, CONFIGMAP, namespace, "settings", lambda c: c["data"] == {"color": "blue"}, "data reverted", 10)
    timings["edited configmap"] = time.monotonic() - started

    started = time.monotonic()
    uid = kube.get(SERVICE_ACCOUNT, "web", namespace)["metadata"]["uid"]
    kube.delete(SERVICE_ACCOUNT, "web", namespace)
    sa = until(lambda: (s := existing(kube, SERVICE_ACCOUNT, namespace, "web")) and s["metadata"]["uid"] != uid
               and s, "service account recreated", 10)
    timings["deleted service account"] = time.monotonic() - started
    assert sa["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "app"
    print("drift corrected in: " + ", ".join(f"{k} {v:.2f}s" for k, v in timings.items()))
    assert all(v < 5 for v in timings.values()), timings

    ks = ready(kube, "app", namespace)
    assert ks["status"]["history"][0]["totalReconciliations"] >= 2
    messages = event_messages(kube, namespace, "app")
    assert f"Deployment/{namespace}/web configured" in messages
    assert f"ServiceAccount/{namespace}/web created" in messages

    # a change by the controller itself (a new revision) is not drift; a label added by someone else on a
    # field the Kustomization does not manage is left alone, as Flux does
    kube.patch(CONFIGMAP, "settings", {"metadata": {"labels": {"team": "a"}}}, namespace)
    time.sleep(1.0)
    assert kube.get(CONFIGMAP, "settings", namespace)["metadata"]["labels"]["team"] == "a"


def test_drift_is_corrected_at_the_interval_without_the_watch(kube, namespace, ks_controller, artifact_sources):
    artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a", v="1")})
    ks_controller(watch_applied=False)
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, interval="2s"), namespace)
    ready(kube, "app", namespace)
    kube.patch(CONFIGMAP, "a", {"data": {"v": "edited"}}, namespace)
    wait(kube, CONFIGMAP, namespace, "a", lambda c: c["data"] == {"v": "1"}, "reverted at the interval", 10)


def _worker_requests(monkeypatch, kube) -> list[tuple[str, str, dict]]:
    """Record the apiserver requests the Kustomization controller's workers send (method, path, params)."""
    import threading
    seen: list[tuple[str, str, dict]] = []
    original = kube.request

    def request(method, path, **kw):
        if threading.current_thread().name.startswith("kustomization-worker"):
            seen.append((method, path, dict(kw.get("params") or {})))
        return original(method, path, **kw)
    monkeypatch.setattr(kube, "request", request)
    return seen


def test_an_idle_periodic_run_sends_no_write_and_no_dry_run(kube, namespace, ks_controller, artifact_sources,
                                                             monkeypatch):
    """Beyond Flux: a periodic run with nothing new reads from the caches and skips the dry run; a new build
    (a substituted value changed, which no watch reports) and drift are still applied."""
    kube.create(CONFIGMAP, {"metadata": {"name": "vars"}, "data": {"color": "blue"}}, namespace)
    artifact_sources.publish(namespace, "app", {**APP, "deploy/cm.yaml": configmap("settings", color="${color}")})
    reconciler = ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, path="./deploy", targetNamespace=namespace,
                                         interval="1s", postBuild={"substituteFrom": [
                                             {"kind": "ConfigMap", "name": "vars"}]}), namespace)
    ready(kube, "app", namespace)
    until(lambda: len(reconciler.drift.watched_kinds()) == 3, "the watches of applied kinds")
    time.sleep(2.0)  # the watches list; a periodic run after that
    before = kube.get(KUSTOMIZATION, "app", namespace)
    requests = _worker_requests(monkeypatch, kube)
    time.sleep(3.5)  # three periodic runs
    after = kube.get(KUSTOMIZATION, "app", namespace)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"], "a status write"
    writes = [r for r in requests if r[0] != "GET" or r[2].get("dryRun")]
    assert writes == [], writes
    reads = sorted({path.rsplit("/", 2)[-2] for _, path, _ in requests})
    assert reads == ["configmaps"], reads  # the substituted values; the Kustomization and its source: caches
    assert sum(1 for _, path, _ in requests if path.endswith("/configmaps/vars")) >= 3, "no periodic run"

    kube.patch(CONFIGMAP, "vars", {"data": {"color": "red"}}, namespace)
    wait(kube, CONFIGMAP, namespace, "settings", lambda c: c["data"] == {"color": "red"}, "the new build", 10)
    kube.patch(CONFIGMAP, "settings", {"data": {"color": "green"}}, namespace)
    wait(kube, CONFIGMAP, namespace, "settings", lambda c: c["data"] == {"color": "red"}, "drift reverted", 10)
    assert any(r[2].get("dryRun") for r in requests), "the new build was not dry-run"


# --------------------------------------------------------------------------- hand-over

def test_a_renamed_kustomization_hands_its_objects_over(kube, namespace, ks_controller, artifact_sources):
    artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a"), "b.yaml": configmap("b")})
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("old", namespace, targetNamespace=namespace), namespace)
    ready(kube, "old", namespace)
    uids = {n: kube.get(CONFIGMAP, n, namespace)["metadata"]["uid"] for n in ("a", "b")}
    # the rename: the new one appears and the old one is deleted at the same time
    kube.create(KUSTOMIZATION, ks_object("new", namespace, targetNamespace=namespace), namespace)
    kube.delete(KUSTOMIZATION, "old", namespace)
    ready(kube, "new", namespace)
    wait_gone(kube, KUSTOMIZATION, namespace, "old")
    for n in ("a", "b"):
        cm = kube.get(CONFIGMAP, n, namespace)
        assert cm["metadata"]["uid"] == uids[n]
        assert cm["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "new"


# --------------------------------------------------------------------------- health

def _ready_deployment_status(generation: int) -> dict:
    return {"status": {"observedGeneration": generation, "replicas": 1, "updatedReplicas": 1, "readyReplicas": 1,
                       "availableReplicas": 1, "conditions": [
                           {"type": "Available", "status": "True", "reason": "MinimumReplicasAvailable"},
                           {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}]}}


def test_wait_reports_health(kube, namespace, ks_controller, artifact_sources):
    artifact_sources.publish(namespace, "app", {"web.yaml": deployment("web", replicas=1)})
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, wait=True, timeout="3s",
                                         retryInterval="1s"), namespace)
    ks = ready(kube, "app", namespace, status="False", reason="HealthCheckFailed")
    ready_message = find_condition(ks, "Ready")["message"]
    assert ready_message.startswith("health check failed after ")
    assert f"timeout waiting for: [Deployment/{namespace}/web status: 'InProgress'" in ready_message
    healthy = find_condition(ks, "Healthy")
    assert healthy["status"] == "False" and healthy["reason"] == "HealthCheckFailed"
    assert healthy["message"].startswith("timeout waiting for: [")
    assert ks["status"]["history"][0]["lastReconciledStatus"] == "HealthCheckFailed"
    assert "lastAppliedRevision" not in ks["status"]

    web = kube.get(DEPLOYMENT, "web", namespace)
    kube.patch(DEPLOYMENT, "web", _ready_deployment_status(web["metadata"]["generation"]), namespace,
               subresource="status")
    ks = ready(kube, "app", namespace, reason="ReconciliationSucceeded")
    healthy = find_condition(ks, "Healthy")
    assert healthy["status"] == "True" and healthy["reason"] == "Succeeded"
    assert healthy["message"].startswith("Health check passed in ")


def test_health_checks_and_cel_expressions(kube, namespace, ks_controller, artifact_sources):
    """healthChecks on a custom resource judged by healthCheckExprs; a bad expression stalls."""
    release = """\
apiVersion: helm.toolkit.fluxcd.io/v2
kind: HelmRelease
metadata:
  name: db
spec:
  interval: 1h
  chartRef: {kind: OCIRepository, name: db}
"""
    artifact_sources.publish(namespace, "app", {"hr.yaml": release})
    ks_controller()
    exprs = [{"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
              "current": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')",
              "failed": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')"}]
    checks = [{"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "db"}]
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, healthChecks=checks,
                                         healthCheckExprs=exprs, timeout="30s"), namespace)
    from controllers.api.helm import HELM_RELEASE

    until(lambda: existing(kube, HELM_RELEASE, namespace, "db"), "release applied")
    now = "2025-01-01T00:00:00Z"
    kube.patch(HELM_RELEASE, "db", {"status": {"observedGeneration": 1, "conditions": [
        {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "ok", "lastTransitionTime": now}]}},
        namespace, subresource="status")
    ks = ready(kube, "app", namespace)
    assert find_condition(ks, "Healthy")["status"] == "True"

    kube.patch(KUSTOMIZATION, "app", {"spec": {"healthCheckExprs": [{**exprs[0], "current": "status.("}]}},
               namespace)
    ks = ready(kube, "app", namespace, status="False", reason="InvalidCELExpression")
    assert find_condition(ks, "Stalled")["status"] == "True"
    assert find_condition(ks, "Ready")["message"].startswith(
        "Reconciliation failed terminally due to configuration error: failed to create custom status evaluator")


# --------------------------------------------------------------------------- suspend and deletion

def test_suspend_stops_applying(kube, namespace, ks_controller, artifact_sources):
    artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a", v="1")})
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace), namespace)
    ready(kube, "app", namespace)
    kube.patch(KUSTOMIZATION, "app", {"spec": {"suspend": True}}, namespace)
    time.sleep(0.5)
    artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a", v="2")})
    kube.patch(CONFIGMAP, "a", {"data": {"v": "edited"}}, namespace)
    time.sleep(2)
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"v": "edited"}
    kube.patch(KUSTOMIZATION, "app", {"spec": {"suspend": False}}, namespace)
    wait(kube, CONFIGMAP, namespace, "a", lambda c: c["data"] == {"v": "2"}, "resumed")


@pytest.mark.parametrize("policy, prune, deleted", [
    (None, True, True), (None, False, False), ("Delete", False, True), ("Orphan", True, False),
    ("WaitForTermination", False, True),
])
def test_deletion_policy(kube, namespace, ks_controller, artifact_sources, policy, prune, deleted):
    artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a")})
    ks_controller()
    spec = {"deletionPolicy": policy} if policy else {}
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, prune=prune, **spec), namespace)
    ready(kube, "app", namespace)
    kube.delete(KUSTOMIZATION, "app", namespace)
    wait_gone(kube, KUSTOMIZATION, namespace, "app")
    exists = True
    try:
        kube.get(CONFIGMAP, "a", namespace)
    except NotFound:
        exists = False
    assert exists is not deleted


# --------------------------------------------------------------------------- units: drift attribution, flags

def test_foreign_changes_are_told_from_the_controllers_own():
    from controllers.kustomize.drift import is_foreign_change, owner_key

    def obj(data, managers, rv="1", status=None):
        return {"metadata": {"resourceVersion": rv, "labels": {"kustomize.toolkit.fluxcd.io/name": "app",
                                                               "kustomize.toolkit.fluxcd.io/namespace": "ns"},
                             "managedFields": [{"manager": m, "operation": op, "time": t, **({"subresource": s} if s
                                                                                            else {})}
                                               for m, op, t, s in managers]},
                "data": data, **({"status": status} if status else {})}

    ours = ("kustomize-controller", "Apply", "2025-01-01T00:00:00Z", "")
    before = obj({"a": "1"}, [ours])
    assert owner_key(before) == "ns/app"
    # an edit by kubectl: its entry appears
    assert is_foreign_change(before, obj({"a": "2"}, [ours, ("kubectl-edit", "Update", "2025-01-01T00:01:00Z", "")],
                                         rv="2"))
    # our own apply (only our entry moves), taking the field back from kubectl (its entry shrinks, same time)
    edited = obj({"a": "2"}, [ours, ("kubectl-edit", "Update", "2025-01-01T00:01:00Z", "")], rv="2")
    reverted = obj({"a": "1"}, [("kustomize-controller", "Apply", "2025-01-01T00:02:00Z", ""),
                                ("kubectl-edit", "Update", "2025-01-01T00:01:00Z", "")], rv="3")
    assert not is_foreign_change(edited, reverted)
    # status updates by other controllers and resourceVersion-only changes are not drift
    assert not is_foreign_change(before, obj({"a": "1"}, [ours, ("kube-controller-manager", "Update",
                                                                 "2025-01-01T00:03:00Z", "status")], rv="4",
                                             status={"ready": True}))
    assert not is_foreign_change(before, obj({"a": "1"}, [ours], rv="5"))
    # a change through another subresource (kubectl scale writes through /scale) is drift
    assert is_foreign_change(before, obj({"a": "3"}, [ours, ("kubectl", "Update", "2025-01-01T00:04:00Z", "scale")],
                                         rv="6"))


def test_feature_gates_and_flags():
    import argparse

    from controllers.kustomize.reconciler import add_arguments, new_reconciler, parse_feature_gates

    gates = parse_feature_gates("ExternalArtifact=true, StrictPostBuildSubstitutions=false")
    assert gates["ExternalArtifact"] and not gates["StrictPostBuildSubstitutions"]
    assert gates["DisableStatusPollerCache"]  # Flux's default
    with pytest.raises(argparse.ArgumentTypeError, match="unknown feature gate 'Nope'"):
        parse_feature_gates("Nope=true")
    with pytest.raises(argparse.ArgumentTypeError, match="expected true or false"):
        parse_feature_gates("ExternalArtifact=yes")

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--default-service-account", "tenant", "--no-cross-namespace-refs",
                              "--no-remote-bases=true", "--feature-gates=ExternalArtifact=true", "--override-manager",
                              "argocd",
                              "--watch-applied=false", "--http-retry", "3"])
    reconciler = new_reconciler(args)
    options = reconciler.options
    assert (options.default_service_account, options.no_cross_namespace_refs, options.no_remote_bases) == (
        "tenant", True, True)
    assert options.gate("ExternalArtifact") and options.disallowed_field_managers == ("argocd",)
    assert not options.watch_applied and options.http_retry == 3
    assert {w.kind.kind for w in reconciler.watches()} == {
        "OCIRepository", "GitRepository", "Bucket", "ExternalArtifact", "ConfigMap", "Secret"}
    defaults = new_reconciler(parser.parse_args([]))
    assert {w.kind.kind for w in defaults.watches()} == {"OCIRepository", "GitRepository", "Bucket", "ConfigMap",
                                                         "Secret"}


def test_the_component_command_line_takes_the_flags():
    """``python -m controllers kustomize-controller`` with this module's flags added to the common ones."""
    from controllers.__main__ import build_parser
    from controllers.components import Component, load_reconcilers

    component = Component("kustomize-controller", reconcilers=("controllers.kustomize.reconciler:new_reconciler",),
                          add_arguments="controllers.kustomize.reconciler:add_arguments")
    args = build_parser(component).parse_args(["--requeue-dependency", "5s", "--no-cross-namespace-refs=true",
                                               "--concurrent", "8"])
    (reconciler,) = load_reconcilers(component, args)
    assert reconciler.options.no_cross_namespace_refs and args.requeue_dependency == 5.0


# --------------------------------------------------------------------------- sources and the health-check cancel gate

@pytest.mark.parametrize("kind", ["OCIRepository", "Bucket", "ExternalArtifact"])
def test_every_source_kind(kube, namespace, ks_controller, artifact_sources, kind):
    from controllers.kustomize.reconciler import parse_feature_gates

    artifact = artifact_sources.publish(namespace, "src", {"a.yaml": configmap("a")}, kind=kind,
                                        revision="v1@sha256:0123" if kind != "Bucket" else None)
    ks_controller(feature_gates=parse_feature_gates("ExternalArtifact=true"))
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace,
                                         sourceRef={"kind": kind, "name": "src"}), namespace)
    assert ready(kube, "app", namespace)["status"]["lastAppliedRevision"] == artifact["revision"]


def test_external_artifacts_need_the_feature_gate(kube, namespace, ks_controller, artifact_sources):
    artifact_sources.publish(namespace, "src", {"a.yaml": configmap("a")}, kind="ExternalArtifact")
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, sourceRef={"kind": "ExternalArtifact", "name": "src"}),
                namespace)
    ks = ready(kube, "app", namespace, status="False", reason="AccessDenied")
    assert find_condition(ks, "Ready")["message"] == (
        f"can't access 'ExternalArtifact/{namespace}/src', ExternalArtifact feature gate is disabled")
    assert find_condition(ks, "Stalled")["status"] == "True"


def test_a_new_revision_cancels_the_health_check_with_the_gate(kube, namespace, ks_controller, artifact_sources):
    from controllers.kustomize.reconciler import parse_feature_gates

    artifact_sources.publish(namespace, "app", {"web.yaml": deployment("web", replicas=1)})
    ks_controller(feature_gates=parse_feature_gates("CancelHealthCheckOnNewRevision=true"), min_timeout=60.0)
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, wait=True, timeout="60s"),
                namespace)
    wait(kube, KUSTOMIZATION, namespace, "app", lambda o: (find_condition(o, "Healthy") or {}).get("reason") ==
         "Progressing", "the health check running")
    started = time.monotonic()
    second = artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a")})
    ks = applied(kube, "app", namespace, second["revision"])
    assert time.monotonic() - started < 30
    messages = event_messages(kube, namespace, "app")
    assert (f"Health checks canceled due to new reconciliation triggered by GitRepository/{namespace}/app"
            in messages), messages
    assert find_condition(ks, "Healthy")["status"] == "True"  # the new revision's ConfigMap is healthy at once
