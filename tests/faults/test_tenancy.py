"""Tenancy is enforced by the apiserver (issue 14): a tenant's Kustomization that writes outside its namespace,
escalates its RBAC or refers to another namespace is refused, with one clear condition, and nothing is written.

The tenant's service accounts are granted their own namespace only, by a real Role and RoleBinding (core
resources, and Roles/RoleBindings without ``bind`` or ``escalate``); the controller impersonates them
(``spec.serviceAccountName``, else ``--default-service-account``), so the real apiserver's RBAC and its
escalation prevention decide; ``--no-cross-namespace-refs`` is the controller's own check (Flux's AccessDenied,
Stalled). As in :mod:`tests.faults.test_corpus`, every case runs at once on one controller, each its own
Kustomization on its own source, from a good revision applied: its bad revision (or spec) must give Ready=False
with the expected reason and a message naming the object, namespace or reference refused; nothing of it is
written, in the tenant's namespace either (the revision is validated as a whole by the server-side dry run
before anything is applied), nor in the other namespace nor at the cluster scope; the good revision's
objects, inventory and ``lastAppliedRevision`` are kept; and a well-behaved tenant Kustomization on the same
controller still applies its new revision (no worker is wedged).

Not refused, as in Flux: a ``dependsOn`` in another namespace (``--no-cross-namespace-refs`` covers sources).
"""
from __future__ import annotations

import dataclasses
import uuid

import pytest

from controllers.api.builtin import CONFIGMAP, SECRET, SERVICE_ACCOUNT
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig
from controllers.api.source import GIT_REPOSITORY, OCI_REPOSITORY
from controllers.api.types import ResourceType
from controllers.runtime.apply import apply_staged
from controllers.runtime.kube import KubeError
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture
from servers.waiting import ready_with

from ..controllers.kustomize.test_reconciler import configmap, ks_controller, ks_object  # noqa: F401 - fixture
from ..controllers.kustomize.test_reconciler_tenancy import grant_namespace, other_namespace  # noqa: F401
from .conftest import record
from .corpus import Case
from .test_corpus import NAME_LABEL, applied_objects, check_case, wait_all

RBAC = "rbac.authorization.k8s.io"
ROLE_BINDING = ResourceType(RBAC, "v1", "RoleBinding", "rolebindings")
CLUSTER_ROLE_BINDING = ResourceType(RBAC, "v1", "ClusterRoleBinding", "clusterrolebindings", namespaced=False)
#: the tenant's grant in its own namespace: no ``bind``/``escalate``, so RBAC's escalation prevention applies
TENANT_RULES = [{"apiGroups": [""], "resources": ["*"], "verbs": ["*"]},
                {"apiGroups": [RBAC], "resources": ["roles", "rolebindings"],
                 "verbs": ["get", "list", "watch", "create", "update", "patch", "delete"]}]


@dataclasses.dataclass
class Refusal(Case):
    account: str | None = "deployer"
    """the Kustomization's ``spec.serviceAccountName`` (None: the controller's default)"""


def refusal(name: str, reason: str, message: list[str], **kw) -> Refusal:
    return Refusal(name=name, group="tenancy", about=name, reason=reason, message=message, **kw)


def service_account(namespace: str, account: str) -> str:
    return f"system:serviceaccount:{namespace}:{account}"


