"""dependsOn: Flux's rules (checked against objects in the real apiserver), readyExpr, dependencies across kinds
(a Kustomization waiting on a HelmRelease whose Ready is flipped), cycles (a 3-cycle across kinds reported as
Stalled, DependencyCycle), and the ordering of a chain run by the reconciler."""
from __future__ import annotations

import time

import pytest

from controllers.api.builtin import CONFIGMAP
from controllers.api.helm import HELM_RELEASE
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig, find_condition
from controllers.lib.dependencies import (CachingResolver, Dependency, DependencyCycle, check_dependencies,
                                                dependencies_of, find_cycle, is_ready)
from controllers.runtime.inspect import Resolver
from controllers.runtime.outcomes import StalledError, Waiting
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture
from servers.waiting import wait

from .test_reconciler import configmap, ks_controller, ks_object, ready  # noqa: F401 - fixture

NOW = "2025-01-01T00:00:00Z"


# --------------------------------------------------------------------------- pure: reading and cycles

def _ks(name: str, namespace: str = "apps", deps=(), **spec) -> dict:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": namespace, "generation": 1},
            "spec": {"sourceRef": {"kind": "GitRepository", "name": "repo"}, "dependsOn": list(deps), **spec}}


class FakeResolver(Resolver):
    """Objects from a dict instead of the apiserver (kinds still resolve through the kinds table)."""

    def __init__(self, *objects: dict):
        super().__init__(kube=None)
        self.objects = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}
        self.reads = 0

    def get(self, rt, name, namespace):
        self.reads += 1
        return self.objects.get((rt.kind, namespace if rt.namespaced else "", name))


def test_dependencies_are_read_with_the_chain_walkers_links():
    ks = _ks("web", deps=[{"name": "infra"}, {"name": "db", "namespace": "data", "readyExpr": "dep.x"},
                          {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "redis"}])
    assert dependencies_of(KUSTOMIZATION, ks) == [
        Dependency("Kustomization", "infra", "apps"),
        Dependency("Kustomization", "db", "data", ready_expr="dep.x"),
        Dependency("HelmRelease", "redis", "apps", "helm.toolkit.fluxcd.io/v2", same_kind=False),
    ]
    assert [d.label for d in dependencies_of(KUSTOMIZATION, ks)] == ["apps/infra", "data/db", "HelmRelease/apps/redis"]


