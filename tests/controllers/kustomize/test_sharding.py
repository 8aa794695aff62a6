"""Sharding, as Flux's recipe (docs/sharding.md): kustomize-controller replicas with ``--watch-label-selector``
(``sharding.fluxcd.io/key in (shard1)``, the main one ``!sharding.fluxcd.io/key``), a Lease per shard, and a
standby replica of a shard taking over when its leader dies. Real apiserver, real kustomize."""
from __future__ import annotations

import time

from controllers.api.builtin import CONFIGMAP, LEASE
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig
from controllers.kustomize.reconciler import KustomizationReconciler, Options
from controllers.runtime.leader import lease_name
from controllers.runtime.manager import Manager
from controllers.runtime.settings import ControllerSettings, LeaderElectionSettings, ManagerSettings, WatchSettings
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture
from servers.waiting import until

from .test_reconciler import configmap, ks_object, ready

SHARD_KEY = "sharding.fluxcd.io/key"
SELECTORS = {"main": f"!{SHARD_KEY}", "shard1": f"{SHARD_KEY} in (shard1)", "shard2": f"{SHARD_KEY} in (shard2)"}


def _replica(kube, namespace: str, selector: str, identity: str) -> tuple[Manager, KustomizationReconciler]:
    reconciler = KustomizationReconciler(Options(health_interval=0.5, min_timeout=5.0))
    settings = ManagerSettings(
        component="kustomize-controller", metrics_addr="", health_addr="",
        controller=ControllerSettings(concurrent=2, min_retry_delay=0.05, max_retry_delay=2.0,
                                      interval_jitter_percentage=0, requeue_dependency=0.5),
        watch=WatchSettings(all_namespaces=False, namespace=namespace, label_selector=selector, timeout_seconds=20),
        leader_election=LeaderElectionSettings(enabled=True, lease_duration=2.0, renew_deadline=1.5,
                                               retry_period=0.2, release_on_cancel=False, namespace=namespace,
                                               identity=identity))
    return Manager(kube, settings, [reconciler]), reconciler


def _reconciled_by(reconciler: KustomizationReconciler, namespace: str) -> set[str]:
    return {name for name in SELECTORS if f"{namespace}/{name}" in reconciler.index}


def test_shards_reconcile_only_their_objects_and_a_standby_takes_over(kube, namespace, flux_crds, artifact_sources):
    artifact_sources.publish(namespace, "app", {"cm.yaml": configmap("cm", v="1")})
    replicas = {name: _replica(kube, namespace, selector, f"{name}-a") for name, selector in SELECTORS.items()}
    standby, standby_reconciler = _replica(kube, namespace, SELECTORS["shard1"], "shard1-b")
    managers = [m for m, _ in replicas.values()]
    try:
        for manager in managers:
            manager.start()
        until(lambda: all(m.leading for m in managers), "every shard's first replica leads")
        standby.start()
        for name in ("main", "shard1", "shard2"):
            ks = ks_object(name, namespace, targetNamespace=namespace, namePrefix=f"{name}-")
            if name != "main":
                ks["metadata"]["labels"] = {SHARD_KEY: name}
            kube.create(KUSTOMIZATION, ks, namespace)
        for name in SELECTORS:
            ready(kube, name, namespace)
            assert kube.get(CONFIGMAP, f"{name}-cm", namespace)["data"] == {"v": "1"}
        # each object was reconciled by its shard alone, under its own Lease
        for name, (_, reconciler) in replicas.items():
            assert _reconciled_by(reconciler, namespace) == {name}, name
        assert not standby.leading and _reconciled_by(standby_reconciler, namespace) == set()
        leases = {name: kube.get(LEASE, lease_name("kustomize-controller", s), namespace)["spec"]["holderIdentity"]
                  for name, s in SELECTORS.items()}
        assert leases == {"main": "main-a", "shard1": "shard1-a", "shard2": "shard2-a"}

        # shard1's leader dies (no release): its standby takes the shard's Lease and applies the next revision
        replicas["shard1"][0].stop()
        until(lambda: standby.leading, "the standby leads shard1", timeout=15)
        revision = artifact_sources.publish(namespace, "app", {"cm.yaml": configmap("cm", v="2")})["revision"]
        until(lambda: dig(kube.get(KUSTOMIZATION, "shard1", namespace), "status.lastAppliedRevision") == revision,
              "shard1 applies the new revision", timeout=30)
        assert kube.get(CONFIGMAP, "shard1-cm", namespace)["data"] == {"v": "2"}
        assert _reconciled_by(standby_reconciler, namespace) == {"shard1"}
        time.sleep(0.5)
        assert kube.get(LEASE, lease_name("kustomize-controller", SELECTORS["shard1"]),
                        namespace)["spec"]["holderIdentity"] == "shard1-b"
    finally:
        for manager in [*managers, standby]:
            manager.stop()
