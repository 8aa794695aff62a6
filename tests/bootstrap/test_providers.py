"""The real PyGithub and python-gitlab, through controllers.lib.providers, against the local GitHub and GitLab
(tests/servers/githost.py): repositories, team access, deploy keys, deploy tokens, pull/merge requests, and
every failure turned into one clear message. ``host.requests`` shows the documented endpoints each call uses.
"""
from __future__ import annotations

import pytest

from controllers.lib.providers.base import ProviderError
from controllers.lib.providers.github import GitHubProvider
from controllers.lib.providers.gitlab import GitLabProvider
from manifestgen.sync import generate_keypair
from servers.githost import github_host, gitlab_host  # noqa: F401 - fixtures

PROVIDERS = {"github": GitHubProvider, "gitlab": GitLabProvider}


@pytest.fixture(params=sorted(PROVIDERS))
def host(request):
    return request.getfixturevalue(f"{request.param}_host")


def provider(host, token: str | None = None, **kw):
    return PROVIDERS[host.flavor](token or host.token, host.hostname, ca_file=host.ca_file, **kw)


def api(host, method: str) -> list[str]:
    return [path.split("?")[0] for m, path in host.requests if m == method]


def test_repository_is_created_once_empty_and_private(host):
    p = provider(host)
    repo = p.ensure_repository("acme", "fleet", personal=False, visibility="private")
    assert repo.created and repo.full_name == "acme/fleet" and repo.default_branch == "main"
    assert repo.http_url == f"{host.base_url}/acme/fleet.git"
    assert repo.ssh_url.startswith("ssh://")
    hosted = host.repo("acme/fleet")
    assert hosted.private and host.head(hosted) == ""  # created empty, as Flux does
    again = provider(host).ensure_repository("acme", "fleet", personal=False, visibility="private")
    assert not again.created and again.id == repo.id
    prefix = "/api/v3" if host.flavor == "github" else "/api/v4"
    expected = f"{prefix}/orgs/acme/repos" if host.flavor == "github" else f"{prefix}/projects"
    assert api(host, "POST") == [expected]


def test_personal_repository_and_owner_mismatch(host):
    p = provider(host)
    repo = p.ensure_repository("alice", "mine", personal=True, visibility="public")
    assert repo.created and not host.repo("alice/mine").private
    with pytest.raises(ProviderError, match="the specified owner 'bob' doesn't match the identity associated with "
                                            "the given token \\('alice'\\)"):
        p.ensure_repository("bob", "x", personal=True, visibility="private")


def test_team_access(host):
    p = provider(host)
    repo = p.ensure_repository("acme", "fleet", personal=False, visibility="private")
    grants = p.grant_teams(repo, {"platform": "maintain", "ghosts": "maintain"})
    assert [(g.team, g.changed, bool(g.error)) for g in grants] == [("platform", True, False),
                                                                     ("ghosts", False, True)]
    assert "ghosts" in grants[1].error and "not found" in grants[1].error
    assert "platform" in host.repo("acme/fleet").teams
    assert [(g.team, g.changed) for g in p.grant_teams(repo, {"platform": "maintain"})] == [("platform", False)]


def test_deploy_key_is_registered_kept_and_replaced(host):
    p = provider(host)
    repo = p.ensure_repository("acme", "fleet", personal=False, visibility="private")
    title = "flux-system-main-flux-system-./clusters/dev"
    first, second = generate_keypair(), generate_keypair("ed25519")
    assert p.ensure_deploy_key(repo, title, first.public_key_text, read_only=True)
    assert not p.ensure_deploy_key(repo, title, first.public_key_text + " comment", read_only=True)
    (key,) = host.repo("acme/fleet").keys
    assert key.title == title and key.read_only
    assert p.ensure_deploy_key(repo, title, second.public_key_text, read_only=True)
    assert p.ensure_deploy_key(repo, title, second.public_key_text, read_only=False)
    (key,) = host.repo("acme/fleet").keys
    assert key.key.split()[:2] == second.public_key_text.split()[:2] and not key.read_only


def test_gitlab_deploy_token(gitlab_host):
    p = provider(gitlab_host)
    repo = p.ensure_repository("acme", "fleet", personal=False, visibility="private")
    token = p.ensure_deploy_token(repo, "flux-system-main-flux-system")
    assert token.username and token.token
    assert p.ensure_deploy_token(repo, "flux-system-main-flux-system", keep_username=token.username) is None
    replaced = p.ensure_deploy_token(repo, "flux-system-main-flux-system", keep_username="someone-else")
    assert replaced.token != token.token
    (hosted,) = gitlab_host.repo("acme/fleet").tokens
    assert hosted.scopes == ["read_repository"] and hosted.token == replaced.token


def test_github_has_no_deploy_tokens(github_host):
    p = provider(github_host)
    repo = p.ensure_repository("acme", "fleet", personal=False, visibility="private")
    with pytest.raises(ProviderError, match="GitHub has no deploy tokens"):
        p.ensure_deploy_token(repo, "x")


def test_change_request_opened_found_and_merged(host):
    p = provider(host)
    hosted = host.add_repo("acme", "fleet", files={"README.md": "hi\n"})
    host.commit(hosted, {"x": "1\n"}, branch="proposal")
    repo = p.ensure_repository("acme", "fleet", personal=False, visibility="private")
    opened = p.open_change_request(repo, head="proposal", base="main", title="Bootstrap", body="please")
    assert opened.created and opened.state == "open" and opened.number == 1
    assert opened.url.startswith(host.base_url)
    found = p.open_change_request(repo, head="proposal", base="main", title="Bootstrap", body="please")
    assert not found.created and found.number == 1
    sha = host.merge(hosted, 1)
    assert p.change_request(repo, 1).state == "merged" and host.head(hosted) == sha


@pytest.mark.parametrize("case, kind, fragment", [
    ("token", "auth", "refused the token (401"),
    ("ca", "unreachable", "certificate verify failed"),
    ("host", "unreachable", "connection refused"),
])
def test_connection_failures(host, case, kind, fragment):
    if case == "token":
        p = provider(host, "not-a-token")
    elif case == "ca":
        p = PROVIDERS[host.flavor](host.token, host.hostname)
    else:
        p = PROVIDERS[host.flavor](host.token, "127.0.0.1:9")
    with pytest.raises(ProviderError) as info:
        p.ensure_repository("acme", "fleet", personal=False, visibility="private")
    assert info.value.kind == kind and fragment in info.value.message


def test_no_permission(host):
    host.add_repo("acme", "secret-fleet")
    p = provider(host, host.users["mallory"].token)
    with pytest.raises(ProviderError) as info:
        p.ensure_repository("acme", "secret-fleet", personal=False, visibility="private")
    assert info.value.kind in ("forbidden", "not-found") and "mallory" in info.value.message
    with pytest.raises(ProviderError) as info:
        p.ensure_repository("other-org", "x", personal=False, visibility="private")
    assert "other-org" in info.value.message


def test_gitlab_refuses_bad_project_names_and_visibility(gitlab_host):
    p = provider(gitlab_host)
    with pytest.raises(ProviderError, match="invalid project name"):
        p.ensure_repository("acme", "-bad", personal=False, visibility="private")
    with pytest.raises(ProviderError, match="invalid visibility 'secret'"):
        p.ensure_repository("acme", "fleet", personal=False, visibility="secret")