def test_a_three_cycle_across_kinds_is_found_through_the_object():
    a = _ks("a", deps=[{"name": "b"}])
    b = _ks("b", deps=[{"name": "c", "kind": "HelmRelease", "apiVersion": "helm.toolkit.fluxcd.io/v2"}])
    c = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
         "metadata": {"name": "c", "namespace": "apps"},
         "spec": {"dependsOn": [{"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                                 "name": "a"}]}}
    resolver = FakeResolver(a, b, c)
    assert find_cycle(resolver, KUSTOMIZATION, a) == [
        "Kustomization/apps/a", "Kustomization/apps/b", "HelmRelease/apps/c", "Kustomization/apps/a"]
    assert str(DependencyCycle(find_cycle(resolver, KUSTOMIZATION, b))) == (
        "dependency cycle: Kustomization/apps/b → HelmRelease/apps/c → Kustomization/apps/a → "
        "Kustomization/apps/b")
    # a dependent of the cycle is not in it: it waits (the members report the cycle)
    assert find_cycle(FakeResolver(a, b, c), KUSTOMIZATION, _ks("d", deps=[{"name": "a"}])) is None
    # a self-dependency, and a diamond without cycle (each object read once)
    assert find_cycle(FakeResolver(), KUSTOMIZATION, _ks("s", deps=[{"name": "s"}])) == [
        "Kustomization/apps/s", "Kustomization/apps/s"]
    top = _ks("top", deps=[{"name": "l"}, {"name": "r"}])
    diamond = FakeResolver(_ks("l", deps=[{"name": "base"}]), _ks("r", deps=[{"name": "base"}]), _ks("base"))
    assert find_cycle(diamond, KUSTOMIZATION, top) is None and diamond.reads == 3


def test_is_ready_follows_flux_and_generic_conditions():
    def obj(status, generation=2):
        return {"metadata": {"generation": generation}, "status": status}
    ready_cond = {"type": "Ready", "status": "True"}
    assert is_ready(obj({"observedGeneration": 2, "conditions": [ready_cond]}))
    assert not is_ready(obj({"observedGeneration": 1, "conditions": [ready_cond]}))
    assert not is_ready(obj({"observedGeneration": 2, "conditions": [{**ready_cond, "status": "False"}]}))
    assert not is_ready(obj({"observedGeneration": 2}))
    # a custom resource without a top-level observedGeneration: the condition's own counts
    assert is_ready(obj({"conditions": [{**ready_cond, "observedGeneration": 2}]}))
    assert not is_ready(obj({"conditions": [{**ready_cond, "observedGeneration": 1}]}))


# --------------------------------------------------------------------------- Flux's rules against the apiserver

def _put(kube, obj: dict, status: dict | None = None) -> dict:
    rt = KUSTOMIZATION if obj["kind"] == "Kustomization" else HELM_RELEASE
    body = {k: v for k, v in obj.items() if k != "status"}
    body["metadata"] = {k: v for k, v in obj["metadata"].items() if k in ("name", "namespace")}
    live = kube.apply(body, field_manager="test")
    if status is not None:
        live = kube.patch(rt, obj["metadata"]["name"], {"status": status}, obj["metadata"]["namespace"],
                          subresource="status")
    return live


def _ready_status(generation: int, revision: str = "", ready: str = "True") -> dict:
    status = {"observedGeneration": generation, "conditions": [
        {"type": "Ready", "status": ready, "reason": "ReconciliationSucceeded", "message": "ok",
         "lastTransitionTime": NOW, "observedGeneration": generation}]}
    if revision:
        status["lastAppliedRevision"] = revision
    return status


def test_flux_dependency_rules(kube, namespace, flux_crds):
    me = _put(kube, {**_ks("app", namespace, deps=[{"name": "infra"}], interval="1m", path="./", prune=True)})

    def check(**kw):
        check_dependencies(kube, KUSTOMIZATION, me, resolver=CachingResolver(kube), **kw)

    with pytest.raises(Waiting, match=f"dependency '{namespace}/infra' not found: kustomizations.kustomize.toolkit"
                                      f".fluxcd.io \"infra\" not found"):
        check(source_revision="r1")
    infra = _put(kube, _ks("infra", namespace, interval="1m", path="./", prune=True))
    with pytest.raises(Waiting, match=f"dependency '{namespace}/infra' is not ready"):
        check(source_revision="r1")
    _put(kube, infra, _ready_status(infra["metadata"]["generation"], revision="r1"))
    check(source_revision="r1")
    with pytest.raises(Waiting) as waiting:
        check(source_revision="r2")
    assert str(waiting.value) == f"dependency '{namespace}/infra' revision is not up to date"
    assert waiting.value.reason == "DependencyNotReady"
    # another source: the revision rule does not apply
    _put(kube, {**infra, "spec": {**infra["spec"], "sourceRef": {"kind": "GitRepository", "name": "other"}}})
    infra = kube.get(KUSTOMIZATION, "infra", namespace)
    _put(kube, infra, _ready_status(infra["metadata"]["generation"], revision="r1"))
    check(source_revision="r2")
    # a new generation not yet observed
    _put(kube, {**infra, "spec": {**infra["spec"], "interval": "2m"}})
    with pytest.raises(Waiting, match="is not ready"):
        check(source_revision="r2")


def test_ready_expr(kube, namespace, flux_crds):
    infra = _put(kube, _ks("infra", namespace, interval="1m", path="./", prune=True))
    _put(kube, infra, _ready_status(infra["metadata"]["generation"], ready="False"))

    def me(expr: str) -> dict:
        return _put(kube, _ks("app", namespace, deps=[{"name": "infra", "readyExpr": expr}], interval="1m", path="./",
                              prune=True))

    # the expression alone decides (Ready is False)
    check_dependencies(kube, KUSTOMIZATION, me("dep.metadata.name == 'infra' && self.metadata.name == 'app'"))
    with pytest.raises(Waiting, match=f"dependency '{namespace}/infra' is not ready according to readyExpr eval"):
        check_dependencies(kube, KUSTOMIZATION, me("dep.metadata.name == 'other'"))
    # AdditiveCELDependencyCheck: the expression and Flux's rules
    with pytest.raises(Waiting, match=f"dependency '{namespace}/infra' is not ready$"):
        check_dependencies(kube, KUSTOMIZATION, me("true"), additive_cel=True)
    with pytest.raises(StalledError) as stalled:
        check_dependencies(kube, KUSTOMIZATION, me("dep.metadata.name =="))
    assert stalled.value.reason == "InvalidCELExpression"
    assert str(stalled.value).startswith("Reconciliation failed terminally due to configuration error: failed to "
                                         "evaluate dependency infra: failed to parse the CEL expression")
    with pytest.raises(StalledError, match="expected bool"):
        check_dependencies(kube, KUSTOMIZATION, me("dep.metadata.name"))


# --------------------------------------------------------------------------- with the reconciler

def _release(name: str, namespace: str, deps=()) -> dict:
    return {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"interval": "1h", "chartRef": {"kind": "OCIRepository", "name": name}, "dependsOn": list(deps)}}


def test_a_kustomization_waits_for_a_helmrelease_whose_ready_flips(kube, namespace, ks_controller, artifact_sources):
    artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a")})
    ks_controller()
    db = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "db"}
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, dependsOn=[db]), namespace)
    ks = ready(kube, "app", namespace, status="False", reason="DependencyNotReady")
    assert find_condition(ks, "Ready")["message"] == (
        f"dependency 'HelmRelease/{namespace}/db' not found: helmreleases.helm.toolkit.fluxcd.io \"db\" not found")
    release = _put(kube, _release("db", namespace))
    not_ready = f"dependency 'HelmRelease/{namespace}/db' is not ready"
    ks = wait(kube, KUSTOMIZATION, namespace, "app",
              lambda o: (find_condition(o, "Ready") or {}).get("message") == not_ready, "not ready")
    assert find_condition(ks, "Stalled") is None
    assert kube.list(CONFIGMAP, namespace, label_selector="kustomize.toolkit.fluxcd.io/name=app")["items"] == []

    started = time.monotonic()
    _put(kube, release, _ready_status(release["metadata"]["generation"]))
    ready(kube, "app", namespace)
    print(f"dependency became ready, applied after {time.monotonic() - started:.2f}s")
    kube.get(CONFIGMAP, "a", namespace)

    # readiness flips back: a change of the Kustomization waits again
    _put(kube, release, _ready_status(release["metadata"]["generation"], ready="False"))
    kube.patch(KUSTOMIZATION, "app", {"spec": {"interval": "9m"}}, namespace)
    ready(kube, "app", namespace, status="False", reason="DependencyNotReady")


