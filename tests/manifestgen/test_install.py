"""manifestgen.install: the install manifests generated from InstallOptions.

Golden files live in tests/manifestgen/golden/; regenerate them on purpose only:
``make golden``. The CRDs' bodies are left out of the golden
files (they are manifestgen.crds's output, tested there); which CRDs are installed, and their labels, are not.
"""
from __future__ import annotations

import functools
from pathlib import Path

import pytest
import yaml

from controllers.api import kinds
from manifestgen import crds
from manifestgen.install import GEN_WARNING, PART_OF, Manifest, dump_documents, generate
from manifestgen.options import LOG_LEVELS, InstallOptions
from tests.golden import assert_golden

GOLDEN = Path(__file__).parent / "golden"
VERSION = "0.1.0"  # pinned so that releases do not churn the golden files

CUSTOM = dict(
    version=VERSION,
    namespace="gitops-system",
    components_extra=list(kinds.COMPONENTS_EXTRA),
    registry="registry.example.com:5000/platform",
    image_pull_secret="regcred",
    watch_all_namespaces=False,
    log_level="debug",
    cluster_domain="k8s.internal",
    toleration_keys=["node.example.com/controllers"],
)


def by_kind(manifest: Manifest, kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in manifest.objects if o["kind"] == kind}


def manager(deployment: dict) -> dict:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


def without_crd_bodies(manifest: Manifest) -> str:
    objects = [
        {k: o[k] for k in ("apiVersion", "kind", "metadata")} if o["kind"] == "CustomResourceDefinition" else o
        for o in manifest.objects
    ]
    comments = manifest.yaml.split("apiVersion:", 1)[0].splitlines()
    return dump_documents(objects, "\n".join(line for line in comments if line.startswith("#")))


UI = dict(version=VERSION, components_extra=["ui"])
CASES = {"default": dict(version=VERSION), "custom": CUSTOM, "ui": UI}
#: the cases with a golden file of the whole install (the ui's golden file holds only what the ui adds)
FULL_GOLDEN = ("custom", "default")


@functools.cache
def generated(case: str) -> Manifest:
    """generate() of a named case, once per session (tests must not mutate the result)."""
    return generate(InstallOptions(**CASES[case]))


@pytest.fixture(params=sorted(CASES))
def manifest(request) -> Manifest:
    return generated(request.param)


@pytest.mark.parametrize("name", FULL_GOLDEN)
def test_golden(name):
    text = without_crd_bodies(generated(name))
    assert_golden(GOLDEN / f"install-{name}.yaml", text)


def test_yaml_is_the_objects_as_documents(manifest):
    assert manifest.yaml.startswith("---\n" + GEN_WARNING + "\n")
    assert "# Components: " in manifest.yaml.split("apiVersion:", 1)[0]
    assert list(yaml.safe_load_all(manifest.yaml)) == manifest.objects
    assert manifest.yaml.count("\n---\n") + 1 == len(manifest.objects)


def test_generation_is_deterministic_and_hash_tracks_content():
    first, second = generated("default"), generate(InstallOptions(version=VERSION))
    assert first.yaml == second.yaml and first.content_hash == second.content_hash
    assert len(first.content_hash) == 64
    assert generate(InstallOptions(version=VERSION, log_level="debug")).content_hash != first.content_hash


def test_objects_are_in_apply_order(manifest):
    order = ["Namespace", "ResourceQuota", "CustomResourceDefinition", "ServiceAccount", "ClusterRole",
             "ClusterRoleBinding", "Service", "Deployment", "NetworkPolicy"]
    ranks = [order.index(o["kind"]) for o in manifest.objects]
    assert ranks == sorted(ranks)
    assert manifest.objects[0]["kind"] == "Namespace"


