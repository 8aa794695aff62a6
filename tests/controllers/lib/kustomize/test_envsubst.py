"""Flux's envsubst syntax, and postBuild substitution through a real build against the real apiserver.

The expected values of the syntax table were produced by fluxcd/pkg/envsubst v1.5.0 (the version Flux 2.7
runs) on the same inputs, non-strict and strict; "!" marks an error message.
"""
from __future__ import annotations

import base64

import pytest

from controllers.api.builtin import CONFIGMAP, SECRET
from controllers.lib.kustomize.build import build
from controllers.lib.kustomize.envsubst import EnvsubstError, PostBuild, VariableNotSet, expand, substitute_text
from controllers.lib.kustomize.errors import BuildError

from ...conftest import configmap, write_tree

VARS = {"a": "hello", "empty": "", "path": "/usr/local/bin", "img": "nginx:1.2.3", "n": "2", "word": "Flux"}

# (input, non-strict result, strict result) as fluxcd/pkg/envsubst v1.5.0 gives them
CASES = [
    ("${a}", "hello", "hello"),
    ("$${a}", "${a}", "${a}"),
    ("$$${a}", "$hello", "$hello"),
    ("$a", "$a", "$a"),
    ("a$$b", "a$b", "a$b"),
    ("$", "$", "$"),
    ("${a}${a}", "hellohello", "hellohello"),
    ("x ${a} y", "x hello y", "x hello y"),
    ("${a:=x}", "hello", "hello"),
    ("${empty:=def}", "def", "def"),
    ("${unset:=def}", "def", "def"),
    ("${unset:-def}", "def", "def"),
    ("${unset=def}", "def", "def"),
    ("${a:+alt}", "hello", "hello"),
    ("${unset:=a${a}b}", "ahellob", "ahellob"),
    ("${unset:=${empty:=deep}}", "deep", "deep"),
    ("${unset:=}", "", ""),
    ("${#a}", "5", "5"),
    ("${#unset}", "0", "0"),
    ("${a:1}", "ello", "ello"),
    ("${a:1:3}", "ell", "ell"),
    ("${a:-2}", "hello", "hello"),
    ("${a: -2}", "hello", "hello"),
    ("${a:10}", "", ""),
    ("${a:n}", "hello", "hello"),
    ("${word,}", "flux", "flux"),
    ("${word,,}", "flux", "flux"),
    ("${a^}", "Hello", "Hello"),
    ("${a^^}", "HELLO", "HELLO"),
    ("${path#*/}", "usr/local/bin", "usr/local/bin"),
    ("${path##*/}", "bin", "bin"),
    ("${path%/*}", "/usr/local", "/usr/local"),
    ("${path%%/*}", "", ""),
    ("${img/:/@}", "nginx@1.2.3", "nginx@1.2.3"),
    ("${a/l/L}", "heLlo", "heLlo"),
    ("${a//l/L}", "heLLo", "heLLo"),
    ("${a/#he/HE}", "HEllo", "HEllo"),
    ("${a/%lo/LO}", "helLO", "helLO"),
    ("${a//l}", "!bad substitution", "!bad substitution"),
    ("${path//\\//-}", "-usr-local-bin", "-usr-local-bin"),
    ("${a", "!missing closing brace", "!missing closing brace"),
    ("${}", "!unable to parse variable name", "!unable to parse variable name"),
    ("${a-x}", "!missing closing brace", "!missing closing brace"),
    ("${a+x}", "!missing closing brace", "!missing closing brace"),
    ("${a:}", "!unable to parse substitution within function", "!unable to parse substitution within function"),
    ("${a?}", "!missing closing brace", "!missing closing brace"),
    ("${a!}", "!missing closing brace", "!missing closing brace"),
    ("${a:=x", "!unable to parse substitution within function", "!unable to parse substitution within function"),
    ("${#}", "!bad substitution", "!bad substitution"),
    ("${1a}", "", "!variable not set (strict mode): \"1a\""),
    ("${a.b}", "!missing closing brace", "!missing closing brace"),
    ("$${unset}", "${unset}", "${unset}"),
    ("${a} $${a} $$$${a}", "hello ${a} $${a}", "hello ${a} $${a}"),
    ("'${a}'", "'hello'", "'hello'"),
    ("\"${a}\"", "\"hello\"", "\"hello\""),
    ("${a}\\n", "hello\\n", "hello\\n"),
    ("${unset}", "", "!variable not set (strict mode): \"unset\""),
    ("pre-${unset}-post", "pre--post", "!variable not set (strict mode): \"unset\""),
]


def _run(text: str, strict: bool) -> str:
    try:
        if strict:
            return expand(text, VARS, strict=True)
        return expand(text, lambda name: VARS.get(name, ""))
    except EnvsubstError as exc:
        return "!" + str(exc)


@pytest.mark.parametrize("text,loose,strict", CASES, ids=[c[0] for c in CASES])
def test_syntax_matches_flux(text, loose, strict):
    assert _run(text, False) == loose
    assert _run(text, True) == strict


def test_strict_error_names_the_variable():
    with pytest.raises(VariableNotSet) as err:
        expand("image: ${registry}/app:${tag:=latest}", {}, strict=True)
    assert err.value.name == "registry"
    assert str(err.value) == 'variable not set (strict mode): "registry"'


def test_invalid_variable_names_are_refused_as_flux_does():
    with pytest.raises(EnvsubstError, match=r"^'my-var' var name is invalid, must match "
                                             r"'\^\[_\[:alpha:\]\]\[_\[:alpha:\]\[:digit:\]\]\*\$'$"):
        substitute_text("x", {"my-var": "1"})
    assert substitute_text("${_x1}", {"_x1": "ok"}) == "ok"


