"""``fluxpy diff kustomization``: a local directory built with the in-cluster Kustomization's spec, dry-run
against the cluster: created / drifted (with a diff) / deleted by prune; exit 0, 1 or 2 as flux."""
from __future__ import annotations

import time

import pytest

import flux_cli.commands.diff  # noqa: F401 - registers the command
from controllers.api.builtin import CONFIGMAP, SECRET
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import find_condition
from controllers.kustomize.reconciler import KustomizationReconciler, Options
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture


def cm(name: str, **data: str) -> str:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n" + "".join(
        f"  {k}: \"{v}\"\n" for k, v in data.items())


SECRET_YAML = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData:\n  password: {}\n"


@pytest.fixture
def applied(kube, namespace, flux_crds, start_controller, artifact_sources):
    """A Kustomization (prune, targetNamespace) that applied ConfigMaps a and b and a Secret; the controller is
    stopped afterwards, so nothing corrects the cluster behind the diff's back."""
    artifact_sources.publish(namespace, "app", {"deploy/a.yaml": cm("a", color="blue"), "deploy/b.yaml": cm("b"),
                                                "deploy/secret.yaml": SECRET_YAML.format("hunter2")})
    reconciler = KustomizationReconciler(Options(watch_applied=False))
    ctl = start_controller(reconciler, namespace)
    kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                "metadata": {"name": "app", "namespace": namespace},
                                "spec": {"interval": "1h", "path": "./deploy", "prune": True,
                                         "targetNamespace": namespace,
                                         "sourceRef": {"kind": "GitRepository", "name": "app"}}}, namespace)
    deadline = time.monotonic() + 30
    while (find_condition(kube.get(KUSTOMIZATION, "app", namespace), "Ready") or {}).get("status") != "True":
        assert time.monotonic() < deadline, "Kustomization not Ready"
        time.sleep(0.1)
    ctl.stop(5)
    return namespace


def write(directory, files: dict[str, str]):
    for rel, text in files.items():
        (directory / rel).write_text(text)
    return directory


def test_no_changes_exit_0(fluxpy, kubeconfig, applied, tmp_path):
    local = write(tmp_path, {"a.yaml": cm("a", color="blue"), "b.yaml": cm("b"),
                             "secret.yaml": SECRET_YAML.format("hunter2")})
    res = fluxpy("diff", "kustomization", "app", "--path", str(local), "-n", applied, "--kubeconfig", str(kubeconfig),
                 "--progress-bar=false")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == ""


def test_changes_exit_1_with_created_drifted_and_pruned(fluxpy, kube, kubeconfig, applied, tmp_path):
    namespace = applied
    local = write(tmp_path, {"a.yaml": cm("a", color="red"), "c.yaml": cm("c"),
                             "secret.yaml": SECRET_YAML.format("changed")})
    res = fluxpy("diff", "ks", "app", "--path", str(local), "-n", namespace, "--kubeconfig", str(kubeconfig),
                 "--progress-bar", "false")
    assert res.exit_code == 1, res.stderr
    assert "identified at least one change, exiting with non-zero exit code" in res.stderr
    lines = res.stdout.splitlines()
    assert f"► Secret/{namespace}/creds drifted" in lines
    assert f"► ConfigMap/{namespace}/a drifted" in lines
    assert f"► ConfigMap/{namespace}/c created" in lines
    assert lines[-1] == f"► ConfigMap/{namespace}/b deleted"
    assert '-  color: blue' in lines and '+  color: red' in lines
    assert "hunter2" not in res.stdout and "changed" not in res.stdout
    assert "*** (before)" in res.stdout and "*** (after)" in res.stdout
    # a dry run: nothing changed in the cluster
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"color": "blue"}
    kube.get(CONFIGMAP, "b", namespace)
    assert kube.list(CONFIGMAP, namespace, field_selector="metadata.name=c")["items"] == []
    assert kube.get(SECRET, "creds", namespace)


def test_a_kustomization_file_gives_the_spec(fluxpy, kubeconfig, applied, tmp_path):
    """The file's spec (prune: false here) with the cluster's inventory: nothing would be deleted."""
    (tmp_path / "src").mkdir()
    local = write(tmp_path / "src", {"a.yaml": cm("a", color="blue")})
    ks_file = tmp_path / "ks.yaml"
    ks_file.write_text(f"apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: app\n"
                       f"  namespace: {applied}\nspec:\n  interval: 1h\n  prune: false\n  targetNamespace: {applied}\n"
                       f"  sourceRef: {{kind: GitRepository, name: app}}\n")
    res = fluxpy("diff", "kustomization", "app", "--path", str(local), "--kustomization-file", str(ks_file),
                 "-n", applied, "--kubeconfig", str(kubeconfig), "--progress-bar=false")
    assert res.exit_code == 0, res.stdout + res.stderr


@pytest.mark.parametrize("case", ["no-path", "missing-path", "invalid-object", "build-error", "bad-flag"])
def test_errors_exit_2(fluxpy, kubeconfig, applied, tmp_path, case):
    args = ["--path", str(tmp_path)]
    if case == "no-path":
        args = []
    elif case == "missing-path":
        args = ["--path", str(tmp_path / "nope")]
    elif case == "invalid-object":
        write(tmp_path, {"svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  ports:\n"
                                     "  - port: 700000\n"})
    elif case == "build-error":
        write(tmp_path, {"kustomization.yaml": "resources: [missing.yaml]\n"})
    else:
        args += ["--progress-bar=maybe"]
    res = fluxpy("diff", "kustomization", "app", *args, "-n", applied, "--kubeconfig", str(kubeconfig),
                 "--progress-bar=false" if case != "bad-flag" else "--strict-substitute")
    assert res.exit_code == 2, (res.stdout, res.stderr)
    expected = {"no-path": 'invalid resource path ""', "missing-path": "invalid resource path",
                "invalid-object": f"Service/{applied}/web dry-run failed", "build-error": "missing.yaml",
                "bad-flag": 'invalid argument "maybe" for "--progress-bar" flag'}[case]
    assert expected in res.stderr, res.stderr


def test_missing_kustomization_exit_2(fluxpy, kubeconfig, namespace, flux_crds, tmp_path):
    res = fluxpy("diff", "kustomization", "nope", "--path", str(tmp_path), "-n", namespace,
                 "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 2
    assert 'failed to get kustomization object: kustomizations.kustomize.toolkit.fluxcd.io "nope" not found' \
        in res.stderr
