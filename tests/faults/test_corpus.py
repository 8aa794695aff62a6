"""The bad-input corpus (``tests/faults/corpus/``, see :mod:`tests.faults.corpus`) against one
kustomize-controller and the real apiserver, kustomize and sops.

All cases of a group run at once, each its own Kustomization on its own source, so that a case that wedged
a worker would hold back the others. Each case starts from a good revision applied; then its bad input must
give Ready=False with the expected reason and a message naming what is wrong, apply nothing of the bad
revision and keep the good one's objects, inventory and ``lastAppliedRevision``. Then every case is repaired
(the spec patch undone, a good revision published) and must apply it: no case leaves the object stuck.
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Callable

import pytest
import yaml

from controllers.api.builtin import CONFIGMAP, CRD, DEPLOYMENT, NAMESPACE, SECRET, SERVICE_ACCOUNT
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig, find_condition
from controllers.api.source import GIT_REPOSITORY
from controllers.api.types import Kind
from controllers.kustomize.reconciler import parse_feature_gates
from controllers.runtime.kube import KubeError
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture
from servers.waiting import ready_with

from ..controllers.conftest import new_age_key, sops_encrypt
from ..controllers.kustomize.test_reconciler import configmap, ks_controller, ks_object  # noqa: F401 - fixture
from .conftest import record
from .corpus import Case, build_archive, load_cases

NAME_LABEL = "kustomize.toolkit.fluxcd.io/name"
#: the kinds a case's ``objects`` may hold
OBJECT_KINDS = {rt.kind: rt for rt in (KUSTOMIZATION, CONFIGMAP, GIT_REPOSITORY)}
#: how long a case may take to fail, and to recover (``CORPUS_TIMEOUT`` changes it, to debug one case)
SETTLE_TIMEOUT = float(os.environ.get("CORPUS_TIMEOUT", "60"))


def good_file(case: Case, version: int) -> dict[str, str]:
    return {"good.yaml": configmap(case.name, v=str(version))}


def applied_objects(kube, namespace: str, case: Case) -> set[str]:
    """What carries the case's owner label: every object it ever applied (of the kinds the corpus writes)."""
    found = set()
    for rt in (CONFIGMAP, SECRET, SERVICE_ACCOUNT, DEPLOYMENT, NAMESPACE, CRD):
        listed = kube.list(rt, namespace if rt.namespaced else None, label_selector=f"{NAME_LABEL}={case.name}")
        found |= {f"{rt.kind}/{item['metadata']['name']}" for item in listed["items"]}
    return found


def _sops_files(kube, namespace: str, case: Case, files: dict[str, str], recipient) -> dict[str, str]:
    """Encrypt the case's files for ``recipient``; create the decryption Secret the case asks for."""
    out = dict(files)
    with tempfile.TemporaryDirectory() as tmp:
        for rel in case.sops["encrypt"]:
            path = Path(tmp) / rel
            path.write_text(files[rel])
            sops_encrypt(path, age=recipient.recipient)
            text = path.read_text()
            if case.sops.get("tamper"):  # one character of the first encrypted value changed
                at = text.index("ENC[AES256_GCM,data:") + len("ENC[AES256_GCM,data:")
                text = text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1:]
            out[rel] = text
    decrypt_with = case.sops.get("decrypt_with", "other-key")
    if decrypt_with != "missing-secret":
        key = recipient if decrypt_with == "same-key" else new_age_key()
        kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": f"{case.name}-sops"},
                             "data": key.secret_data()}, namespace)
    return out


