"""Health: kstatus rules per kind, Flux's Job rule, healthCheckExprs in CEL, and waiting against the apiserver
(a Deployment made Ready by patching its status, as Flux's tests do: there is no kubelet)."""
from __future__ import annotations

import threading
import time

import pytest

from controllers.api.builtin import DEPLOYMENT, NAMESPACE
from controllers.api.kinds import kind_by_name
from controllers.lib.health import (
    CURRENT, FAILED, IN_PROGRESS, NOT_FOUND, TERMINATING, UNKNOWN, HealthCheckFailed, HealthResult,
    InvalidCELExpression, ObjectStatus, StatusReader, check_health, compile_health_check_exprs, compute_status,
    health_check_refs, stage_waiter,
)
from controllers.runtime.apply import ObjectRef, ResourceManager

KS = kind_by_name("kustomization")


def deployment(spec_replicas=1, generation=1, **status) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "generation": generation},
            "spec": {"replicas": spec_replicas, "progressDeadlineSeconds": 600}, "status": status}


READY_DEPLOYMENT = dict(observedGeneration=1, replicas=1, updatedReplicas=1, readyReplicas=1, availableReplicas=1,
                        conditions=[{"type": "Available", "status": "True"},
                                    {"type": "Progressing", "status": "True", "reason": "NewReplicaSetAvailable"}])


@pytest.mark.parametrize("obj, expected", [
    (deployment(), (IN_PROGRESS, "Replicas: 0/1")),
    (deployment(**READY_DEPLOYMENT), (CURRENT, "Deployment is available. Replicas: 1")),
    (deployment(generation=2, **READY_DEPLOYMENT),
     (IN_PROGRESS, "Deployment generation is 2, but latest observed generation is 1")),
    (deployment(**{**READY_DEPLOYMENT, "conditions": [{"type": "Progressing", "status": "False",
                                                       "reason": "ProgressDeadlineExceeded"}]}),
     (FAILED, "Progress deadline exceeded")),
    (deployment(spec_replicas=0, observedGeneration=1, conditions=READY_DEPLOYMENT["conditions"]),
     (CURRENT, "Deployment is available. Replicas: 0")),
    ({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"generation": 1},
      "spec": {"replicas": 2}, "status": {"observedGeneration": 1, "replicas": 2, "readyReplicas": 1}},
     (IN_PROGRESS, "Ready: 1/2")),
    ({"apiVersion": "apps/v1", "kind": "DaemonSet", "metadata": {"generation": 1}, "status": {}},
     (IN_PROGRESS, "DaemonSet status.observedGeneration not found")),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "status": {"phase": "Running", "containerStatuses": [
        {"name": "app", "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}},
     (FAILED, "Containers in CrashLoop state: app")),
    ({"apiVersion": "v1", "kind": "Pod", "metadata": {}, "status": {"phase": "Running", "conditions": [
        {"type": "Ready", "status": "True"}]}}, (CURRENT, "Pod is Ready")),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "spec": {}, "status": {"startTime": "x", "active": 1}},
     (IN_PROGRESS, "Job in progress. success:0, active: 1, failed: 0")),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "spec": {}, "status": {"succeeded": 1, "conditions": [
        {"type": "Complete", "status": "True"}]}}, (CURRENT, "Job Completed. succeeded: 1/1")),
    ({"apiVersion": "batch/v1", "kind": "Job", "metadata": {}, "spec": {"backoffLimit": 0},
      "status": {"failed": 1, "conditions": [{"type": "Failed", "status": "True"}]}},
     (FAILED, "Job Failed. failed: 1/1")),
    ({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {}, "status": {"phase": "Pending"}},
     (IN_PROGRESS, "PVC is not Bound. phase: Pending")),
    ({"apiVersion": "v1", "kind": "Service", "metadata": {}, "spec": {"type": "LoadBalancer"}},
     (IN_PROGRESS, "ClusterIP not set. Service type: LoadBalancer")),
    ({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition", "metadata": {},
      "status": {"conditions": [{"type": "Established", "status": "True"}]}}, (CURRENT, "CRD is established")),
    ({"apiVersion": "v1", "kind": "Namespace", "metadata": {"deletionTimestamp": "2024-01-01T00:00:00Z"}},
     (TERMINATING, "Resource scheduled for deletion")),
    ({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {}}, (CURRENT, "Resource is always ready")),
    ({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {"generation": 3}, "status": {
        "observedGeneration": 3, "conditions": [{"type": "Ready", "status": "False", "message": "waiting for db"}]}},
     (IN_PROGRESS, "waiting for db")),
    ({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {}, "status": {"conditions": [
        {"type": "Stalled", "status": "True", "message": "bad spec"}]}}, (FAILED, "bad spec")),
    ({"apiVersion": "x.io/v1", "kind": "Thing", "metadata": {}}, (CURRENT, "Resource is current")),
])
def test_kstatus_rules(obj, expected):
    assert compute_status(obj) == expected


