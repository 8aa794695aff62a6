"""``fluxpy bootstrap git|github|gitlab``: flags and input checks that need no cluster and no server (the
end-to-end runs are in tests/bootstrap/). Every refusal is one ``✗`` line and exit code 1, before anything is
contacted."""
from __future__ import annotations

import pytest

from flux_cli.commands import bootstrap_git, bootstrap_github, bootstrap_gitlab  # noqa: F401 - registers them

NOWHERE = ["--kubeconfig", "/nonexistent/kubeconfig"]


def refused(res, fragment: str) -> None:
    assert res.exit_code == 1, (res.exit_code, res.stdout, res.stderr)
    assert "Traceback" not in res.stderr
    (line,) = [line for line in res.stderr.splitlines() if line.startswith("✗ ")]
    assert fragment in line, line


def test_bootstrap_help_lists_the_providers(fluxpy):
    res = fluxpy("bootstrap", "--help")
    assert res.exit_code == 0
    for word in ("git", "github", "gitlab"):
        assert word in res.stdout


@pytest.mark.parametrize("command", ["git", "github", "gitlab"])
def test_shared_flags_on_every_command(fluxpy, command):
    res = fluxpy("bootstrap", command, "--help")
    assert res.exit_code == 0
    for flag in ("--branch", "--components-extra", "--ssh-key-algorithm", "--private-key-file", "--author-name",
                 "--gpg-key-ring", "--token-auth", "--via-pull-request", "--read-only", "--secret-name", "--path",
                 "--interval", "--ui-actions"):
        assert flag in res.stdout, flag


@pytest.mark.parametrize("args, fragment", [
    ([], "--url is required"),
    (["--url", "git@github.com:acme/fleet.git"], "scp-like git@host:path is not supported"),
    (["--url", "http://example.com/fleet.git"], "scheme http is insecure, pass --allow-insecure-http"),
    (["--url", "ssh://git@example.com/fleet.git", "--path", "../up"], "invalid --path: invalid path '../up'"),
    (["--url", "ssh://git@example.com/fleet.git", "--via-pull-request", "--read-only"],
     "--via-pull-request and --read-only cannot be used together"),
    (["--url", "ssh://git@example.com/fleet.git", "--pull-request-branch", "x"], "--pull-request-branch needs"),
    (["--url", "ssh://git@example.com/fleet.git", "--gpg-passphrase", "x"], "need --gpg-key-ring"),
    (["--url", "ssh://git@example.com/fleet.git", "--ssh-key-algorithm", "dsa"], "invalid --ssh-key-algorithm 'dsa'"),
    (["--url", "ssh://git@example.com/fleet.git", "--ssh-ecdsa-curve", "p192"], "invalid --ssh-ecdsa-curve 'p192'"),
    (["--url", "ssh://git@example.com/fleet.git", "--components", "source-controller,nope"], "nope"),
    (["--url", "ssh://git@example.com/fleet.git", "--interval", "soon"], "invalid --interval"),
    (["--url", "ssh://git@example.com/fleet.git", "--ui-actions"], "ui"),
])
def test_git_input_is_checked_first(fluxpy, args, fragment):
    refused(fluxpy("bootstrap", "git", *args, *NOWHERE), fragment)


def test_required_components(fluxpy, tmp_path):
    res = fluxpy("bootstrap", "git", "--url", "ssh://git@example.com/fleet.git", "--components",
                 "source-controller", "--kubeconfig", str(tmp_path / "none"))
    refused(res, "component kustomize-controller is required")


def test_token_prompt_reads_stdin_and_refuses_nothing(fluxpy):
    res = fluxpy("bootstrap", "github", "--owner", "acme", "--repository", "fleet", *NOWHERE, input="")
    refused(res, "no GitHub token: set $GITHUB_TOKEN")
    res = fluxpy("bootstrap", "gitlab", "--owner", "acme", "--repository", "fleet", *NOWHERE, input="")
    refused(res, "no GitLab token: set $GITLAB_TOKEN")
    res = fluxpy("bootstrap", "git", "--url", "https://example.com/fleet.git", "--token-auth", *NOWHERE, input="")
    refused(res, "no Git password: set $GIT_PASSWORD")


@pytest.mark.parametrize("args, fragment", [
    (["--owner", "acme"], "--owner and --repository are required"),
    (["--owner", "acme", "--repository", "fleet", "--private-key-file", "k"], "not supported by 'bootstrap github'"),
])
def test_github_input(fluxpy, monkeypatch, args, fragment):
    monkeypatch.setenv("GITHUB_TOKEN", "t")
    refused(fluxpy("bootstrap", "github", *args, *NOWHERE), fragment)


@pytest.mark.parametrize("args, fragment", [
    (["--owner", "acme", "--repository", "-fleet"], "invalid project name for gitlab"),
    (["--owner", "acme", "--repository", "fleet", "--token-auth", "--deploy-token-auth"],
     "--token-auth and --deploy-token-auth cannot be set both"),
    (["--owner", "acme", "--repository", "fleet", "--visibility", "secret"], "invalid --visibility 'secret'"),
])
def test_gitlab_input(fluxpy, monkeypatch, args, fragment):
    monkeypatch.setenv("GITLAB_TOKEN", "t")
    refused(fluxpy("bootstrap", "gitlab", *args, *NOWHERE), fragment)


def test_unreadable_cluster_is_reported_before_the_repository_is_touched(fluxpy, tmp_path):
    res = fluxpy("bootstrap", "git", "--url", "ssh://git@127.0.0.1:9/fleet.git", "--kubeconfig",
                 str(tmp_path / "missing-kubeconfig"))
    assert res.exit_code == 1 and "Traceback" not in res.stderr
    assert "cloning" not in res.stderr
