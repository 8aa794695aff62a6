"""kustomize-controller killed with SIGKILL at random points while it applies N Kustomizations × 5 objects,
and restarted each time; then it must converge: every Kustomization Ready at the latest revision, each
inventory exactly its applied set, no orphan, nothing lost, nothing pruned re-created. The same with the
leader killed while a second replica waits on the Lease.

The seed is printed (``FLUXPY_FAULTS_SEED`` replays a run). Short: 20 Kustomizations, 4 kills; full
(``make faults``): 100 Kustomizations (500 objects), 20 kills.
"""
from __future__ import annotations

import os
import random
import time

from controllers.api.builtin import CONFIGMAP, LEASE
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig, find_condition
from controllers.runtime.kube import NotFound
from controllers.runtime.leader import lease_name
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture
from servers.waiting import until

from .conftest import record, scale
from .processes import LEADER_ELECTION, ControllerProcess

NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
SEED = int(os.environ.get("FLUXPY_FAULTS_SEED") or random.SystemRandom().randrange(1 << 32))
CONVERGE_TIMEOUT = 180


def revision_files(generation: int) -> dict[str, str]:
    """Five ConfigMaps; from the second generation on ``cm4`` is removed from Git and ``cm5`` added, so a
    crash around the prune must neither lose cm5 nor bring cm4 back."""
    names = ["cm0", "cm1", "cm2", "cm3", "cm4" if generation == 0 else "cm5"]
    return {f"{n}.yaml": f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  generation: '{generation}'\n"
            for n in names}


def create_kustomizations(kube, namespace: str, count: int) -> list[str]:
    names = [f"ks{i:03d}" for i in range(count)]
    for name in names:
        kube.create(KUSTOMIZATION, {
            "apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"interval": "10m", "retryInterval": "1s", "path": "./", "prune": True,
                     "targetNamespace": namespace, "namePrefix": f"{name}-",
                     "sourceRef": {"kind": "GitRepository", "name": "app"}}}, namespace)
    return names


def converged(kube, namespace: str, names: list[str], revision: str, generation: int) -> list[str]:
    """What is still wrong (empty once converged): Ready and revision of each Kustomization, inventories
    against the expected set, every expected object at the latest content, and no orphan."""
    wrong = []
    expected_cms = {f"{ks}-{f[:-5]}" for ks in names for f in revision_files(generation)}
    inventories: set[str] = set()
    for ks in kube.list(KUSTOMIZATION, namespace)["items"]:
        name = ks["metadata"]["name"]
        ready = find_condition(ks, "Ready") or {}
        if ready.get("status") != "True" or dig(ks, "status.lastAppliedRevision") != revision:
            wrong.append(f"{name}: Ready={ready.get('status')} at {dig(ks, 'status.lastAppliedRevision')}")
            continue
        listed = {e["id"] for e in dig(ks, "status.inventory.entries") or []}
        want = {f"{namespace}_{name}-{f[:-5]}__ConfigMap" for f in revision_files(generation)}
        if listed != want:
            wrong.append(f"{name}: inventory {sorted(listed ^ want)} differs")
        inventories |= {i.split("_")[1] for i in listed}
    cms = {c["metadata"]["name"]: c for c in kube.list(CONFIGMAP, namespace, label_selector=NAME_LABEL)["items"]}
    lost = expected_cms - cms.keys()
    orphans = cms.keys() - inventories
    stale = [n for n in expected_cms & cms.keys() if cms[n]["data"]["generation"] != str(generation)]
    wrong += [f"lost {n}" for n in sorted(lost)] + [f"orphan {n}" for n in sorted(orphans)]
    wrong += [f"stale {n}" for n in sorted(stale)]
    return wrong


def _converge(kube, namespace, names, revision, generation, what: str) -> float:
    began = time.monotonic()
    problems: list[str] = []

    def done():
        problems[:] = converged(kube, namespace, names, revision, generation)
        return not problems

    until(done, f"{what} converges (seed {SEED})", timeout=CONVERGE_TIMEOUT, fail=False)
    assert not problems, f"not converged after {CONVERGE_TIMEOUT}s (seed {SEED}): {problems[:10]}"
    return time.monotonic() - began


def test_kill_9_at_random_points_converges(kube, kubeconfig, namespace, flux_crds, artifact_sources, tmp_path):
    rng = random.Random(SEED)
    count, kills = scale(20, 100), scale(4, 20)
    print(f"controller kills: seed {SEED}, {count} Kustomizations x 5 objects, {kills} kills")
    generation = 0
    revision = artifact_sources.publish(namespace, "app", revision_files(generation))["revision"]
    names = create_kustomizations(kube, namespace, count)
    controller = ControllerProcess("kustomize-controller", kubeconfig, namespace, tmp_path / "kustomize.log")
    try:
        for kill in range(kills):
            controller.start()
            # a new revision now and then, so that kills land during applies and prunes too
            if rng.random() < 0.5:
                generation += 1
                revision = artifact_sources.publish(namespace, "app", revision_files(generation))["revision"]
            time.sleep(rng.uniform(0.3, scale(4.0, 8.0)))
            controller.kill()
        controller.start()
        record("time to converge after a kill -9", _converge(kube, namespace, names, revision, generation,
                                                             f"after {kills} kills"))
        # the restarted controller still corrects drift: its watches are alive
        kube.patch(CONFIGMAP, f"{names[0]}-cm0", {"data": {"generation": "edited"}}, namespace)
        until(lambda: kube.get(CONFIGMAP, f"{names[0]}-cm0", namespace)["data"]["generation"] == str(generation),
              "the drift is corrected after the kills", timeout=30)
        record("controller kills survived / tried", (kills, kills))
    finally:
        controller.stop()


def _leader(kube, namespace: str) -> str | None:
    try:
        return dig(kube.get(LEASE, lease_name("kustomize-controller"), namespace), "spec.holderIdentity")
    except NotFound:
        return None


def test_the_standby_takes_over_when_the_leader_is_killed(kube, kubeconfig, namespace, flux_crds,
                                                          artifact_sources, tmp_path):
    handovers = scale(2, 5)
    generation = 0
    revision = artifact_sources.publish(namespace, "app", revision_files(generation))["revision"]
    names = create_kustomizations(kube, namespace, scale(10, 50))
    replicas = [ControllerProcess("kustomize-controller", kubeconfig, namespace, tmp_path / f"replica-{r}.log",
                                  *LEADER_ELECTION) for r in "ab"]
    leader, standby = replicas
    try:
        leader.start()
        until(lambda: _leader(kube, namespace), "the first replica takes the Lease", timeout=30)
        standby.start()
        _converge(kube, namespace, names, revision, generation, "the first leader's apply")
        for _ in range(handovers):
            held_by = _leader(kube, namespace)
            leader.kill()
            generation += 1
            revision = artifact_sources.publish(namespace, "app", revision_files(generation))["revision"]
            began = time.monotonic()
            until(lambda: _leader(kube, namespace) not in (None, held_by), "the standby takes the Lease", timeout=30)
            _converge(kube, namespace, names, revision, generation, "after the hand-over")
            record("time to converge after the leader is killed", time.monotonic() - began)
            leader.start()  # the killed replica comes back as the standby
            leader, standby = standby, leader
        record("leader hand-overs survived / tried", (handovers, handovers))
    finally:
        for replica in replicas:
            replica.stop()
