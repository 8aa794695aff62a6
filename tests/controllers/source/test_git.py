"""The GitRepository reconciler against real git servers (smart HTTP and SSH) and the real control plane.

Each test starts the reconciler in-process on a fresh namespace (``git_source_controller``), serves
repositories from a local git server and checks what Flux's source-controller would write: the status
(artifact, revision format, observed fields, conditions and reasons), the events and the artifact served
over HTTP. Bad input leaves the last artifact served and never shows a secret.
"""
from __future__ import annotations

import base64
import io
import tarfile
import time
import urllib.request

from controllers.api.builtin import SECRET
from controllers.api.objects import dig, find_condition
from controllers.api.source import GIT_REPOSITORY
from controllers.runtime import protocol
from servers.git import (artifact_storage, git_server, git_servers, git_source_controller,  # noqa: F401
                         git_ssh_server, gpg_key)
from servers.waiting import Waits, events, ready_with, wait_event

TIMEOUT = 60.0
#: A reconciliation is handled once Ready settled (protocol.ready_settled), as the CLI waits for it.
GIT_REPOSITORIES = Waits(GIT_REPOSITORY, TIMEOUT, settled=protocol.ready_settled)
wait, reconcile_now = GIT_REPOSITORIES.wait, GIT_REPOSITORIES.reconcile_now


# --------------------------------------------------------------------------- helpers


def gitrepo(kube, namespace: str, name: str, url: str, **spec) -> dict:
    spec = {"url": url, "interval": "1h", **spec}
    return kube.create(GIT_REPOSITORY, {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                                        "metadata": {"name": name, "namespace": namespace}, "spec": spec}, namespace)


def secret(kube, namespace: str, name: str, data: dict[str, bytes | str]) -> None:
    encoded = {k: base64.b64encode(v if isinstance(v, bytes) else v.encode()).decode() for k, v in data.items()}
    kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace},
                         "data": encoded}, namespace)


def wait_ready(kube, namespace: str, name: str, revision: str | None = None) -> dict:
    def ready(obj):
        if not protocol.ready_settled(obj):
            return False
        c = find_condition(obj, "Ready")
        if c["status"] != "True":
            raise AssertionError(f"{name} failed: {c['reason']}: {c['message']}")
        return revision is None or dig(obj, "status.artifact.revision") == revision
    return wait(kube, namespace, name, ready, f"{name} Ready at {revision or 'any revision'}")


def wait_failed(kube, namespace: str, name: str, reason: str) -> dict:
    return wait(kube, namespace, name, ready_with("False", reason), f"{name} Ready=False with {reason}")


def update_spec(kube, namespace: str, name: str, spec: dict) -> dict:
    return kube.patch(GIT_REPOSITORY, name, {"spec": spec}, namespace)


def fetch(url: str) -> dict[str, bytes]:
    """Download an artifact and return its files."""
    with urllib.request.urlopen(url, timeout=10) as resp:
        data = resp.read()
    files = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for member in tar.getmembers():
            if member.isfile():
                files[member.name] = tar.extractfile(member).read()
    return files


def assert_kept(kube, namespace: str, name: str, artifact: dict) -> None:
    """The last good artifact stays in the status and served."""
    obj = kube.get(GIT_REPOSITORY, name, namespace)
    assert obj["status"]["artifact"] == artifact
    assert fetch(artifact["url"])


def no_secret_in(obj: dict, *secrets: str) -> None:
    text = repr(obj.get("status"))
    for value in secrets:
        assert value not in text


# --------------------------------------------------------------------------- HTTP, revisions, artifacts


