"""``fluxpy migrate``: manifests under a path rewritten to the latest API versions, and the objects stored in
a real cluster re-stored at the storage version with the CRDs' storedVersions trimmed."""
from __future__ import annotations

import base64
import copy
import json
import os
import stat
import urllib.request

from controllers.api.builtin import CRD
from controllers.api.kinds import kind_by_name

MANIFESTS = """\
# podinfo, from an old Flux guide
apiVersion: source.toolkit.fluxcd.io/v1beta2   # a comment survives
kind: GitRepository
metadata:
  name: podinfo
spec:
  interval: 1m
  url: https://github.com/stefanprodan/podinfo
---
metadata:
  name: apps
kind: Kustomization
apiVersion: kustomize.toolkit.fluxcd.io/v1beta2
spec:
  patches:
    - target:
        kind: Deployment
      patch: |
        apiVersion: apps/v1
        kind: Deployment
---
apiVersion: v1
kind: List
items:
  - apiVersion: helm.toolkit.fluxcd.io/v2beta2
    kind: HelmRelease
    metadata:
      name: podinfo
  - kind: ImagePolicy
    apiVersion: "image.toolkit.fluxcd.io/v1beta2"
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [a.yaml]
---
apiVersion: notification.toolkit.fluxcd.io/v1beta3
kind: Alert
"""


def _tree(tmp_path):
    root = tmp_path / "repo"
    (root / "clusters" / "prod").mkdir(parents=True)
    (root / "clusters" / "prod" / "flux.yaml").write_text(MANIFESTS)
    (root / "clusters" / "prod" / "flux.yaml").chmod(0o640)
    (root / "README.md").write_text("apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: GitRepository\n")
    (root / "chart.tpl").write_text("apiVersion: source.toolkit.fluxcd.io/v1beta2\nkind: HelmRepository\n")
    return root


def test_dry_run_lists_every_old_api_version_and_changes_nothing(fluxpy, tmp_path):
    root = _tree(tmp_path)
    res = fluxpy("migrate", "-f", str(root), "--dry-run")
    assert res.exit_code == 0, res.stderr
    flux = root / "clusters" / "prod" / "flux.yaml"
    assert res.stderr.splitlines() == [
        "► starting migration of custom resources",
        f"✚ {flux}:2: GitRepository v1beta2 -> v1",
        f"✚ {flux}:13: Kustomization v1beta2 -> v1",
        f"✚ {flux}:25: HelmRelease v2beta2 -> v2",
        f"✚ {flux}:30: ImagePolicy v1beta2 -> v1",
        "✔ dry-run mode enabled, no changes will be made",
    ]
    assert flux.read_text() == MANIFESTS


def test_migrate_rewrites_only_the_api_versions_and_keeps_the_mode(fluxpy, tmp_path):
    root = _tree(tmp_path)
    res = fluxpy("migrate", "-f", str(root), "--yes", "-e", ".yaml,.tpl")
    assert res.exit_code == 0, res.stderr
    flux = root / "clusters" / "prod" / "flux.yaml"
    expected = (MANIFESTS.replace("source.toolkit.fluxcd.io/v1beta2", "source.toolkit.fluxcd.io/v1")
                .replace("kustomize.toolkit.fluxcd.io/v1beta2", "kustomize.toolkit.fluxcd.io/v1")
                .replace("helm.toolkit.fluxcd.io/v2beta2", "helm.toolkit.fluxcd.io/v2")
                .replace('"image.toolkit.fluxcd.io/v1beta2"', '"image.toolkit.fluxcd.io/v1"'))
    assert flux.read_text() == expected
    assert "# a comment survives" in flux.read_text()
    assert stat.S_IMODE(os.stat(flux).st_mode) == 0o640
    assert (root / "chart.tpl").read_text() == "apiVersion: source.toolkit.fluxcd.io/v1\nkind: HelmRepository\n"
    assert (root / "README.md").read_text().startswith("apiVersion: source.toolkit.fluxcd.io/v1beta2")
    assert f"✔ file {flux} migrated successfully" in res.stderr
    assert res.stderr.splitlines()[-1] == "✔ custom resources migrated successfully"

    again = fluxpy("migrate", "-f", str(root), "--yes")
    assert again.stderr.splitlines()[-1] == "✔ no custom resources found that require migration"


def test_flux_26_keeps_image_kinds_at_v1beta2(fluxpy, tmp_path):
    root = _tree(tmp_path)
    res = fluxpy("migrate", "-f", str(root / "clusters"), "--version", "2.6", "--dry-run")
    assert res.exit_code == 0, res.stderr
    assert "ImagePolicy" not in res.stderr and "HelmRelease v2beta2 -> v2" in res.stderr


def test_without_yes_and_nobody_to_ask_nothing_is_changed(fluxpy, tmp_path):
    root = _tree(tmp_path)
    res = fluxpy("migrate", "-f", str(root))
    assert res.exit_code == 1 and "migration aborted: nothing was changed" in res.stderr
    assert (root / "clusters" / "prod" / "flux.yaml").read_text() == MANIFESTS


