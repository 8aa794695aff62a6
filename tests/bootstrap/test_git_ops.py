"""bootstrap.git against real Git servers (smart HTTP and SSH): clone (existing, empty, missing branch), write,
commit only on change, GPG-signed commits, push, and failures classified with a clear message."""
from __future__ import annotations

import subprocess

import pytest

from bootstrap.git import Checkout, Credentials, GitRepoError, GPGSigner, scan_host_keys, ssh_host, with_retries
from manifestgen.sync import File
from servers.git import git, git_servers, git_ssh_server, gpg_key  # noqa: F401 - fixtures

USER, PASSWORD = "fluxbot", "a-long-http-password"


@pytest.fixture
def http(git_servers):
    return git_servers(username=USER, password=PASSWORD)


def writable(repo):
    git("config", "http.receivepack", "true", cwd=repo.bare)
    return repo


def creds() -> Credentials:
    return Credentials(username=USER, password=PASSWORD)


def test_clone_commit_push_over_http(http):
    repo = writable(http.repo("fleet", {"README.md": "hi\n"}))
    with Checkout(http.url(repo), "main", creds()).clone() as c:
        assert c.base == repo.head() and not c.created and not c.empty
        assert c.read("README.md") == "hi\n" and c.read("nope") is None
        assert c.write([File("clusters/dev/a.yaml", "a: 1\n")]) == ["clusters/dev/a.yaml"]
        assert c.write([File("clusters/dev/a.yaml", "a: 1\n")]) == []
        sha = c.commit("Add a", ["clusters/dev/a.yaml"])
        assert sha and c.commit("Add a again", ["clusters/dev/a.yaml"]) == ""  # no empty commits
        assert c.push().commit == sha
    assert repo.head() == sha
    assert git("log", "-1", "--format=%an <%ae>|%s", sha, cwd=repo.bare).strip() == "Flux <>|Add a"


def test_empty_repository_and_missing_branch(http):
    empty = writable(http.repo("empty"))
    with Checkout(http.url(empty), "main", creds()).clone() as c:
        assert c.empty and c.head == ""
        c.write([File("x", "1\n")])
        sha = c.commit("first", ["x"])
        c.push()
    assert empty.head() == sha

    repo = writable(http.repo("fleet", {"README.md": "hi\n"}))
    with Checkout(http.url(repo), "staging", creds()).clone() as c:
        assert c.created and c.base == repo.head()
        c.write([File("y", "2\n")])
        c.commit("on staging", ["y"])
        c.push()
    assert repo.head("staging") != repo.head("main")


def test_ssh_with_a_key_and_scanned_host_keys(git_ssh_server):
    repo = git_ssh_server.repo("fleet", {"README.md": "hi\n"})
    host, port = ssh_host(git_ssh_server.url(repo))
    known = scan_host_keys(host, port)
    assert known.startswith(f"[127.0.0.1]:{port} ".encode()) and known == scan_host_keys(host, port)
    c = Checkout(git_ssh_server.url(repo), "main",
                 Credentials(identity=git_ssh_server.client_key, known_hosts=known)).clone()
    try:
        c.write([File("z", "3\n")])
        sha = c.commit("over ssh", ["z"])
        c.push()
    finally:
        c.close()
    assert repo.head() == sha


def test_non_fast_forward_is_reported_and_a_fresh_clone_succeeds(http):
    repo = writable(http.repo("fleet", {"README.md": "hi\n"}))
    stale = Checkout(http.url(repo), "main", creds()).clone()
    repo.commit({"other": "someone else\n"}, "meanwhile")
    stale.write([File("mine", "1\n")])
    stale.commit("mine", ["mine"])
    with pytest.raises(GitRepoError) as info:
        stale.push()
    stale.close()
    assert info.value.kind == "non-fast-forward" and "the branch moved on the remote" in info.value.message

    retries = []

    def attempt(number: int) -> str:
        with Checkout(http.url(repo), "main", creds()).clone() as c:
            c.write([File("mine", f"{number}\n")])
            c.commit("mine", ["mine"])
            if number == 1:
                repo.commit({"other": "again\n"}, "meanwhile again")
            return c.push().commit

    sha = with_retries(3, attempt, on_retry=retries.append, delay=0)
    assert len(retries) == 1 and repo.head() == sha