def test_basic_auth_artifact_revision_events_and_no_new_artifact(kube, namespace, git_servers, git_source_controller):
    server = git_servers(username="flux", password="s3cr3t-pass")
    repo = server.repo("app", {"deploy/app.yaml": "kind: ConfigMap\n", ".github/workflows/ci.yaml": "x",
                               "logo.png": "png", "run.sh": "#!/bin/sh\n"}, message="initial commit")
    secret(kube, namespace, "creds", {"username": "flux", "password": "s3cr3t-pass"})
    gitrepo(kube, namespace, "app", server.url(repo), ref={"branch": "main"}, secretRef={"name": "creds"})
    obj = wait_ready(kube, namespace, "app", f"main@sha1:{repo.head()}")

    artifact = obj["status"]["artifact"]
    assert artifact["path"] == f"gitrepository/{namespace}/app/{repo.head()}.tar.gz"
    assert artifact["digest"].startswith("sha256:") and artifact["size"] > 0
    assert artifact["url"] == f"http://{git_source_controller.storage.advertised_address}/{artifact['path']}"
    files = fetch(artifact["url"])
    assert set(files) == {"deploy/app.yaml", "run.sh"}  # .git, CI configuration and images left out
    ready = find_condition(obj, "Ready")
    assert (ready["reason"], ready["message"]) == ("Succeeded", f"stored artifact for revision 'main@sha1:{repo.head()}'")
    assert find_condition(obj, "ArtifactInStorage")["message"] == ready["message"]
    assert find_condition(obj, "Reconciling") is None and find_condition(obj, "FetchFailed") is None
    assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
    assert "observedIgnore" not in obj["status"] and "includedArtifacts" not in obj["status"]
    event = wait_event(kube, namespace, "app", "NewArtifact")
    assert event["message"] == "stored artifact for commit 'initial commit'" and event["type"] == "Normal"
    assert event["metadata"]["annotations"] == {"source.toolkit.fluxcd.io/revision": artifact["revision"],
                                                "source.toolkit.fluxcd.io/digest": artifact["digest"]}

    # unchanged remote: no clone, no new artifact
    requests = server.requests
    again = reconcile_now(kube, namespace, "app")
    assert again["status"]["artifact"] == artifact
    assert server.requests - requests <= 2  # one ls-remote (discovery + ls-refs)
    assert len([e for e in events(kube, namespace, "app") if e["reason"] == "NewArtifact"]) == 1

    # a new commit: a new artifact, the old one kept (retention 2)
    head = repo.commit({"deploy/app.yaml": "kind: Secret\n"}, "second\n\nbody")
    obj = reconcile_now(kube, namespace, "app")
    assert obj["status"]["artifact"]["revision"] == f"main@sha1:{head}"
    assert fetch(obj["status"]["artifact"]["url"])["deploy/app.yaml"] == b"kind: Secret\n"
    assert git_source_controller.storage.has(artifact)
    assert wait_event(kube, namespace, "app", "NewArtifact")["message"] == "stored artifact for commit 'second'"

    # deletion removes every artifact
    kube.delete(GIT_REPOSITORY, "app", namespace)
    GIT_REPOSITORIES.gone(kube, namespace, "app")
    assert not git_source_controller.storage.local_path(f"gitrepository/{namespace}/app").exists()


def test_bearer_token(kube, namespace, git_servers, git_source_controller):
    server = git_servers(bearer_token="tok-123456")
    repo = server.repo("app", {"a.yaml": "a"})
    secret(kube, namespace, "token", {"bearerToken": "tok-123456"})
    gitrepo(kube, namespace, "app", server.url(repo), ref={"branch": "main"}, secretRef={"name": "token"})
    wait_ready(kube, namespace, "app", f"main@sha1:{repo.head()}")


def test_custom_ca_over_https(kube, namespace, git_servers, git_source_controller):
    server = git_servers(tls=True, username="u", password="p")
    repo = server.repo("app", {"a.yaml": "a"})
    secret(kube, namespace, "no-ca", {"username": "u", "password": "p"})
    gitrepo(kube, namespace, "untrusted", server.url(repo), ref={"branch": "main"}, secretRef={"name": "no-ca"})
    failed = wait_failed(kube, namespace, "untrusted", "GitOperationFailed")
    assert "certificate" in find_condition(failed, "Ready")["message"]
    secret(kube, namespace, "with-ca", {"username": "u", "password": "p", "ca.crt": server.ca_pem})
    gitrepo(kube, namespace, "trusted", server.url(repo), ref={"branch": "main"}, secretRef={"name": "with-ca"})
    wait_ready(kube, namespace, "trusted", f"main@sha1:{repo.head()}")