def test_a_three_cycle_is_reported_not_waited_on(kube, namespace, ks_controller, artifact_sources):
    artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a")})
    ks_controller()
    hr = {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "c"}
    kube.create(KUSTOMIZATION, ks_object("a", namespace, targetNamespace=namespace, dependsOn=[{"name": "b"}]),
                namespace)
    kube.create(KUSTOMIZATION, ks_object("b", namespace, targetNamespace=namespace, dependsOn=[hr]), namespace)
    release = _put(kube, _release("c", namespace, deps=[
        {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization", "name": "a"}]))
    a = ready(kube, "a", namespace, status="False", reason="DependencyCycle")
    b = ready(kube, "b", namespace, status="False", reason="DependencyCycle")
    qualified = lambda n: f"Kustomization/{namespace}/{n}"  # noqa: E731
    assert find_condition(a, "Ready")["message"] == "dependency cycle: " + " → ".join(
        [qualified("a"), qualified("b"), f"HelmRelease/{namespace}/c", qualified("a")])
    assert find_condition(b, "Ready")["message"] == "dependency cycle: " + " → ".join(
        [qualified("b"), f"HelmRelease/{namespace}/c", qualified("a"), qualified("b")])
    for obj in (a, b):
        stalled = find_condition(obj, "Stalled")
        assert stalled["status"] == "True" and stalled["reason"] == "DependencyCycle"
        assert find_condition(obj, "Reconciling") is None
        assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]

    # the cycle is broken by editing the HelmRelease (no watch of ours sees it): both recover
    _put(kube, _release("c", namespace))
    release = kube.get(HELM_RELEASE, "c", namespace)
    _put(kube, release, _ready_status(release["metadata"]["generation"]))
    ready(kube, "b", namespace)
    ready(kube, "a", namespace)


def test_a_chain_applies_in_order(kube, namespace, ks_controller, artifact_sources):
    artifact = artifact_sources.publish(namespace, "app", {"infra/a.yaml": configmap("infra"),
                                                           "apps/b.yaml": configmap("apps")})
    ks_controller(controller={"requeue_dependency": 60.0})  # infra's success wakes apps up, no 60s poll
    kube.create(KUSTOMIZATION, ks_object("apps", namespace, path="./apps", targetNamespace=namespace,
                                         dependsOn=[{"name": "infra"}]), namespace)
    ks = ready(kube, "apps", namespace, status="False", reason="DependencyNotReady")
    assert "infra" in find_condition(ks, "Ready")["message"]
    kube.create(KUSTOMIZATION, ks_object("infra", namespace, path="./infra", targetNamespace=namespace), namespace)
    infra, apps = ready(kube, "infra", namespace), ready(kube, "apps", namespace)
    assert dig(apps, "status.lastAppliedRevision") == dig(infra, "status.lastAppliedRevision") == artifact["revision"]
    created = {n: kube.get(CONFIGMAP, n, namespace)["metadata"]["creationTimestamp"] for n in ("infra", "apps")}
    assert created["infra"] <= created["apps"]
