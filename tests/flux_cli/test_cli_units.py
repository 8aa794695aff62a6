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
    assert normalize_bool_flags(["get", "ks"]) == ["get", "ks"]
