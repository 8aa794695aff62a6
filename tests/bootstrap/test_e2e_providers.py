"""``fluxpy bootstrap github`` and ``bootstrap gitlab`` end to end: the real PyGithub and python-gitlab against
the local GitHub/GitLab (tests/servers/githost.py: their REST wire format over real repositories, HTTPS with
a private CA, SSH with deploy keys scoped to one repository), the real controllers, the local control plane.

Also the protected-branch flows: ``--via-pull-request`` (a pull request is opened, the cluster is installed
with a read-only deploy key and finishes once it is merged — or says what is left) and ``--read-only``.
"""
from __future__ import annotations

import base64
import threading
import time

import pytest
import yaml

from controllers.api.builtin import NAMESPACE, SECRET
from controllers.api.kinds import kind_by_name
from controllers.api.objects import dig
from controllers.runtime.kube import NotFound
from servers.githost import github_ssh_host, gitlab_host  # noqa: F401 - fixtures
from tests.bootstrap.support import E2E_COMPONENTS, controller_logs

pytestmark = pytest.mark.integration

GIT_REPOSITORY = kind_by_name("GitRepository")
KUSTOMIZATION = kind_by_name("Kustomization")
COMPONENTS = ",".join(E2E_COMPONENTS)


def common_args(bplane, namespace: str, *extra: str) -> list[str]:
    return ["--components", COMPONENTS, "--no-watch-all-namespaces", "--timeout", "3m", "-n", namespace,
            "--kubeconfig", str(bplane.kubeconfig), *extra]


def secret_data(kube, namespace: str, name: str = "flux-system") -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in kube.get(SECRET, name, namespace)["data"].items()}


def test_github_creates_the_repository_and_a_read_only_deploy_key(fluxpy, bplane, bkube, controllers_for,
                                                                  github_ssh_host):
    host, ns = github_ssh_host, "gitops-gh"
    logs = controllers_for(ns)
    args = ["bootstrap", "github", "--owner", "acme", "--repository", "fleet-gh", "--team", "platform",
            "--hostname", host.hostname, "--ca-file", host.ca_file, "--path", "clusters/gh",
            *common_args(bplane, ns)]
    res = fluxpy(*args, env={"GITHUB_TOKEN": host.token})
    assert res.exit_code == 0, f"{res!r}\n{controller_logs(logs)}"

    repo = host.repo("acme/fleet-gh")
    assert repo.private and repo.teams == {"platform": "maintain"}
    (key,) = repo.keys
    assert key.title == "gitops-gh-main-flux-system-./clusters/gh" and key.read_only
    data = secret_data(bkube, ns)
    assert set(data) == {"identity", "identity.pub", "known_hosts"}
    assert data["identity.pub"].startswith("ecdsa-sha2-nistp384 ")
    assert " ".join(key.key.split()[:2]) == " ".join(data["identity.pub"].split()[:2])
    gitrepo = bkube.get(GIT_REPOSITORY, ns, ns)
    assert gitrepo["spec"]["url"] == host.ssh_url(repo)  # the cluster reads over SSH with the deploy key
    assert dig(gitrepo, "status.artifact.revision") == f"main@sha1:{host.head(repo)}"
    assert host.log(repo) == ["Add fluxpy sync manifests", f"Add fluxpy {_tag()} component manifests"]
    for line in (f"► connecting to {host.hostname}", "repository 'https://", "created",
                 "✔ granted 'maintain' permissions to 'platform'", "✔ public key: ecdsa-sha2-nistp384 ",
                 "✔ configured deploy key 'gitops-gh-main-flux-system-./clusters/gh'", "✔ bootstrap finished"):
        assert line in res.stderr, res.stderr
    assert ("GET", "/api/v3/user") in host.requests and ("POST", "/api/v3/orgs/acme/repos") in host.requests

    # again: nothing to create, commit or register
    calls = len(host.requests)
    again = fluxpy(*args, env={"GITHUB_TOKEN": host.token})
    assert again.exit_code == 0, repr(again)
    assert "created" not in again.stderr and "pushing" not in again.stderr and "deploy key" not in again.stderr
    assert len(repo.keys) == 1
    assert [c for c in host.requests[calls:] if c[0] != "GET" and "/teams/" not in c[1]] == []


def _tag() -> str:
    from controllers import __version__

    return f"v{__version__}"