def test_health_result_messages_have_flux_shape():
    web, db = ObjectRef("apps", "Deployment", "apps", "web", "v1"), ObjectRef("apps", "StatefulSet", "apps", "db", "v1")
    timed_out = HealthResult([ObjectStatus(web, IN_PROGRESS, "Ready: 0/1"), ObjectStatus(db, CURRENT, "ok")],
                             elapsed=30.5, timed_out=True)
    assert timed_out.message == "timeout waiting for: [Deployment/apps/web status: 'InProgress': Ready: 0/1]"
    with pytest.raises(HealthCheckFailed) as failure:
        timed_out.raise_for_health()
    assert failure.value.reason == "HealthCheckFailed"
    assert failure.value.message == f"health check failed after 30.5s: {timed_out.message}"
    early = HealthResult([ObjectStatus(web, FAILED, "Progress deadline exceeded"), ObjectStatus(db, IN_PROGRESS)])
    assert early.message == ("failed early due to stalled resources: "
                             "[Deployment/apps/web status: 'Failed': Progress deadline exceeded]")
    HealthResult([ObjectStatus(web, CURRENT)]).raise_for_health()


def test_health_check_refs():
    ks = {"metadata": {"name": "apps", "namespace": "flux-system"},
          "spec": {"healthChecks": [{"kind": "Deployment", "name": "web", "namespace": "apps"},
                                    {"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "db"},
                                    {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                                     "name": "apps"}]}}
    assert [(r.api_version, r.subject) for r in health_check_refs(ks)] == [
        ("apps/v1", "Deployment/apps/web"), ("helm.toolkit.fluxcd.io/v2", "HelmRelease/flux-system/db")]
    applied = [ObjectRef("", "ConfigMap", "apps", "c", "v1"),
               ObjectRef("kustomize.toolkit.fluxcd.io", "Kustomization", "flux-system", "apps", "v1")]
    assert health_check_refs({**ks, "spec": {"wait": True}}, applied) == applied[:1], "never waits on itself"


def test_health_check_exprs_are_validated_up_front():
    with pytest.raises(InvalidCELExpression) as failure:
        compile_health_check_exprs([{"apiVersion": "x.io/v1", "kind": "Thing", "current": "status.ready =="}])
    assert failure.value.reason == "InvalidCELExpression"
    assert failure.value.message.startswith("failed to create custom status evaluator for healthchecks[0]: "
                                            "failed to parse the expression Current: ")
    with pytest.raises(InvalidCELExpression, match="expression Current not specified"):
        compile_health_check_exprs([{"apiVersion": "x.io/v1", "kind": "Thing", "failed": "true"}])
    with pytest.raises(InvalidCELExpression, match=r"duplicate custom health check for GroupKind Thing.x.io at "
                                                   r"healthchecks\[1\]"):
        compile_health_check_exprs([{"apiVersion": "x.io/v1", "kind": "Thing", "current": "true"},
                                    {"apiVersion": "x.io/v2", "kind": "Thing", "current": "true"}])


def test_cel_evaluator_order_and_generation():
    evaluator = compile_health_check_exprs([{
        "apiVersion": "x.io/v1", "kind": "Thing", "current": "status.phase == 'Ready'",
        "inProgress": "status.phase == 'Ready' && status.?pending.orValue(false)",
        "failed": "status.phase.lowerAscii() == 'failed'"}])[("x.io", "Thing")]
    def thing(**status):
        return {"metadata": {"generation": 2}, "status": {"observedGeneration": 2, **status}}

    assert evaluator.evaluate(thing(phase="Ready"))[0] == CURRENT
    assert evaluator.evaluate(thing(phase="Ready", pending=True))[0] == IN_PROGRESS, "inProgress is checked first"
    assert evaluator.evaluate(thing(phase="FAILED"))[0] == FAILED
    assert evaluator.evaluate(thing(phase="Starting"))[0] == IN_PROGRESS
    assert evaluator.evaluate({"metadata": {"generation": 3}, "status": {"observedGeneration": 2, "phase": "Ready"}}
                              )[0] == IN_PROGRESS


# --- against the apiserver ------------------------------------------------------------------------------


def web_deployment(namespace: str) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                     "template": {"metadata": {"labels": {"app": "web"}},
                                  "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}}


def test_a_deployment_becomes_healthy_when_its_status_says_so(kube, namespace):
    ResourceManager(kube).apply_all_staged([web_deployment(namespace)])
    reader = StatusReader(kube)
    web = ObjectRef("apps", "Deployment", namespace, "web", "v1")
    missing = ObjectRef("apps", "Deployment", namespace, "nope", "v1")

    result = check_health(reader, [web, missing], timeout=0.5, interval=0.1)
    assert result.timed_out and not result.healthy
    assert result.message == (f"timeout waiting for: [Deployment/{namespace}/web status: 'InProgress': "
                              f"Replicas: 0/1, Deployment/{namespace}/nope status: 'NotFound': Resource not found]")

    def become_ready():
        time.sleep(0.5)
        generation = kube.get(DEPLOYMENT, "web", namespace)["metadata"]["generation"]
        kube.patch(DEPLOYMENT, "web", {"status": {**READY_DEPLOYMENT, "observedGeneration": generation}}, namespace,
                   subresource="status")

    threading.Thread(target=become_ready).start()
    result = check_health(reader, [web], timeout=15, interval=0.5)
    assert result.healthy and result.elapsed >= 0.5
    assert result.statuses == [ObjectStatus(web, CURRENT, "Deployment is available. Replicas: 1")]


def test_health_check_exprs_judge_custom_resources(kube, namespace, flux_crds):
    kube.create(KS, {"apiVersion": KS.api_version, "kind": KS.kind, "metadata": {"name": "app", "namespace": namespace},
                     "spec": {"interval": "1m", "prune": True, "sourceRef": {"kind": "GitRepository", "name": "r"}}})
    app = ObjectRef(KS.group, KS.kind, namespace, "app", KS.version)
    reader = StatusReader(kube, compile_health_check_exprs([{
        "apiVersion": KS.api_version, "kind": KS.kind,
        "current": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'True')",
        "failed": "status.conditions.filter(e, e.type == 'Ready').all(e, e.status == 'False')"}]))

    never = check_health(reader, [app], timeout=0.3, interval=0.1)
    assert never.statuses[0].status == IN_PROGRESS, "observedGeneration -1: not reconciled yet"
    generation = kube.get(KS, "app", namespace)["metadata"]["generation"]
    kube.patch(KS, "app", {"status": {"observedGeneration": generation}}, namespace, subresource="status")
    unknown = check_health(reader, [app], timeout=0.3, interval=0.1)
    assert unknown.statuses[0].status == UNKNOWN, "no conditions: the expression cannot be evaluated"
    assert unknown.message == (f"timeout waiting for: [Kustomization/{namespace}/app status: 'Unknown': failed to "
                               "evaluate the CEL expression 'status.conditions.filter(e, e.type == 'Ready')"
                               ".all(e, e.status == 'False')': Key not found in map : \"conditions\"]")

    def set_ready(status: str) -> None:
        kube.patch(KS, "app", {"status": {"observedGeneration": generation, "conditions": [
            {"type": "Ready", "status": status, "reason": "Test", "message": "", "observedGeneration": generation,
             "lastTransitionTime": "2024-01-01T00:00:00Z"}]}}, namespace, subresource="status")

    set_ready("False")
    failed = check_health(reader, [app], timeout=10, interval=0.1, fail_fast=True)
    assert not failed.timed_out and failed.message == \
        f"failed early due to stalled resources: [Kustomization/{namespace}/app status: 'Failed']"
    set_ready("True")
    assert check_health(reader, [app], timeout=10).healthy
    assert check_health(StatusReader(kube), [ObjectRef("", "ConfigMap", namespace, "absent", "v1")],
                        timeout=0).statuses[0].status == NOT_FOUND


def test_stages_can_wait_on_kstatus(kube):
    import uuid

    name = f"kstatus-{uuid.uuid4().hex[:6]}"
    manager = ResourceManager(kube, waiter=stage_waiter(StatusReader(kube)))
    try:
        changes = manager.apply_all_staged([{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}},
                                            {"apiVersion": "v1", "kind": "ConfigMap",
                                             "metadata": {"name": "c", "namespace": name}}])
        assert str(changes) == f"Namespace/{name} created\nConfigMap/{name}/c created"
    finally:
        kube.delete(NAMESPACE, name)
