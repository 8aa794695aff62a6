"""The UI's graph from cached objects (pure: dict fixtures, no apiserver)."""
from __future__ import annotations

from flux_cli.web import graph

GIT = "source.toolkit.fluxcd.io/v1"
KS = "kustomize.toolkit.fluxcd.io/v1"
HR = "helm.toolkit.fluxcd.io/v2"


def obj(api, kind, name, ns="flux-system", *, ready="True", reason="Succeeded", message="ok", spec=None,
        status=None):
    conditions = [] if ready is None else [{"type": "Ready", "status": ready, "reason": reason, "message": message}]
    return {"apiVersion": api, "kind": kind, "metadata": {"name": name, "namespace": ns},
            "spec": spec or {}, "status": {"conditions": conditions, **(status or {})}}


def git(name, **kw):
    return obj(GIT, "GitRepository", name, status={"artifact": {"revision": "main@sha1:abc"}}, **kw)


def ks(name, source="repo", depends=(), inventory=(), **kw):
    spec = {"sourceRef": {"kind": "GitRepository", "name": source}, "path": "./",
            "dependsOn": [{"name": d} for d in depends]}
    status = {"inventory": {"entries": [{"id": i, "v": "v1"} for i in inventory]}} if inventory else None
    return obj(KS, "Kustomization", name, spec={**spec, **kw.pop("spec", {})}, status=status, **kw)


def build(*objects):
    by_kind: dict[str, list] = {}
    for o in objects:
        by_kind.setdefault(o["kind"], []).append(o)
    return graph.build(by_kind)


def test_ids_round_trip_for_flux_and_applied_objects():
    assert graph.node_id("Kustomization", "kustomize.toolkit.fluxcd.io", "ns", "a") == "Kustomization/ns/a"
    assert graph.node_id("Deployment", "apps", "ns", "web") == "Deployment.apps/ns/web"
    assert graph.node_id("ConfigMap", "", "ns", "c") == "ConfigMap/ns/c"
    assert graph.node_id("Namespace", "", None, "apps") == "Namespace/apps"
    assert graph.parse_id("Deployment.apps/ns/web") == ("Deployment", "apps", "ns", "web")
    assert graph.parse_id("Kustomization/ns/a") == ("Kustomization", "kustomize.toolkit.fluxcd.io", "ns", "a")
    assert graph.parse_id("Namespace/apps") == ("Namespace", "", None, "apps")
    for bad in ("", "a", "a/b/c/d", "Kind//name"):
        try:
            graph.parse_id(bad)
        except ValueError as exc:
            assert "Kind/namespace/name" in str(exc)
        else:
            raise AssertionError(f"{bad!r} accepted")


def test_edges_across_kinds_applied_objects_and_a_failing_source_blocks_its_dependants():
    nodes = build(
        git("repo", ready="False", reason="GitOperationFailed", message="failed to checkout"),
        ks("infra", inventory=("apps_cfg__ConfigMap", "apps_web_apps_Deployment")),
        ks("apps", depends=("infra",)),
        obj(HR, "HelmRelease", "web", ns="apps", spec={"chart": {"spec": {"chart": "web", "sourceRef": {
            "kind": "HelmRepository", "name": "charts", "namespace": "flux-system"}}},
            "dependsOn": [{"name": "apps", "namespace": "flux-system", "kind": "Kustomization"}]}),
    )
    infra, apps = nodes["Kustomization/flux-system/infra"], nodes["Kustomization/flux-system/apps"]
    assert nodes["GitRepository/flux-system/repo"]["state"] == "failed"
    assert infra["deps"] == [{"id": "GitRepository/flux-system/repo", "relation": "source"}]
    assert {"id": "Kustomization/flux-system/infra", "relation": "dependsOn"} in apps["deps"]
    # Ready themselves, but their source is broken: blocked, and the cause is the source (why's answer)
    for node in (infra, apps):
        assert node["state"] == "ready" and node["blocked"]
        assert node["cause"] == {"id": "GitRepository/flux-system/repo", "reason": "GitOperationFailed",
                                 "message": "failed to checkout"}
    # applied objects take their manager's colour and an "applies" edge
    cfg, web = nodes["ConfigMap/apps/cfg"], nodes["Deployment.apps/apps/web"]
    assert cfg["deps"] == [{"id": "Kustomization/flux-system/infra", "relation": "applies"}]
    assert (web["state"], web["blocked"], web["flux"]) == ("ready", True, False)
    # the HelmRelease's chart goes through the HelmChart Flux makes for it, which is missing here
    release = nodes["HelmRelease/apps/web"]
    assert {"id": "HelmChart/flux-system/apps-web", "relation": "chart"} in release["deps"] or \
        any(d["id"].startswith("HelmChart/") for d in release["deps"])
    chart_id = next(d["id"] for d in release["deps"] if d["id"].startswith("HelmChart/"))
    assert nodes[chart_id]["state"] == "missing"
    assert release["cause"]["id"] == chart_id and release["state"] == "ready" and release["blocked"]


