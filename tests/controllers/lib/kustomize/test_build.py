"""Building a Kustomization with the real kustomize: generated kustomizations, the spec's overlay, and bad
input reported with Flux's reasons and a message naming the file (and line)."""
from __future__ import annotations

import os

import pytest
import yaml

from controllers.lib.kustomize.build import build, split_documents
from controllers.lib.kustomize.errors import ArtifactError, BuildError

from ...conftest import configmap, write_tree

DEPLOYMENT = """
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
  labels: {app: app}
spec:
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: nginx:1.0
"""


def ids(result) -> list[str]:
    return [f"{o['kind']}/{o['metadata'].get('namespace', '')}/{o['metadata']['name']}" for o in result.objects]


def by_kind(result, kind: str) -> dict:
    return next(o for o in result.objects if o["kind"] == kind)


# --------------------------------------------------------------------------- generated kustomization

def test_generates_a_kustomization_from_every_manifest_below_the_path(tmp_path):
    write_tree(tmp_path, {
        "apps/a.yaml": configmap("a", v="1"),
        "apps/nested/deeper/b.yml": configmap("b", v="2"),
        "apps/nested/c.yaml": configmap("c", v="3") + "---\n" + configmap("d", v="4"),
        "apps/with-own/kustomization.yaml": "resources: [e.yaml]\nnamePrefix: own-\n",
        "apps/with-own/e.yaml": configmap("e", v="5"),
        "apps/with-own/ignored.yaml": configmap("ignored", v="6"),
        "apps/README.md": "not yaml",
        "apps/values.json": "{}",
        "elsewhere/x.yaml": configmap("x", v="7"),
    })
    result = build(tmp_path, {"path": "./apps"}, name="apps", namespace="flux-system")
    assert sorted(ids(result)) == ["ConfigMap//a", "ConfigMap//b", "ConfigMap//c", "ConfigMap//d", "ConfigMap//own-e"]
    generated = yaml.safe_load((tmp_path / "apps" / "kustomization.yaml").read_text())
    assert generated == {"apiVersion": "kustomize.config.k8s.io/v1beta1", "kind": "Kustomization",
                         "resources": ["./a.yaml", "./nested/c.yaml", "./nested/deeper/b.yml", "./with-own"]}


def test_empty_directory_builds_nothing(tmp_path):
    (tmp_path / "empty").mkdir()
    result = build(tmp_path, {"path": "empty"}, name="x", namespace="ns")
    assert result.objects == [] and result.digest.startswith("sha256:")


def test_root_path_and_digest_follow_the_content(tmp_path):
    write_tree(tmp_path / "one", {"cm.yaml": configmap("a", v="1")})
    write_tree(tmp_path / "two", {"cm.yaml": configmap("a", v="1")})
    write_tree(tmp_path / "three", {"cm.yaml": configmap("a", v="2")})
    digests = [build(tmp_path / d, {}, name="x", namespace="ns").digest for d in ("one", "two", "three")]
    assert digests[0] == digests[1] != digests[2]


def test_lists_are_expanded(tmp_path):
    items = yaml.safe_load(configmap("a", v="1")), yaml.safe_load(configmap("b", v="2"))
    write_tree(tmp_path, {"list.yaml": yaml.safe_dump({"apiVersion": "v1", "kind": "List", "items": list(items)})})
    assert ids(build(tmp_path, {}, name="x", namespace="ns")) == ["ConfigMap//a", "ConfigMap//b"]


# --------------------------------------------------------------------------- the spec's overlay