def test_gitlab_deploy_token_over_https(fluxpy, bplane, bkube, controllers_for, gitlab_host):
    host, ns = gitlab_host, "gitops-gl"
    logs = controllers_for(ns)
    host.add_repo("acme", "fleet-gl", files={"README.md": "# fleet\n"})
    args = ["bootstrap", "gitlab", "--owner", "acme", "--repository", "fleet-gl", "--deploy-token-auth",
            "--hostname", host.hostname, "--ca-file", host.ca_file, "--path", "clusters/gl",
            *common_args(bplane, ns)]
    res = fluxpy(*args, env={"GITLAB_TOKEN": host.token})
    assert res.exit_code == 0, f"{res!r}\n{controller_logs(logs)}"
    repo = host.repo("acme/fleet-gl")
    (token,) = repo.tokens
    assert token.name == "gitops-gl-main-flux-system-./clusters/gl" and token.scopes == ["read_repository"]
    data = secret_data(bkube, ns)
    assert data == {"username": token.username, "password": token.token, "ca.crt": host.ca_pem.decode()}
    gitrepo = bkube.get(GIT_REPOSITORY, ns, ns)
    assert gitrepo["spec"]["url"] == host.http_url(repo)
    assert dig(gitrepo, "status.artifact.revision") == f"main@sha1:{host.head(repo)}"
    assert "✔ configured deploy token 'gitops-gl-main-flux-system-./clusters/gl'" in res.stderr

    again = fluxpy(*args, env={"GITLAB_TOKEN": host.token})
    assert again.exit_code == 0, repr(again)
    assert "✔ reconciled deploy token for source secret" in again.stderr
    assert len(repo.tokens) == 1 and secret_data(bkube, ns)["password"] == token.token


def test_via_pull_request_on_a_protected_branch(fluxpy, bplane, bkube, controllers_for, github_ssh_host):
    host, ns = github_ssh_host, "gitops-pr"
    logs = controllers_for(ns)
    repo = host.add_repo("acme", "fleet-pr", files={"README.md": "# fleet\n"})
    host.protect(repo, "main")
    before = host.head(repo)
    args = ["bootstrap", "github", "--owner", "acme", "--repository", "fleet-pr", "--via-pull-request",
            "--hostname", host.hostname, "--ca-file", host.ca_file, "--path", "clusters/pr",
            "--ssh-key-algorithm", "ed25519", *common_args(bplane, ns)]

    merged = {}

    def merge_when_opened() -> None:  # the reviewer
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not repo.changes:
            time.sleep(0.2)
        time.sleep(1)
        if repo.changes:
            merged["sha"] = host.merge(repo, repo.changes[0].number)

    reviewer = threading.Thread(target=merge_when_opened, daemon=True)
    reviewer.start()
    res = fluxpy(*args, env={"GITHUB_TOKEN": host.token})
    reviewer.join(5)
    assert res.exit_code == 0, f"{res!r}\n{controller_logs(logs)}"
    (change,) = repo.changes
    assert change.head == "fluxpy-bootstrap-main" and change.base == "main" and change.state == "merged"
    assert host.head(repo) == merged["sha"] != before
    # the files live in <path>/<namespace>/
    assert host.read(repo, "clusters/pr/gitops-pr/gotk-sync.yaml").startswith("# This manifest was generated")
    (key,) = repo.keys
    assert key.read_only and key.key.startswith("ssh-ed25519 ")  # the source-controller reads with it over SSH
    assert dig(bkube.get(KUSTOMIZATION, ns, ns), "status.lastAppliedRevision") == f"main@sha1:{merged['sha']}"
    for line in ("✔ pushed manifests to branch 'fluxpy-bootstrap-main'", "✔ opened pull request #1: https://",
                 "◎ waiting for pull request #1 to be merged", "✔ pull request #1 merged",
                 "✔ bootstrap finished"):
        assert line in res.stderr, res.stderr

    # a push to the protected branch itself is refused, with what to do instead
    res = fluxpy("bootstrap", "github", "--owner", "acme", "--repository", "fleet-pr", "--hostname", host.hostname,
                 "--ca-file", host.ca_file, "--path", "clusters/pr", "--version", "0.0.2",
                 *common_args(bplane, ns), env={"GITHUB_TOKEN": host.token})
    assert res.exit_code == 1
    assert "GH006: Protected branch update failed for refs/heads/main" in res.stderr
    assert "--via-pull-request" in res.stderr
    assert host.head(repo) == merged["sha"]