def test_remote_rejection_is_reported_as_protected(http):
    repo = writable(http.repo("fleet", {"README.md": "hi\n"}))
    hook = repo.bare / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'GH006: Protected branch update failed for refs/heads/main.' >&2\nexit 1\n")
    hook.chmod(0o755)
    with Checkout(http.url(repo), "main", creds()).clone() as c:
        c.write([File("x", "1\n")])
        c.commit("x", ["x"])
        with pytest.raises(GitRepoError) as info:
            c.push()
    assert info.value.kind == "protected"
    assert "GH006: Protected branch update failed for refs/heads/main." in info.value.message


@pytest.mark.parametrize("case, kind, fragment", [
    ("password", "auth", "the Git host refused the credentials"),
    ("missing", "not-found", "check the repository URL"),
    ("closed", "unreachable", "cannot reach the Git host"),
])
def test_failures_are_classified(http, case, kind, fragment):
    repo = http.repo("fleet", {"README.md": "hi\n"})
    url = {"password": http.url(repo), "missing": http.url("nope"), "closed": "http://127.0.0.1:9/x.git"}[case]
    credentials = Credentials(username=USER, password="wrong-password-here") if case == "password" else creds()
    with pytest.raises(GitRepoError) as info:
        Checkout(url, "main", credentials).clone().close()
    assert info.value.kind == kind and fragment in info.value.message
    assert "wrong-password-here" not in info.value.message


def test_writes_stay_inside_the_clone(http, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    repo = writable(http.repo("fleet", {"README.md": "hi\n"}))
    repo.commit({}, "a link out", symlinks={"clusters": str(outside)})
    with Checkout(http.url(repo), "main", creds()).clone() as c:
        for path in ("clusters/dev/x.yaml", "../x", ".git/config"):
            with pytest.raises(GitRepoError, match="refusing to write"):
                c.write([File(path, "x\n")])
    assert list(outside.iterdir()) == []


def test_gpg_signed_commits(http, gpg_key, tmp_path):
    ring = tmp_path / "ring.asc"
    ring.write_bytes(subprocess.run(["gpg", "--batch", "--armor", "--export-secret-keys", gpg_key.fingerprint],
                                    env={"GNUPGHOME": str(gpg_key.home), "PATH": "/usr/bin:/bin"},
                                    capture_output=True, check=True, timeout=30).stdout)
    repo = writable(http.repo("fleet", {"README.md": "hi\n"}))
    signer = GPGSigner(ring, key_id=gpg_key.key_id)
    try:
        with Checkout(http.url(repo), "main", creds(), signer=signer).clone() as c:
            c.write([File("x", "1\n")])
            sha = c.commit("signed", ["x"])
            c.push()
    finally:
        signer.close()
    raw = git("cat-file", "commit", sha, cwd=repo.bare)
    assert "-----BEGIN PGP SIGNATURE-----" in raw
    verified = subprocess.run(["git", "verify-commit", "--raw", sha], cwd=repo.bare, capture_output=True,
                              env={"GNUPGHOME": str(gpg_key.home), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
                              timeout=30)
    assert f"VALIDSIG {gpg_key.fingerprint}" in verified.stderr.decode()


def test_gpg_key_ring_problems(tmp_path, gpg_key):
    with pytest.raises(GitRepoError, match="failed to read the GPG key ring"):
        GPGSigner(tmp_path / "nope")
    public = tmp_path / "public.asc"
    public.write_bytes(gpg_key.public_armor)
    with pytest.raises(GitRepoError, match="holds no private key"):
        GPGSigner(public)
    ring = tmp_path / "ring.asc"
    ring.write_bytes(subprocess.run(["gpg", "--batch", "--armor", "--export-secret-keys", gpg_key.fingerprint],
                                    env={"GNUPGHOME": str(gpg_key.home), "PATH": "/usr/bin:/bin"},
                                    capture_output=True, check=True, timeout=30).stdout)
    with pytest.raises(GitRepoError, match="no GPG keyring matching key id 'AAAAAAAAAAAAAAAA'"):
        GPGSigner(ring, key_id="AAAAAAAAAAAAAAAA")
    with pytest.raises(GitRepoError, match="expected 16"):
        GPGSigner(ring, key_id="ABCD")
