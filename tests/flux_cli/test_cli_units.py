"""Pure pieces of the CLI: global flags anywhere, kind words, completions kept up to date."""
from __future__ import annotations

from pathlib import Path

import pytest

from flux_cli import targets
from flux_cli.app import CLIError, hoist_global_flags
from flux_cli.commands.completion import SHELLS, script

ROOT = Path(__file__).resolve().parents[2]


def test_global_flags_are_hoisted_from_anywhere():
    argv = ["get", "ks", "-n", "apps", "--kubeconfig=/k", "--timeout", "1m", "name", "--", "-n"]
    assert hoist_global_flags(argv) == ["-n", "apps", "--kubeconfig=/k", "--timeout", "1m", "get", "ks", "name", "--", "-n"]


@pytest.mark.parametrize("words, kind, name", [
    (["source", "git", "podinfo"], "GitRepository", "podinfo"),
    (["sources", "git"], "GitRepository", None),
    (["gitrepositories", "x"], "GitRepository", "x"),
    (["ks", "apps"], "Kustomization", "apps"),
    (["Kustomization"], "Kustomization", None),
    (["hr", "web"], "HelmRelease", "web"),
    (["image", "policy", "p"], "ImagePolicy", "p"),
    (["alert-provider", "slack"], "Provider", "slack"),
])
def test_resolve_kind_words(words, kind, name):
    target = targets.resolve(words)
    assert (target.kind.kind, target.name) == (kind, name)


def test_resolve_all_and_groups():
    assert targets.resolve(["all"], allow_all=True).many
    sources = targets.resolve(["sources", "all"], allow_all=True)
    assert {k.kind for k in sources.kinds} >= {"GitRepository", "OCIRepository", "HelmRepository", "HelmChart", "Bucket"}
    with pytest.raises(CLIError):
        targets.resolve(["ks"], name="required")


@pytest.mark.parametrize("shell", sorted(SHELLS))
def test_completion_scripts_are_up_to_date(shell):
    committed = ROOT / "completions" / SHELLS[shell]
    assert committed.exists(), f"run 'make completions' to generate {committed}"
    assert committed.read_text() == script(shell), f"{committed} is stale: run 'make completions'"


def test_boolean_flags_accept_flux_style_values():
    from flux_cli.main import normalize_bool_flags

    args = ["create", "ks", "apps", "--prune=true", "--wait=false", "--label=a=true", "--path=./x=false"]
    # create ks has --wait without an off switch: --wait=false is just not --wait
    assert normalize_bool_flags(args) == ["create", "ks", "apps", "--prune", "--label=a=true", "--path=./x=false"]
    assert normalize_bool_flags(["install", "--wait=false"]) == ["install", "--no-wait"]
    assert normalize_bool_flags(["resume", "ks", "a", "--wait=TRUE"]) == ["resume", "ks", "a", "--wait"]
    # Go's other spellings, as pflag takes them
    assert normalize_bool_flags(["install", "--wait=0"]) == ["install", "--no-wait"]
    assert normalize_bool_flags(["resume", "ks", "a", "--wait=t", "--timeout=1"]) == ["resume", "ks", "a", "--wait",
                                                                                     "--timeout=1"]
    assert normalize_bool_flags(["get", "ks"]) == ["get", "ks"]


@pytest.mark.parametrize("value, kind, path", [
    ("GIT_PROVIDER", "GitRepository", "provider"),
    ("OCI_PROVIDER", "OCIRepository", "provider"),
    ("OCI_PROVIDER", "HelmRepository", "provider"),
    ("BUCKET_PROVIDER", "Bucket", "provider"),
    ("VERIFY_PROVIDER", "OCIRepository", "verify.provider"),
    ("DECRYPTION_PROVIDER", "Kustomization", "decryption.provider"),
    ("CHART_RECONCILE_STRATEGY", "HelmChart", "reconcileStrategy"),
    ("CRDS_POLICY", "HelmRelease", "upgrade.crds"),
])
def test_enum_flag_values_are_the_crd_enums(value, kind, path):
    """A typed flag value accepts exactly what the kind's schema does, and completes and documents it."""
    from controllers.api.kinds import kind_by_name
    from flux_cli import flags

    schema = kind_by_name(kind).spec_schema
    for key in path.split("."):
        schema = schema["properties"][key]
    typed = getattr(flags, value)
    assert set(typed.values) == set(schema["enum"])
    assert typed.check(typed.values[-1], "--x") == typed.values[-1]
    with pytest.raises(CLIError, match=f"{typed.what} 'nope' is not supported, must be one of: {typed.listing}"):
        typed.check("nope", "--x")
    assert typed.complete(typed.values[0][:1]) and typed.complete("zz-none") == []