def test_refs_and_flux_precedence(kube, namespace, git_server, git_source_controller):
    repo = git_server.repo("app", {"v": "1"}, branch="master")
    first = repo.head("master")
    repo.tag("v1.2.3", annotated=True)
    second = repo.commit({"v": "2"}, branch="master")
    repo.tag("v1.3.0")
    repo.tag("v2.0.0-rc.1")
    feature = repo.commit({"v": "feature"}, branch="feature/x")
    url = git_server.url(repo)
    cases = {
        "default": ({}, f"master@sha1:{second}"),
        "branch": ({"branch": "feature/x"}, f"feature/x@sha1:{feature}"),
        "tag": ({"tag": "v1.2.3"}, f"v1.2.3@sha1:{first}"),
        "semver": ({"semver": ">=1.0.0 <2.0.0"}, f"v1.3.0@sha1:{second}"),
        "name": ({"name": "refs/heads/feature/x"}, f"refs/heads/feature/x@sha1:{feature}"),
        "commit": ({"commit": first}, f"sha1:{first}"),
        "commit-branch": ({"commit": first, "branch": "master"}, f"master@sha1:{first}"),
        # Flux's precedence: commit > name > tag > semver > branch
        "all": ({"commit": first, "name": "refs/heads/feature/x", "tag": "v1.3.0", "semver": "*"}, f"sha1:{first}"),
        "tag-over-semver": ({"tag": "v1.2.3", "semver": "*", "branch": "feature/x"}, f"v1.2.3@sha1:{first}"),
    }
    for name, (ref, _) in cases.items():
        gitrepo(kube, namespace, name, url, **({"ref": ref} if ref else {}))
    for name, (_, revision) in cases.items():
        obj = wait_ready(kube, namespace, name, revision)
        assert obj["status"]["artifact"]["path"].endswith(f"/{revision.rpartition(':')[2]}.tar.gz")
    assert fetch(kube.get(GIT_REPOSITORY, "tag", namespace)["status"]["artifact"]["url"]) == {"v": b"1"}


def test_ignore_rules_and_observed_ignore(kube, namespace, git_server, git_source_controller):
    repo = git_server.repo("app", {".sourceignore": "/secret/\n*.txt\n", "secret/key.yaml": "k", "a.txt": "t",
                                   "deploy/app.yaml": "a", "deploy/extra.yaml": "e", "logo.png": "png"})
    gitrepo(kube, namespace, "app", git_server.url(repo), ref={"branch": "main"})
    obj = wait_ready(kube, namespace, "app")
    # a .sourceignore replaces Flux's default excludes (images are kept), VCS files are always out
    assert set(fetch(obj["status"]["artifact"]["url"])) == {".sourceignore", "deploy/app.yaml", "deploy/extra.yaml",
                                                            "logo.png"}
    first = obj["status"]["artifact"]
    obj = update_spec(kube, namespace, "app", {"ignore": "deploy/extra.yaml\n"})
    obj = wait(kube, namespace, "app", lambda o: protocol.ready_settled(o) and
               dig(o, "status.observedIgnore") == "deploy/extra.yaml\n", "observedIgnore")
    assert obj["status"]["artifact"]["revision"] == first["revision"]  # same revision, new content
    assert obj["status"]["artifact"]["digest"] != first["digest"]
    assert "deploy/extra.yaml" not in fetch(obj["status"]["artifact"]["url"])