def break_case(kube, namespace: str, sources, case: Case, recipient) -> None:
    """Give the case's Kustomization its bad input."""
    for obj in case.objects:
        kube.create(OBJECT_KINDS[obj["kind"]], obj, namespace)
    spec = dict(case.spec or {})
    if case.sops:
        spec["decryption"] = {"provider": "sops", "secretRef": {"name": f"{case.name}-sops"}}
    if spec:
        kube.patch(KUSTOMIZATION, case.name, {"spec": spec}, namespace)
    if case.files is not None:
        files = {**good_file(case, 2), **case.files}
        if case.sops:
            files = _sops_files(kube, namespace, case, files, recipient)
        sources.publish(namespace, case.name, files)
    elif case.archive is not None:
        sources.publish_bytes(namespace, case.name, build_archive(case.archive))
    elif case.artifact is not None:
        def edit(artifact: dict) -> None:
            if case.artifact.get("missing"):
                sources.storage.local_path(artifact["path"]).unlink()
            artifact.update({k: v for k, v in case.artifact.items() if k != "missing"})
        sources.publish(namespace, case.name, good_file(case, 2), edit=edit)


def merge_undo(original: dict, patch: dict) -> dict:
    """The JSON merge patch that takes back ``patch`` applied to ``original``."""
    return {key: merge_undo(original[key], value) if isinstance(value, dict) and isinstance(original.get(key), dict)
            else original.get(key) for key, value in patch.items()}


def repair_case(kube, namespace: str, sources, case: Case, before: dict) -> str:
    """Undo the case's spec patch (back to the spec of ``before``) and extra objects, publish a good
    revision; return it."""
    undo = merge_undo(before["spec"], {**(case.spec or {}), **({"decryption": {}} if case.sops else {})})
    if undo:
        kube.patch(KUSTOMIZATION, case.name, {"spec": undo}, namespace)
    for obj in case.objects:
        kube.delete(OBJECT_KINDS[obj["kind"]], obj["metadata"]["name"], namespace)
    return sources.publish(namespace, case.name, good_file(case, 3))["revision"]


def wait_cases(kube, namespace: str,
               expected: dict[str, tuple[Kind, Callable[[dict], bool]]]) -> dict[str, dict | str]:
    """``expected``: case name -> (kind, predicate). Each object once its predicate holds, else (after one
    shared timeout) what its Ready condition shows instead."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    kinds = {kind.kind: kind for kind, _ in expected.values()}
    while True:
        objects = {(o["kind"], o["metadata"]["name"]): o for kind in kinds.values()
                   for o in kube.list(kind, namespace)["items"]}
        found = {name: objects.get((kind.kind, name)) for name, (kind, _) in expected.items()}
        if all(obj is not None and check(obj) for obj, (_, check) in zip(found.values(), expected.values())) \
                or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    out = {}
    for name, (kind, check) in expected.items():
        obj = found[name]
        ready = (find_condition(obj, "Ready") or {}) if obj else {}
        out[name] = obj if obj and check(obj) else (
            f"{kind.kind} Ready is {ready.get('status')} {ready.get('reason')}: {ready.get('message')!r}")
    return out


def wait_all(kube, namespace: str, expected: dict[str, Callable[[dict], bool]]) -> dict[str, dict | str]:
    """:func:`wait_cases` of Kustomizations."""
    return wait_cases(kube, namespace, {name: (KUSTOMIZATION, check) for name, check in expected.items()})


def secret_values(case: Case) -> list[str]:
    """The plaintext values of the Secrets in the case's files (none may show in a message)."""
    values = []
    for text in (case.files or {}).values():
        if "kind: Secret" not in text:
            continue
        for doc in yaml.safe_load_all(text):  # the corpus's Secrets are valid YAML
            if isinstance(doc, dict) and doc.get("kind") == "Secret":
                values += [str(v) for v in (doc.get("stringData") or {}).values()]
    return values


