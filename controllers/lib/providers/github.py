"""GitHub (and GitHub Enterprise Server) through PyGithub: the repository, deploy keys, team access and pull
requests bootstrap needs. ``--hostname`` other than github.com means an Enterprise server, whose REST API is
served under ``/api/v3`` of that host."""
from __future__ import annotations

from typing import Any

from controllers.lib.providers.base import (APIClient, ChangeRequest, DeployToken, ProviderError, Repository, api_base,
                                      TeamGrant, ssh_url)

DEFAULT_DOMAIN = "github.com"
#: the permission a ``--team`` gets when it names none (Flux's default).
DEFAULT_TEAM_PERMISSION = "maintain"
TEAM_PERMISSIONS = ("pull", "triage", "push", "maintain", "admin")


class GitHubProvider(APIClient):
    """One authenticated PyGithub client."""

    name = "GitHub"
    token_env, token_scope = "GITHUB_TOKEN", "repo"
    change_request_word = "pull request"

    def __init__(self, token: str, hostname: str = DEFAULT_DOMAIN, *, ca_file: str | None = None,
                 timeout: float = 30.0):
        from github import Auth, Github

        base, self.domain = api_base(hostname, DEFAULT_DOMAIN)
        self.api_url = "https://api.github.com" if self.domain == DEFAULT_DOMAIN else f"{base}/api/v3"
        self.endpoint = self.api_url
        # no retries and no write throttling: bootstrap makes a handful of calls and reports failures at once
        self.client = Github(base_url=self.api_url, auth=Auth.Token(token), verify=ca_file or True,
                             timeout=int(max(1, timeout)), retry=None, seconds_between_requests=None,
                             seconds_between_writes=None)
        self._repos: dict[str, Any] = {}
        self._login = ""

    # ------------------------------------------------------------------ calls and errors

    def _api_error(self, what: str, exc: Exception, *, not_found: str, forbidden: str) -> ProviderError | None:
        from github import BadCredentialsException, GithubException, UnknownObjectException

        if isinstance(exc, BadCredentialsException):
            return self._refused(what, "401 Bad credentials")
        if isinstance(exc, UnknownObjectException):
            return self._answer_error(what, 404, _detail(exc, sep=""), not_found=not_found, forbidden=forbidden)
        if not isinstance(exc, GithubException):
            return None
        if exc.status == 403:
            return self._answer_error(what, 403, _detail(exc, sep=""), not_found=not_found, forbidden=forbidden)
        kind = "invalid" if exc.status == 422 else "api"
        return ProviderError(f"{what}: {self.name} answered {exc.status}{_detail(exc, sep=': ')}", kind)

    @property
    def login(self) -> str:
        """The token's user (GET /user), which also checks the token."""
        if not self._login:
            user = self._call("authenticating to " + self.domain, lambda: self.client.get_user().login)
            self._login = user
        return self._login

    def _repository(self, obj: Any, created: bool = False) -> Repository:
        self._repos[obj.full_name] = obj
        return Repository(full_name=obj.full_name, http_url=obj.clone_url, ssh_url=ssh_url(obj.ssh_url),
                          web_url=obj.html_url, default_branch=obj.default_branch or "main", id=obj.id,
                          created=created)

    def _repo(self, repo: Repository) -> Any:
        if repo.full_name not in self._repos:
            self._repos[repo.full_name] = self._call(f"getting repository {repo.full_name}",
                                                     lambda: self.client.get_repo(repo.full_name))
        return self._repos[repo.full_name]

    # ------------------------------------------------------------------ repository

    def ensure_repository(self, owner: str, name: str, *, personal: bool, visibility: str, description: str = "",
                          default_branch: str = "main") -> Repository:
        """Get ``owner/name``, creating it (empty, as Flux does) when it does not exist."""
        login = self.login
        full = f"{owner}/{name}"
        try:
            return self._repository(self._call(f"failed to get Git repository {full!r}",
                                               lambda: self.client.get_repo(full)))
        except ProviderError as exc:
            if exc.kind != "not-found":
                raise
        private = visibility != "public"
        options: dict[str, Any] = {"private": private}
        if description:
            options["description"] = description
        if personal:
            if owner.lower() != login.lower():
                raise ProviderError(f"failed to create new Git repository {full!r}: the specified owner '{owner}' "
                                    f"doesn't match the identity associated with the given token ('{login}')",
                                    "forbidden")
            user = self.client.get_user()
            obj = self._call(f"failed to create new Git repository {full!r}", lambda: user.create_repo(name, **options),
                             forbidden="the token may not create repositories (scope 'repo')")
        else:
            org = self._call(f"failed to create new Git repository {full!r}",
                             lambda: self.client.get_organization(owner),
                             not_found=f"no organization '{owner}' visible to '{login}' (pass --personal for a "
                                       "user's repository)")
            obj = self._call(f"failed to create new Git repository {full!r}", lambda: org.create_repo(name, **options),
                             not_found=f"'{login}' may not create repositories in organization '{owner}'",
                             forbidden=f"'{login}' may not create repositories in organization '{owner}'")
        return self._repository(obj, created=True)

    def grant_teams(self, repo: Repository, teams: dict[str, str]) -> list[TeamGrant]:
        """Give each team (slug → permission) access unless it has some already (Flux leaves existing access
        alone); failures are reported per team, not raised, as Flux does."""
        results = []
        owner = repo.full_name.split("/")[0]
        obj = self._repo(repo)
        for slug, permission in teams.items():
            permission = permission or DEFAULT_TEAM_PERMISSION
            try:
                if permission not in TEAM_PERMISSIONS:
                    raise ProviderError(f"invalid permission {permission!r} (one of {', '.join(TEAM_PERMISSIONS)})")
                org = self._call(f"getting organization {owner}", lambda: self.client.get_organization(owner))
                team = self._call(f"getting team {slug}", lambda: org.get_team_by_slug(slug))
                if self._call(f"checking the access of team {slug}", lambda: team.has_in_repos(obj)):
                    results.append(TeamGrant(slug, permission, changed=False))
                    continue
                self._call(f"granting {permission} to team {slug}",
                           lambda: team.update_team_repository(obj, permission))
                results.append(TeamGrant(slug, permission, changed=True))
            except ProviderError as exc:
                results.append(TeamGrant(slug, permission, error=exc.message))
        return results

    # ------------------------------------------------------------------ credentials

    def ensure_deploy_key(self, repo: Repository, title: str, public_key: str, *, read_only: bool) -> bool:
        """Register the deploy key ``title``; replace one of that title with another key or access. Returns
        whether anything changed."""
        obj = self._repo(repo)
        wanted = _key_body(public_key)
        keys = self._call(f"listing deploy keys of {repo.full_name}", lambda: list(obj.get_keys()),
                          forbidden="the token needs admin access to the repository to manage deploy keys")
        for key in keys:
            if key.title != title:
                continue
            if _key_body(key.key) == wanted and bool(key.read_only) == read_only:
                return False
            self._call(f"deleting the outdated deploy key {title!r}", key.delete)
        self._call(f"adding deploy key {title!r} to {repo.full_name}",
                   lambda: obj.create_key(title, public_key.strip(), read_only=read_only),
                   forbidden="the token needs admin access to the repository to manage deploy keys")
        return True

    def ensure_deploy_token(self, repo: Repository, name: str, *, keep_username: str = "") -> DeployToken | None:
        raise ProviderError("GitHub has no deploy tokens: use a deploy key (default) or --token-auth", "invalid")

    # ------------------------------------------------------------------ pull requests

    def _change(self, pr: Any, created: bool = False) -> ChangeRequest:
        state = "merged" if pr.merged else ("closed" if pr.state == "closed" else "open")
        return ChangeRequest(number=pr.number, url=pr.html_url, state=state, head=pr.head.ref, base=pr.base.ref,
                             created=created)

    def open_change_request(self, repo: Repository, *, head: str, base: str, title: str, body: str) -> ChangeRequest:
        """The open pull request from ``head`` to ``base``, opened now if there is none."""
        obj = self._repo(repo)
        owner = repo.full_name.split("/")[0]
        existing = self._call(f"listing pull requests of {repo.full_name}",
                              lambda: list(obj.get_pulls(state="open", head=f"{owner}:{head}", base=base)))
        if existing:
            return self._change(existing[0])
        pr = self._call(f"opening a pull request from {head!r} to {base!r} in {repo.full_name}",
                        lambda: obj.create_pull(base=base, head=head, title=title, body=body))
        return self._change(pr, created=True)

    def change_request(self, repo: Repository, number: int) -> ChangeRequest:
        obj = self._repo(repo)
        return self._change(self._call(f"getting pull request #{number}", lambda: obj.get_pull(number)))


def _key_body(key: str) -> str:
    """``<type> <base64>`` of an authorized_keys line (comments dropped)."""
    return " ".join(key.split()[:2])


def _detail(exc: Any, sep: str = " ") -> str:
    data = getattr(exc, "data", None)
    message = data.get("message") if isinstance(data, dict) else ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if errors:
        extra = "; ".join(e.get("message") or str(e) if isinstance(e, dict) else str(e) for e in errors)
        message = f"{message} ({extra})" if message else extra
    return f"{sep}{message}" if message else ""