def test_bad_input_is_one_line(fluxpy, tmp_path):
    res = fluxpy("migrate", "-f", str(tmp_path / "missing"))
    assert res.exit_code == 1 and "failed to stat path" in res.stderr and "Traceback" not in res.stderr
    (tmp_path / "a.json").write_text("{}")
    res = fluxpy("migrate", "-f", str(tmp_path / "a.json"))
    assert res.exit_code == 1 and "does not match the specified extensions: .yaml, .yml" in res.stderr
    res = fluxpy("migrate", "-f", str(tmp_path), "--version", "2.5")
    assert res.exit_code == 1 and "version 2.5 is not supported, supported versions are: 2.7, 2.6" in res.stderr
    res = fluxpy("migrate", "--dry-run")
    assert res.exit_code == 1 and "only with --path" in res.stderr


def _stored_api_version(control_plane, kind, namespace: str, name: str) -> str:
    """The apiVersion an object is encoded with in etcd (read through etcd's v3 JSON gateway)."""
    key = f"/registry/{kind.group}/{kind.plural}/{namespace}/{name}".encode()
    request = urllib.request.Request(f"{control_plane.etcd_url}/v3/kv/range", method="POST",
                                     data=json.dumps({"key": base64.b64encode(key).decode()}).encode())
    with urllib.request.urlopen(request, timeout=10) as response:
        kvs = json.load(response)["kvs"]
    return json.loads(base64.b64decode(kvs[0]["value"]))["apiVersion"]


def test_cluster_mode_restores_old_objects_and_trims_stored_versions(fluxpy, control_plane, kube, kubeconfig,
                                                                      flux_crds, namespace):
    """An object written while v1beta2 was the storage version (as after an upgrade from Flux 2.0) is
    re-stored at v1 (as etcd shows) and the CRD's storedVersions drops v1beta2."""
    policy = kind_by_name("ImagePolicy")
    original = next(c for c in flux_crds if c["metadata"]["name"] == policy.crd_name)
    old_storage = copy.deepcopy(original)
    for version in old_storage["spec"]["versions"]:
        version["storage"] = version["name"] == "v1beta2"
    spec = {"imageRepositoryRef": {"name": "podinfo"}, "policy": {"semver": {"range": "5.x"}}}
    try:
        kube.apply(old_storage, field_manager="fluxpy")
        kube.wait_for(CRD, policy.crd_name, None,
                      lambda c: "v1beta2" in (c.get("status") or {}).get("storedVersions", []), timeout=30)
        old = kube.request("POST", policy.at("v1beta2").path(namespace), body={
            "apiVersion": "image.toolkit.fluxcd.io/v1beta2", "kind": "ImagePolicy",
            "metadata": {"name": "old", "namespace": namespace}, "spec": spec})
        # written through v1 but encoded in etcd as v1beta2: only re-storing it moves it
        kube.create(policy, {"apiVersion": policy.api_version, "kind": "ImagePolicy",
                                          "metadata": {"name": "old-via-v1", "namespace": namespace}, "spec": spec})
    finally:
        kube.apply(original, field_manager="fluxpy")
    kube.wait_for(CRD, policy.crd_name, None,
                  lambda c: next(v for v in c["spec"]["versions"] if v["storage"])["name"] == "v1", timeout=30)
    current = kube.create(policy, {"apiVersion": policy.api_version, "kind": "ImagePolicy",
                                   "metadata": {"name": "current", "namespace": namespace}, "spec": spec})
    assert sorted(kube.get(CRD, policy.crd_name)["status"]["storedVersions"]) == ["v1", "v1beta2"]
    assert _stored_api_version(control_plane, policy, namespace, "old-via-v1") == "image.toolkit.fluxcd.io/v1beta2"

    res = fluxpy("migrate", "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert f"✔ ImagePolicy/{namespace}/old migrated to version v1" in res.stderr
    assert f"✔ {policy.crd_name} migrated to storage version v1" in res.stderr
    assert res.stderr.splitlines()[-1] == "✔ custom resources migrated successfully"
    assert kube.get(CRD, policy.crd_name)["status"]["storedVersions"] == ["v1"]
    migrated = kube.get(policy, "old", namespace)
    assert migrated["metadata"]["resourceVersion"] != old["metadata"]["resourceVersion"]  # written again
    assert {m["apiVersion"] for m in migrated["metadata"]["managedFields"]} == {"image.toolkit.fluxcd.io/v1"}
    assert migrated["spec"]["policy"] == spec["policy"]
    for name in ("old", "old-via-v1", "current"):
        assert _stored_api_version(control_plane, policy, namespace, name) == "image.toolkit.fluxcd.io/v1", name
    assert kube.get(policy, "current", namespace)["spec"] == current["spec"]
