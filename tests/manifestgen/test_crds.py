"""CRDs rendered from the API models (no cluster; see tests/controllers/api for the apiserver side)."""
from __future__ import annotations

import json

import pytest
import yaml

from controllers.api.kinds import COMPONENTS, COMPONENTS_EXTRA, KINDS, kind_by_name
from manifestgen.crds import crd_manifest, crd_manifests, open_api_schema
from tests.controllers.api.api_support import structural_problems


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_crd_shape(kind):
    crd = crd_manifest(kind)
    assert crd["apiVersion"] == "apiextensions.k8s.io/v1"
    assert crd["kind"] == "CustomResourceDefinition"
    assert crd["metadata"]["name"] == f"{kind.plural}.{kind.group}"
    assert crd["metadata"]["labels"] == {"app.kubernetes.io/part-of": "fluxpy",
                                         "app.kubernetes.io/component": kind.controller}
    spec = crd["spec"]
    assert spec["group"] == kind.group
    assert spec["scope"] == "Namespaced"
    names = spec["names"]
    assert names["kind"] == kind.kind
    assert names["listKind"] == kind.kind + "List"
    assert names["plural"] == kind.plural
    assert names["singular"] == kind.singular
    assert names.get("shortNames", []) == list(kind.short_names)
    assert names.get("categories", []) == list(kind.categories)
    version, *older = spec["versions"]
    assert version["name"] == kind.version and version["served"] and version["storage"]
    assert "deprecated" not in version
    assert [v["name"] for v in older] == [o.name for o in kind.older_versions]
    for rendered, declared in zip(older, kind.older_versions):
        assert rendered["served"] and not rendered["storage"] and rendered["deprecated"]
        assert rendered["deprecationWarning"] == f"{declared.name} {kind.kind} is deprecated, upgrade to {kind.version}"
        old_schema = rendered["schema"]["openAPIV3Schema"]
        assert old_schema["properties"]["spec"] == declared.spec_schema
        assert structural_problems(old_schema) == []
    assert version["additionalPrinterColumns"] == [
        {"name": c.name, "type": c.type, "jsonPath": c.json_path, **({"priority": c.priority} if c.priority else {})}
        for c in kind.printer_columns]
    schema = version["schema"]["openAPIV3Schema"]
    assert schema["type"] == "object"
    assert set(schema["properties"]) == {"apiVersion", "kind", "metadata", "spec"} | (
        {"status"} if kind.status_schema else set())
    assert schema["properties"]["spec"] == kind.spec_schema
    assert structural_problems(schema) == []
    if kind.status_schema:
        assert version["subresources"] == {"status": {}}
    else:
        assert "subresources" not in version


def test_kinds_without_status_have_no_status_subresource():
    for name in ("alert", "alert-provider"):
        crd = crd_manifest(kind_by_name(name))
        assert "subresources" not in crd["spec"]["versions"][0]
        assert [c["name"] for c in crd["spec"]["versions"][0]["additionalPrinterColumns"]] == ["Age"]


def test_crd_manifests_by_component():
    everything = crd_manifests()
    assert len(everything) == len(KINDS) == 15
    assert len({c["metadata"]["name"] for c in everything}) == 15
    default = crd_manifests(COMPONENTS)
    assert sorted(c["spec"]["names"]["kind"] for c in default) == sorted([
        "GitRepository", "OCIRepository", "HelmRepository", "HelmChart", "Bucket", "ExternalArtifact",
        "Kustomization", "HelmRelease", "Provider", "Alert", "Receiver"])
    assert [c["spec"]["names"]["kind"] for c in crd_manifests(["source-watcher"])] == ["ArtifactGenerator"]
    assert [c["spec"]["names"]["kind"] for c in crd_manifests(["image-reflector-controller"])] == [
        "ImageRepository", "ImagePolicy"]
    assert len(crd_manifests([*COMPONENTS, *COMPONENTS_EXTRA, "source-controller"])) == 15  # no duplicates
    assert crd_manifests([]) == []
    with pytest.raises(ValueError):
        crd_manifests(["no-such-controller"])


def test_manifests_are_plain_fresh_data():
    first = crd_manifests(["source-controller"])
    first[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"].clear()
    second = crd_manifests(["source-controller"])
    assert second[0]["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]
    assert list(yaml.safe_load_all(yaml.safe_dump_all(second))) == second
    assert json.loads(json.dumps(second)) == second


def test_open_api_schema_has_kind_description():
    schema = open_api_schema(kind_by_name("ks"))
    assert schema["description"]
    assert schema["properties"]["metadata"] == {"type": "object"}