def test_every_object_carries_the_fluxpy_labels(manifest):
    namespace = manifest.objects[0]["metadata"]["name"]
    for obj in manifest.objects:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == PART_OF, obj["metadata"]["name"]
        assert labels["app.kubernetes.io/instance"] == namespace
        assert labels["app.kubernetes.io/version"] == "v" + VERSION
        if obj["kind"] == "Deployment":
            pod_labels = obj["spec"]["template"]["metadata"]["labels"]
            assert pod_labels["app.kubernetes.io/part-of"] == PART_OF
            assert pod_labels["app.kubernetes.io/component"] == obj["metadata"]["name"]
            # the selector stays what it always was: it is immutable
            assert obj["spec"]["selector"] == {"matchLabels": {"app": obj["metadata"]["name"]}}


def test_namespaced_objects_are_in_the_install_namespace(manifest):
    namespace = manifest.objects[0]["metadata"]["name"]
    cluster_scoped = {"Namespace", "CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding"}
    for obj in manifest.objects:
        assert obj["metadata"].get("namespace") == (None if obj["kind"] in cluster_scoped else namespace)


def test_each_component_gets_its_crds_account_and_deployment():
    options = InstallOptions(**CUSTOM)
    manifest = generated("custom")
    installed = by_kind(manifest, "CustomResourceDefinition")
    assert sorted(installed) == sorted(c["metadata"]["name"] for c in crds.crd_manifests(options.all_components))
    for component in options.all_components:
        for crd in crds.crd_manifests([component]):
            labels = installed[crd["metadata"]["name"]]["metadata"]["labels"]
            assert labels["app.kubernetes.io/component"] == component
            assert installed[crd["metadata"]["name"]]["spec"] == crd["spec"]
    assert sorted(by_kind(manifest, "ServiceAccount")) == sorted(options.all_components)
    assert sorted(by_kind(manifest, "Deployment")) == sorted(options.all_components)


def test_only_the_chosen_components_are_installed():
    manifest = generate(InstallOptions(version=VERSION, components=["source-controller", "kustomize-controller"]))
    assert sorted(by_kind(manifest, "Deployment")) == ["kustomize-controller", "source-controller"]
    crd_groups = {c["spec"]["group"] for c in by_kind(manifest, "CustomResourceDefinition").values()}
    assert crd_groups == {"source.toolkit.fluxcd.io", "kustomize.toolkit.fluxcd.io"}
    # without notification-controller nobody receives events: the flag is present but empty, as in Flux
    assert "--events-addr=" in manager(by_kind(manifest, "Deployment")["source-controller"])["args"]
    assert "webhook-receiver" not in by_kind(manifest, "Service")


def test_deployments_use_existing_service_accounts(manifest):
    accounts = by_kind(manifest, "ServiceAccount")
    for name, deployment in by_kind(manifest, "Deployment").items():
        assert deployment["spec"]["template"]["spec"]["serviceAccountName"] in accounts, name


def test_rbac_references_exist(manifest):
    namespace = manifest.objects[0]["metadata"]["name"]
    roles = by_kind(manifest, "ClusterRole")
    accounts = by_kind(manifest, "ServiceAccount")
    bindings = by_kind(manifest, "ClusterRoleBinding")
    ui = {f"ui-impersonate-{namespace}"} if "ui" in accounts else set()
    assert set(bindings) == {f"crd-controller-{namespace}", f"cluster-reconciler-{namespace}"} | ui
    for name, binding in bindings.items():
        role = binding["roleRef"]["name"]
        assert role in roles or role == "cluster-admin", name
        for subject in binding["subjects"]:
            assert subject["kind"] == "ServiceAccount" and subject["namespace"] == namespace
            assert subject["name"] in accounts, (name, subject)
    assert {s["name"] for s in bindings[f"crd-controller-{namespace}"]["subjects"]} == set(accounts) - {"ui"}
    assert {s["name"] for s in bindings[f"cluster-reconciler-{namespace}"]["subjects"]} == {
        "kustomize-controller", "helm-controller"}