def test_include_other_repositories(kube, namespace, git_server, git_source_controller):
    lib = git_server.repo("lib", {"base/cm.yaml": "lib", "other.yaml": "o"})
    app = git_server.repo("app", {"app.yaml": "app"})
    gitrepo(kube, namespace, "app", git_server.url(app), ref={"branch": "main"},
            include=[{"repository": {"name": "lib"}, "fromPath": "base", "toPath": "vendor/lib"},
                     {"repository": {"name": "lib"}}])
    waiting = wait(kube, namespace, "app", lambda o: (find_condition(o, "IncludeUnavailable") or {}).get("reason")
                   == "NotFound", "IncludeUnavailable")
    assert "could not get resource for include 'lib'" in find_condition(waiting, "Ready")["message"]
    gitrepo(kube, namespace, "lib", git_server.url(lib), ref={"branch": "main"})
    lib_obj = wait_ready(kube, namespace, "lib")
    obj = wait_ready(kube, namespace, "app")
    assert set(fetch(obj["status"]["artifact"]["url"])) == {"app.yaml", "vendor/lib/cm.yaml", "lib/base/cm.yaml",
                                                            "lib/other.yaml"}
    assert obj["status"]["includedArtifacts"] == [lib_obj["status"]["artifact"]] * 2
    assert obj["status"]["observedInclude"][0] == {"repository": {"name": "lib"}, "fromPath": "base",
                                                   "toPath": "vendor/lib"}
    # a new revision of the included repository gives a new artifact at the same revision of app
    lib.commit({"base/cm.yaml": "lib v2"})
    new_lib = reconcile_now(kube, namespace, "lib")["status"]["artifact"]
    obj = reconcile_now(kube, namespace, "app")
    assert obj["status"]["includedArtifacts"][0]["revision"] == new_lib["revision"]
    assert fetch(obj["status"]["artifact"]["url"])["vendor/lib/cm.yaml"] == b"lib v2"


def test_submodules_and_sparse_checkout(kube, namespace, git_server, git_source_controller):
    sub = git_server.repo("sub", {"sub.yaml": "s"})
    repo = git_server.repo("app", {"apps/a.yaml": "a", "infra/i.yaml": "i", "top.yaml": "t"})
    repo.commit({}, "add submodule", submodules={"modules/sub": git_server.url(sub)})
    gitrepo(kube, namespace, "plain", git_server.url(repo), ref={"branch": "main"})
    gitrepo(kube, namespace, "recursive", git_server.url(repo), ref={"branch": "main"}, recurseSubmodules=True)
    gitrepo(kube, namespace, "sparse", git_server.url(repo), ref={"branch": "main"}, sparseCheckout=["./apps"])
    plain = fetch(wait_ready(kube, namespace, "plain")["status"]["artifact"]["url"])
    assert "modules/sub/sub.yaml" not in plain
    recursive = wait_ready(kube, namespace, "recursive")
    assert fetch(recursive["status"]["artifact"]["url"])["modules/sub/sub.yaml"] == b"s"
    assert recursive["status"]["observedRecurseSubmodules"] is True
    sparse = wait_ready(kube, namespace, "sparse")
    assert set(fetch(sparse["status"]["artifact"]["url"])) == {"apps/a.yaml"}
    assert sparse["status"]["observedSparseCheckout"] == ["./apps"]
    update_spec(kube, namespace, "sparse", {"sparseCheckout": ["missing"]})
    failed = wait_failed(kube, namespace, "sparse", "GitOperationFailed")
    assert "sparse checkout dir 'missing' does not exist" in find_condition(failed, "Ready")["message"]
    assert failed["status"]["artifact"] == sparse["status"]["artifact"]


def test_symlinks_inside_are_resolved_escaping_ones_dropped(kube, namespace, git_server, git_source_controller):
    repo = git_server.repo("app", {})
    repo.commit({"base/cm.yaml": "cm"}, symlinks={"link.yaml": "base/cm.yaml", "dir": "base",
                                                  "escape": "../../../../etc/passwd"})
    gitrepo(kube, namespace, "app", git_server.url(repo), ref={"branch": "main"})
    files = fetch(wait_ready(kube, namespace, "app")["status"]["artifact"]["url"])
    assert files == {"base/cm.yaml": b"cm", "link.yaml": b"cm", "dir/cm.yaml": b"cm"}


# --------------------------------------------------------------------------- SSH


