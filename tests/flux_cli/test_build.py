"""``fluxpy build kustomization`` (local builds with the cluster's or a file's Kustomization, printed as flux
prints them) and ``fluxpy envsubst``."""
from __future__ import annotations

import pytest
import yaml

import flux_cli.commands.build  # noqa: F401  (registers ``build kustomization``)
import flux_cli.commands.envsubst  # noqa: F401  (registers ``envsubst``)
from tests.controllers.conftest import new_age_key, sops_encrypt, write_tree as write

KUSTOMIZATION = """
apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps
  prune: true
  sourceRef:
    kind: GitRepository
    name: flux-system
  targetNamespace: prod
  commonMetadata:
    labels:
      team: a
  postBuild:
    substitute:
      cluster_env: production
"""

FILES = {
    "apps/cm.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: settings
        data:
          env: ${cluster_env}
          region: ${region:=eu-west-1}
          motd: Welcome to a rather long message of the day that goes past eighty columns for sure
        """,
    "apps/secret.yaml": """
        apiVersion: v1
        kind: Secret
        metadata:
          name: plain
        stringData:
          token: abc
        """,
}

EXPECTED = """\
apiVersion: v1
data:
  env: production
  motd: Welcome to a rather long message of the day that goes past eighty columns
    for sure
  region: eu-west-1
kind: ConfigMap
metadata:
  labels:
    kustomize.toolkit.fluxcd.io/name: apps
    kustomize.toolkit.fluxcd.io/namespace: flux-system
    team: a
  name: settings
  namespace: prod
---
apiVersion: v1
kind: Secret
metadata:
  labels:
    kustomize.toolkit.fluxcd.io/name: apps
    kustomize.toolkit.fluxcd.io/namespace: flux-system
    team: a
  name: plain
  namespace: prod
stringData:
  token: abc
---
"""


def test_dry_run_with_a_kustomization_file(fluxpy, tmp_path):
    write(tmp_path, {**FILES, "ks.yaml": KUSTOMIZATION})
    before = sorted(p.name for p in (tmp_path / "apps").iterdir())
    res = fluxpy("build", "kustomization", "apps", "--path", str(tmp_path / "apps"),
                 "--kustomization-file", str(tmp_path / "ks.yaml"), "--dry-run")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == EXPECTED
    # the user's directory is untouched (no generated kustomization.yaml left behind)
    assert sorted(p.name for p in (tmp_path / "apps").iterdir()) == before


def test_ks_alias_and_sops_masking(fluxpy, tmp_path):
    write(tmp_path, {"apps/secret.yaml": FILES["apps/secret.yaml"], "ks.yaml": KUSTOMIZATION})
    sops_encrypt(tmp_path / "apps" / "secret.yaml", age=new_age_key().recipient)
    res = fluxpy("build", "ks", "apps", "--path", str(tmp_path / "apps"),
                 "--kustomization-file", str(tmp_path / "ks.yaml"), "--dry-run")
    assert res.exit_code == 0, res.stderr
    (secret,) = [d for d in yaml.safe_load_all(res.stdout) if d]
    assert "sops" not in secret and secret["stringData"] == {"token": "**SOPS**"}


def test_uses_the_cluster_kustomization_and_substitute_from(fluxpy, kubeconfig, kube, flux_crds, namespace, tmp_path):
    from controllers.api.builtin import CONFIGMAP
    from controllers.api.kinds import kind_by_name

    ks = yaml.safe_load(KUSTOMIZATION)
    ks["metadata"]["namespace"] = namespace
    ks["spec"]["postBuild"]["substituteFrom"] = [{"kind": "ConfigMap", "name": "cluster-vars"}]
    kube.create(kind_by_name("ks"), ks, namespace)
    kube.create(CONFIGMAP, {"metadata": {"name": "cluster-vars"}, "data": {"region": "us-east-2"}}, namespace)
    write(tmp_path, FILES)
    res = fluxpy("build", "kustomization", "apps", "--path", str(tmp_path / "apps"), "-n", namespace,
                 "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    cm = next(d for d in yaml.safe_load_all(res.stdout) if d and d["kind"] == "ConfigMap")
    assert cm["data"]["region"] == "us-east-2"
    assert cm["metadata"]["labels"]["kustomize.toolkit.fluxcd.io/namespace"] == namespace

    missing = fluxpy("build", "kustomization", "nope", "--path", str(tmp_path / "apps"), "-n", namespace,
                     "--kubeconfig", str(kubeconfig))
    assert missing.exit_code == 1
    assert 'failed to get kustomization object: kustomizations.kustomize.toolkit.fluxcd.io "nope" not found' \
        in missing.stderr


def test_relative_bases_and_ignore_rules(fluxpy, tmp_path):
    write(tmp_path, {
        ".git/HEAD": "ref: refs/heads/main\n",
        "base/kustomization.yaml": "resources: [cm.yaml]\n",
        "base/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base\n",
        "apps/kustomization.yaml": "resources: [../base, extra.yaml]\n",
        "apps/extra.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n",
        "plain/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
        "plain/skip/b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n",
        "plain/.sourceignore": "skip/\n",
        "plain/c.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        "ks.yaml": KUSTOMIZATION.replace("  postBuild:\n    substitute:\n      cluster_env: production\n", ""),
    })
    args = ("--kustomization-file", str(tmp_path / "ks.yaml"), "--dry-run")
    res = fluxpy("build", "ks", "apps", "--path", str(tmp_path / "apps"), *args)
    assert res.exit_code == 0, res.stderr
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(res.stdout) if d] == ["base", "extra"]
    res = fluxpy("build", "ks", "apps", "--path", str(tmp_path / "plain"), "--ignore-paths", "c.yaml", *args)
    assert res.exit_code == 0, res.stderr
    assert [d["metadata"]["name"] for d in yaml.safe_load_all(res.stdout) if d] == ["a"]


@pytest.mark.parametrize("args,message", [
    (["build", "kustomization"], "kustomization name is required"),
    (["build", "kustomization", "apps"], 'invalid resource path ""'),
    (["build", "kustomization", "apps", "--path", "/nonexistent"], 'invalid resource path "/nonexistent"'),
    (["build", "kustomization", "apps", "--path", ".", "--dry-run"], "dry-run mode requires a kustomization file"),
    (["build", "kustomization", "apps", "--path", ".", "--kustomization-file", "/nope.yaml"],
     'invalid kustomization file "/nope.yaml"'),
])
def test_invalid_arguments(fluxpy, args, message):
    res = fluxpy(*args)
    assert res.exit_code == 1 and res.stderr.strip() == f"✗ {message}", res.stderr


def test_kustomization_not_in_file_and_build_errors(fluxpy, tmp_path):
    write(tmp_path, {**FILES, "ks.yaml": KUSTOMIZATION, "bad/x.yaml": "kind: [\n"})
    res = fluxpy("build", "ks", "other", "--path", str(tmp_path / "apps"),
                 "--kustomization-file", str(tmp_path / "ks.yaml"), "--dry-run")
    assert res.exit_code == 1
    assert ("failed find kustomization with name 'other' and namespace 'flux-system' in file "
            f"'{tmp_path / 'ks.yaml'}'") in res.stderr
    res = fluxpy("build", "ks", "apps", "--path", str(tmp_path / "bad"),
                 "--kustomization-file", str(tmp_path / "ks.yaml"), "--dry-run")
    assert res.exit_code == 1
    assert "failed to generate kustomization.yaml: failed to decode Kubernetes YAML from " in res.stderr
    assert "x.yaml: yaml: line" in res.stderr


def test_strict_substitute(fluxpy, tmp_path):
    write(tmp_path, {**FILES, "ks.yaml": KUSTOMIZATION.replace("cluster_env: production", "other: x")})
    res = fluxpy("build", "ks", "apps", "--path", str(tmp_path / "apps"),
                 "--kustomization-file", str(tmp_path / "ks.yaml"), "--dry-run", "--strict-substitute")
    assert res.exit_code == 1
    assert res.stderr.strip() == ("✗ var substitution failed for 'settings': envsubst error: variable substitution "
                                  'failed: variable not set (strict mode): "cluster_env"')


# --------------------------------------------------------------------------- envsubst

def test_envsubst(fluxpy, monkeypatch):
    monkeypatch.setenv("CLUSTER_REGION", "eu-central-1")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    res = fluxpy("envsubst", input="region: ${CLUSTER_REGION}\nzone: ${UNSET_VAR:=a}\nlit: $${CLUSTER_REGION}\n"
                                   "empty: ${UNSET_VAR}\n")
    assert res.exit_code == 0, res.stderr
    assert res.stdout == "region: eu-central-1\nzone: a\nlit: ${CLUSTER_REGION}\nempty: \n"


def test_envsubst_strict(fluxpy, monkeypatch):
    monkeypatch.delenv("UNSET_VAR", raising=False)
    res = fluxpy("envsubst", "--strict", input="ok: ${UNSET_VAR:=default}\nbad: ${UNSET_VAR}\nnever: printed\n")
    assert res.exit_code == 1
    assert res.stdout == "ok: default\n"
    assert res.stderr.strip() == '✗ variable not set (strict mode): "UNSET_VAR"'