def test_a_cycle_is_failed_and_named():
    nodes = build(git("repo"), ks("a", depends=("b",)), ks("b", depends=("a",)))
    a = nodes["Kustomization/flux-system/a"]
    assert a["blocked"] and a["cause"]["reason"] == "DependencyCycle"
    assert "Kustomization/flux-system/a" in a["cause"]["message"]


def test_states_suspended_reconciling_stalled_and_unknown():
    nodes = build(
        git("repo"),
        ks("off", spec={"suspend": True}, ready="False"),
        ks("busy", ready="Unknown", reason="Progressing"),
        ks("stuck", ready="False"),
        ks("new", ready=None),
    )
    nodes_stuck = build(obj(KS, "Kustomization", "stuck", status={"conditions": [
        {"type": "Ready", "status": "False", "reason": "InvalidPath"},
        {"type": "Stalled", "status": "True", "reason": "InvalidPath"}]}))
    assert nodes["Kustomization/flux-system/off"]["state"] == "suspended"
    assert nodes["Kustomization/flux-system/off"]["cause"] is None
    assert nodes["Kustomization/flux-system/busy"]["state"] == "reconciling"
    assert nodes["Kustomization/flux-system/stuck"]["state"] == "failed"
    assert nodes["Kustomization/flux-system/new"]["state"] == "unknown"
    assert nodes_stuck["Kustomization/flux-system/stuck"]["state"] == "stalled"
    retrying = build(obj(GIT, "GitRepository", "retrying", status={"conditions": [
        {"type": "Ready", "status": "Unknown", "reason": "Progressing"},
        {"type": "FetchFailed", "status": "True", "reason": "GitOperationFailed", "message": "refused"}]}))
    assert retrying["GitRepository/flux-system/retrying"]["state"] == "failed"  # a retry of a failed attempt
    assert nodes["Kustomization/flux-system/busy"]["actions"] == ["reconcile", "withSource", "suspend", "resume"]
    assert nodes["GitRepository/flux-system/repo"]["actions"] == ["reconcile", "suspend", "resume"]


def test_a_nested_kustomization_keeps_its_own_state_and_records_its_manager():
    nodes = build(git("repo"), ks("root", inventory=("flux-system_child_kustomize.toolkit.fluxcd.io_Kustomization",)),
                  ks("child", ready="False", reason="BuildFailed", message="kustomize build failed"))
    child = nodes["Kustomization/flux-system/child"]
    assert child["state"] == "failed" and child["managedBy"] == "Kustomization/flux-system/root"
    assert child["cause"]["id"] == "Kustomization/flux-system/child"
    assert not any(d["relation"] == "applies" for d in child["deps"])


def test_filters():
    nodes = build(git("repo", ready="False"), ks("apps"), obj(KS, "Kustomization", "other", ns="team"))
    listed = list(nodes.values())
    assert [n["id"] for n in listed if graph.matches(n, namespace="team")] == ["Kustomization/team/other"]
    assert {n["id"] for n in listed if graph.matches(n, state="failed")} == {
        "GitRepository/flux-system/repo", "Kustomization/flux-system/apps"}  # apps is blocked by its source
    assert [n["id"] for n in listed if graph.matches(n, kind="GitRepository")] == ["GitRepository/flux-system/repo"]
    assert [n["id"] for n in listed if graph.matches(n, text="APPS")] == ["Kustomization/flux-system/apps"]


def test_the_server_loads_no_command_module_and_no_terminal_library():
    import subprocess
    import sys

    code = ("import sys, flux_cli.web.server, flux_cli.web.launch, flux_cli.web.api; "
            "print(' '.join(m for m in sys.modules if m.split('.')[0] in ('typer', 'rich', 'git', 'github', 'gitlab',"
            " 'jinja2', 'click') or m.startswith('flux_cli.commands')))")
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == []
