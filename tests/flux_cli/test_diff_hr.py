"""``fluxpy build helmrelease`` and ``fluxpy diff helmrelease``: the next upgrade of a live HelmRelease,
rendered from its chart artifact in the cluster (a real Helm repository on loopback, fluxpy's controllers)
and compared with the cluster by a server-side dry run; exit 0 / 1 / 2 as ``diff ks``."""
from __future__ import annotations

import json

import pytest
import yaml

from controllers.api.builtin import CONFIGMAP
from controllers.api.helm import HELM_RELEASE
from controllers.api.objects import dig
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.helmrepo import helm_controllers, helm_repo, install_app_release  # noqa: F401

pytestmark = pytest.mark.integration


def test_build_and_diff_helmrelease(fluxpy, kube, kubeconfig, namespace, helm_controllers, helm_repo, tmp_path):
    install_app_release(kube, namespace, helm_repo, tmp_path)
    common = ("-n", namespace, "--kubeconfig", str(kubeconfig))

    res = fluxpy("build", "helmrelease", "app", *common)
    assert res.exit_code == 0, res.stderr
    objects = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert sorted(o["metadata"]["name"] for o in objects) == ["app-app", "app-extra"]
    assert json.loads(objects[0]["data"]["values"])["message"] == "live"
    assert objects[0]["metadata"]["labels"]["helm.toolkit.fluxcd.io/name"] == "app"

    res = fluxpy("diff", "helmrelease", "app", *common)  # nothing changed since the install
    assert res.exit_code == 0, res.stdout + res.stderr
    assert res.stdout == ""

    values = tmp_path / "next.yaml"
    values.write_text("message: next\nextra: false\n")
    res = fluxpy("diff", "hr", "app", "--values", str(values), *common)
    assert res.exit_code == 1, res.stdout + res.stderr
    assert f"ConfigMap/{namespace}/app-app drifted" in res.stdout and "next" in res.stdout
    assert f"ConfigMap/{namespace}/app-extra deleted" in res.stdout
    assert json.loads(kube.get(CONFIGMAP, "app-app", namespace)["data"]["values"])["message"] == "live"  # untouched

    kube.delete(CONFIGMAP, "app-extra", namespace)
    res = fluxpy("diff", "hr", "app", *common)
    assert res.exit_code == 1 and f"ConfigMap/{namespace}/app-extra created" in res.stdout, res.stdout

    values.write_text("- not\n- a mapping\n")
    res = fluxpy("diff", "hr", "app", "--values", str(values), *common)
    assert res.exit_code == 2 and "expected a YAML mapping" in res.stderr and "Traceback" not in res.stderr

    res = fluxpy("diff", "hr", "absent", *common)
    assert res.exit_code == 2 and "failed to get helmrelease object" in res.stderr
    assert dig(kube.get(HELM_RELEASE, "app", namespace), "status.history")[0]["version"] == 1


def test_tree_and_trace_helmrelease(fluxpy, kube, kubeconfig, namespace, helm_controllers, helm_repo, tmp_path):
    install_app_release(kube, namespace, helm_repo, tmp_path)
    common = ("-n", namespace, "--kubeconfig", str(kubeconfig))
    res = fluxpy("tree", "hr", "app", "-o", "json", *common)
    assert res.exit_code == 0, res.stderr
    tree = json.loads(res.stdout)
    assert tree["resource"]["GroupKind"]["Kind"] == "HelmRelease"
    assert sorted(c["resource"]["Name"] for c in tree["resources"]) == ["app-app", "app-extra"]
    assert {c["resource"]["Namespace"] for c in tree["resources"]} == {namespace}

    res = fluxpy("trace", "configmap", "app-extra", *common)
    assert res.exit_code == 0, res.stderr
    assert "HelmRelease" in res.stdout and "app" in res.stdout
