"""Pure parts of bootstrap: the sync URL Flux derives from ``--url``, the names Flux gives deploy keys and
tokens, provider URL forms, and the decisions taken from an existing installation."""
from __future__ import annotations

import pytest

from bootstrap import cluster
from bootstrap.git import Credentials
from controllers.lib.providers.base import ProviderError, api_base, deploy_key_name, ssh_url, with_ssh_hostname
from bootstrap.repository import plain_git_sync_url
from controllers.lib.gitauth import redact_url


@pytest.mark.parametrize("url, kwargs, expected", [
    # deploy key: always SSH, the URL's user kept unless --username says otherwise, --ssh-hostname wins
    ("ssh://git@example.com/org/fleet.git", {}, "ssh://git@example.com/org/fleet.git"),
    ("ssh://alice@example.com:2222/org/fleet.git", {}, "ssh://alice@example.com:2222/org/fleet.git"),
    ("ssh://alice@example.com/org/fleet.git", {"username": "bob"}, "ssh://bob@example.com/org/fleet.git"),
    ("https://example.com/org/fleet.git", {}, "ssh://git@example.com/org/fleet.git"),
    ("https://example.com/org/fleet.git", {"ssh_hostname": "ssh.example.com:22"},
     "ssh://git@ssh.example.com:22/org/fleet.git"),
    # token auth: https, no user info; http only with --allow-insecure-http; the port of a non-HTTP URL dropped
    ("https://u:p@example.com:8443/org/fleet.git", {"token_auth": True}, "https://example.com:8443/org/fleet.git"),
    ("http://example.com/org/fleet.git", {"token_auth": True}, "https://example.com/org/fleet.git"),
    ("http://example.com/org/fleet.git", {"token_auth": True, "allow_insecure_http": True},
     "http://example.com/org/fleet.git"),
    ("ssh://git@example.com:2222/org/fleet.git", {"token_auth": True}, "https://example.com/org/fleet.git"),
])
def test_plain_git_sync_url(url, kwargs, expected):
    options = {"token_auth": False, "username": "git", "allow_insecure_http": False, **kwargs}
    assert plain_git_sync_url(url, **options) == expected


def test_deploy_key_names_follow_flux():
    assert deploy_key_name("flux-system", "main", "flux-system", "./clusters/dev") == \
        "flux-system-main-flux-system-./clusters/dev"
    assert deploy_key_name("flux-system", "main", "flux-system", "") == "flux-system-main-flux-system"


@pytest.mark.parametrize("given, expected", [
    ("git@github.com:acme/fleet.git", "ssh://git@github.com/acme/fleet.git"),
    ("ssh://git@gitlab.example.com:2222/acme/fleet.git", "ssh://git@gitlab.example.com:2222/acme/fleet.git"),
    ("github.com:acme/fleet.git", "ssh://github.com/acme/fleet.git"),
])
def test_ssh_url_forms(given, expected):
    assert ssh_url(given) == expected


def test_ssh_hostname_override():
    assert with_ssh_hostname("ssh://git@github.example.com/acme/fleet", "ssh.example.com:7999") == \
        "ssh://git@ssh.example.com:7999/acme/fleet"
    assert with_ssh_hostname("ssh://git@h/x", "") == "ssh://git@h/x"


def test_api_base():
    assert api_base("", "github.com") == ("https://github.com", "github.com")
    assert api_base("ghe.example.com:8443", "github.com") == ("https://ghe.example.com:8443", "ghe.example.com:8443")
    assert api_base("http://127.0.0.1:8080/", "gitlab.com") == ("http://127.0.0.1:8080", "127.0.0.1:8080")
    with pytest.raises(ProviderError, match="invalid --hostname"):
        api_base("ftp://x", "github.com")


def test_credentials_for_each_transport():
    c = Credentials(username="u", password="p", ca=b"PEM", identity=b"KEY", known_hosts=b"KH", key_password="kp")
    assert c.secret_data("https://h/x") == {"username": b"u", "password": b"p", "ca.crt": b"PEM"}
    assert c.secret_data("ssh://h/x") == {"identity": b"KEY", "known_hosts": b"KH", "password": b"kp"}
    assert Credentials(bearer_token="t").secret_data("https://h/x") == {"bearerToken": b"t"}
    assert redact_url("https://u:secret@h:8443/x") == "https://u:***@h:8443/x"


def ks(path: str, applied: str = "") -> dict:
    return {"spec": {"path": path}, "status": {"lastAppliedRevision": applied} if applied else {}}


def test_existing_installation_decisions():
    assert cluster.path_change(None, "./clusters/dev") == ""
    assert cluster.path_change(ks("./clusters/dev/"), "./clusters/dev") == ""
    assert cluster.path_change(ks("clusters/dev"), "./clusters/dev") == ""
    assert cluster.path_change(ks("./"), "") == ""
    assert cluster.path_change(ks("./clusters/dev"), "./clusters/prod") == "./clusters/dev"
    assert cluster.must_install(None) and cluster.must_install(ks("./"))
    assert not cluster.must_install(ks("./", "main@sha1:abc"))
