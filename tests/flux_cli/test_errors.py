"""Bad input gets one clear line and a non-zero exit, never a traceback."""
from __future__ import annotations

import socket

import pytest
import yaml


def one_line_failure(res, *fragments: str) -> None:
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    failures = [line for line in lines if line.startswith("✗ ")]
    # progress lines may come first (as flux prints them); the failure is one line, and the last
    assert len(failures) == 1 and lines[-1] == failures[0], res.stderr
    assert "Traceback" not in res.stderr
    for fragment in fragments:
        assert fragment in failures[0], failures[0]


def test_missing_kubeconfig(fluxpy, tmp_path):
    one_line_failure(fluxpy("get", "ks", "--kubeconfig", str(tmp_path / "nope")), "does not exist")


def test_invalid_kubeconfig(fluxpy, tmp_path):
    bad = tmp_path / "config"
    bad.write_text("clusters: [: broken")
    one_line_failure(fluxpy("get", "ks", "--kubeconfig", str(bad)), "not valid YAML")


def test_unreachable_cluster(fluxpy, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    config = tmp_path / "config"
    config.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{port}"}}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
        "users": [{"name": "u", "user": {"token": "t"}}]}))
    one_line_failure(fluxpy("get", "ks", "--kubeconfig", str(config)), "cannot reach the Kubernetes API", str(port))


def test_exec_plugin_kubeconfig_works_and_unsupported_fields_fail_in_one_line(fluxpy, kubeconfig, flux_crds,
                                                                             tmp_path):
    from servers.kubeconfigs import exec_kubeconfig

    path, runs = exec_kubeconfig(kubeconfig, tmp_path)
    res = fluxpy("get", "sources", "git", "-A", "--kubeconfig", str(path))
    assert res.exit_code == 0, res.stderr
    assert runs.read_text() == "1"

    config = yaml.safe_load(path.read_text())
    config["users"][0]["user"]["as-user-extra"] = {"team": ["a"]}
    path.write_text(yaml.safe_dump(config))
    one_line_failure(fluxpy("get", "sources", "git", "-A", "--kubeconfig", str(path)),
                     "kubeconfig user 'exec-user': field 'as-user-extra' is not supported by fluxpy")


def test_wrong_context(fluxpy, kubeconfig):
    one_line_failure(fluxpy("get", "ks", "--context", "nope", "--kubeconfig", str(kubeconfig)), "context 'nope' not found")


def test_unknown_kind(fluxpy):
    one_line_failure(fluxpy("get", "widgets"), "unknown kind 'widgets'", "kustomization")


def test_unknown_object(fluxpy, kubeconfig, flux_crds, namespace):
    one_line_failure(fluxpy("get", "ks", "nope", "-n", namespace, "--kubeconfig", str(kubeconfig)),
                     f"Kustomization '{namespace}/nope' not found")
    one_line_failure(fluxpy("reconcile", "source", "git", "nope", "-n", namespace, "--kubeconfig", str(kubeconfig)),
                     "not found")
    one_line_failure(fluxpy("suspend", "hr", "nope", "-n", namespace, "--kubeconfig", str(kubeconfig)), "not found")


@pytest.mark.parametrize("args, fragment", [
    (["reconcile", "ks"], "name is required"),
    (["suspend", "alert-provider"], "name is required"),
    (["get", "ks", "a", "b"], "unexpected arguments"),
    (["get", "ks", "-o", "xml"], "invalid --output"),
    (["get", "ks", "--timeout", "soon"], "invalid duration"),
    (["reconcile", "source", "external", "x"], "does not support reconcile"),
])
def test_bad_arguments(fluxpy, args, fragment):
    res = fluxpy(*args)
    assert res.exit_code in (1, 2)
    assert fragment in res.stderr + res.stdout
    assert "Traceback" not in res.stderr
