"""helm-controller killed with SIGKILL at random points while it installs and upgrades N HelmReleases
through new chart versions and values, and restarted each time; then it must converge: every HelmRelease
Ready at the latest chart version and values digest (``status.history``, ``lastAttempted*``), the latest
Helm release Secret of each release ``deployed`` (the only one) and no revision left ``pending-*``, the
chart's objects live with the latest content (none lost), none of a removed template left (no orphan),
and a drift made after the kills corrected.

The source side (HelmRepository, HelmChart, artifact storage) runs in-process; only the helm-controller is
a real process (``python -m controllers helm-controller``) that is killed. Generation ``g`` of every
release is chart ``1.0.<g // 2>`` with ``message: gen-<g>``: odd generations change the values only, even
ones the chart too; chart 1.0.0 has a ConfigMap ``<release>-old`` that later versions replace by
``<release>-new``, so a kill around the upgrade must neither lose ``-new`` nor leave ``-old``.

The seed is the one test_controller_kills prints (``FLUXPY_FAULTS_SEED`` replays a run). Short: 5
HelmReleases, 4 kills; full (``make faults``): 20 HelmReleases, 20 kills.
"""
from __future__ import annotations

import json
import random
import time

from controllers.api.builtin import CONFIGMAP, SECRET
from controllers.api.helm import HELM_RELEASE
from controllers.api.objects import find_condition
from controllers.helm.history import config_digest, verified
from controllers.lib.helm_storage import PENDING_STATUSES, STATUS_DEPLOYED, ReleaseStorage, status_of
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.helmrepo import helm_repo, make_chart  # noqa: F401 - fixture
from servers.waiting import events, ready_with, reconcile_now, until

from ..controllers.helm.test_helmrelease import helm, helmrelease, repository
from .conftest import record, scale
from .processes import ControllerProcess
from .test_controller_kills import CONVERGE_TIMEOUT, SEED

CHART = "app"
NAME_LABEL = "helm.toolkit.fluxcd.io/name"
OLD = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-old\ndata:\n  kept: 'no'\n"
NEW = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-new\n"
       "data:\n  version: {{ .Chart.Version | quote }}\n  message: {{ .Values.message | quote }}\n")


def chart_version(generation: int) -> str:
    return f"1.0.{generation // 2}"


def values(generation: int) -> dict:
    return {"message": f"gen-{generation}"}


def expected_objects(release: str, generation: int) -> dict[str, dict]:
    """The ConfigMaps of ``release`` at ``generation``: name -> the data entries that must be live (those of
    ``<release>-app`` from the JSON of its values)."""
    message = values(generation)["message"]
    extra = ({f"{release}-old": {"kept": "no"}} if chart_version(generation) == "1.0.0" else
             {f"{release}-new": {"version": chart_version(generation), "message": message}})
    return {f"{release}-{CHART}": {"message": message}, **extra}


def content(configmap: dict) -> dict:
    data = configmap.get("data") or {}
    return json.loads(data["values"]) if "values" in data else data


def upgrade(kube, namespace: str, names: list[str], generation: int) -> None:
    for name in names:
        helmrelease(kube, namespace, name, chart=CHART, version=chart_version(generation), values=values(generation),
                    driftDetection={"mode": "enabled"})


def workers_started(controller: ControllerProcess) -> int:
    """How many times the controller's workers started (its log, appended by every run)."""
    return controller.log_file.read_text().count('"Starting workers"') if controller.log_file.exists() else 0


def pending(kube, namespace: str) -> set[str]:
    """The release Secrets ``pending-*`` (an action under way, or cut short)."""
    selector = f"owner=helm,status in ({','.join(PENDING_STATUSES)})"
    return {s["metadata"]["name"] for s in kube.list(SECRET, namespace, label_selector=selector)["items"]}


def converged(kube, namespace: str, names: list[str], generation: int) -> list[str]:
    """What is still wrong (empty once converged)."""
    wrong: list[str] = []
    version, digest = chart_version(generation), config_digest(values(generation))
    storage = ReleaseStorage(kube, namespace)
    for hr in kube.list(HELM_RELEASE, namespace)["items"]:
        name, status = hr["metadata"]["name"], hr.get("status") or {}
        latest = (status.get("history") or [{}])[0]
        if not ready_with("True")(hr) or find_condition(hr, "Reconciling") or (
                status.get("lastAttemptedRevision"), status.get("lastAttemptedConfigDigest"),
                latest.get("status"), latest.get("chartVersion"), latest.get("configDigest")) != (
                version, digest, STATUS_DEPLOYED, version, digest):
            wrong.append(f"{name}: Ready={(find_condition(hr, 'Ready') or {}).get('reason')} at "
                         f"{status.get('lastAttemptedRevision')}, history {latest.get('status')} "
                         f"{latest.get('chartVersion')}")
            continue
        stored = storage.history(name)
        revisions = [(int(r["version"]), status_of(r)) for r in stored]
        if not revisions or revisions[-1] != (latest.get("version"), STATUS_DEPLOYED) \
                or [s for _, s in revisions].count(STATUS_DEPLOYED) != 1 or not verified(latest, stored[-1]):
            wrong.append(f"{name}: Helm storage {revisions}, status.history at v{latest.get('version')}")
        wrong += [f"{name}: v{v} left {s}" for v, s in revisions if s in PENDING_STATUSES]
    expected = {cm: data for name in names for cm, data in expected_objects(name, generation).items()}
    live = {c["metadata"]["name"]: c for c in kube.list(CONFIGMAP, namespace, label_selector=NAME_LABEL)["items"]}
    wrong += [f"lost {n}" for n in sorted(expected.keys() - live.keys())]
    wrong += [f"orphan {n}" for n in sorted(live.keys() - expected.keys())]
    for name, want in expected.items():
        if name in live and any(content(live[name]).get(k) != v for k, v in want.items()):
            wrong.append(f"stale {name}: {live[name].get('data')}")
    return wrong


