"""``fluxpy create helmrelease``: flux 2.7's flags and validation, ``--export``, and an applied object the
apiserver's HelmRelease schema accepts."""
from __future__ import annotations

import pytest
import yaml

from controllers.api.helm import HELM_RELEASE


def test_export_merges_values_files_in_order(fluxpy, tmp_path):
    (tmp_path / "a.yaml").write_text("replicas: 2\ningress: {enabled: true, host: a}\n")
    (tmp_path / "b.yaml").write_text("ingress: {host: b}\n")
    res = fluxpy("create", "hr", "podinfo", "--source", "helmrepository/podinfo.flux-system", "--chart", "podinfo",
                 "--values", f"{tmp_path / 'a.yaml'},{tmp_path / 'b.yaml'}", "--values-from", "configmap/common",
                 "--depends-on", "infra/cert-manager", "--create-target-namespace", "--target-namespace", "apps",
                 "--storage-namespace", "helm", "--service-account", "deployer", "--chart-interval", "5m",
                 "--kubeconfig-secret-ref", "remote", "-n", "default", "--export")
    assert res.exit_code == 0, res.stderr
    spec = yaml.safe_load(res.stdout)["spec"]
    assert spec["values"] == {"replicas": 2, "ingress": {"enabled": True, "host": "b"}}
    assert spec["chart"]["spec"] == {"chart": "podinfo", "interval": "5m0s", "reconcileStrategy": "ChartVersion",
                                     "sourceRef": {"kind": "HelmRepository", "name": "podinfo",
                                                   "namespace": "flux-system"}}
    assert spec["valuesFrom"] == [{"kind": "ConfigMap", "name": "common"}]
    assert spec["dependsOn"] == [{"name": "cert-manager", "namespace": "infra"}]
    assert (spec["targetNamespace"], spec["storageNamespace"], spec["install"]) == ("apps", "helm",
                                                                                   {"createNamespace": True})
    assert spec["serviceAccountName"] == "deployer" and spec["kubeConfig"] == {"secretRef": {"name": "remote"}}
    assert list(spec) == sorted(spec), "flux prints the keys sorted"


@pytest.mark.parametrize("args, message", [
    ([], "chart or chart-ref is required"),
    (["--chart", "c", "--chart-ref", "HelmChart/c"], "cannot use --chart in combination with --chart-ref"),
    (["--chart", "c"], "no helm chart source given"),
    (["--chart", "c", "--source", "podinfo"], "invalid helm chart source 'podinfo', must be in format <kind>/<name>"),
    (["--chart", "c", "--source", "OCIRepository/x"],
     "source kind 'OCIRepository' is not supported, must be one of: HelmRepository, GitRepository, Bucket"),
    (["--chart-ref", "Bucket/x"], "chart reference kind 'Bucket' is not supported, must be one of: OCIRepository, "
                                  "HelmChart"),
    (["--chart-ref", "HelmChart/x", "--crds", "Always"], "upgrade CRDs policy 'Always' is not supported"),
    (["--chart-ref", "HelmChart/x", "--values-from", "Deployment/x"],
     "reference kind 'Deployment' is not supported, must be one of: Secret, ConfigMap"),
    (["--chart-ref", "HelmChart/x", "--values", "/nonexistent/values.yaml"],
     "reading values from /nonexistent/values.yaml failed: open /nonexistent/values.yaml: no such file"),
])
def test_flag_errors(fluxpy, args, message):
    res = fluxpy("create", "helmrelease", "x", *args, "--export")
    assert res.exit_code == 1 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""


def test_values_that_are_not_a_map(fluxpy, tmp_path):
    (tmp_path / "v.yaml").write_text("- a\n- b\n")
    res = fluxpy("create", "hr", "x", "--chart-ref", "HelmChart/x", "--values", str(tmp_path / "v.yaml"), "--export")
    assert res.exit_code == 1 and "the document is not a map" in res.stderr


def test_create_applies_what_the_crd_accepts(fluxpy, kube, kubeconfig, namespace, flux_crds, tmp_path):
    (tmp_path / "v.yaml").write_text("message: hi\n")
    res = fluxpy("create", "hr", "podinfo", "--source", "HelmRepository/podinfo", "--chart", "podinfo",
                 "--chart-version", "6.x", "--values", str(tmp_path / "v.yaml"), "--crds", "Skip",
                 "--target-namespace", "apps", "-n", namespace, "--kubeconfig", str(kubeconfig), "--timeout", "2s")
    # no helm-controller runs here: the object is applied, then the wait ends at --timeout with one line
    assert "HelmRelease created" in res.stderr and "Traceback" not in res.stderr
    obj = kube.get(HELM_RELEASE, "podinfo", namespace)
    assert obj["spec"]["values"] == {"message": "hi"} and obj["spec"]["upgrade"] == {"crds": "Skip"}
    assert obj["spec"]["chart"]["spec"]["version"] == "6.x" and obj["spec"]["storageNamespace"] == "apps"
