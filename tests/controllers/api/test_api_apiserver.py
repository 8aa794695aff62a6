"""The rendered CRDs on a real kube-apiserver: established, accepting Flux's documented examples unchanged,
and rejecting invalid objects with a 422 that names the field."""
from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from controllers.api.builtin import CRD
from controllers.api.kinds import KINDS, kind_by_name
from controllers.api.types import Kind
from controllers.runtime.kube import Invalid, KubeError
from tests.controllers.api.api_support import load_examples

pytestmark = pytest.mark.integration

_DELETE = object()


def _placed(example: dict[str, Any], namespace: str) -> dict[str, Any]:
    """The example as documented, placed in the test namespace."""
    obj = copy.deepcopy(example)
    obj["metadata"]["namespace"] = namespace
    return obj


def _create(kube, kind: Kind, obj: dict[str, Any], *, dry_run: bool) -> dict[str, Any]:
    """Create with strict field validation, so a field our schema lacks is an error rather than pruned."""
    params = {"fieldValidation": "Strict", "dryRun": "All" if dry_run else None}
    return kube.request("POST", kind.path(obj["metadata"]["namespace"]), params=params, body=obj)


def _edit(obj: dict[str, Any], path: str, value: Any) -> None:
    """Set (or delete, with _DELETE) the value at a path such as "spec.artifacts[0].copy[0].to"."""
    parts: list[str | int] = []
    for piece in path.split("."):
        name, *indexes = re.split(r"\[(\d+)\]", piece)
        parts.append(name)
        parts += [int(i) for i in indexes if i != ""]
    node: Any = obj
    for part in parts[:-1]:
        node = node[part]
    if value is _DELETE:
        del node[parts[-1]]
    else:
        node[parts[-1]] = value


def test_crds_are_established_and_served(kube, flux_crds):
    assert len(flux_crds) == len(KINDS)
    for kind in KINDS:
        crd = kube.get(CRD, kind.crd_name)
        conditions = {c["type"]: c["status"] for c in crd["status"]["conditions"]}
        assert conditions.get("Established") == "True", kind.kind
        assert conditions.get("NamesAccepted") == "True", kind.kind
        assert crd["status"]["acceptedNames"]["kind"] == kind.kind
        resources = kube.request("GET", f"/apis/{kind.group}/{kind.version}")["resources"]
        by_name = {r["name"]: r for r in resources}
        assert by_name[kind.plural]["kind"] == kind.kind
        assert by_name[kind.plural].get("shortNames", []) == list(kind.short_names)
        assert by_name[kind.plural]["singularName"] == kind.singular
        assert (f"{kind.plural}/status" in by_name) == bool(kind.status_schema)


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_documented_examples_are_accepted(kube, flux_crds, namespace, kind):
    examples = load_examples(kind)
    assert examples
    rejected = []
    for example in examples:
        try:
            _create(kube, kind, _placed(example, namespace), dry_run=True)
        except Invalid as exc:
            rejected.append(f"{example['metadata']['name']}: {exc.message}")
    assert rejected == []


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: k.kind)
def test_create_applies_defaults_and_status_round_trips(kube, flux_crds, namespace, kind):
    created = _create(kube, kind, _placed(load_examples(kind)[0], namespace), dry_run=False)
    assert created["metadata"]["uid"]
    name = created["metadata"]["name"]
    spec_props = kind.spec_schema["properties"]
    for field, schema in spec_props.items():
        if "default" in schema and field not in load_examples(kind)[0]["spec"]:
            assert created["spec"][field] == schema["default"], field
    if not kind.status_schema:
        return
    condition = {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "all good",
                 "lastTransitionTime": "2025-01-01T00:00:00Z", "observedGeneration": 1}
    status = {"conditions": [condition]}
    if "observedGeneration" in kind.status_schema["properties"]:
        status["observedGeneration"] = 1
    updated = kube.patch(kind, name, {"status": status}, namespace, subresource="status")
    assert updated["status"]["conditions"][0]["reason"] == "Succeeded"
    bad = dict(condition, reason="not a reason!")
    with pytest.raises(Invalid) as info:
        kube.patch(kind, name, {"status": {"conditions": [bad]}}, namespace, subresource="status")
    assert "status.conditions[0].reason" in info.value.message


