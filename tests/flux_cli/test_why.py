"""fluxpy why: the chain an object depends on, the failing path and one root cause."""
from __future__ import annotations

import json

from controllers.api.kinds import kind_by_name

GIT = kind_by_name("source git")
KS = kind_by_name("ks")
NOW = "2026-01-01T00:00:00Z"


def make(kube, kind, name, namespace, spec, ready=None, reason="", message=""):
    kube.create(kind, {"apiVersion": kind.api_version, "kind": kind.kind,
                       "metadata": {"name": name, "namespace": namespace}, "spec": spec})
    if ready is not None:
        kube.patch(kind, name, {"status": {"conditions": [{
            "type": "Ready", "status": ready, "reason": reason or ("Succeeded" if ready == "True" else "Failed"),
            "message": message or "ok", "lastTransitionTime": NOW}]}}, namespace, subresource="status")


def ks_spec(source: str, depends_on=()):
    spec = {"interval": "10m", "path": "./", "prune": True, "sourceRef": {"kind": "GitRepository", "name": source}}
    if depends_on:
        spec["dependsOn"] = [{"name": d} for d in depends_on]
    return spec


def test_why_names_the_dependency_sources_auth_failure(fluxpy, kube, kubeconfig, flux_crds, namespace):
    make(kube, GIT, "apps-repo", namespace, {"interval": "1m", "url": "https://example.com/apps"}, "True")
    make(kube, GIT, "infra-repo", namespace, {"interval": "1m", "url": "https://example.com/infra",
                                              "secretRef": {"name": "wrong"}},
         "False", "AuthenticationFailed", "failed to authenticate: invalid username or password")
    make(kube, KS, "infra", namespace, ks_spec("infra-repo"), "False", "ArtifactFailed",
         "Source artifact not found, retrying in 30s")
    make(kube, KS, "apps", namespace, ks_spec("apps-repo", ["infra"]), "False", "DependencyNotReady",
         f"dependency '{namespace}/infra' is not ready")

    res = fluxpy("why", "kustomization/apps", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1, res.stderr
    lines = res.stdout.splitlines()
    assert lines[0].startswith(f"» Kustomization/{namespace}/apps")
    assert any(f"» dependsOn Kustomization/{namespace}/infra" in line for line in lines)
    assert any(f"» source GitRepository/{namespace}/infra-repo" in line for line in lines)
    assert any(f"source GitRepository/{namespace}/apps-repo  ✔ True" in line and "»" not in line for line in lines)
    assert lines[-1] == (f"root cause: GitRepository/{namespace}/infra-repo: AuthenticationFailed: "
                         "failed to authenticate: invalid username or password")

    as_json = fluxpy("why", "ks", "apps", "-n", namespace, "-o", "json", "--kubeconfig", str(kubeconfig))
    assert as_json.exit_code == 1
    doc = json.loads(as_json.stdout)
    assert doc["ready"] is False and doc["rootCause"]["object"] == f"GitRepository/{namespace}/infra-repo"
    assert doc["rootCause"]["reason"] == "AuthenticationFailed"


def test_why_on_a_ready_object_exits_zero(fluxpy, kube, kubeconfig, flux_crds, namespace):
    make(kube, GIT, "repo", namespace, {"interval": "1m", "url": "https://example.com/r"}, "True")
    make(kube, KS, "apps", namespace, ks_spec("repo"), "True")
    res = fluxpy("why", "ks/apps", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stdout + res.stderr
    assert "is Ready" in res.stderr and "root cause" not in res.stdout


def test_why_reports_a_dependency_cycle(fluxpy, kube, kubeconfig, flux_crds, namespace):
    make(kube, GIT, "repo", namespace, {"interval": "1m", "url": "https://example.com/r"}, "True")
    for name, dep in (("a", "b"), ("b", "c"), ("c", "a")):
        make(kube, KS, name, namespace, ks_spec("repo", [dep]), "False", "DependencyNotReady", "waiting")
    res = fluxpy("why", "ks/a", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1
    cycle = " → ".join(f"Kustomization/{namespace}/{n}" for n in ("a", "b", "c", "a"))
    assert res.stdout.splitlines()[-1] == f"root cause: Kustomization/{namespace}/a: DependencyCycle: dependency cycle: {cycle}"


def test_why_missing_dependency_and_bad_input(fluxpy, kube, kubeconfig, flux_crds, namespace):
    make(kube, KS, "apps", namespace, ks_spec("nope"), "False", "ArtifactFailed", "source not found")
    res = fluxpy("why", "ks/apps", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1
    assert res.stdout.splitlines()[-1] == (f"root cause: GitRepository/{namespace}/nope: NotFound: "
                                           f"GitRepository/{namespace}/nope not found")
    missing = fluxpy("why", "ks/ghost", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert missing.exit_code == 2 and "ghost not found" in missing.stderr
    unknown = fluxpy("why", "nosuchkind/x", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert unknown.exit_code == 2 and "unknown kind" in unknown.stderr
    unreachable = fluxpy("why", "ks/apps", "--kubeconfig", "/nonexistent")
    assert unreachable.exit_code == 2 and "does not exist" in unreachable.stderr


def test_why_follows_a_dependency_of_another_kind(fluxpy, kube, kubeconfig, flux_crds, namespace):
    hr, oci = kind_by_name("hr"), kind_by_name("source oci")
    make(kube, GIT, "repo", namespace, {"interval": "1m", "url": "https://example.com/r"}, "True")
    make(kube, oci, "db-chart", namespace, {"interval": "5m", "url": "oci://ghcr.io/org/charts/db",
                                            "ref": {"tag": "1.0.0"}}, "True")
    make(kube, hr, "db", namespace, {"interval": "10m", "chartRef": {"kind": "OCIRepository", "name": "db-chart"}},
         "False", "InstallFailed", "Helm install failed: timed out waiting for the condition")
    spec = ks_spec("repo")
    spec["dependsOn"] = [{"apiVersion": "helm.toolkit.fluxcd.io/v2", "kind": "HelmRelease", "name": "db"}]
    make(kube, KS, "apps", namespace, spec, "False", "DependencyNotReady", "dependency not ready")
    assert kube.get(KS, "apps", namespace)["spec"]["dependsOn"][0]["kind"] == "HelmRelease"  # kept by the schema

    res = fluxpy("why", "ks/apps", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1
    lines = res.stdout.splitlines()
    assert any(f"» dependsOn HelmRelease/{namespace}/db" in line for line in lines)
    assert any(f"chartRef OCIRepository/{namespace}/db-chart  ✔ True" in line for line in lines)
    assert lines[-1] == (f"root cause: HelmRelease/{namespace}/db: InstallFailed: "
                         "Helm install failed: timed out waiting for the condition")


def test_why_follows_an_image_policy_to_its_repository(fluxpy, kube, kubeconfig, flux_crds, namespace):
    """ImagePolicy's imageRepositoryRef names no kind: it is an ImageRepository, and why follows it."""
    repository, policy = kind_by_name("image repository"), kind_by_name("image policy")
    make(kube, repository, "web", namespace, {"image": "registry.example.com/web", "interval": "5m"}, "False",
         "AuthenticationFailed", "failed to scan: 401 Unauthorized")
    make(kube, policy, "web", namespace, {"imageRepositoryRef": {"name": "web"}, "policy": {"semver": {"range": "1.x"}}},
         "False", "DependencyNotReady", f"referenced ImageRepository '{namespace}/web' is not ready")
    res = fluxpy("why", "imagepolicy/web", "-n", namespace, "--kubeconfig", str(kubeconfig), "-o", "json")
    assert res.exit_code == 1, res.stderr
    report = json.loads(res.stdout)
    assert report["rootCause"]["object"] == f"ImageRepository/{namespace}/web"
    assert report["rootCause"]["reason"] == "AuthenticationFailed"
