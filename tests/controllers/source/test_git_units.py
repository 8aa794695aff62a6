"""Pure pieces of the GitRepository reconciler and its git client: revisions, URL parsing, the content
inputs that force a new artifact, credentials kept out of messages and command lines."""
from __future__ import annotations

import os

import pytest

from controllers.source.git import (content_config_changed, includes_differ, parse_url_error, requires_verification,
                                    resolve_symlinks, verification_mode)
from controllers.lib.gitauth import AuthOptionsError, GitAuth, redact_url
from controllers.lib.git_client import Commit

HASH = "0123456789abcdef0123456789abcdef01234567"


def test_revision_formats():
    assert Commit(HASH, "refs/heads/main").revision() == f"main@sha1:{HASH}"
    assert Commit(HASH, "refs/heads/feature/x").revision() == f"feature/x@sha1:{HASH}"
    assert Commit(HASH, "refs/tags/v1.2.3").revision() == f"v1.2.3@sha1:{HASH}"
    assert Commit(HASH).revision() == f"sha1:{HASH}"
    assert Commit(HASH, "refs/pull/1/head").absolute_revision() == f"refs/pull/1/head@sha1:{HASH}"
    assert Commit(HASH, message="x" * 60 + "\nbody").short_message() == "x" * 50 + "..."
    assert Commit(HASH, message="subject\n\nbody").short_message() == "subject"


@pytest.mark.parametrize("url, problem", [
    ("https://github.com/org/repo", None),
    ("ssh://git@github.com:22/org/repo", None),
    ("ssh://git@[::1]:2222/repo", None),
    ("https://exa mple.com/r", 'invalid character " " in host name'),
    ("https://host:port/r", 'invalid port ":port" after host'),
    ("https://host/%zz", 'invalid URL escape "%zz"'),
    ("https://host/\x7f", "net/url: invalid control character in URL"),
])
def test_url_parse_errors_as_go(url, problem):
    found = parse_url_error(url)
    assert (found is None) if problem is None else found.endswith(problem)


def test_verification_mode_and_requirement():
    assert verification_mode({"verify": {"mode": "head"}}) == "HEAD"
    assert verification_mode({"verify": {"mode": "TagAndHEAD"}}) == "TagAndHEAD"
    obj = {"spec": {"verify": {"mode": "HEAD"}}, "status": {}}
    assert requires_verification(obj)
    obj["status"]["sourceVerificationMode"] = "HEAD"
    assert not requires_verification(obj)
    obj["spec"]["verify"]["mode"] = "TagAndHEAD"
    assert requires_verification(obj)
    assert not requires_verification({"spec": {}, "status": {}})


def test_content_config_changes_force_a_new_artifact():
    include = {"repository": {"name": "lib"}, "toPath": "vendor"}
    lib = {"revision": "main@sha1:1", "digest": "sha256:a"}
    obj = {"spec": {"ignore": "*.md", "include": [include], "sparseCheckout": ["apps"]},
           "status": {"observedIgnore": "*.md", "observedInclude": [include], "includedArtifacts": [lib],
                      "observedSparseCheckout": ["apps"]}}
    assert not content_config_changed(obj, [lib])
    assert content_config_changed(obj, [{**lib, "digest": "sha256:b"}])
    for change in ({"ignore": None}, {"recurseSubmodules": True}, {"sparseCheckout": []},
                   {"include": [{**include, "fromPath": "base"}]}, {"verify": {"mode": "HEAD"}}):
        assert content_config_changed({**obj, "spec": {**obj["spec"], **change}}, [lib]), change
    assert includes_differ([lib], None) and not includes_differ([lib], [lib]) and not includes_differ([], None)


def test_credentials_stay_out_of_messages_and_arguments():
    with GitAuth("https://user:pw-in-url@example.com/r.git", {}) as auth:
        env = auth.environment(10)
        assert "pw-in-url" not in " ".join(env[k] for k in env if k.startswith("GIT_CONFIG_KEY"))
        assert auth.redact("fatal: https://user:pw-in-url@example.com failed") == "fatal: https://***:***@example.com failed"
    with GitAuth("https://example.com/r.git", {"username": b"u", "password": b"p4ss"}) as auth:
        assert auth.redact("header Authorization: Basic dTpwNHNz p4ss") == "header Authorization: Basic *** ***"
    with GitAuth("https://example.com/r.git", {"bearerToken": b"tok"}) as auth:
        assert ("http.extraHeader", "Authorization: Bearer tok") in auth.config
    assert redact_url("https://u:secret@h/r") == "https://u:***@h/r"
    with pytest.raises(AuthOptionsError, match="'password' requires 'username'"):
        GitAuth("https://example.com/r.git", {"password": b"p"})
    with pytest.raises(AuthOptionsError, match="'identity' is required"):
        GitAuth("ssh://git@example.com/r.git", {})
    with pytest.raises(AuthOptionsError, match="tls.crt"):
        GitAuth("https://example.com/r.git", {"tls.crt": b"cert"})


def test_ssh_auth_files_are_private_and_strict():
    with GitAuth("ssh://example.com:2222/r.git", {"identity": b"KEY", "known_hosts": b"[example.com]:2222 k"}) as auth:
        command = auth.env["GIT_SSH_COMMAND"]
        assert "StrictHostKeyChecking=yes" in command and "User=git" in command
        key = auth.ssh_command[auth.ssh_command.index("-i") + 1]
        assert oct(os.stat(key).st_mode & 0o777) == "0o600"
    assert not os.path.exists(key)


def test_resolve_symlinks(tmp_path):
    (tmp_path / "dir").mkdir()
    (tmp_path / "dir" / "f").write_text("f")
    os.symlink("dir/f", tmp_path / "file-link")
    os.symlink("dir", tmp_path / "dir-link")
    os.symlink("/etc/passwd", tmp_path / "escape")
    os.symlink("missing", tmp_path / "dangling")
    resolve_symlinks(tmp_path)
    assert not (tmp_path / "file-link").is_symlink() and (tmp_path / "file-link").read_text() == "f"
    assert (tmp_path / "dir-link" / "f").read_text() == "f" and not (tmp_path / "dir-link").is_symlink()
    assert (tmp_path / "escape").is_symlink() and (tmp_path / "dangling").is_symlink()
