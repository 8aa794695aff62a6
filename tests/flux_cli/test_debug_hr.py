"""``fluxpy debug hr``: a HelmRelease's final values composed as Flux composes them (valuesFrom ConfigMaps
and Secrets in order, valuesKey, targetPath, optional, then inline values), its status and history."""
from __future__ import annotations

import base64

import pytest
import yaml

from controllers.api.builtin import CONFIGMAP, SECRET
from controllers.api.helm import HELM_RELEASE
from controllers.lib.values import set_path_value


def _release(kube, namespace, values_from, values=None):
    spec = {"interval": "5m", "chart": {"spec": {"chart": "app", "sourceRef": {"kind": "HelmRepository",
                                                                               "name": "repo"}}},
            "valuesFrom": values_from}
    if values is not None:
        spec["values"] = values
    kube.create(HELM_RELEASE, {"apiVersion": HELM_RELEASE.api_version, "kind": "HelmRelease",
                               "metadata": {"name": "app", "namespace": namespace}, "spec": spec}, namespace)


def test_show_values_composes_values_from_in_order(fluxpy, kube, kubeconfig, namespace, flux_crds):
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "common"},
                            "data": {"values.yaml": "replicas: 1\nimage: {tag: '1.0', pull: Always}\n",
                                     "extra.yaml": "image: {tag: '2.0'}\n"}}, namespace)
    secret = {"values.yaml": "db: {password: s3cr3t}\n", "token": "abc,def"}
    kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
                         "data": {k: base64.b64encode(v.encode()).decode() for k, v in secret.items()}}, namespace)
    _release(kube, namespace, [
        {"kind": "ConfigMap", "name": "common"},
        {"kind": "ConfigMap", "name": "common", "valuesKey": "extra.yaml"},
        {"kind": "Secret", "name": "creds"},
        {"kind": "Secret", "name": "creds", "valuesKey": "token", "targetPath": "auth.tokens[0]"},
        {"kind": "ConfigMap", "name": "absent", "optional": True},
        {"kind": "Secret", "name": "creds", "valuesKey": "nokey", "optional": True},
    ], values={"replicas": 3})
    res = fluxpy("debug", "hr", "app", "--show-values", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout) == {"replicas": 3, "image": {"tag": "2.0", "pull": "Always"},
                                          "db": {"password": "s3cr3t"}, "auth": {"tokens": ["abc,def"]}}


@pytest.mark.parametrize("ref, message", [
    ({"kind": "ConfigMap", "name": "missing"},
     "could not resolve ConfigMap chart values reference '{ns}/missing' with key 'values.yaml': "
     "configmaps \"missing\" not found"),
    ({"kind": "ConfigMap", "name": "bad", "valuesKey": "nope"},
     "could not resolve ConfigMap chart values reference '{ns}/bad' with key 'nope': key not found in resource"),
    ({"kind": "ConfigMap", "name": "bad"}, "failed to read values data"),
])
def test_show_values_names_the_unresolvable_reference(fluxpy, kube, kubeconfig, namespace, flux_crds, ref,
                                                      message):
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "bad"},
                            "data": {"values.yaml": "a: [unclosed\n"}}, namespace)
    _release(kube, namespace, [ref])
    res = fluxpy("debug", "hr", "app", "--show-values", "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and message.format(ns=namespace) in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_show_status_and_history_and_flag_errors(fluxpy, kube, kubeconfig, namespace, flux_crds):
    _release(kube, namespace, [])
    history = [{"chartName": "app", "chartVersion": "1.0.0", "configDigest": "sha256:" + "a" * 64,
                "digest": "sha256:" + "b" * 64, "firstDeployed": "2026-01-01T00:00:00Z",
                "lastDeployed": "2026-01-01T00:00:00Z", "name": "app", "namespace": namespace,
                "status": "deployed", "version": 1}]
    kube.patch(HELM_RELEASE, "app", {"status": {"history": history, "lastAttemptedRevision": "1.0.0"}}, namespace,
               subresource="status")
    common = ("-n", namespace, "--kubeconfig", str(kubeconfig))
    res = fluxpy("debug", "helmrelease", "app", "--show-status", *common)
    assert res.exit_code == 0 and res.stdout.startswith("# Status documentation: https://fluxcd.io/")
    assert yaml.safe_load(res.stdout)["lastAttemptedRevision"] == "1.0.0"
    res = fluxpy("debug", "hr", "app", "--show-history", *common)
    assert res.exit_code == 0 and yaml.safe_load(res.stdout) == history
    for flags in ([], ["--show-status", "--show-values"]):
        res = fluxpy("debug", "hr", "app", *flags, *common)
        assert res.exit_code == 1 and "exactly one of --show-status, --show-values, or --show-history" in res.stderr
    res = fluxpy("debug", "hr", "nope", "--show-status", *common)
    assert res.exit_code == 1 and f"HelmRelease '{namespace}/nope' not found" in res.stderr


@pytest.mark.parametrize("path, value, expected", [
    ("a.b", "true", {"a": {"b": True}}),
    ("a.b", "'true'", {"a": {"b": "true"}}),
    ("n", "42", {"n": 42}),
    ("n", "007", {"n": "007"}),
    ("list[1].name", "x", {"list": [None, {"name": "x"}]}),
    (r"annotations.example\.com/key", "v", {"annotations": {"example.com/key": "v"}}),
    ("a", "null", {"a": None}),
])
def test_target_path_types_as_helm_set(path, value, expected):
    values: dict = {}
    set_path_value(values, path, value)
    assert values == expected
