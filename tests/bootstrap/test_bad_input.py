"""Bootstrap refuses bad input with one clear line — what failed and what to do — and leaves the cluster as it
was: a wrong token, a repository without access, branch protection refusing the push, an unreachable Git or
API host, a path outside the repository (or leaving it through a symlink)."""
from __future__ import annotations

import socket
import subprocess

import pytest

from controllers.api.builtin import NAMESPACE
from controllers.runtime.kube import NotFound
from servers.git import GitHTTPServer, GitSSHServer
from servers.githost import github_host, gitlab_host  # noqa: F401 - fixtures
from tests.bootstrap.support import E2E_COMPONENTS

pytestmark = pytest.mark.integration

COMPONENTS = ",".join(E2E_COMPONENTS)


def untouched(kube, namespace: str) -> bool:
    """Nothing was installed: the installation's namespace does not exist."""
    try:
        kube.get(NAMESPACE, namespace)
    except NotFound:
        return True
    return False


def refused(res, *fragments: str) -> None:
    assert res.exit_code == 1, repr(res)
    assert "Traceback" not in res.stderr + res.stdout, repr(res)
    lines = [line for line in res.stderr.splitlines() if line.startswith("✗ ")]
    assert len(lines) == 1, repr(res)
    for fragment in fragments:
        assert fragment in lines[0], repr(res)


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def provider_args(bplane, host, namespace: str, owner: str, repository: str, *extra: str) -> list[str]:
    return ["--owner", owner, "--repository", repository, "--hostname", host.hostname, "--ca-file", host.ca_file,
            "--components", COMPONENTS, "--timeout", "1m", "-n", namespace, "--kubeconfig", str(bplane.kubeconfig),
            *extra]


def test_wrong_github_token(fluxpy, bplane, bkube, github_host):
    res = fluxpy("bootstrap", "github", *provider_args(bplane, github_host, "bad-token", "acme", "fleet"),
                 env={"GITHUB_TOKEN": "ghp_not-a-real-token"})
    refused(res, "refused the token (401 Bad credentials)", "$GITHUB_TOKEN")
    assert untouched(bkube, "bad-token") and "acme/fleet" not in github_host.repos


def test_wrong_gitlab_token(fluxpy, bplane, bkube, gitlab_host):
    res = fluxpy("bootstrap", "gitlab", *provider_args(bplane, gitlab_host, "bad-gl-token", "acme", "fleet"),
                 env={"GITLAB_TOKEN": "glpat-wrong"})
    refused(res, "refused the token (401 Unauthorized)", "$GITLAB_TOKEN")
    assert untouched(bkube, "bad-gl-token")


def test_repository_without_access(fluxpy, bplane, bkube, github_host, gitlab_host):
    github_host.add_repo("acme", "private-fleet")
    mallory = github_host.users["mallory"].token
    res = fluxpy("bootstrap", "github", *provider_args(bplane, github_host, "no-access", "acme", "private-fleet"),
                 env={"GITHUB_TOKEN": mallory})
    refused(res, "'acme/private-fleet'", "forbidden (403", "'mallory' may not create repositories in organization "
                                                         "'acme'")
    assert untouched(bkube, "no-access")

    gitlab_host.add_repo("acme", "private-fleet")
    res = fluxpy("bootstrap", "gitlab", *provider_args(bplane, gitlab_host, "no-access-gl", "acme", "private-fleet"),
                 env={"GITLAB_TOKEN": gitlab_host.users["mallory"].token})
    refused(res, "'acme/private-fleet'", "no group 'acme' visible to 'mallory'")
    assert untouched(bkube, "no-access-gl")


def test_wrong_git_password(fluxpy, bplane, bkube, tmp_path):
    server = GitHTTPServer(tmp_path / "git", username="fluxbot", password="the-right-password").start()
    try:
        repo = server.repo("fleet", {"README.md": "x\n"})
        res = fluxpy("bootstrap", "git", "--url", server.url(repo), "--allow-insecure-http", "--token-auth",
                     "--username", "fluxbot", "--password", "the-wrong-password", "--components", COMPONENTS,
                     "-n", "bad-password", "--kubeconfig", str(bplane.kubeconfig))
    finally:
        server.stop()
    refused(res, f"failed to clone {server.url(repo)}", "the Git host refused the credentials")
    assert "the-wrong-password" not in res.stderr
    assert untouched(bkube, "bad-password")


def test_branch_protection_refusing_the_push(fluxpy, bplane, bkube, github_host):
    repo = github_host.add_repo("acme", "guarded", files={"README.md": "x\n"})
    github_host.protect(repo, "main")
    head = github_host.head(repo)
    res = fluxpy("bootstrap", "github", *provider_args(bplane, github_host, "protected", "acme", "guarded",
                                                       "--token-auth"), env={"GITHUB_TOKEN": github_host.token})
    refused(res, "the Git host refused the update: error: GH006: Protected branch update failed for refs/heads/main",
            "--via-pull-request", "--read-only")
    assert github_host.head(repo) == head
    assert untouched(bkube, "protected")