def test_post_build_without_variables_leaves_even_defaults():
    post_build = PostBuild({"substitute": {}}, "ns")
    obj = {"metadata": {"name": "x"}}
    assert post_build.substitute(obj, "a: ${b:=c}\n") is None


def test_post_build_opt_out_by_label_or_annotation():
    post_build = PostBuild({"substitute": {"v": "1"}}, "ns")
    for field in ("labels", "annotations"):
        obj = {"metadata": {"name": "x", field: {"kustomize.toolkit.fluxcd.io/substitute": "disabled"}}}
        assert post_build.substitute(obj, "a: ${v}\n") is None
    assert post_build.substitute({"metadata": {"name": "x"}}, "a: ${v}\n") == "a: 1\n"


def test_substitute_values_lose_newlines():
    post_build = PostBuild({"substitute": {"v": "a\nb"}}, "ns")
    assert post_build.substitute({"metadata": {}}, "x: ${v}\n") == "x: ab\n"


# --------------------------------------------------------------------------- through a build

APP = {
    "kustomization.yaml": "resources:\n- cm.yaml\n",
    "cm.yaml": """
        apiVersion: v1
        kind: ConfigMap
        metadata:
          name: app
          annotations:
            escaped: $${not_a_var}
        data:
          env: ${cluster_env:=dev}
          region: ${region}
          replicas: "${replicas}"
          token: ${token:=none}
        """,
}


def _data(result) -> dict:
    (obj,) = result.objects
    return obj["data"]


def test_substitute_from_configmaps_and_secrets_in_order(tmp_path, kube, namespace):
    kube.create(CONFIGMAP, {"metadata": {"name": "vars"}, "data": {"region": "eu-1", "cluster_env": "staging"}},
                namespace)
    kube.create(SECRET, {"metadata": {"name": "secret-vars"},
                         "data": {"region": base64.b64encode(b"eu-2").decode(),
                                  "token": base64.b64encode(b"s3cr3t\n").decode()}}, namespace)
    spec = {"postBuild": {
        "substitute": {"replicas": "3"},
        "substituteFrom": [{"kind": "ConfigMap", "name": "vars"}, {"kind": "Secret", "name": "secret-vars"},
                           {"kind": "ConfigMap", "name": "absent", "optional": True}]}}
    result = build(write_tree(tmp_path, APP), spec, name="app", namespace=namespace, kube=kube)
    # kustomize drops the quotes of "${replicas}" before substitution, so 3 is a number, as in Flux
    assert _data(result) == {"env": "staging", "region": "eu-2", "replicas": 3, "token": "s3cr3t"}
    assert result.objects[0]["metadata"]["annotations"] == {"escaped": "${not_a_var}"}


def test_substitution_types_values_as_yaml_does(tmp_path):
    files = {"cm.yaml": """
        apiVersion: apps/v1
        kind: Deployment
        metadata:
          name: app
        spec:
          replicas: ${replicas}
          paused: ${paused}
          selector: {matchLabels: {app: app}}
          template:
            metadata: {labels: {app: app}}
            spec: {containers: [{name: app, image: "nginx:${tag}"}]}
        """}
    spec = {"postBuild": {"substitute": {"replicas": "2", "paused": "true", "tag": "1.25"}}}
    (obj,) = build(write_tree(tmp_path, files), spec, name="app", namespace="ns").objects
    assert obj["spec"]["replicas"] == 2 and obj["spec"]["paused"] is True
    assert obj["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_quoted_values_stay_strings_as_flux_documents(tmp_path):
    """Flux's documented way to substitute a number into a string field: quotes inside the value."""
    spec = {"postBuild": {"substitute": {"replicas": '"3"', "region": "'0123'"}}}
    data = _data(build(write_tree(tmp_path, APP), spec, name="app", namespace="ns"))
    assert data["replicas"] == "3" and data["region"] == "0123"


def test_missing_required_substitute_from_fails_the_build(tmp_path, kube, namespace):
    spec = {"postBuild": {"substituteFrom": [{"kind": "ConfigMap", "name": "nope"}]}}
    with pytest.raises(BuildError) as err:
        build(write_tree(tmp_path, APP), spec, name="app", namespace=namespace, kube=kube)
    assert err.value.reason == "BuildFailed"
    assert err.value.message == ("post build failed for 'ConfigMap.v1.[noGrp]/app': substitute from "
                                 "'ConfigMap/nope' error: configmaps \"nope\" not found")


def test_strict_mode_names_the_missing_variable(tmp_path):
    spec = {"postBuild": {"substitute": {"replicas": "1"}}}
    with pytest.raises(BuildError) as err:
        build(write_tree(tmp_path, APP), spec, name="app", namespace="ns", strict_substitution=True)
    assert err.value.message == ("post build failed for 'ConfigMap.v1.[noGrp]/app': envsubst error: variable "
                                 "substitution failed: variable not set (strict mode): \"region\"")
    # without strict mode the missing variable is empty
    (obj,) = build(write_tree(tmp_path / "again", APP), spec, name="app", namespace="ns").objects
    assert obj["data"]["region"] is None


def test_opt_out_annotation_keeps_the_text(tmp_path):
    files = {"a.yaml": configmap("a", v="${v}"),
             "b.yaml": configmap("b", v="${v}").replace(
                 "  name: b\n", "  name: b\n  annotations:\n    kustomize.toolkit.fluxcd.io/substitute: disabled\n")}
    result = build(write_tree(tmp_path, files), {"postBuild": {"substitute": {"v": "x"}}}, name="app", namespace="ns")
    assert [o["data"]["v"] for o in result.objects] == ["x", "${v}"]
