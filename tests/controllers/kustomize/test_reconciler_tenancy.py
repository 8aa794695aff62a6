"""Tenancy: a tenant's Kustomization applies as its service account (impersonation) and the apiserver's RBAC
refuses what lies outside its namespace; --default-service-account; a remote cluster through a kubeconfig in
a Secret (the same apiserver, reached as another user minted by the control plane); cross-namespace sources."""
from __future__ import annotations

import uuid

import pytest

from controllers.api.builtin import CONFIGMAP, NAMESPACE, SECRET, SERVICE_ACCOUNT
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import find_condition
from controllers.runtime.kube import NotFound
from controllers.runtime.apply import apply_staged
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture
from servers.waiting import wait_gone

from .test_reconciler import configmap, ks_controller, ks_object, ready  # noqa: F401 - fixture


@pytest.fixture
def other_namespace(kube):
    name = f"other-{uuid.uuid4().hex[:8]}"
    kube.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    kube.delete(NAMESPACE, name)


def grant_namespace(kube, namespace: str, subject: dict) -> None:
    """Everything in ``namespace`` for ``subject`` (a Role and its RoleBinding)."""
    name = f"{subject['kind'].lower()}-{subject['name'].replace(':', '-')}"
    apply_staged(kube, [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": name, "namespace": namespace},
         "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": name, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
         "subjects": [subject]},
    ])


def _tenant(kube, namespace: str) -> None:
    kube.create(SERVICE_ACCOUNT, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "tenant"}},
                namespace)
    grant_namespace(kube, namespace, {"kind": "ServiceAccount", "name": "tenant", "namespace": namespace})


def _absent(kube, rt, name, namespace) -> bool:
    try:
        kube.get(rt, name, namespace)
    except NotFound:
        return True
    return False


@pytest.mark.parametrize("default_account", [False, True], ids=["serviceAccountName", "default-service-account"])
def test_an_impersonated_tenant_is_refused_outside_its_namespace(kube, namespace, other_namespace, ks_controller,
                                                                 artifact_sources, default_account):
    _tenant(kube, namespace)
    artifact_sources.publish(namespace, "app", {"mine.yaml": configmap("mine", namespace),
                                                "theirs.yaml": configmap("theirs", other_namespace)})
    ks_controller(default_service_account="tenant" if default_account else "")
    spec = {} if default_account else {"serviceAccountName": "tenant"}
    kube.create(KUSTOMIZATION, ks_object("app", namespace, retryInterval="1s", **spec), namespace)
    ks = ready(kube, "app", namespace, status="False", reason="ReconciliationFailed")
    message = find_condition(ks, "Ready")["message"]
    assert f'configmaps "theirs" is forbidden: User "system:serviceaccount:{namespace}:tenant" cannot' in message
    assert f'in the namespace "{other_namespace}"' in message
    assert f"ConfigMap/{namespace}/mine" not in message
    # the whole set is validated first: not even the tenant's own object was applied
    assert _absent(kube, CONFIGMAP, "mine", namespace) and _absent(kube, CONFIGMAP, "theirs", other_namespace)

    artifact_sources.publish(namespace, "app", {"mine.yaml": configmap("mine", namespace)})
    ready(kube, "app", namespace)
    assert kube.get(CONFIGMAP, "mine", namespace)["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/name"] == "app"

    # deleting the Kustomization prunes as the tenant too
    kube.delete(KUSTOMIZATION, "app", namespace)
    wait_gone(kube, KUSTOMIZATION, namespace, "app")
    assert _absent(kube, CONFIGMAP, "mine", namespace)



def test_a_remote_cluster_through_a_kubeconfig_secret(kube, control_plane, namespace, other_namespace,
                                                      ks_controller, artifact_sources):
    user = f"remote-deployer-{uuid.uuid4().hex[:6]}"
    grant_namespace(kube, namespace, {"kind": "User", "name": user, "apiGroup": "rbac.authorization.k8s.io"})
    kubeconfig = control_plane.kubeconfig_for(user).read_text()
    kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "remote"},
                         "stringData": {"value": kubeconfig}}, namespace)
    artifact_sources.publish(namespace, "app", {"mine.yaml": configmap("mine", namespace)})
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, retryInterval="1s",
                                         kubeConfig={"secretRef": {"name": "remote"}}), namespace)
    ks = ready(kube, "app", namespace)
    assert [e["id"] for e in ks["status"]["inventory"]["entries"]] == [f"{namespace}_mine__ConfigMap"]
    kube.get(CONFIGMAP, "mine", namespace)

    # it really is the kubeconfig's user that applies: outside its grant, the apiserver names it
    artifact_sources.publish(namespace, "app", {"mine.yaml": configmap("mine", namespace),
                                                "theirs.yaml": configmap("theirs", other_namespace)})
    ks = ready(kube, "app", namespace, status="False", reason="ReconciliationFailed")
    assert f'configmaps "theirs" is forbidden: User "{user}" cannot' in find_condition(ks, "Ready")["message"]

    # a missing Secret, and a Secret without the key
    kube.patch(KUSTOMIZATION, "app", {"spec": {"kubeConfig": {"secretRef": {"name": "missing"}}}}, namespace)
    ks = ready(kube, "app", namespace, status="False", reason="ReconciliationFailed")
    assert find_condition(ks, "Ready")["message"] == (
        f"unable to read KubeConfig secret '{namespace}/missing' error: secrets \"missing\" not found")
    kube.patch(KUSTOMIZATION, "app", {"spec": {"kubeConfig": {"secretRef": {"name": "remote", "key": "cfg"}}}},
               namespace)
    ks = ready(kube, "app", namespace, status="False", reason="ReconciliationFailed")
    assert find_condition(ks, "Ready")["message"] == (
        f"KubeConfig secret '{namespace}/remote' does not contain a 'cfg' key with a kubeconfig")


def test_kubeconfig_file_references_and_exec_are_dropped():
    from controllers.lib.clients import restrict_kubeconfig

    config = {"clusters": [{"name": "c", "cluster": {"server": "https://x", "certificate-authority": "/etc/ca",
                                                      "insecure-skip-tls-verify": True}}],
              "users": [{"name": "u", "user": {"client-key": "/var/run/secrets/key", "tokenFile": "/token",
                                               "exec": {"command": "steal"}, "token": "t"}}]}
    assert restrict_kubeconfig(config) == {"clusters": [{"name": "c", "cluster": {"server": "https://x"}}],
                                           "users": [{"name": "u", "user": {"token": "t"}}]}
    allowed = restrict_kubeconfig(config, allow_exec=True, allow_insecure_tls=True)
    assert allowed["users"][0]["user"]["exec"] == {"command": "steal"}
    assert allowed["clusters"][0]["cluster"]["insecure-skip-tls-verify"] is True


def test_a_source_in_another_namespace_is_used_when_allowed(kube, namespace, other_namespace, ks_controller,
                                                            artifact_sources):
    artifact = artifact_sources.publish(other_namespace, "shared", {"a.yaml": configmap("a")})
    ks_controller()
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, sourceRef={
        "kind": "GitRepository", "name": "shared", "namespace": other_namespace}), namespace)
    ks = ready(kube, "app", namespace)
    assert ks["status"]["lastAppliedRevision"] == artifact["revision"]