INVALID = [
    # (kind name, path, value, text the 422 message must contain)
    ("source git", "spec.url", _DELETE, "spec.url"),
    ("source git", "spec.interval", "1 minute", "spec.interval"),
    ("source git", "spec.provider", "gitlab", "spec.provider"),
    ("source git", "spec.ref", "main", "spec.ref"),
    ("source oci", "spec.url", "https://ghcr.io/org/app", "spec.url"),
    ("source helm", "spec.type", "git", "spec.type"),
    ("source chart", "spec.reconcileStrategy", "Always", "spec.reconcileStrategy"),
    ("source bucket", "spec.timeout", "1h", "spec.timeout"),
    ("source bucket", "spec.suspend", "yes", "spec.suspend"),
    ("source bucket", "spec.sts", {"provider": "aws", "endpoint": "https://sts.amazonaws.com"},
     "'ldap' is the only supported STS provider for the 'generic' Bucket provider"),
    ("source external", "spec.sourceRef.name", _DELETE, "spec.sourceRef.name"),
    ("artifact generator", "spec.sources", [], "spec.sources"),
    ("artifact generator", "spec.artifacts[0].copy[0].to", "out/", "spec.artifacts[0].copy[0].to"),
    ("kustomization", "spec.prune", _DELETE, "spec.prune"),
    ("kustomization", "spec.prune", "yes", "spec.prune"),
    ("kustomization", "spec.sourceRef.kind", "HelmRepository", "spec.sourceRef.kind"),
    ("kustomization", "spec.interval", "5", "spec.interval"),
    ("kustomization", "spec.targetNamespace", "", "spec.targetNamespace"),
    ("helmrelease", "spec.interval", "5 m", "spec.interval"),
    ("helmrelease", "spec.maxHistory", "five", "spec.maxHistory"),
    ("helmrelease", "spec.chart", {"spec": {"chart": "podinfo", "sourceRef": {"kind": "HelmRepository",
                                                                             "name": "podinfo"}}},
     "either chart or chartRef must be set"),
    ("alert-provider", "spec.type", "email", "spec.type"),
    ("alert", "spec.providerRef", _DELETE, "spec.providerRef"),
    ("alert", "spec.eventSeverity", "warning", "spec.eventSeverity"),
    ("receiver", "spec.secretRef", _DELETE, "spec.secretRef"),
    ("receiver", "spec.resources[0].kind", "Deployment", "spec.resources[0].kind"),
    ("image repository", "spec.interval", "1d", "spec.interval"),
    ("image policy", "spec.policy", {"alphabetical": {"order": "up"}}, "spec.policy.alphabetical.order"),
    ("image update", "spec.sourceRef.kind", "OCIRepository", "spec.sourceRef.kind"),
]


@pytest.mark.parametrize("name,path,value,expected", INVALID,
                         ids=[f"{n}:{p}={'<deleted>' if v is _DELETE else v}" for n, p, v, _ in INVALID])
def test_invalid_objects_are_rejected(kube, flux_crds, namespace, name, path, value, expected):
    kind = kind_by_name(name)
    obj = _placed(load_examples(kind)[0], namespace)
    _edit(obj, path, value)
    with pytest.raises(Invalid) as info:
        _create(kube, kind, obj, dry_run=True)
    assert info.value.status == 422
    assert expected in info.value.message


def test_unknown_fields_are_rejected_under_strict_validation(kube, flux_crds, namespace):
    kind = kind_by_name("ks")
    obj = _placed(load_examples(kind)[0], namespace)
    obj["spec"]["pruneAll"] = True
    with pytest.raises(KubeError) as info:
        _create(kube, kind, obj, dry_run=True)
    assert info.value.status == 400  # strict decoding errors are Bad Request, not Invalid
    assert 'unknown field "spec.pruneAll"' in info.value.message