def test_controller_role_covers_every_api_group():
    groups = {k.group for c in [*kinds.COMPONENTS, *kinds.COMPONENTS_EXTRA] for k in kinds.kinds_of_component(c)}
    roles = by_kind(generated("default"), "ClusterRole")
    owned = {g for rule in roles["crd-controller-flux-system"]["rules"] if rule.get("verbs") == ["*"]
             for g in rule["apiGroups"]}
    assert owned == groups
    assert set(roles["flux-view-flux-system"]["rules"][0]["apiGroups"]) == groups
    assert roles["flux-view-flux-system"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"
    assert set(roles["flux-edit-flux-system"]["rules"][0]["apiGroups"]) == groups


def test_services_select_deployments_and_target_named_ports(manifest):
    deployments = by_kind(manifest, "Deployment")
    for name, service in by_kind(manifest, "Service").items():
        app = service["spec"]["selector"]["app"]
        assert app in deployments, name
        port_names = {p["name"] for p in manager(deployments[app])["ports"]}
        for port in service["spec"]["ports"]:
            assert port["port"] == (443 if name == "ui" else 80) and port["targetPort"] in port_names, name
    services = by_kind(manifest, "Service")
    assert services["source-controller"]["spec"]["ports"][0]["targetPort"] == "http"
    assert services["webhook-receiver"]["spec"]["ports"][0]["targetPort"] == "http-webhook"


def test_deployment_shape():
    deployments = by_kind(generated("default"), "Deployment")
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        container = manager(deployment)
        assert container["image"] == "ghcr.io/fluxpy/fluxpy-controllers:v0.1.0"
        assert container["command"] == ["python", "-m", "controllers", name]
        assert {"--watch-all-namespaces=true", "--log-level=info", "--log-encoding=json",
                "--enable-leader-election"} <= set(container["args"])
        assert container["env"][0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.namespace"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http-prom"] == 8080 and ports["healthz"] == 9440
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "healthz"}
        security = container["securityContext"]
        assert security["runAsNonRoot"] and security["readOnlyRootFilesystem"]
        assert not security["allowPrivilegeEscalation"]
        assert security["capabilities"] == {"drop": ["ALL"]}
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
        assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    source = manager(deployments["source-controller"])
    assert source["args"][0] == "--events-addr=http://notification-controller.$(RUNTIME_NAMESPACE).svc.cluster.local./"
    assert "--storage-path=/data" in source["args"]
    assert "--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.cluster.local." in source["args"]
    assert deployments["source-controller"]["spec"]["strategy"] == {"type": "Recreate"}
    assert not any(a.startswith("--events-addr") for a in manager(deployments["notification-controller"])["args"])


def test_custom_options_reach_every_deployment():
    manifest = generated("custom")
    for deployment in by_kind(manifest, "Deployment").values():
        pod = deployment["spec"]["template"]["spec"]
        container = manager(deployment)
        assert container["image"] == "registry.example.com:5000/platform/fluxpy-controllers:v0.1.0"
        assert "--watch-all-namespaces=false" in container["args"]
        assert "--log-level=debug" in container["args"]
        assert pod["imagePullSecrets"] == [{"name": "regcred"}]
        assert pod["tolerations"] == [{"key": "node.example.com/controllers", "operator": "Exists"}]
    source = manager(by_kind(manifest, "Deployment")["source-controller"])
    assert "--storage-adv-addr=source-controller.$(RUNTIME_NAMESPACE).svc.k8s.internal." in source["args"]
    assert by_kind(manifest, "ClusterRole")["crd-controller-gitops-system"]


def test_network_policies_can_be_left_out():
    assert sorted(by_kind(generated("default"), "NetworkPolicy")) == [
        "allow-egress", "allow-scraping", "allow-webhooks"]
    assert not by_kind(generate(InstallOptions(version=VERSION, network_policy=False)), "NetworkPolicy")


@pytest.mark.parametrize("version", ["1.2.3", "v1.2.3"])
def test_image_tag_has_one_v(version):
    options = InstallOptions(version=version)
    assert options.image.endswith(":v1.2.3")
    assert options.image_tag == "v1.2.3"


