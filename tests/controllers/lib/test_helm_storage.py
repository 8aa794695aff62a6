"""Helm's release storage: fluxpy reads what the real ``helm install`` stored, and the real ``helm history /
get values / list`` read the revisions fluxpy writes (real apiserver, real helm v4)."""
from __future__ import annotations

import copy
import json

import pytest

from controllers.api.builtin import SECRET
from controllers.lib.helm import HelmCLI
from controllers.lib.helm_storage import (RELEASE_SECRET_TYPE, STATUS_DEPLOYED, STATUS_SUPERSEDED, ReleaseStorage,
                                          StorageError, decode_release, encode_release, secret_name, status_of)
from servers.helmrepo import make_chart

pytestmark = pytest.mark.integration


def test_helm_and_fluxpy_share_release_storage(kube, kubeconfig, namespace, tmp_path):
    chart = make_chart(tmp_path, "podinfo", "6.5.4")
    with HelmCLI(120) as helm:
        def run(*args: str) -> str:
            return helm.run(*args, "--namespace", namespace, "--kubeconfig", str(kubeconfig))

        run("install", "demo", str(chart), "--set", "message=from-helm", "--labels", "team=a")
        storage = ReleaseStorage(kube, namespace)
        (first,) = storage.history("demo")
        assert (first["name"], first["version"], status_of(first)) == ("demo", 1, STATUS_DEPLOYED)
        assert first["config"] == {"message": "from-helm"}
        assert first["chart"]["metadata"]["version"] == "6.5.4"
        assert "name: demo-podinfo" in first["manifest"]
        assert first.get("labels") == {"team": "a"}  # Helm's system labels are not the release's
        secret = kube.get(SECRET, secret_name("demo", 1), namespace)
        assert secret["type"] == RELEASE_SECRET_TYPE and secret["metadata"]["labels"]["owner"] == "helm"

        # fluxpy upgrades: a new revision, the old one superseded, as Helm's storage records it
        second = copy.deepcopy(first)
        second.update(version=2, config={"message": "from-fluxpy"})
        second["info"] = {**first["info"], "status": STATUS_DEPLOYED, "description": "Upgrade complete"}
        first["info"]["status"] = STATUS_SUPERSEDED
        storage.update(first)
        storage.create(second)

        history = json.loads(run("history", "demo", "-o", "json"))
        assert [(h["revision"], h["status"]) for h in history] == [(1, "superseded"), (2, "deployed")]
        assert json.loads(run("get", "values", "demo", "-o", "json")) == {"message": "from-fluxpy"}
        (listed,) = json.loads(run("list", "-o", "json"))
        assert (listed["name"], int(listed["revision"]), listed["status"]) == ("demo", 2, "deployed")
        assert storage.deployed("demo")["version"] == 2 and storage.latest("demo")["version"] == 2
        assert storage.get("demo", 1)["info"]["status"] == STATUS_SUPERSEDED

        # and helm operates on it: a rollback makes revision 3 from revision 1's values
        run("rollback", "demo", "1")
        latest = storage.latest("demo")
        assert latest["version"] == 3 and latest["config"] == {"message": "from-helm"}
        assert status_of(storage.get("demo", 2)) == STATUS_SUPERSEDED

        storage.delete("demo", 3)
        assert storage.get("demo", 3) is None and storage.latest("demo")["version"] == 2
    assert storage.history("absent") == [] and storage.deployed("absent") is None


def test_the_encoding_round_trips_and_rejects_what_is_not_a_release():
    release = {"name": "a", "version": 1, "info": {"status": "deployed"}, "config": {"k": "ü"}}
    assert decode_release(encode_release(release)) == release
    with pytest.raises(StorageError, match="not a Helm release"):
        decode_release("not base64!")
    with pytest.raises(StorageError, match="not an object"):
        decode_release(encode_release([1, 2]))  # type: ignore[arg-type]


HOOK = ("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-hook\n  annotations:\n"
        "    helm.sh/hook: pre-install,pre-upgrade\n")


def test_render_release_is_helms_release_object(tmp_path, kube, kubeconfig, namespace):
    """Rendered by the real helm, stored by fluxpy: ``helm get manifest/hooks/values`` read it back."""
    chart = make_chart(tmp_path, "podinfo", "6.5.4", files={"templates/hook.yaml": HOOK})
    with HelmCLI(120) as helm:
        release = helm.render_release(chart, "demo", namespace, {"message": "rendered"})
        assert (release["name"], release["namespace"], release["config"]) == ("demo", namespace,
                                                                            {"message": "rendered"})
        assert "name: demo-podinfo" in release["manifest"] and "hook" not in release["manifest"]
        (hook,) = release["hooks"]
        assert hook["name"] == "demo-hook" and hook["events"] == ["pre-install", "pre-upgrade"]

        release.update(version=1)
        release["info"].update(status=STATUS_DEPLOYED, description="Install complete")
        ReleaseStorage(kube, namespace).create(release)
        common = ("--namespace", namespace, "--kubeconfig", str(kubeconfig))
        assert "name: demo-podinfo" in helm.run("get", "manifest", "demo", *common)
        assert "demo-hook" in helm.run("get", "hooks", "demo", *common)
        assert json.loads(helm.run("get", "values", "demo", "-o", "json", *common)) == {"message": "rendered"}


@pytest.mark.parametrize("files, values, message", [
    ({"templates/bad.yaml": "{{ .Values.missing.key }}"}, {}, "nil pointer evaluating interface {}.key"),
    ({"values.schema.json": json.dumps({"type": "object", "properties": {"replicas": {"type": "integer"}}})},
     {"replicas": "three"}, "replicas"),
])
def test_render_release_reports_helms_error(tmp_path, files, values, message):
    from controllers.lib.helm import HelmError

    chart = make_chart(tmp_path, "broken", files=files)
    with HelmCLI(120) as helm, pytest.raises(HelmError, match=message) as failure:
        helm.render_release(chart, "demo", "apps", values)
    assert "Traceback" not in str(failure.value)