def test_unreachable_hosts(fluxpy, bplane, bkube, tmp_path):
    port = closed_port()
    res = fluxpy("bootstrap", "git", "--url", f"https://127.0.0.1:{port}/fleet.git", "--token-auth", "--password",
                 "x", "--components", COMPONENTS, "-n", "unreachable", "--kubeconfig", str(bplane.kubeconfig))
    refused(res, f"failed to clone https://127.0.0.1:{port}/fleet.git", "cannot reach the Git host")

    key = tmp_path / "id"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True, timeout=30)
    res = fluxpy("bootstrap", "git", "--url", f"ssh://git@127.0.0.1:{port}/fleet.git", "--private-key-file",
                 str(key), "--components", COMPONENTS, "-n", "unreachable", "--kubeconfig", str(bplane.kubeconfig))
    refused(res, f"cannot read the SSH host key of 127.0.0.1:{port}")

    res = fluxpy("bootstrap", "github", "--owner", "acme", "--repository", "fleet", "--hostname",
                 f"127.0.0.1:{port}", "--components", COMPONENTS, "-n", "unreachable", "--kubeconfig",
                 str(bplane.kubeconfig), env={"GITHUB_TOKEN": "t"})
    refused(res, f"cannot reach https://127.0.0.1:{port}/api/v3 (connection refused)", "--hostname")
    assert untouched(bkube, "unreachable")


def test_api_host_with_an_unknown_ca(fluxpy, bplane, bkube, gitlab_host):
    res = fluxpy("bootstrap", "gitlab", "--owner", "acme", "--repository", "fleet", "--hostname",
                 gitlab_host.hostname, "--components", COMPONENTS, "-n", "unknown-ca", "--kubeconfig",
                 str(bplane.kubeconfig), env={"GITLAB_TOKEN": gitlab_host.token})
    refused(res, "TLS verification of", "certificate verify failed", "--ca-file")
    assert untouched(bkube, "unknown-ca")


def test_path_outside_the_repository(fluxpy, bplane, bkube, tmp_path):
    for path in ("../outside", "/etc/flux", "clusters/../../x"):
        res = fluxpy("bootstrap", "git", "--url", "ssh://git@example.com/fleet.git", "--path", path,
                     "--components", COMPONENTS, "-n", "outside", "--kubeconfig", str(bplane.kubeconfig))
        refused(res, "invalid --path", repr(path))
    assert untouched(bkube, "outside")


def test_path_leaving_the_repository_through_a_symlink(fluxpy, bplane, bkube, tmp_path):
    server = GitSSHServer(tmp_path / "ssh").start()
    try:
        repo = server.repo("fleet", {"README.md": "x\n"})
        repo.commit({}, "link clusters outside", symlinks={"clusters": str(tmp_path / "elsewhere")})
        (tmp_path / "elsewhere").mkdir()
        key = tmp_path / "key"
        key.write_bytes(server.client_key)
        key.chmod(0o600)
        head = repo.head()
        res = fluxpy("bootstrap", "git", "--url", server.url(repo), "--private-key-file", str(key), "--path",
                     "clusters/dev", "--components", COMPONENTS, "-n", "symlinked", "--kubeconfig",
                     str(bplane.kubeconfig))
        assert repo.head() == head
    finally:
        server.stop()
    refused(res, "refusing to write", "resolves outside the repository")
    assert list((tmp_path / "elsewhere").iterdir()) == []
    assert untouched(bkube, "symlinked")


def test_missing_private_key_file(fluxpy, bplane, tmp_path):
    res = fluxpy("bootstrap", "git", "--url", "ssh://git@example.com/fleet.git", "--private-key-file",
                 str(tmp_path / "nope"), "-n", "x", "--kubeconfig", str(bplane.kubeconfig))
    refused(res, "failed to read private key file", "no such file or directory")


def test_deploy_key_not_confirmed_changes_nothing(fluxpy, bplane, bkube, tmp_path):
    server = GitHTTPServer(tmp_path / "git", username="fluxbot", password="a-long-http-password").start()
    ssh = GitSSHServer(tmp_path / "ssh").start()  # the cluster would read over SSH: its host key is scanned
    try:
        repo = server.repo("fleet", {"README.md": "x\n"})
        head = repo.head()
        res = fluxpy("bootstrap", "git", "--url", server.url(repo), "--allow-insecure-http", "--username",
                     "fluxbot", "--password", "a-long-http-password", "--ssh-hostname", f"127.0.0.1:{ssh.port}",
                     "--components", COMPONENTS, "-n", "unconfirmed", "--kubeconfig", str(bplane.kubeconfig))
        assert repo.head() == head
    finally:
        server.stop()
        ssh.stop()
    refused(res, "aborting: give the public key above read access to the repository", "--silent")
    assert "✔ public key: ecdsa-sha2-nistp384 " in res.stderr
    assert untouched(bkube, "unconfirmed")