def check_case(kube, namespace: str, case: Case, obj: dict | str, before: dict, good_objects: set[str]) -> list[str]:
    """What the case got wrong (empty: it passed); ``obj`` is its Kustomization once it failed."""
    if isinstance(obj, str):
        return [f"{obj}, expected {'True' if case.rejected else 'False'} {case.reason}"]
    wrong = []
    message = find_condition(obj, "Ready")["message"] if not case.rejected else ""
    wrong += [f"message {message!r} lacks {part!r}" for part in case.message if part not in message]
    wrong += [f"message {message!r} shows the secret value {value!r}" for value in secret_values(case)
              if value in message]
    if case.stalled and (find_condition(obj, "Stalled") or {}).get("status") != "True":
        wrong.append("not Stalled")
    if dig(obj, "status.lastAppliedRevision") != dig(before, "status.lastAppliedRevision"):
        wrong.append(f"lastAppliedRevision changed to {dig(obj, 'status.lastAppliedRevision')}")
    if dig(obj, "status.inventory") != dig(before, "status.inventory"):
        wrong.append(f"inventory changed to {dig(obj, 'status.inventory')}")
    if kube.get(CONFIGMAP, case.name, namespace)["data"] != {"v": "1"}:
        wrong.append("the good revision's ConfigMap was changed")
    objects = applied_objects(kube, namespace, case)
    if objects != good_objects:
        wrong.append(f"objects applied: {sorted(objects - good_objects)}, lost: {sorted(good_objects - objects)}")
    return wrong


def run_corpus(kube, namespace: str, ks_controller, sources, group: str) -> None:
    cases = load_cases(group)
    ks_controller(controller={"concurrent": 4}, no_cross_namespace_refs=True,
                  feature_gates=parse_feature_gates("StrictPostBuildSubstitutions=true"))
    for case in cases:
        sources.publish(namespace, case.name, good_file(case, 1))
        kube.create(KUSTOMIZATION, ks_object(case.name, namespace, source=case.name, targetNamespace=namespace,
                                             retryInterval="2s"), namespace)
    before = wait_all(kube, namespace, {c.name: ready_with("True") for c in cases})
    unready = {name: obj for name, obj in before.items() if isinstance(obj, str)}
    assert not unready, f"the good revision is not applied: {unready}"
    good_objects = {c.name: applied_objects(kube, namespace, c) for c in cases}
    recipient = new_age_key()
    failures: dict[str, list[str]] = {}
    refused = {}
    for case in cases:
        try:
            break_case(kube, namespace, sources, case, recipient)
        except KubeError as exc:
            refused[case.name] = str(exc)
            if not case.rejected:
                failures[case.label] = [f"could not set up the case: {exc}"]
    for case in (c for c in cases if c.rejected):
        refusal = refused.get(case.name)
        wrong = ["the apiserver accepted the spec"] if refusal is None else [
            f"the refusal {refusal!r} lacks {part!r}" for part in case.rejected if part not in refusal]
        if wrong:
            failures[case.label] = wrong
    broken = wait_all(kube, namespace, {c.name: ready_with("True" if c.rejected else "False", c.reason)
                                        for c in cases if c.label not in failures})
    for case in cases:
        if case.label not in failures:
            wrong = check_case(kube, namespace, case, broken[case.name], before[case.name], good_objects[case.name])
            if wrong:
                failures[case.label] = wrong
    revisions = {}
    for case in cases:
        try:
            revisions[case.name] = repair_case(kube, namespace, sources, case, before[case.name])
        except KubeError as exc:
            failures.setdefault(case.label, []).append(f"could not repair: {exc}")
    repairs = wait_all(kube, namespace, {c.name: lambda o, c=c: ready_with("True")(o) and dig(
        o, "status.lastAppliedRevision") == revisions.get(c.name) for c in cases})
    for case in cases:
        repaired = repairs[case.name]
        if isinstance(repaired, str):
            failures.setdefault(case.label, []).append(f"not repaired: {repaired}")
        elif kube.get(CONFIGMAP, case.name, namespace)["data"] != {"v": "3"}:
            failures.setdefault(case.label, []).append("repaired, but the good ConfigMap is not at v=3")
    record("corpus cases passed", (len(cases) - len(failures), len(cases)))
    assert not failures, "\n".join(f"{label}: {'; '.join(wrong)}" for label, wrong in sorted(failures.items()))


@pytest.mark.parametrize("group", ["kustomization", "archive"])
def test_bad_input_gives_one_clear_condition_and_keeps_the_last_good_state(kube, namespace, ks_controller,
                                                                          artifact_sources, group):
    run_corpus(kube, namespace, ks_controller, artifact_sources, group)