def test_kill_9_during_helm_upgrades_converges(kube, kubeconfig, namespace, flux_crds, start_controller,
                                               artifact_storage, helm_repo, tmp_path):
    from controllers.source.helmchart import HelmChartReconciler
    from controllers.source.helmrepo import HelmRepositoryReconciler

    rng = random.Random(SEED)
    count, kills = scale(5, 20), scale(4, 20)
    print(f"helm-controller kills: seed {SEED}, {count} HelmReleases, {kills} kills")
    for g in range(0, kills, 2):
        helm_repo.add_chart(make_chart(tmp_path / f"chart-{g}", CHART, chart_version(g),
                                       files={"templates/old.yaml" if g == 0 else "templates/new.yaml":
                                              OLD if g == 0 else NEW}), reindex=False)
    helm_repo.index()
    start_controller(HelmRepositoryReconciler(artifact_storage), namespace)
    start_controller(HelmChartReconciler(artifact_storage), namespace)
    repository(kube, namespace, helm_repo)
    names = [f"hr{i:02d}" for i in range(count)]
    generation = 0
    upgrade(kube, namespace, names, generation)
    controller = ControllerProcess("helm-controller", kubeconfig, namespace, tmp_path / "helm-controller.log")
    try:
        cut = 0
        for kill in range(kills):
            left = pending(kube, namespace)  # what the previous kill left pending
            controller.start()
            until(lambda: workers_started(controller) > kill, "the helm-controller starts", timeout=60)
            if kill:  # a new chart version or new values for every release: kills land in upgrades
                generation += 1
                upgrade(kube, namespace, names, generation)
            if rng.random() < 0.7:  # as soon as a new revision is pending-*: in the middle of an action
                until(lambda: pending(kube, namespace) - left, "a release pending", timeout=15, fail=False)
                time.sleep(rng.uniform(0, 0.1))
            else:  # anywhere: in the HelmChart's wait, an action, a status write, or idle
                time.sleep(rng.uniform(0, scale(2.0, 4.0)))
            controller.kill()
            cut += bool(pending(kube, namespace) - left)
        print(f"helm-controller kills: {cut} of {kills} kills cut an install or upgrade short")
        record("helm-controller kills that left a release pending-*", cut)
        controller.start()
        began = time.monotonic()
        problems: list[str] = []

        def done():
            problems[:] = converged(kube, namespace, names, generation)
            return not problems

        until(done, f"convergence after {kills} kills (seed {SEED})", timeout=CONVERGE_TIMEOUT, fail=False)
        assert not problems, f"not converged after {CONVERGE_TIMEOUT}s (seed {SEED}): {problems[:10]}"
        took = time.monotonic() - began
        record("time to converge after a helm-controller kill -9", took)
        unlocked = sum(e["reason"] == "PendingRelease" for n in names
                       for e in events(kube, namespace, n, "HelmRelease"))
        print(f"helm-controller kills: converged at generation {generation} (chart {chart_version(generation)}) in "
              f"{took:.1f} s; {unlocked} PendingRelease event(s)")
        # the real helm reads the storage the kills left: every release deployed at the latest chart
        listed = json.loads(helm(kubeconfig, namespace, "list", "-o", "json"))
        assert sorted((r["name"], r["status"], r["chart"]) for r in listed) == [
            (n, STATUS_DEPLOYED, f"{CHART}-{chart_version(generation)}") for n in names]

        # the restarted controller still corrects drift
        drifted = f"{names[0]}-new" if generation >= 2 else f"{names[0]}-old"
        key = "message" if generation >= 2 else "kept"
        kube.patch(CONFIGMAP, drifted, {"data": {key: "tampered"}}, namespace)
        reconcile_now(kube, HELM_RELEASE, namespace, names[0], timeout=60)
        until(lambda: kube.get(CONFIGMAP, drifted, namespace)["data"][key] != "tampered",
              "the drift is corrected after the kills", timeout=60)
        assert not converged(kube, namespace, names, generation)
        record("helm-controller kills survived / tried", (kills, kills))
    finally:
        controller.stop()