def test_ssh_identity_and_known_hosts(kube, namespace, git_ssh_server, git_source_controller):
    repo = git_ssh_server.repo("app", {"a.yaml": "a"})
    url = git_ssh_server.url(repo)
    secret(kube, namespace, "ssh", {"identity": git_ssh_server.client_key, "known_hosts": git_ssh_server.known_hosts})
    gitrepo(kube, namespace, "app", url, ref={"branch": "main"}, secretRef={"name": "ssh"})
    good = wait_ready(kube, namespace, "app", f"main@sha1:{repo.head()}")

    # a host key that does not match: no bypass, GitOperationFailed (as Flux); the last artifact stays
    other = b"[127.0.0.1]:%d ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl\n" % \
        git_ssh_server.port
    secret(kube, namespace, "wrong-host", {"identity": git_ssh_server.client_key, "known_hosts": other})
    update_spec(kube, namespace, "app", {"secretRef": {"name": "wrong-host"}})
    failed = wait_failed(kube, namespace, "app", "GitOperationFailed")
    assert "Host key verification failed" in find_condition(failed, "Ready")["message"]
    assert_kept(kube, namespace, "app", good["status"]["artifact"])

    secret(kube, namespace, "no-hosts", {"identity": git_ssh_server.client_key})
    gitrepo(kube, namespace, "nohosts", url, ref={"branch": "main"}, secretRef={"name": "no-hosts"})
    failed = wait_failed(kube, namespace, "nohosts", "AuthenticationFailed")
    assert find_condition(failed, "Ready")["message"] == \
        "failed to configure authentication options: invalid 'ssh' auth option: 'known_hosts' is required"
    no_secret_in(failed, git_ssh_server.client_key.decode().splitlines()[1])


# --------------------------------------------------------------------------- verification


def test_commit_and_tag_signatures(kube, namespace, git_server, git_source_controller, gpg_key):
    repo = git_server.repo("app", {})
    signed = repo.commit({"a.yaml": "a"}, "signed", sign=gpg_key)
    repo.tag("v1.0.0", sign=gpg_key)
    secret(kube, namespace, "keys", {"author.asc": gpg_key.public_armor})
    gitrepo(kube, namespace, "head", git_server.url(repo), ref={"branch": "main"},
            verify={"mode": "HEAD", "secretRef": {"name": "keys"}})
    gitrepo(kube, namespace, "tag", git_server.url(repo), ref={"tag": "v1.0.0"},
            verify={"mode": "TagAndHEAD", "secretRef": {"name": "keys"}})
    obj = wait_ready(kube, namespace, "head")
    verified = find_condition(obj, "SourceVerified")
    assert verified["status"] == "True" and verified["reason"] == "Succeeded"
    assert verified["message"] == f"verified signature of\n\t- commit '{signed}' with key '{gpg_key.key_id}'"
    assert obj["status"]["sourceVerificationMode"] == "HEAD"
    tag = wait_ready(kube, namespace, "tag")
    assert find_condition(tag, "SourceVerified")["message"] == (
        f"verified signature of\n\t- tag 'v1.0.0' with key '{gpg_key.key_id}'\n\t- commit '{signed}' with key "
        f"'{gpg_key.key_id}'")

    unsigned = repo.commit({"a.yaml": "b"}, "unsigned")
    token = protocol.request_reconcile(kube, GIT_REPOSITORY, "head", namespace)
    failed = wait(kube, namespace, "head", lambda o: dig(o, "status.lastHandledReconcileAt") == token and
                  (find_condition(o, "Ready") or {}).get("reason") == "InvalidCommitSignature", "unsigned rejected")
    assert find_condition(failed, "SourceVerified")["status"] == "False"
    assert find_condition(failed, "Ready")["message"] == (
        f"signature verification of commit '{unsigned}' failed: unable to verify payload as the provided "
        "signature is empty")
    assert failed["status"]["artifact"] == obj["status"]["artifact"]

    gitrepo(kube, namespace, "branch-tag", git_server.url(repo), ref={"branch": "main"},
            verify={"mode": "Tag", "secretRef": {"name": "keys"}})
    stalled = wait_failed(kube, namespace, "branch-tag", "InvalidVerificationMode")
    assert find_condition(stalled, "Stalled")["status"] == "True"


# --------------------------------------------------------------------------- bad input