def test_via_pull_request_says_what_is_left_then_finishes(fluxpy, bplane, bkube, controllers_for, gitlab_host):
    host, ns = gitlab_host, "gitops-mr"
    controllers_for(ns)
    repo = host.add_repo("acme", "fleet-mr", files={"README.md": "# fleet\n"})
    host.protect(repo, "main")
    args = ["bootstrap", "gitlab", "--owner", "acme", "--repository", "fleet-mr", "--via-pull-request",
            "--token-auth", "--hostname", host.hostname, "--ca-file", host.ca_file, "--path", "clusters/mr",
            "--components", COMPONENTS, "--no-watch-all-namespaces", "-n", ns, "--kubeconfig",
            str(bplane.kubeconfig)]
    res = fluxpy(*args, "--timeout", "20s", env={"GITLAB_TOKEN": host.token})
    assert res.exit_code == 0, repr(res)
    (change,) = repo.changes
    assert change.state == "open"
    assert (f"⚠ waiting for a merge: merge request #1 ({host.base_url}/acme/fleet-mr/-/merge_requests/1) is not "
            "merged yet") in res.stderr
    # the cluster is set up already and waits for Git
    assert bkube.get(GIT_REPOSITORY, ns, ns)["spec"]["ref"] == {"branch": "main"}
    assert secret_data(bkube, ns)["password"] == host.token

    again = fluxpy(*args, "--timeout", "10s", env={"GITLAB_TOKEN": host.token})
    assert again.exit_code == 0
    assert "already proposes these manifests" in again.stderr
    assert "✔ found open merge request #1" in again.stderr and len(repo.changes) == 1

    sha = host.merge(repo, change.number)
    done = fluxpy(*args, "--timeout", "3m", env={"GITLAB_TOKEN": host.token})
    assert done.exit_code == 0, repr(done)
    assert "branch 'main' has the manifests: no pull request needed" in done.stderr
    assert dig(bkube.get(KUSTOMIZATION, ns, ns), "status.lastAppliedRevision") == f"main@sha1:{sha}"


def test_read_only_prints_the_manifests_then_installs(fluxpy, bplane, bkube, controllers_for, github_ssh_host):
    host, ns = github_ssh_host, "gitops-ro"
    repo = host.add_repo("acme", "fleet-ro", files={"README.md": "# fleet\n"})
    args = ["bootstrap", "github", "--owner", "acme", "--repository", "fleet-ro", "--read-only", "--hostname",
            host.hostname, "--ca-file", host.ca_file, "--path", "clusters/ro", *common_args(bplane, ns)]
    res = fluxpy(*args, env={"GITHUB_TOKEN": host.token})
    assert res.exit_code == 0, repr(res)
    assert host.log(repo) == ["update"] and repo.keys == []
    with pytest.raises(NotFound):
        bkube.get(NAMESPACE, ns)
    files = {}
    for block in res.stdout.split("# clusters/")[1:]:
        path, _, content = block.partition("\n")
        files[f"clusters/{path}"] = content
    assert set(files) == {"clusters/ro/gitops-ro/gotk-components.yaml", "clusters/ro/gitops-ro/gotk-sync.yaml",
                          "clusters/ro/gitops-ro/kustomization.yaml"}
    assert [d["kind"] for d in yaml.safe_load_all(files["clusters/ro/gitops-ro/gotk-sync.yaml"])] == [
        "GitRepository", "Kustomization"]
    assert "commit the file(s) above to branch 'main'" in res.stderr

    host.commit(repo, {p: c if c.endswith("\n") else c + "\n" for p, c in files.items()}, "Add fluxpy manifests")
    logs = controllers_for(ns)
    res = fluxpy(*args, env={"GITHUB_TOKEN": host.token})
    assert res.exit_code == 0, f"{res!r}\n{controller_logs(logs)}"
    assert "✔ manifests are up to date in Git" in res.stderr
    assert host.log(repo)[0] == "Add fluxpy manifests" and repo.keys[0].read_only
    assert dig(bkube.get(KUSTOMIZATION, ns, ns), "status.lastAppliedRevision") == f"main@sha1:{host.head(repo)}"