def test_defaults():
    options = InstallOptions()
    assert options.namespace == "flux-system"
    assert options.components == list(kinds.COMPONENTS)
    assert options.components_extra == []
    assert options.registry == "ghcr.io/fluxpy"
    assert options.watch_all_namespaces and options.network_policy
    assert options.log_level == "info" and options.cluster_domain == "cluster.local"
    assert options.version  # the package version, or 0.1.0 when not installed
    options.validate()


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"components": ["source-controller", "bogus-controller"]}, "unknown component(s) 'bogus-controller'"),
        ({"components_extra": ["image-thing"]}, "valid components are: " + ", ".join(kinds.COMPONENTS)),
        ({"namespace": "Flux_System"}, "invalid namespace 'Flux_System'"),
        ({"namespace": "x" * 64}, "DNS-1123 label"),
        ({"namespace": "-flux"}, "invalid namespace"),
        ({"log_level": "verbose"}, "must be one of: " + ", ".join(LOG_LEVELS)),
        ({"registry": "ghcr.io/ bad"}, "invalid registry"),
        ({"image_pull_secret": "Bad_Secret"}, "invalid image pull secret name"),
        ({"cluster_domain": "cluster..local"}, "invalid cluster domain"),
        ({"toleration_keys": ["bad key"]}, "invalid toleration key"),
        ({"version": "1.0.0+build/7"}, "invalid version"),
        ({"ui_actions": True}, "needs the ui component"),
        ({"components_extra": ["ui-controller"]}, "valid components are: " + ", ".join(
            [*kinds.COMPONENTS, *kinds.COMPONENTS_EXTRA, "ui"])),
    ],
)
def test_validation_errors(changes, message):
    options = InstallOptions(**{"version": VERSION, **changes})
    with pytest.raises(ValueError) as raised:
        options.validate()
    assert message in str(raised.value)
    with pytest.raises(ValueError):
        generate(options)


def test_components_are_deduplicated():
    options = InstallOptions(components=["source-controller"], components_extra=["source-controller"])
    assert options.all_components == ["source-controller"]


# ------------------------------------------------------------------------------------------------------ ui


def ui_objects(manifest: Manifest) -> list[dict]:
    """The objects of the ui component: labelled with it (the cluster-scoped role and the policy too)."""
    return [o for o in manifest.objects if o["metadata"]["labels"].get("app.kubernetes.io/component") == "ui"]


def test_ui_golden_and_nothing_else_changes():
    """The ui adds its own objects; the controllers' objects are exactly those of the default install."""
    ui, default = generated("ui"), generated("default")
    header = "\n".join(line for line in ui.yaml.split("apiVersion:", 1)[0].splitlines() if line.startswith("#"))
    assert header.endswith("# Components: " + ",".join([*kinds.COMPONENTS, "ui"]))
    assert_golden(GOLDEN / "install-ui.yaml", dump_documents(ui_objects(ui), header))
    added = ui_objects(ui)
    assert [o for o in ui.objects if o not in added] == default.objects
    assert sorted((o["kind"], o["metadata"]["name"]) for o in added) == [
        ("ClusterRole", "ui-impersonate-flux-system"), ("ClusterRoleBinding", "ui-impersonate-flux-system"),
        ("Deployment", "ui"), ("NetworkPolicy", "allow-ui"), ("Service", "ui"), ("ServiceAccount", "ui")]


@pytest.mark.parametrize("case", ["default", "custom"])
def test_ui_only_with_components_extra(case):
    assert ui_objects(generated(case)) == []
    assert "ui" not in by_kind(generated(case), "Deployment")


def test_ui_is_an_addon_not_a_controller():
    options = InstallOptions(**UI)
    assert "ui" not in options.all_components  # what install and bootstrap wait for
    assert options.addons == ["ui"] and options.requested == [*kinds.COMPONENTS, "ui"]
    assert InstallOptions(components=["source-controller", "ui"]).addons == ["ui"]
    assert not any(c["metadata"]["labels"]["app.kubernetes.io/component"] == "ui"
                   for c in by_kind(generated("ui"), "CustomResourceDefinition").values())


