"""GitLab (gitlab.com or a self-managed server) through python-gitlab: the project, deploy keys, deploy tokens,
group access and merge requests bootstrap needs."""
from __future__ import annotations

import re
from typing import Any

from controllers.lib.providers.base import (APIClient, ChangeRequest, DeployToken, ProviderError, Repository, api_base,
                                      TeamGrant, ssh_url)

DEFAULT_DOMAIN = "gitlab.com"
DEFAULT_TEAM_PERMISSION = "maintain"
#: Flux's permission words → GitLab access levels for groups a project is shared with.
ACCESS_LEVELS = {"pull": 20, "triage": 20, "push": 30, "maintain": 40, "admin": 50}
VISIBILITIES = ("private", "internal", "public")
#: GitLab's rule for project names (as ``flux bootstrap gitlab`` checks it).
PROJECT_NAME = re.compile(r"^[\w\u00a9-\U0001f9ff][\w\u00a9-\U0001f9ff\-.\u2010-\u2015 ]*$")


class GitLabProvider(APIClient):
    """One authenticated python-gitlab client."""

    name = "GitLab"
    token_env, token_scope = "GITLAB_TOKEN", "api"
    change_request_word = "merge request"

    def __init__(self, token: str, hostname: str = DEFAULT_DOMAIN, *, ca_file: str | None = None,
                 timeout: float = 30.0):
        import gitlab

        self.url, self.domain = api_base(hostname, DEFAULT_DOMAIN)
        self.endpoint = self.url
        self.client = gitlab.Gitlab(self.url, private_token=token, ssl_verify=ca_file or True, timeout=timeout,
                                    retry_transient_errors=False, keep_base_url=True)
        self._projects: dict[str, Any] = {}
        self._username = ""

    # ------------------------------------------------------------------ calls and errors

    def _api_error(self, what: str, exc: Exception, *, not_found: str, forbidden: str) -> ProviderError | None:
        import gitlab

        if isinstance(exc, gitlab.GitlabAuthenticationError):
            return self._refused(what, "401 Unauthorized")
        if not isinstance(exc, gitlab.GitlabError):
            return None
        code = exc.response_code or 0
        message = _message(exc).removeprefix(f"{code} ")
        error = self._answer_error(what, code, message, not_found=not_found, forbidden=forbidden)
        if error is not None:
            return error
        kind = "invalid" if code in (400, 409, 422) else "api"
        return ProviderError(f"{what}: {self.name} answered {code or 'an error'}: {message}", kind)

    @property
    def username(self) -> str:
        """The token's user (GET /user), which also checks the token."""
        if not self._username:
            self._call(f"authenticating to {self.domain}", self.client.auth)
            self._username = self.client.user.username
        return self._username

    def _repository(self, project: Any, created: bool = False) -> Repository:
        self._projects[project.path_with_namespace] = project
        return Repository(full_name=project.path_with_namespace, http_url=project.http_url_to_repo,
                          ssh_url=ssh_url(project.ssh_url_to_repo), web_url=project.web_url,
                          default_branch=getattr(project, "default_branch", None) or "main", id=project.id,
                          created=created)

    def _project(self, repo: Repository) -> Any:
        if repo.full_name not in self._projects:
            self._projects[repo.full_name] = self._call(f"getting project {repo.full_name}",
                                                        lambda: self.client.projects.get(repo.full_name))
        return self._projects[repo.full_name]

    # ------------------------------------------------------------------ repository

    def ensure_repository(self, owner: str, name: str, *, personal: bool, visibility: str, description: str = "",
                          default_branch: str = "main") -> Repository:
        """Get the project ``owner/name``, creating it (empty) in the user's namespace (``personal``) or the
        group ``owner`` when it does not exist."""
        if not PROJECT_NAME.match(name):
            raise ProviderError(f"{name} is an invalid project name for gitlab. It can contain only letters, digits, "
                                "emojis, '_', '.', dash, space. It must start with letter, digit, emoji or '_'.",
                                "invalid")
        if visibility not in VISIBILITIES:
            raise ProviderError(f"invalid visibility {visibility!r}, must be one of: {', '.join(VISIBILITIES)}",
                                "invalid")
        username = self.username
        full = f"{owner}/{name}"
        try:
            return self._repository(self._call(f"failed to get Git repository {full!r}",
                                               lambda: self.client.projects.get(full)))
        except ProviderError as exc:
            if exc.kind != "not-found":
                raise
        data: dict[str, Any] = {"name": name, "path": name, "visibility": visibility}
        if description:
            data["description"] = description
        if personal:
            if owner.lower() != username.lower():
                raise ProviderError(f"failed to create new Git repository {full!r}: the specified owner '{owner}' "
                                    f"doesn't match the identity associated with the given token ('{username}')",
                                    "forbidden")
        else:
            group = self._call(f"failed to create new Git repository {full!r}", lambda: self.client.groups.get(owner),
                               not_found=f"no group '{owner}' visible to '{username}' (pass --personal for a user's "
                                         "project)")
            data["namespace_id"] = group.id
        project = self._call(f"failed to create new Git repository {full!r}",
                             lambda: self.client.projects.create(data),
                             forbidden=f"'{username}' may not create projects in '{owner}'")
        return self._repository(project, created=True)

    def grant_teams(self, repo: Repository, teams: dict[str, str]) -> list[TeamGrant]:
        """Share the project with each group (team → permission) it is not shared with yet."""
        project = self._project(repo)
        results = []
        for team, permission in teams.items():
            permission = permission or DEFAULT_TEAM_PERMISSION
            try:
                if permission not in ACCESS_LEVELS:
                    raise ProviderError(f"invalid permission {permission!r} (one of {', '.join(ACCESS_LEVELS)})")
                group = self._call(f"getting group {team}", lambda: self.client.groups.get(team))
                shared = {g.get("group_id") for g in getattr(project, "shared_with_groups", None) or []}
                if group.id in shared:
                    results.append(TeamGrant(team, permission, changed=False))
                    continue
                self._call(f"sharing {repo.full_name} with group {team}",
                           lambda: project.share(group.id, ACCESS_LEVELS[permission]))
                results.append(TeamGrant(team, permission, changed=True))
            except ProviderError as exc:
                results.append(TeamGrant(team, permission, error=exc.message))
        return results

    # ------------------------------------------------------------------ credentials

    def ensure_deploy_key(self, repo: Repository, title: str, public_key: str, *, read_only: bool) -> bool:
        project = self._project(repo)
        wanted = " ".join(public_key.split()[:2])
        keys = self._call(f"listing deploy keys of {repo.full_name}", lambda: project.keys.list(get_all=True),
                          forbidden="the token needs the Maintainer role on the project to manage deploy keys")
        for key in keys:
            if key.title != title:
                continue
            if " ".join(key.key.split()[:2]) == wanted and bool(getattr(key, "can_push", False)) == (not read_only):
                return False
            self._call(f"deleting the outdated deploy key {title!r}", lambda: project.keys.delete(key.id))
        self._call(f"adding deploy key {title!r} to {repo.full_name}",
                   lambda: project.keys.create({"title": title, "key": public_key.strip(), "can_push": not read_only}),
                   forbidden="the token needs the Maintainer role on the project to manage deploy keys")
        return True

    def ensure_deploy_token(self, repo: Repository, name: str, *, keep_username: str = "") -> DeployToken | None:
        """A read-only deploy token ``name``. An existing one is kept (None: its secret value cannot be read
        back) when ``keep_username`` says the cluster holds it; otherwise it is replaced by a new one."""
        project = self._project(repo)
        tokens = self._call(f"listing deploy tokens of {repo.full_name}",
                            lambda: project.deploytokens.list(get_all=True),
                            forbidden="the token needs the Maintainer role on the project to manage deploy tokens")
        for token in tokens:
            if token.name != name or getattr(token, "revoked", False) or getattr(token, "expired", False):
                continue
            if keep_username and token.username == keep_username:
                return None
            self._call(f"revoking deploy token {name!r}", lambda: project.deploytokens.delete(token.id))
        created = self._call(f"creating deploy token {name!r} for {repo.full_name}",
                             lambda: project.deploytokens.create({"name": name, "scopes": ["read_repository"]}),
                             forbidden="the token needs the Maintainer role on the project to manage deploy tokens")
        return DeployToken(name=name, username=created.username, token=created.token)

    # ------------------------------------------------------------------ merge requests

    def _change(self, mr: Any, created: bool = False) -> ChangeRequest:
        state = {"opened": "open", "locked": "open"}.get(mr.state, mr.state)
        return ChangeRequest(number=mr.iid, url=mr.web_url, state=state, head=mr.source_branch,
                             base=mr.target_branch, created=created)

    def open_change_request(self, repo: Repository, *, head: str, base: str, title: str, body: str) -> ChangeRequest:
        project = self._project(repo)
        existing = self._call(f"listing merge requests of {repo.full_name}",
                              lambda: project.mergerequests.list(state="opened", source_branch=head,
                                                                 target_branch=base, get_all=True))
        if existing:
            return self._change(existing[0])
        mr = self._call(f"opening a merge request from {head!r} to {base!r} in {repo.full_name}",
                        lambda: project.mergerequests.create({"source_branch": head, "target_branch": base,
                                                              "title": title, "description": body}))
        return self._change(mr, created=True)

    def change_request(self, repo: Repository, number: int) -> ChangeRequest:
        project = self._project(repo)
        return self._change(self._call(f"getting merge request !{number}", lambda: project.mergerequests.get(number)))


def _message(exc: Any) -> str:
    text = str(getattr(exc, "error_message", "") or "")
    return text if len(text) < 300 else text[:300] + "..."