def test_bad_input_keeps_the_last_artifact_and_hides_secrets(kube, namespace, git_servers, git_source_controller):
    server = git_servers(username="flux", password="right-password")
    repo = server.repo("app", {"a.yaml": "a"})
    secret(kube, namespace, "creds", {"username": "flux", "password": "right-password"})
    secret(kube, namespace, "wrong", {"username": "flux", "password": "wrong-password-42"})
    gitrepo(kube, namespace, "app", server.url(repo), ref={"branch": "main"}, secretRef={"name": "creds"})
    good = wait_ready(kube, namespace, "app")["status"]["artifact"]

    cases = [
        ({"secretRef": {"name": "wrong"}}, "GitOperationFailed",
         f"failed to checkout and determine revision: unable to list remote for '{server.url(repo)}': "
         "authentication required"),
        ({"secretRef": {"name": "missing"}}, "AuthenticationFailed",
         f"failed to get secret '{namespace}/missing': secrets \"missing\" not found"),
        ({"secretRef": {"name": "creds"}, "ref": {"branch": "nope"}}, "GitOperationFailed",
         f"failed to checkout and determine revision: unable to clone '{server.url(repo)}': "
         "couldn't find remote ref \"refs/heads/nope\""),
        ({"ref": {"branch": None, "semver": "9.x"}}, "GitOperationFailed",
         "failed to checkout and determine revision: no match found for semver: 9.x"),
        ({"url": "http://127.0.0.1:1/app.git", "ref": {"semver": None, "branch": "main"}}, "GitOperationFailed",
         "failed to checkout and determine revision: unable to list remote for 'http://127.0.0.1:1/app.git'"),
    ]
    for patch, reason, message in cases:
        update_spec(kube, namespace, "app", patch)
        failed = wait_failed(kube, namespace, "app", reason)
        ready = find_condition(failed, "Ready")
        assert ready["message"].startswith(message), ready["message"]
        assert find_condition(failed, "FetchFailed")["reason"] == reason
        assert find_condition(failed, "Reconciling")["reason"] == "ProgressingWithRetry"
        no_secret_in(failed, "wrong-password-42", "right-password")
        assert_kept(kube, namespace, "app", good)

    # without a stored artifact, a failure to reach the server is a failure to clone
    gitrepo(kube, namespace, "fresh", "http://127.0.0.1:1/app.git", ref={"branch": "main"})
    failed = wait_failed(kube, namespace, "fresh", "GitOperationFailed")
    assert find_condition(failed, "Ready")["message"].startswith(
        "failed to checkout and determine revision: unable to clone 'http://127.0.0.1:1/app.git': unable to access")

    update_spec(kube, namespace, "app", {"url": "https://exa mple.com/repo.git"})
    stalled = wait_failed(kube, namespace, "app", "URLInvalid")
    assert find_condition(stalled, "Stalled")["status"] == "True"
    assert find_condition(stalled, "Ready")["message"] == (
        "failed to parse url 'https://exa mple.com/repo.git': parse \"https://exa mple.com/repo.git\": "
        "invalid character \" \" in host name")
    assert_kept(kube, namespace, "app", good)
    warnings = [e for e in events(kube, namespace, "app") if e["type"] == "Warning"]
    assert {"AuthenticationFailed", "GitOperationFailed", "URLInvalid"} <= {e["reason"] for e in warnings}
    assert not any("wrong-password-42" in e["message"] for e in warnings)

    # fixed: Ready again on the same artifact, and a Succeeded event for the recovery
    update_spec(kube, namespace, "app", {"url": server.url(repo), "ref": {"branch": "main", "semver": None},
                                         "secretRef": {"name": "creds"}})
    recovered = wait_ready(kube, namespace, "app")
    assert recovered["status"]["artifact"]["digest"] == good["digest"]
    assert find_condition(recovered, "FetchFailed") is None and find_condition(recovered, "Stalled") is None
    assert wait_event(kube, namespace, "app", "Succeeded")["message"] == \
        f"stored artifact for commit '{good['revision']}'"


def test_timeout_is_honoured(kube, namespace, git_servers, git_source_controller):
    server = git_servers(delay=5.0)
    repo = server.repo("app", {"a.yaml": "a"})
    started = time.monotonic()
    gitrepo(kube, namespace, "slow", server.url(repo), ref={"branch": "main"}, timeout="1s")
    failed = wait_failed(kube, namespace, "slow", "GitOperationFailed")
    assert time.monotonic() - started < 5
    assert "context deadline exceeded (timeout 1s)" in find_condition(failed, "Ready")["message"]
