"""``fluxpy create source git`` and ``fluxpy create secret git``: flux's flags, validation, --export YAML,
generated deploy keys and scanned known_hosts, and the whole flow against the control plane with the real
GitRepository reconciler and real git servers (HTTP with basic auth, SSH)."""
from __future__ import annotations

import base64

import pytest
import yaml

import flux_cli.commands.create_secret_git  # noqa: F401 - registers the command
import flux_cli.commands.create_source_git  # noqa: F401 - registers the command
from controllers.api.builtin import SECRET
from controllers.api.source import GIT_REPOSITORY
from manifestgen.sync import generate_keypair
from servers.git import artifact_storage, git_servers, git_source_controller, git_ssh_server  # noqa: F401


def test_export_git_repository(fluxpy):
    res = fluxpy("create", "source", "git", "podinfo", "--url", "https://github.com/stefanprodan/podinfo",
                 "--branch", "master", "--ignore-paths", "a/,*.md", "--recurse-submodules", "--interval", "10m",
                 "--fetch-timeout", "2m", "--secret-ref", "creds", "--label", "team=a", "-n", "apps", "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout) == {
        "apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
        "metadata": {"name": "podinfo", "namespace": "apps", "labels": {"team": "a"}},
        "spec": {"url": "https://github.com/stefanprodan/podinfo", "interval": "10m0s", "ref": {"branch": "master"},
                 "timeout": "2m0s", "recurseSubmodules": True, "ignore": "a/\n*.md", "secretRef": {"name": "creds"}},
    }


