"""The issue's bad-input list: each leaves Ready=False with Flux's reason and a message naming what is wrong,
applies nothing, and keeps the last applied state (objects, inventory, lastAppliedRevision)."""
from __future__ import annotations


import pytest

from controllers.api.builtin import CONFIGMAP, SECRET
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import find_condition
from controllers.kustomize.reconciler import parse_feature_gates
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture

from ..conftest import new_age_key, sops_encrypt


from .test_reconciler import configmap, ks_controller, ks_object, ready  # noqa: F401 - fixture

SECRET_MANIFEST = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\nstringData:\n  password: hunter2\n"


def _encrypted_secret(tmp_path, recipient: str) -> str:
    path = tmp_path / "secret.yaml"
    path.write_text(SECRET_MANIFEST)
    sops_encrypt(path, age=recipient)
    return path.read_text()


# (case id, how to break a good state: (files of the new revision | None, spec patch | None), reason, message part)
CASES = [
    ("path-not-found", None, {"path": "./missing"}, "ArtifactFailed",
     "kustomization path not found: stat missing: no such file or directory"),
    ("invalid-yaml", {"b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  labels: [x\n"}, None,
     "BuildFailed", "b.yaml"),
    ("kustomize-error", {"kustomization.yaml": "resources: [a.yaml, missing.yaml]\n"}, None, "BuildFailed",
     "kustomize build failed: "),
    ("strict-substitution", {"c.yaml": configmap("c", image="${registry}/app")},
     {"postBuild": {"substitute": {"other": "x"}}}, "BuildFailed", 'variable not set (strict mode): "registry"'),
    ("wrong-sops-key", "SECRET", {"decryption": {"provider": "sops", "secretRef": {"name": "wrong-key"}}},
     "BuildFailed", "decryption failed for 'Secret.v1.[noGrp]/db'"),
    ("missing-source", None, {"sourceRef": {"kind": "GitRepository", "name": "nope"}}, "ArtifactFailed",
     'gitrepositories.source.toolkit.fluxcd.io "nope" not found'),
    ("missing-artifact", None, {"sourceRef": {"kind": "GitRepository", "name": "empty"}}, "ArtifactFailed",
     "Source artifact not found, retrying in 500ms"),
    ("cross-namespace-ref", None, {"sourceRef": {"kind": "GitRepository", "name": "app", "namespace": "elsewhere"}},
     "AccessDenied", "can't access 'GitRepository/elsewhere/app', cross-namespace references have been blocked"),
]


@pytest.mark.parametrize("files, patch, reason, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_keeps_the_last_applied_state(kube, namespace, ks_controller, artifact_sources, tmp_path, age_key,
                                                files, patch, reason, message):
    good_files = {"a.yaml": configmap("a", v="1")}
    good = artifact_sources.publish(namespace, "app", good_files)
    artifact_sources.ensure(namespace, "empty")
    ks_controller(no_cross_namespace_refs=True,
                  feature_gates=parse_feature_gates("StrictPostBuildSubstitutions=true"))
    kube.create(KUSTOMIZATION, ks_object("app", namespace, targetNamespace=namespace, retryInterval="1s"), namespace)
    before = ready(kube, "app", namespace)

    if files == "SECRET":
        kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wrong-key"},
                             "data": new_age_key().secret_data()}, namespace)
        files = {"secret.yaml": _encrypted_secret(tmp_path, age_key.recipient)}
    if patch is not None:
        kube.patch(KUSTOMIZATION, "app", {"spec": patch}, namespace)
        if files is not None:  # the spec change alone is fine: the revision breaks it
            ready(kube, "app", namespace)
    if files is not None:
        artifact_sources.publish(namespace, "app", {"a.yaml": configmap("a", v="2"), **files})
    ks = ready(kube, "app", namespace, status="False", reason=reason)
    ready_condition = find_condition(ks, "Ready")
    assert message in ready_condition["message"], ready_condition["message"]
    assert "hunter2" not in ready_condition["message"]
    if reason == "AccessDenied":
        assert find_condition(ks, "Stalled")["status"] == "True"
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"v": "1"}
    assert ks["status"]["inventory"] == before["status"]["inventory"]
    assert ks["status"]["lastAppliedRevision"] == good["revision"]
    assert kube.list(SECRET, namespace, label_selector="kustomize.toolkit.fluxcd.io/name=app")["items"] == []