def test_ui_role_is_impersonation_only():
    manifest = generated("ui")
    role = by_kind(manifest, "ClusterRole")["ui-impersonate-flux-system"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}]
    binding = by_kind(manifest, "ClusterRoleBinding")["ui-impersonate-flux-system"]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                  "name": "ui-impersonate-flux-system"}
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "ui", "namespace": "flux-system"}]
    # bound to nothing else: no read rule, no cluster-admin
    for name, other in by_kind(manifest, "ClusterRoleBinding").items():
        if name != "ui-impersonate-flux-system":
            assert "ui" not in {s["name"] for s in other["subjects"]}, name


@pytest.mark.parametrize("actions", [False, True])
def test_ui_deployment(actions):
    manifest = generate(InstallOptions(**UI, ui_actions=actions))
    deployments = by_kind(manifest, "Deployment")
    deployment = deployments["ui"]
    pod = deployment["spec"]["template"]["spec"]
    container = manager(deployment)
    assert container["image"] == manager(deployments["source-controller"])["image"]
    assert container["command"] == ["python", "-m", "flux_cli", "ui"]
    assert container["args"] == [
        "--in-cluster", "--address=0.0.0.0", "--port=9080",
        "--tls-cert=/etc/fluxpy/ui-tls/tls.crt", "--tls-key=/etc/fluxpy/ui-tls/tls.key",
        "--proxy-ca=/etc/fluxpy/ui-proxy-ca/ca.crt", "--flux-namespace=flux-system",
        *(["--allow-actions"] if actions else [])]
    assert container["ports"] == [{"name": "https", "containerPort": 9080, "protocol": "TCP"}]
    assert container["readinessProbe"] == container["livenessProbe"] == {"tcpSocket": {"port": "https"}}
    assert pod["serviceAccountName"] == "ui"
    assert "annotations" not in deployment["spec"]["template"]["metadata"]  # no metrics to scrape
    assert container["securityContext"]["readOnlyRootFilesystem"] and container["securityContext"]["runAsNonRoot"]
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    for volume, secret, path in [("tls", "ui-tls", "/etc/fluxpy/ui-tls"),
                                 ("proxy-ca", "ui-proxy-ca", "/etc/fluxpy/ui-proxy-ca")]:
        assert mounts[volume] == {"name": volume, "mountPath": path, "readOnly": True}
        assert volumes[volume]["secret"] == {"secretName": secret, "defaultMode": 0o440}
    assert not any(o["kind"] == "Secret" for o in manifest.objects), "manifestgen generates no Secret"
    service = by_kind(manifest, "Service")["ui"]
    assert service["spec"]["selector"] == {"app": "ui"}
    assert service["spec"]["ports"] == [{"name": "https", "protocol": "TCP", "port": 443, "targetPort": "https"}]


def test_ui_follows_the_install_namespace():
    manifest = generate(InstallOptions(**{**CUSTOM, "components_extra": ["ui"]}))
    container = manager(by_kind(manifest, "Deployment")["ui"])
    assert "--flux-namespace=gitops-system" in container["args"]
    assert container["image"] == "registry.example.com:5000/platform/fluxpy-controllers:v0.1.0"
    assert by_kind(manifest, "ClusterRole")["ui-impersonate-gitops-system"]


def test_ui_network_policy():
    policy = by_kind(generated("ui"), "NetworkPolicy")["allow-ui"]
    assert policy["spec"] == {
        "podSelector": {"matchLabels": {"app": "ui"}},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [{"namespaceSelector": {}}], "ports": [{"protocol": "TCP", "port": 9080}]}],
    }
    assert not by_kind(generate(InstallOptions(**UI, network_policy=False)), "NetworkPolicy")


@pytest.mark.integration
def test_apiserver_accepts_every_object(kube, namespace, flux_crds):
    """Server-side apply dry-run of the whole install (namespace and CRDs already exist)."""
    manifest = generate(InstallOptions(namespace=namespace, components_extra=[*kinds.COMPONENTS_EXTRA, "ui"]))
    for obj in manifest.objects:
        applied = kube.apply(obj, field_manager="fluxpy", dry_run=True)
        assert applied["metadata"]["name"] == obj["metadata"]["name"]
        assert applied["metadata"]["labels"]["app.kubernetes.io/part-of"] == PART_OF