def test_export_git_repository_with_a_provider(fluxpy):
    res = fluxpy("create", "source", "git", "x", "--url", "https://dev.azure.com/org/p/_git/r", "--branch", "main",
                 "--provider", "azure", "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout)["spec"]["provider"] == "azure"


@pytest.mark.parametrize("flags, ref", [
    (["--tag", "v1", "--branch", "main"], {"tag": "v1"}),
    (["--tag-semver", ">=1.0", "--tag", "v1"], {"semver": ">=1.0"}),
    (["--ref-name", "refs/pull/1/head", "--tag-semver", "*"], {"name": "refs/pull/1/head"}),
    (["--commit", "abc", "--branch", "main", "--tag", "v1"], {"commit": "abc", "branch": "main"}),
])
def test_export_ref_precedence(fluxpy, flags, ref):
    res = fluxpy("create", "source", "git", "x", "--url", "ssh://git@example.com/r", *flags, "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout)["spec"]["ref"] == ref


@pytest.mark.parametrize("args, message", [
    (["--branch", "main"], "url is required"),
    (["--url", "ftp://host/r", "--branch", "main"], "git URL scheme 'ftp' not supported, can be: ssh, http and https"),
    (["--url", "https://host/r"], "a Git ref is required, use one of the following: --branch, --tag, --commit, "
                                  "--ref-name or --tag-semver"),
    (["--url", "ssh://git@host/r", "--branch", "m", "--ca-file", "ca.crt"],
     "specifying a CA file is not supported for Git over SSH"),
    (["--url", "https://host/r", "--branch", "m", "--provider", "gitea"],
     "invalid argument \"gitea\" for \"--provider\" flag: source Git provider 'gitea' is not supported, must be "
     "one of: generic, azure, github"),
])
def test_source_git_flag_errors(fluxpy, args, message):
    res = fluxpy("create", "source", "git", "x", *args, "--export")
    assert res.exit_code == 1 and message in res.stderr


def test_secret_git_https_export(fluxpy, tmp_path):
    (tmp_path / "ca.crt").write_text("CA PEM")
    res = fluxpy("create", "secret", "git", "creds", "--url", "https://host/r", "-u", "user", "-p", "pass",
                 "--ca-crt-file", str(tmp_path / "ca.crt"), "--label", "a=b", "-n", "apps", "--export")
    assert res.exit_code == 0, res.stderr
    assert yaml.safe_load(res.stdout) == {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds", "namespace": "apps", "labels": {"a": "b"}},
        "stringData": {"username": "user", "password": "pass", "ca.crt": "CA PEM"}}
    token = fluxpy("create", "secret", "git", "t", "--url", "https://host/r", "--bearer-token", "tok", "--export")
    assert yaml.safe_load(token.stdout)["stringData"] == {"bearerToken": "tok"}


@pytest.mark.parametrize("args, message", [
    (["--url", "https://host/r", "-u", "user"], "for Git over HTTP/S the username and password, or a bearer token "
                                                "is required"),
    (["--url", "https://host/r", "-u", "u", "-p", "p", "--bearer-token", "t"],
     "user credentials and bearer token cannot be used together"),
    (["--url", "file:///r"], "git URL scheme 'file' not supported"),
    (["-u", "u"], "url is required"),
    (["--url", "ssh://git@127.0.0.1:1/r", "--ssh-key-algorithm", "dsa"], "unsupported public key algorithm: dsa"),
    (["--url", "ssh://git@127.0.0.1:1/r", "--ssh-ecdsa-curve", "p224"], "unsupported curve: p224"),
    (["--url", "ssh://git@127.0.0.1:1/r"], "SSH key scan for host 127.0.0.1:1 failed"),
])
def test_secret_git_errors(fluxpy, args, message):
    res = fluxpy("create", "secret", "git", "bad", *args, "--export")
    assert res.exit_code == 1 and message in res.stderr, res.stderr


@pytest.mark.parametrize("flags, prefix", [
    ([], "ecdsa-sha2-nistp384 "),
    (["--ssh-ecdsa-curve", "p521"], "ecdsa-sha2-nistp521 "),
    (["--ssh-key-algorithm", "ed25519"], "ssh-ed25519 "),
    (["--ssh-key-algorithm", "rsa", "--ssh-rsa-bits", "3072"], "ssh-rsa "),
])
def test_secret_git_key_algorithms(fluxpy, git_ssh_server, flags, prefix):
    res = fluxpy("create", "secret", "git", "k", "--url", f"ssh://git@127.0.0.1:{git_ssh_server.port}/r", *flags,
                 "--export")
    assert res.exit_code == 0, res.stderr
    data = yaml.safe_load(res.stdout)["stringData"]
    assert data["identity.pub"].startswith(prefix) and "PRIVATE KEY-----" in data["identity"]


def test_secret_git_ssh_generates_deploy_key_and_scans_host(fluxpy, kube, kubeconfig, namespace, git_ssh_server):
    url = f"ssh://git@127.0.0.1:{git_ssh_server.port}/org/repo"
    res = fluxpy("create", "secret", "git", "deploy", "--url", url, "-n", namespace, "--export")
    assert res.exit_code == 0, res.stderr
    data = yaml.safe_load(res.stdout)["stringData"]
    assert set(data) == {"identity", "identity.pub", "known_hosts"}
    assert data["identity.pub"].startswith("ecdsa-sha2-nistp384 ")  # flux's default: ECDSA P-384
    host_key = git_ssh_server.known_hosts.decode().split()[1:3]
    assert any(line.split()[0] == f"[127.0.0.1]:{git_ssh_server.port}" and line.split()[1:3] == host_key
               for line in data["known_hosts"].splitlines())

    res = fluxpy("create", "secret", "git", "deploy", "--url", url, "--ssh-key-algorithm", "ed25519", "-n", namespace,
                 "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 0, res.stderr
    secret = kube.get(SECRET, "deploy", namespace)
    public = base64.b64decode(secret["data"]["identity.pub"]).decode()
    assert f"deploy key: {public.strip()}" in res.stderr and public.startswith("ssh-ed25519 ")
    assert f"git secret 'deploy' created in '{namespace}' namespace" in res.stderr
    assert "PRIVATE KEY" not in res.stderr


def test_create_source_git_https_flow(fluxpy, kube, kubeconfig, namespace, git_servers, git_source_controller):
    server = git_servers(username="flux", password="pa55word")
    repo = server.repo("app", {"deploy/app.yaml": "kind: ConfigMap\n"})
    res = fluxpy("create", "source", "git", "app", "--url", server.url(repo), "--branch", "main", "-u", "flux",
                 "-p", "pa55word", "-n", namespace, "--kubeconfig", str(kubeconfig), "--timeout", "60s")
    assert res.exit_code == 0, res.stderr
    assert f"fetched revision main@sha1:{repo.head()}" in res.stderr
    assert "insecure configuration: credentials configured for an HTTP URL" in res.stderr
    assert "authentication configured" in res.stderr and "pa55word" not in res.stderr
    assert "GitRepository created" in res.stderr
    obj = kube.get(GIT_REPOSITORY, "app", namespace)
    assert obj["spec"]["secretRef"] == {"name": "app"}
    assert base64.b64decode(kube.get(SECRET, "app", namespace)["data"]["password"]) == b"pa55word"

    # update: a new ref on the same source
    head = repo.commit({"deploy/app.yaml": "kind: Secret\n"}, branch="next")
    res = fluxpy("create", "source", "git", "app", "--url", server.url(repo), "--branch", "next", "--secret-ref",
                 "app", "-n", namespace, "--kubeconfig", str(kubeconfig), "--timeout", "60s")
    assert res.exit_code == 0, res.stderr
    assert "GitRepository updated" in res.stderr and f"fetched revision next@sha1:{head}" in res.stderr

    # a failure is reported with the controller's message
    res = fluxpy("create", "source", "git", "app", "--url", server.url(repo), "--branch", "missing", "--secret-ref",
                 "app", "-n", namespace, "--kubeconfig", str(kubeconfig), "--timeout", "5s")
    assert res.exit_code == 1


def test_create_source_git_ssh_with_private_key_file(fluxpy, kube, kubeconfig, namespace, git_ssh_server,
                                                     git_source_controller, tmp_path):
    repo = git_ssh_server.repo("app", {"a.yaml": "a"})
    pair = generate_keypair("ecdsa")
    private, public = pair.private_key, pair.public_key
    (tmp_path / "key").write_bytes(private)
    git_ssh_server.authorize(public.decode())
    res = fluxpy("create", "source", "git", "app", "--url", git_ssh_server.url(repo), "--branch", "main",
                 "--private-key-file", str(tmp_path / "key"), "--silent", "-n", namespace, "--kubeconfig",
                 str(kubeconfig), "--timeout", "60s")
    assert res.exit_code == 0, res.stderr
    assert "collected public key from SSH server:" in res.stderr
    assert f"deploy key: {public.decode().strip()}" in res.stderr
    assert f"fetched revision main@sha1:{repo.head()}" in res.stderr
    secret = kube.get(SECRET, "app", namespace)
    assert base64.b64decode(secret["data"]["identity"]) == private

    # without --silent and nobody to confirm the deploy key: aborted before anything is applied
    res = fluxpy("create", "source", "git", "other", "--url", git_ssh_server.url(repo), "--branch", "main",
                 "-n", namespace, "--kubeconfig", str(kubeconfig))
    assert res.exit_code == 1 and "aborting" in res.stderr