def test_spec_overlay_on_an_existing_kustomization(tmp_path):
    write_tree(tmp_path, {
        "app/kustomization.yaml": """
            resources: [deploy.yaml, cm.yaml]
            namePrefix: file-
            images:
            - name: nginx
              newTag: "1.1"
            - name: busybox
              newTag: "2"
            """,
        "app/deploy.yaml": DEPLOYMENT,
        "app/cm.yaml": configmap("settings", mode="a"),
        "components/extra/kustomization.yaml": """
            apiVersion: kustomize.config.k8s.io/v1alpha1
            kind: Component
            resources: [sa.yaml]
            """,
        "components/extra/sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: extra\n",
    })
    spec = {
        "path": "app",
        "targetNamespace": "prod",
        "namePrefix": "p-",
        "nameSuffix": "-s",
        "images": [{"name": "nginx", "newName": "registry.local/nginx", "newTag": "2.0"}],
        "components": ["../components/extra"],
        "commonMetadata": {"labels": {"team": "a"}, "annotations": {"owner": "ops"}},
        "patches": [
            {"patch": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  mode: b\n"},
            {"patch": "- op: replace\n  path: /spec/replicas\n  value: 3\n",
             "target": {"kind": "Deployment", "labelSelector": "app=app"}},
        ],
    }
    result = build(tmp_path, spec, name="app", namespace="flux-system")
    assert sorted(ids(result)) == ["ConfigMap/prod/p-settings-s", "Deployment/prod/p-app-s",
                                   "ServiceAccount/prod/p-extra-s"]
    deploy = by_kind(result, "Deployment")
    assert deploy["spec"]["replicas"] == 3
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "registry.local/nginx:2.0"
    # commonMetadata is metadata only: selectors and templates are untouched
    assert deploy["metadata"]["labels"] == {"app": "app", "team": "a"}
    assert deploy["metadata"]["annotations"] == {"owner": "ops"}
    assert deploy["spec"]["selector"] == {"matchLabels": {"app": "app"}}
    assert deploy["spec"]["template"]["metadata"]["labels"] == {"app": "app"}
    assert by_kind(result, "ConfigMap")["data"] == {"mode": "b"}
    written = yaml.safe_load((tmp_path / "app" / "kustomization.yaml").read_text())
    assert written["namePrefix"] == "p-" and written["namespace"] == "prod"
    assert written["images"] == [{"name": "nginx", "newName": "registry.local/nginx", "newTag": "2.0"},
                                 {"name": "busybox", "newTag": "2"}]


def test_kustomization_without_resources_gets_origin_annotations(tmp_path):
    write_tree(tmp_path, {"kustomization.yaml": "configMapGenerator:\n- name: gen\n  literals: [a=b]\n"})
    (obj,) = build(tmp_path, {}, name="x", namespace="ns").objects
    assert obj["metadata"]["name"].startswith("gen-")
    assert "config.kubernetes.io/origin" in obj["metadata"]["annotations"]


def test_missing_components(tmp_path):
    write_tree(tmp_path, {"cm.yaml": configmap("a", v="1")})
    spec = {"components": ["missing"], "ignoreMissingComponents": True}
    assert ids(build(tmp_path, spec, name="x", namespace="ns")) == ["ConfigMap//a"]
    with pytest.raises(BuildError, match="kustomize build failed: .*missing"):
        build(write_tree(tmp_path / "again", {"cm.yaml": configmap("a", v="1")}), {"components": ["missing"]},
              name="x", namespace="ns")
    with pytest.raises(BuildError, match="^component path 'https://example.com/c' must be local and relative$"):
        build(tmp_path, {"components": ["https://example.com/c"]}, name="x", namespace="ns")


# --------------------------------------------------------------------------- bad input

def test_path_not_found_is_an_artifact_failure(tmp_path):
    with pytest.raises(ArtifactError) as err:
        build(tmp_path, {"path": "./clusters/prod"}, name="x", namespace="ns")
    assert err.value.reason == "ArtifactFailed"
    assert err.value.message == "kustomization path not found: stat clusters/prod: no such file or directory"


def test_path_cannot_leave_the_root(tmp_path):
    root = tmp_path / "root"
    write_tree(tmp_path, {"secret/cm.yaml": configmap("outside", v="1"), "root/cm.yaml": configmap("in", v="1")})
    with pytest.raises(ArtifactError, match="kustomization path not found"):
        build(root, {"path": "../../secret"}, name="x", namespace="ns")
    os.symlink(tmp_path / "secret", root / "link")
    with pytest.raises(ArtifactError, match="kustomization path not found"):
        build(root, {"path": "link"}, name="x", namespace="ns")


def test_invalid_yaml_names_file_and_line(tmp_path):
    write_tree(tmp_path, {"apps/ok.yaml": configmap("a", v="1"),
                          "apps/bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n"})
    with pytest.raises(BuildError) as err:
        build(tmp_path, {"path": "apps"}, name="x", namespace="ns")
    assert err.value.reason == "BuildFailed"
    assert err.value.message.startswith("failed to decode Kubernetes YAML from apps/bad.yaml: yaml: line 5:")


def test_invalid_yaml_behind_a_kustomization_names_file_and_line(tmp_path):
    write_tree(tmp_path, {"kustomization.yaml": "resources: [bad.yaml]\n",
                          "bad.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n data: [\n"})
    with pytest.raises(BuildError) as err:
        build(tmp_path, {}, name="x", namespace="ns")
    message = err.value.message
    assert message.startswith("kustomize build failed: ") and "bad.yaml" in message and "line 4" in message
    assert str(tmp_path) not in message


def test_invalid_kustomization_file_names_file_and_line(tmp_path):
    write_tree(tmp_path, {"kustomization.yaml": "resources:\n- a.yaml\n bad: [\n"})
    with pytest.raises(BuildError, match=r"^failed to read kustomization.yaml: yaml: line \d+: "):
        build(tmp_path, {}, name="x", namespace="ns")


@pytest.mark.parametrize("content,problem", [
    ("on: push\njobs: {}\n", "missing Resource metadata"),
    ("apiVersion: v1\nmetadata: {name: x}\n", "missing kind in object"),
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n", "missing metadata.name in object"),
])
def test_non_kubernetes_yaml_fails_as_in_flux(tmp_path, content, problem):
    write_tree(tmp_path, {"ci.yaml": content})
    with pytest.raises(BuildError, match=f"^failed to decode Kubernetes YAML from ci.yaml: {problem}$"):
        build(tmp_path, {}, name="x", namespace="ns")


def test_kustomize_errors_are_reported(tmp_path):
    write_tree(tmp_path, {"kustomization.yaml": "resources: [missing.yaml]\n"})
    with pytest.raises(BuildError) as err:
        build(tmp_path, {}, name="x", namespace="ns")
    assert err.value.message.startswith("kustomize build failed: ") and "missing.yaml" in err.value.message


@pytest.mark.parametrize("reference", [
    "https://github.com/fluxcd/flux2/manifests/install?ref=v2.7.0",
    "github.com/stefanprodan/podinfo//kustomize",
    "https://raw.githubusercontent.com/fluxcd/flux2/main/manifests/bases/source-controller/kustomization.yaml",
])
def test_remote_bases_refused_with_no_remote_bases(tmp_path, reference):
    write_tree(tmp_path, {"kustomization.yaml": f"resources:\n- {reference}\n"})
    with pytest.raises(BuildError) as err:
        build(tmp_path, {}, name="x", namespace="ns", no_remote_bases=True)
    assert err.value.message == (f"kustomize build failed: kustomization.yaml: remote resources entry "
                                 f"'{reference}' is not allowed (remote bases are disabled)")


def test_remote_bases_cannot_be_fetched_offline_even_unrecognised(tmp_path, kustomize_bin):
    """With --no-remote-bases kustomize runs without git or network: a remote reference the check does not
    recognise still fails, without reaching the network."""
    from controllers.lib.kustomize.build import run_kustomize

    write_tree(tmp_path, {"kustomization.yaml": "resources:\n- example.invalid/org/repo/path\n"})
    with pytest.raises(BuildError, match="kustomize build failed"):
        run_kustomize(tmp_path, root=tmp_path, timeout=60, offline=True)


@pytest.mark.parametrize("files", [
    {"root/kustomization.yaml": "resources: [../outside.yaml]\n"},
    {"root/kustomization.yaml": "configMapGenerator:\n- name: leak\n  files: [../outside.yaml]\n"},
    {"root/kustomization.yaml": "resources: [link.yaml]\n", "symlink": "outside.yaml"},
    {"root/kustomization.yaml": "patches:\n- path: ../outside.yaml\n"},
    {"root/kustomization.yaml": "generators: [gen.yaml]\n",
     "root/gen.yaml": "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: leak\n"
                      "files: [../outside.yaml]\n"},
    {"root/kustomization.yaml": "resources: [cm.yaml]\ntransformers:\n- |\n  apiVersion: builtin\n"
                                "  kind: PatchTransformer\n  metadata:\n    name: leak\n  path: ../outside.yaml\n",
     "root/cm.yaml": configmap("in", v="1")},
])
def test_files_outside_the_root_are_refused(tmp_path, files):
    root = tmp_path / "root"
    write_tree(tmp_path, {"outside.yaml": configmap("outside", v="secret"),
                          **{k: v for k, v in files.items() if k != "symlink"}})
    if "symlink" in files:
        os.symlink(tmp_path / files["symlink"], root / "link.yaml")
    with pytest.raises(BuildError) as err:
        build(root, {}, name="x", namespace="ns")
    assert "is outside the source root" in err.value.message
    assert "secret" not in err.value.message


def test_absolute_paths_outside_the_root_are_refused(tmp_path):
    write_tree(tmp_path, {"kustomization.yaml": "configMapGenerator:\n- name: leak\n  files: [token=/etc/hostname]\n"})
    with pytest.raises(BuildError, match="'/etc/hostname' is outside the source root"):
        build(tmp_path, {}, name="x", namespace="ns")


def test_split_documents():
    assert split_documents("a: 1\n---\nb: 2\n") == ["a: 1\n", "b: 2\n"]
    assert split_documents("") == []
    assert split_documents("a: |\n  ---\n  x\n---\nb: 2\n") == ["a: |\n  ---\n  x\n", "b: 2\n"]