def make_tenant(kube, namespace: str, *accounts: str) -> None:
    """Service accounts granted :data:`TENANT_RULES` in ``namespace`` (a Role and its RoleBinding)."""
    for account in accounts:
        kube.create(SERVICE_ACCOUNT, {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account}},
                    namespace)
    apply_staged(kube, [
        {"apiVersion": f"{RBAC}/v1", "kind": "Role", "metadata": {"name": "tenant", "namespace": namespace},
         "rules": TENANT_RULES},
        {"apiVersion": f"{RBAC}/v1", "kind": "RoleBinding", "metadata": {"name": "tenant", "namespace": namespace},
         "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "tenant"},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace} for account in accounts]},
    ])


def binding(kind: str, name: str, namespace: str, subject_namespace: str) -> str:
    """A ClusterRoleBinding (``namespace`` empty) or RoleBinding of cluster-admin to the tenant's deployer."""
    where = f"  namespace: {namespace}\n" if namespace else ""
    return (f"apiVersion: {RBAC}/v1\nkind: {kind}\nmetadata:\n  name: {name}\n{where}"
            f"roleRef: {{apiGroup: {RBAC}, kind: ClusterRole, name: cluster-admin}}\n"
            f"subjects: [{{kind: ServiceAccount, name: deployer, namespace: {subject_namespace}}}]\n")


def good_files(name: str, namespace: str, version: int) -> dict[str, str]:
    return {"good.yaml": configmap(name, namespace, v=str(version))}


def written_elsewhere(kube, name: str, namespace: str, other: str) -> list[str]:
    """What carries the Kustomization's owner label outside the ConfigMaps etc. of its own namespace (which
    :func:`tests.faults.test_corpus.applied_objects` covers): the other namespace, RBAC bindings."""
    selector, found = f"{NAME_LABEL}={name}", []
    for rt, ns in ((CONFIGMAP, other), (SECRET, other), (ROLE_BINDING, other), (ROLE_BINDING, namespace),
                   (CLUSTER_ROLE_BINDING, None)):
        found += [f"{rt.kind}/{ns or ''}/{o['metadata']['name']}"
                  for o in kube.list(rt, ns, label_selector=selector)["items"]]
    return found


def run_refusals(kube, namespace: str, other: str, ks_controller, sources, cases: list[Refusal],
                 **controller_options) -> None:
    """Apply each case's good revision, give it its bad input, check the refusal (see the module docstring),
    then check a well-behaved Kustomization still applies a new revision."""
    ks_controller(controller={"concurrent": 4}, **controller_options)
    well_behaved = refusal("well-behaved", "", [])
    for case in [*cases, well_behaved]:
        sources.publish(namespace, case.name, good_files(case.name, namespace, 1))
        spec = {"serviceAccountName": case.account} if case.account else {}
        kube.create(KUSTOMIZATION, ks_object(case.name, namespace, source=case.name, retryInterval="2s", **spec),
                    namespace)
    before = wait_all(kube, namespace, {c.name: ready_with("True") for c in [*cases, well_behaved]})
    unready = {name: obj for name, obj in before.items() if isinstance(obj, str)}
    assert not unready, f"the good revision is not applied: {unready}"
    good_objects = {c.name: applied_objects(kube, namespace, c) for c in cases}

    for case in cases:
        if case.spec:
            kube.patch(KUSTOMIZATION, case.name, {"spec": case.spec}, namespace)
        sources.publish(namespace, case.name, {**good_files(case.name, namespace, 2), **(case.files or {})})
    broken = wait_all(kube, namespace, {c.name: ready_with("False", c.reason) for c in cases})
    failures = {}
    for case in cases:
        wrong = check_case(kube, namespace, case, broken[case.name], before[case.name], good_objects[case.name])
        wrong += [f"written: {w}" for w in written_elsewhere(kube, case.name, namespace, other)]
        if wrong:
            failures[case.name] = wrong
    record("tenancy refusals enforced / tried", (len(cases) - len(failures), len(cases)))

    revision = sources.publish(namespace, well_behaved.name, good_files(well_behaved.name, namespace, 2))["revision"]
    after = wait_all(kube, namespace, {well_behaved.name: lambda o: ready_with("True")(o) and dig(
        o, "status.lastAppliedRevision") == revision})[well_behaved.name]
    if isinstance(after, str) or kube.get(CONFIGMAP, well_behaved.name, namespace)["data"] != {"v": "2"}:
        failures[well_behaved.name] = [f"its new revision is not applied: {after}"]
    assert not failures, "\n".join(f"{name}: {'; '.join(wrong)}" for name, wrong in sorted(failures.items()))


def test_a_tenant_is_refused_what_lies_outside_its_namespace(kube, control_plane, namespace, other_namespace,
                                                              ks_controller, artifact_sources):
    ns, other = namespace, other_namespace
    make_tenant(kube, ns, "deployer", "tenant")
    deployer, tenant = service_account(ns, "deployer"), service_account(ns, "tenant")
    # what a cross-namespace source or kubeconfig would apply, were it used: objects of the other namespace,
    # applied as a user granted there
    shared = {"shared.yaml": configmap("shared", other)}
    artifact_sources.publish(other, "shared", shared)
    artifact_sources.publish(other, "shared", shared, kind=OCI_REPOSITORY.kind)
    remote_user = f"other-admin-{uuid.uuid4().hex[:6]}"
    grant_namespace(kube, other, {"kind": "User", "name": remote_user, "apiGroup": RBAC})
    kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "remote"},
                         "stringData": {"value": control_plane.kubeconfig_for(remote_user).read_text()}}, other)

    def forbidden(name: str, obj: str, user: str, resource: str, where: str) -> list[str]:
        return [f"{obj} dry-run failed (Forbidden)", f'{resource} "{name}" is forbidden: User "{user}" cannot patch '
                f'resource "{resource.split(".")[0]}"', where]

    in_other = f'in the namespace "{other}"'
    cross = "cross-namespace references have been blocked"
    cases = [
        # an object of another namespace in the revision: the whole revision refused, the tenant's own new
        # object (``mine``) and its good ConfigMap at v=2 included
        refusal("foreign-object", "ReconciliationFailed",
                forbidden("foreign-object-theirs", f"ConfigMap/{other}/foreign-object-theirs", deployer, "configmaps",
                          in_other),
                files={"theirs.yaml": configmap("foreign-object-theirs", other),
                       "mine.yaml": configmap("foreign-object-mine", ns)}),
        refusal("target-namespace", "ReconciliationFailed",
                forbidden("target-namespace", f"ConfigMap/{other}/target-namespace", deployer, "configmaps",
                          in_other), spec={"targetNamespace": other}),
        # no serviceAccountName: the controller's --default-service-account is impersonated
        refusal("default-account", "ReconciliationFailed",
                forbidden("default-account-theirs", f"ConfigMap/{other}/default-account-theirs", tenant,
                          "configmaps", in_other), account=None,
                files={"theirs.yaml": configmap("default-account-theirs", other),
                       "mine.yaml": configmap("default-account-mine", ns)}),
        refusal("cross-source-git", "AccessDenied", [f"can't access 'GitRepository/{other}/shared', {cross}"],
                stalled=True, spec={"sourceRef": {"kind": GIT_REPOSITORY.kind, "name": "shared", "namespace": other}}),
        refusal("cross-source-oci", "AccessDenied", [f"can't access 'OCIRepository/{other}/shared', {cross}"],
                stalled=True, spec={"sourceRef": {"kind": OCI_REPOSITORY.kind, "name": "shared", "namespace": other}}),
        # the kubeconfig Secret is read from the Kustomization's namespace: the API has no field to say
        # otherwise (a ``namespace`` is pruned by the CRD's schema)
        refusal("kubeconfig-elsewhere", "ReconciliationFailed",
                [f"unable to read KubeConfig secret '{ns}/remote' error: secrets \"remote\" not found"],
                spec={"kubeConfig": {"secretRef": {"name": "remote", "namespace": other}}}),
        # escalation: cluster-admin for the tenant, at the cluster scope or in its own namespace
        refusal("cluster-role-binding", "ReconciliationFailed",
                forbidden("cluster-role-binding-admin", "ClusterRoleBinding/cluster-role-binding-admin", deployer,
                          "clusterrolebindings.rbac.authorization.k8s.io", "at the cluster scope"),
                files={"crb.yaml": binding("ClusterRoleBinding", "cluster-role-binding-admin", "", ns),
                       "mine.yaml": configmap("cluster-role-binding-mine", ns)}),
        refusal("role-binding-admin", "ReconciliationFailed",
                [f"RoleBinding/{ns}/role-binding-admin-rb dry-run failed (Forbidden)",
                 f'rolebindings.rbac.authorization.k8s.io "role-binding-admin-rb" is forbidden: user "{deployer}"',
                 "is attempting to grant RBAC permissions not currently held"],
                files={"rb.yaml": binding("RoleBinding", "role-binding-admin-rb", ns, ns)}),
    ]
    run_refusals(kube, ns, other, ks_controller, artifact_sources, cases, default_service_account="tenant",
                 no_cross_namespace_refs=True)

    # the impersonated tenant still holds no more than its namespace
    for user in (deployer, tenant):
        with pytest.raises(KubeError, match="forbidden"):
            kube.impersonate(user).list(CONFIGMAP, other)
        with pytest.raises(KubeError, match="forbidden"):
            kube.impersonate(user).list(CLUSTER_ROLE_BINDING)


def test_a_missing_default_service_account_is_named(kube, namespace, other_namespace, ks_controller,
                                                     artifact_sources):
    """--default-service-account names an account the tenant's namespace lacks: impersonated all the same (as
    Flux), so the apiserver refuses every write and the condition names the account."""
    make_tenant(kube, namespace, "deployer")
    account = service_account(namespace, "absent")
    case = refusal("unset-account", "ReconciliationFailed",
                   [f"ConfigMap/{namespace}/unset-account dry-run failed (Forbidden)",
                    f'configmaps "unset-account" is forbidden: User "{account}" cannot patch resource "configmaps"',
                    f'in the namespace "{namespace}"'],
                   spec={"serviceAccountName": None})
    run_refusals(kube, namespace, other_namespace, ks_controller, artifact_sources, [case],
                 default_service_account="absent")
