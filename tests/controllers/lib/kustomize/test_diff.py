"""The server-side dry-run diff of a Kustomization (what ``fluxpy diff ks`` prints), against the apiserver."""
from __future__ import annotations

import base64

from controllers.api.builtin import SECRET
from controllers.lib.kustomize.diff import DRIFTED, diff_kustomization, render_diff
from controllers.lib.kustomize.inventory import inventory_from_changes
from controllers.runtime.apply import CREATED, DELETED, SKIPPED, ResourceManager, kustomization_apply_options


def cm(name: str, namespace: str, annotations: dict | None = None, **data) -> dict:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": name, "namespace": namespace, "annotations": annotations or {}},
            "data": {k: str(v) for k, v in data.items()}}


def secret(namespace: str, token: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": namespace},
            "stringData": {"token": token, "user": "admin"}}


def test_diff_shows_drift_creations_and_what_prune_would_delete(kube, namespace):
    manager = ResourceManager(kube)
    owner = manager.owner("apps", namespace)
    applied = [cm("settings", namespace, a=1, b=1), secret(namespace, "old-token"), cm("old", namespace, a=1),
               cm("pinned", namespace, {"kustomize.toolkit.fluxcd.io/prune": "disabled"}, a=1),
               cm("handed", namespace, a=1)]
    manager.set_owner_labels(applied, owner.name, owner.namespace)
    changes = manager.apply_all_staged(applied, kustomization_apply_options())
    other = [cm("handed", namespace, a=1)]
    manager.set_owner_labels(other, "elsewhere", namespace)  # moved to another Kustomization already
    manager.apply_all_staged(other, kustomization_apply_options())
    ks = {"metadata": {"name": "apps", "namespace": namespace},
          "spec": {"prune": True},
          "status": {"inventory": inventory_from_changes(changes)}}

    desired = [cm("settings", namespace, a=2, b=1), secret(namespace, "new-token"), cm("fresh", namespace, a=1),
               cm("ignored", namespace, {"kustomize.toolkit.fluxcd.io/ssa": "Ignore"}, a=1)]
    result = diff_kustomization(manager, desired, ks)
    assert not result.errors and result.changed and result.exit_code == 1
    assert {o.ref.subject: o.action for o in result.objects} == {
        f"ConfigMap/{namespace}/settings": DRIFTED, f"Secret/{namespace}/creds": DRIFTED,
        f"ConfigMap/{namespace}/fresh": CREATED, f"ConfigMap/{namespace}/ignored": SKIPPED,
        f"ConfigMap/{namespace}/old": DELETED}
    assert desired[0]["metadata"].get("labels") is None, "the caller's objects are not modified"

    text = render_diff(result)
    assert text.startswith(f"► ConfigMap/{namespace}/fresh created\n► ConfigMap/{namespace}/ignored skipped\n"
                           f"► ConfigMap/{namespace}/settings drifted\n"
                           f"--- ConfigMap/{namespace}/settings (live)\n+++ ConfigMap/{namespace}/settings (merged)\n")
    settings_diff = text.split("drifted\n", 1)[1].split("►", 1)[0]
    assert settings_diff.count("\n-") == 1 and "-  a: '1'\n+  a: '2'\n" in settings_diff
    for noise in ("managedFields", "resourceVersion", "uid:", "creationTimestamp", "generation"):
        assert noise not in text
    assert f"► Secret/{namespace}/creds drifted" in text
    assert "-  token: '*** (before)'\n+  token: '*** (after)'" in text and "user: '***'" in text
    for value in ("old-token", "new-token", base64.b64encode(b"old-token").decode(),
                  base64.b64encode(b"new-token").decode(), base64.b64encode(b"admin").decode()):
        assert value not in text, "no secret value is ever shown"
    assert text.endswith(f"► ConfigMap/{namespace}/old deleted\n")
    assert "pinned" not in text and "handed" not in text, "prune would not delete them"
    assert kube.get(SECRET, "creds", namespace)["data"]["token"] == base64.b64encode(b"old-token").decode(), \
        "a diff changes nothing"

    colored = render_diff(result, color=True)
    assert f"\x1b[32m► ConfigMap/{namespace}/fresh created\x1b[0m" in colored

    # once applied, only the skipped object is left to show; a broken object is an error (exit code 2)
    final = [dict(o, metadata=dict(o["metadata"])) for o in desired]
    manager.set_owner_labels(final, owner.name, owner.namespace)
    ks["status"]["inventory"] = inventory_from_changes(manager.apply_all_staged(final, kustomization_apply_options()))
    clean = diff_kustomization(manager, desired, ks)
    assert clean.exit_code == 0 and render_diff(clean) == f"► ConfigMap/{namespace}/ignored skipped\n"
    broken = diff_kustomization(manager, desired + [{**cm("bad", namespace), "data": {"a": {"b": "c"}}}], ks)
    assert broken.exit_code == 2
    assert broken.errors[0].startswith(f"ConfigMap/{namespace}/bad dry-run failed")
