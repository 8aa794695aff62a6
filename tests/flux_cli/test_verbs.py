"""The generic verbs (get, suspend, resume, reconcile, delete, export) on every kind, against the real
control plane; a stand-in reconciler inside the test plays the controller's part of the protocol."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from controllers.api.kinds import KINDS
from controllers.api.objects import dig

from .conftest import StandInReconciler

MINIMAL = {d["kind"]: d for d in yaml.safe_load_all((Path(__file__).parent / "testdata" / "minimal.yaml").read_text())}
KIND_IDS = [k.kind for k in KINDS]


ARTIFACT = {"path": "demo/a.tar.gz", "url": "http://source-controller/demo/a.tar.gz",
            "digest": "sha256:" + "0" * 64, "lastUpdateTime": "2026-01-01T00:00:00Z"}


def revision_status(kind, revision: str) -> dict:
    """A status fragment holding ``revision`` where the kind reports it (a whole artifact for sources)."""
    path = kind.revision.paths[0] if kind.revision else ""
    if path == "status.artifact.revision":
        return {"artifact": {**ARTIFACT, "revision": revision}}
    if path == "status.lastAppliedRevision":
        return {"lastAppliedRevision": revision}
    return {}  # kinds whose "revision" is another shape (tag counts, chart versions) report just completion


def create_demo(kube, kind, namespace: str, name: str = "demo") -> dict:
    doc = dict(MINIMAL[kind.kind])
    doc["metadata"] = {"name": name, "namespace": namespace, "labels": {"team": "a"}}
    return kube.create(kind, doc)


def test_minimal_objects_cover_every_kind():
    assert set(MINIMAL) == {k.kind for k in KINDS}


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_get_lists_and_selects(fluxpy, kubeconfig, kube, flux_crds, namespace, kind):
    create_demo(kube, kind, namespace)
    res = fluxpy("get", *kind.display.split(), "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    header, row = res.stdout.splitlines()[:2]
    assert header.split()[0] == "NAME" and header.split()[-2:] == ["READY", "MESSAGE"]
    assert header.split()[1:-2] == [w for c in kind.columns if not c.option for w in c.header.split()]
    assert row.split()[0] == "demo"
    if kind.static_ready and not kind.static_ready_when:
        assert row.endswith(f"True    {kind.static_ready}")
    else:  # nothing reconciled it yet: as flux shows it
        assert row.endswith("False   waiting to be reconciled")

    one = fluxpy("get", kind.plural, "demo", "-n", namespace, "-o", "json", "--kubeconfig", str(kubeconfig))
    assert one.exit_code == 0, one.stderr
    assert json.loads(one.stdout)["metadata"]["name"] == "demo"

    wide = fluxpy("get", kind.kind, "-A", "-l", "team=a", "--no-header", "--kubeconfig", str(kubeconfig))
    assert wide.exit_code == 0, wide.stderr
    assert any(line.split()[:2] == [namespace, "demo"] for line in wide.stdout.splitlines())

    none = fluxpy("get", kind.kind, "-n", namespace, "-l", "team=b", "--kubeconfig", str(kubeconfig))
    assert none.exit_code == 0 and none.stdout == "" and "no " in none.stderr


def test_get_all_and_status_selector(fluxpy, kubeconfig, kube, flux_crds, namespace):
    for kind in KINDS:
        create_demo(kube, kind, namespace)
    git = next(k for k in KINDS if k.kind == "GitRepository")
    kube.patch(git, "demo", {"status": {"conditions": [{
        "type": "Ready", "status": "False", "reason": "GitOperationFailed", "message": "auth failed",
        "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}, namespace, subresource="status")

    res = fluxpy("get", "all", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    names = {line.split()[0] for line in res.stdout.splitlines() if line and not line.startswith("NAME")}
    assert names == {f"{k.kind.lower()}/demo" for k in KINDS}

    sources = fluxpy("get", "sources", "all", "-n", namespace, "--kubeconfig", str(kubeconfig))
    names = {line.split()[0] for line in sources.stdout.splitlines() if line and not line.startswith("NAME")}
    assert names == {f"{k.kind.lower()}/demo" for k in KINDS if k.cli_group == "sources"}

    failing = fluxpy("get", "all", "-n", namespace, "--status-selector", "ready=false", "--kubeconfig", str(kubeconfig))
    assert failing.exit_code == 0, failing.stderr
    rows = [line for line in failing.stdout.splitlines() if line and not line.startswith("NAME")]
    assert len(rows) == 1 and rows[0].startswith("gitrepository/demo") and "auth failed" in rows[0]

    bad = fluxpy("get", "all", "--status-selector", "ready", "--kubeconfig", str(kubeconfig))
    assert bad.exit_code == 1 and "invalid --status-selector" in bad.stderr


@pytest.mark.parametrize("kind", [k for k in KINDS if k.suspendable], ids=[k.kind for k in KINDS if k.suspendable])
def test_suspend_and_resume(fluxpy, kubeconfig, kube, flux_crds, namespace, kind):
    create_demo(kube, kind, namespace)
    res = fluxpy("suspend", *kind.display.split(), "demo", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert kube.get(kind, "demo", namespace)["spec"]["suspend"] is True

    res = fluxpy("resume", kind.plural, "demo", "--no-wait", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    obj = kube.get(kind, "demo", namespace)
    assert obj["spec"]["suspend"] is False
    assert obj["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]


def test_suspend_all_and_resume_waits(fluxpy, kubeconfig, kube, flux_crds, namespace):
    ks = next(k for k in KINDS if k.kind == "Kustomization")
    for name in ("one", "two"):
        create_demo(kube, ks, namespace, name)
    res = fluxpy("suspend", "ks", "--all", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert all(kube.get(ks, n, namespace)["spec"]["suspend"] for n in ("one", "two"))

    extra = {"lastAppliedRevision": "main@sha1:0123456789abcdef0123456789abcdef01234567"}
    with StandInReconciler(kube, ks, "one", namespace, status_extra=extra):
        res = fluxpy("resume", "ks", "one", "-n", namespace, "--timeout", "30s", "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert "applied revision main@sha1:0123456789abcdef" in res.stderr


@pytest.mark.parametrize("kind", [k for k in KINDS if k.reconcilable], ids=[k.kind for k in KINDS if k.reconcilable])
def test_reconcile_waits_for_the_controller(fluxpy, kubeconfig, kube, flux_crds, namespace, kind):
    create_demo(kube, kind, namespace)
    revision = "main@sha1:89abcdef0123456789abcdef0123456789abcdef"
    extra = revision_status(kind, revision)
    with StandInReconciler(kube, kind, "demo", namespace, status_extra=extra) as controller:
        res = fluxpy("reconcile", *kind.display.split(), "demo", "-n", namespace, "--timeout", "30s",
                     "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert len(controller.handled) == 1
    obj = kube.get(kind, "demo", namespace)
    assert dig(obj, "status.lastHandledReconcileAt") == obj["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    if kind.revision and kind.revision.value(obj) == revision and "{message}" not in kind.reconciled:
        assert kind.reconciled.format(revision=revision) in res.stderr
    assert "reconciliation completed" in res.stderr


def test_reconcile_reports_failure_and_timeout(fluxpy, kubeconfig, kube, flux_crds, namespace):
    git = next(k for k in KINDS if k.kind == "GitRepository")
    create_demo(kube, git, namespace)
    with StandInReconciler(kube, git, "demo", namespace, ready=False, message="authentication required"):
        res = fluxpy("reconcile", "source", "git", "demo", "-n", namespace, "--timeout", "30s",
                     "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1
    assert "reconciliation failed: authentication required" in res.stderr
    assert "Traceback" not in res.stderr

    # nobody answers: the CLI gives up at --timeout with one line
    res = fluxpy("reconcile", "source", "git", "demo", "-n", namespace, "--timeout", "2s",
                 "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and "timed out" in res.stderr


def test_reconcile_with_source_reconciles_the_source_first(fluxpy, kubeconfig, kube, flux_crds, namespace):
    git = next(k for k in KINDS if k.kind == "GitRepository")
    ks = next(k for k in KINDS if k.kind == "Kustomization")
    create_demo(kube, git, namespace)
    create_demo(kube, ks, namespace)
    with StandInReconciler(kube, git, "demo", namespace, status_extra=revision_status(git, "main@sha1:aaaa")) as source, \
            StandInReconciler(kube, ks, "demo", namespace, status_extra={"lastAppliedRevision": "main@sha1:aaaa"}) as applier:
        res = fluxpy("reconcile", "ks", "demo", "--with-source", "-n", namespace, "--timeout", "30s",
                     "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert len(source.handled) == 1 and len(applier.handled) == 1
    assert source.handled[0] < applier.handled[0]
    assert "fetched revision main@sha1:aaaa" in res.stderr and "applied revision main@sha1:aaaa" in res.stderr


def test_show_source_is_refused_where_no_kind_has_a_source_column(fluxpy, kubeconfig, flux_crds, namespace):
    res = fluxpy("get", "source", "git", "--show-source", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1
    assert "--show-source applies to Kustomizations and HelmReleases, not GitRepository" in res.stderr


def test_reconcile_force_and_reset_carry_the_request_token(fluxpy, kubeconfig, kube, flux_crds, namespace):
    hr = next(k for k in KINDS if k.kind == "HelmRelease")
    create_demo(kube, hr, namespace)
    with StandInReconciler(kube, hr, "demo", namespace) as controller:
        res = fluxpy("reconcile", "hr", "demo", "--force", "--reset", "-n", namespace, "--timeout", "30s",
                     "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert len(controller.handled) == 1
    annotations = kube.get(hr, "demo", namespace)["metadata"]["annotations"]
    token = annotations["reconcile.fluxcd.io/requestedAt"]
    assert annotations["reconcile.fluxcd.io/forceAt"] == token
    assert annotations["reconcile.fluxcd.io/resetAt"] == token


def test_reconcile_option_of_another_kind_is_refused(fluxpy, kubeconfig, kube, flux_crds, namespace):
    ks = next(k for k in KINDS if k.kind == "Kustomization")
    create_demo(kube, ks, namespace)
    res = fluxpy("reconcile", "ks", "demo", "--force", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1
    assert "--force does not apply to Kustomization" in res.stderr and "Traceback" not in res.stderr
    assert "reconcile.fluxcd.io/requestedAt" not in (kube.get(ks, "demo", namespace)["metadata"].get("annotations") or {})


def test_reconcile_declares_every_kinds_reconcile_option():
    import typer.main

    from flux_cli.main import app

    command = typer.main.get_command(app).commands["reconcile"]
    flags = {opt for p in command.params for opt in p.opts if opt.startswith("--")}
    declared = {f"--{o.flag}" for k in KINDS for o in k.reconcile_options}
    assert declared and declared <= flags
    assert {"--force", "--reset"} == declared


def test_reconcile_hr_with_source_follows_the_generated_chart_to_its_repository(fluxpy, kubeconfig, kube,
                                                                               flux_crds, namespace):
    """As flux: HelmRepository, then the HelmChart ``<namespace>-<name>`` made from spec.chart, then the release."""
    by_kind = {k.kind: k for k in KINDS}
    hr = create_demo(kube, by_kind["HelmRelease"], namespace)
    assert hr["spec"]["chart"]["spec"]["sourceRef"]["kind"] == "HelmRepository"
    repo_name = hr["spec"]["chart"]["spec"]["sourceRef"]["name"]
    create_demo(kube, by_kind["HelmRepository"], namespace, repo_name)
    create_demo(kube, by_kind["HelmChart"], namespace, f"{namespace}-demo")
    with StandInReconciler(kube, by_kind["HelmRepository"], repo_name, namespace) as repo, \
            StandInReconciler(kube, by_kind["HelmChart"], f"{namespace}-demo", namespace) as chart, \
            StandInReconciler(kube, by_kind["HelmRelease"], "demo", namespace) as release:
        res = fluxpy("reconcile", "hr", "demo", "--with-source", "-n", namespace, "--timeout", "30s",
                     "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert len(repo.handled) == len(chart.handled) == len(release.handled) == 1
    assert repo.handled[0] < chart.handled[0] < release.handled[0]

    # a chartRef is followed instead; a missing source is one line
    kube.patch(by_kind["HelmRelease"], "demo", [{"op": "remove", "path": "/spec/chart"},
                                                {"op": "add", "path": "/spec/chartRef",
                                                 "value": {"kind": "OCIRepository", "name": "charts"}}],
               namespace, patch_type="json")
    res = fluxpy("reconcile", "hr", "demo", "--with-source", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and f"OCIRepository '{namespace}/charts' not found" in res.stderr, res.stderr


def test_reconcile_refuses_suspended(fluxpy, kubeconfig, kube, flux_crds, namespace):
    ks = next(k for k in KINDS if k.kind == "Kustomization")
    create_demo(kube, ks, namespace)
    kube.patch(ks, "demo", {"spec": {"suspend": True}}, namespace)
    res = fluxpy("reconcile", "ks", "demo", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and "is suspended" in res.stderr


@pytest.mark.parametrize("kind", KINDS, ids=KIND_IDS)
def test_export_and_delete(fluxpy, kubeconfig, kube, flux_crds, namespace, kind):
    create_demo(kube, kind, namespace)
    res = fluxpy("export", *kind.display.split(), "demo", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    exported = yaml.safe_load(res.stdout)
    assert exported["apiVersion"] == kind.api_version and exported["kind"] == kind.kind
    assert set(exported["metadata"]) == {"name", "namespace", "labels"}
    assert "status" not in exported
    # what export prints can be applied back unchanged
    kube.apply(exported, field_manager="test", dry_run=True)

    refused = fluxpy("delete", kind.plural, "demo", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert refused.exit_code == 1 and "--silent" in refused.stderr
    res = fluxpy("delete", kind.plural, "demo", "--silent", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert kube.list(kind, namespace)["items"] == []


def test_export_all(fluxpy, kubeconfig, kube, flux_crds, namespace):
    ks = next(k for k in KINDS if k.kind == "Kustomization")
    for name in ("a", "b"):
        create_demo(kube, ks, namespace, name)
    res = fluxpy("export", "ks", "--all", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(res.stdout)] == ["a", "b"]


def test_get_watch_prints_changes_until_timeout(fluxpy, kubeconfig, kube, flux_crds, namespace):
    import threading
    import time

    ks = next(k for k in KINDS if k.kind == "Kustomization")
    create_demo(kube, ks, namespace)

    def become_ready():
        time.sleep(1.0)
        kube.patch(ks, "demo", {"status": {"conditions": [{
            "type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied revision: x",
            "lastTransitionTime": "2026-01-01T00:00:00Z"}]}}, namespace, subresource="status")

    threading.Thread(target=become_ready, daemon=True).start()
    start = time.monotonic()
    res = fluxpy("get", "ks", "--watch", "-n", namespace, "--timeout", "4s", "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert 3.5 <= time.monotonic() - start < 15
    rows = [line for line in res.stdout.splitlines() if line.startswith("demo")]
    assert "waiting to be reconciled" in rows[0] and "True" in rows[-1] and "Applied revision: x" in rows[-1]
