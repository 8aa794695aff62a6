"""Where the bootstrap repository lives: a plain Git URL, or a repository on a provider (GitHub, GitLab).

A source resolves to the URL bootstrap clones and pushes (``clone_url`` with ``credentials``) and the URL
the cluster syncs from (``sync_url``), and knows how the cluster's key or token gets access: a provider
registers a deploy key (or a GitLab deploy token); for plain Git the user is shown the public key and asked
to grant it (unless ``--silent``)."""
from __future__ import annotations

import dataclasses
import urllib.parse
from typing import Protocol

from bootstrap.git import Credentials
from controllers.lib.providers.base import (ChangeRequest, DeployToken, Provider, ProviderError, Repository, TeamGrant,
                                      with_ssh_hostname)
from bootstrap.ui import UI
from controllers.lib.gitauth import redact_url


class BootstrapSourceError(Exception):
    """The repository could not be resolved or given access; the message says what to do."""


@dataclasses.dataclass
class Resolved:
    clone_url: str
    sync_url: str
    credentials: Credentials
    #: the provider repository, when there is one.
    repository: Repository | None = None


class Source(Protocol):
    provider: Provider | None

    def describe(self) -> str: ...

    def resolve(self, ui: UI) -> Resolved: ...

    def authorize_key(self, ui: UI, title: str, public_key: str, *, read_only: bool, silent: bool) -> None: ...

    def deploy_token(self, ui: UI, name: str, keep_username: str) -> DeployToken | None: ...


def plain_git_sync_url(url: str, *, token_auth: bool, username: str, allow_insecure_http: bool,
                       ssh_hostname: str = "") -> str:
    """The URL the cluster syncs from, as ``flux bootstrap git`` derives it from ``--url``: with token auth
    the https (or, when allowed, http) URL without user info; otherwise an ``ssh://`` URL with the SSH user
    (``--username``, default ``git``) and ``--ssh-hostname``."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    if token_auth:
        port = f":{parts.port}" if parts.port and parts.scheme in ("http", "https") else ""
        scheme = parts.scheme if parts.scheme in ("http", "https") and allow_insecure_http else "https"
        return urllib.parse.urlunsplit(parts._replace(scheme=scheme, netloc=host + port))
    user = parts.username if parts.username and username == "git" else username
    port = f":{parts.port}" if parts.port else ""
    netloc = f"{user}@{ssh_hostname or host + port}"
    return urllib.parse.urlunsplit(parts._replace(scheme="ssh", netloc=netloc))


@dataclasses.dataclass
class PlainGitSource:
    """``fluxpy bootstrap git``: a URL and the credentials to push to it."""

    url: str
    sync_url: str
    credentials: Credentials
    provider: Provider | None = None
    #: the cluster's key is the one bootstrap clones with (``--private-key-file`` over SSH): no need to ask.
    key_has_access: bool = False

    def describe(self) -> str:
        return redact_url(self.url)

    def resolve(self, ui: UI) -> Resolved:
        return Resolved(self.url, self.sync_url, self.credentials)

    def authorize_key(self, ui: UI, title: str, public_key: str, *, read_only: bool, silent: bool) -> None:
        ui.success(f"public key: {public_key.strip()}")
        if silent or self.key_has_access:
            return
        if not ui.confirm("Please give the key access to your repository"):
            raise BootstrapSourceError("aborting: give the public key above read access to the repository (a deploy "
                                       "key), then run bootstrap again with --silent")

    def deploy_token(self, ui: UI, name: str, keep_username: str) -> DeployToken | None:
        raise BootstrapSourceError("deploy tokens need a provider (bootstrap gitlab --deploy-token-auth)")


@dataclasses.dataclass
class ProviderSource:
    """``fluxpy bootstrap github|gitlab``: a repository on a provider, created when missing."""

    provider: Provider
    owner: str
    repository: str
    token: str
    personal: bool = False
    visibility: str = "private"
    teams: dict[str, str] = dataclasses.field(default_factory=dict)
    #: sync over ``https`` (token or deploy-token auth) instead of ``ssh`` (deploy key).
    sync_transport: str = "ssh"
    ssh_hostname: str = ""
    ca: bytes = b""
    description: str = ""
    default_branch: str = "main"
    _repo: Repository | None = None

    def describe(self) -> str:
        return f"{self.provider.domain}/{self.owner}/{self.repository}"

    def resolve(self, ui: UI) -> Resolved:
        ui.action(f"connecting to {self.provider.domain}")
        try:
            repo = self.provider.ensure_repository(self.owner, self.repository, personal=self.personal,
                                                   visibility=self.visibility, description=self.description,
                                                   default_branch=self.default_branch)
        except ProviderError as exc:
            raise BootstrapSourceError(exc.message) from None
        if repo.created:
            ui.success(f"repository {repo.web_url!r} created")
        self._repo = repo
        if self.teams:
            ui.action("reconciling repository permissions")
            try:
                results = self.provider.grant_teams(repo, self.teams)
            except ProviderError as exc:
                results = [TeamGrant(team, perm, error=exc.message) for team, perm in self.teams.items()]
            for grant in results:
                if grant.error:
                    ui.failure(f"failed to grant {grant.permission!r} permissions to {grant.team!r}: {grant.error}")
                elif grant.changed:
                    ui.success(f"granted {grant.permission!r} permissions to {grant.team!r}")
            ui.success("reconciled repository permissions")
        sync_url = repo.http_url if self.sync_transport == "https" else with_ssh_hostname(repo.ssh_url,
                                                                                          self.ssh_hostname)
        credentials = Credentials(username=self.owner, password=self.token, ca=self.ca)
        return Resolved(repo.http_url, sync_url, credentials, repo)

    def authorize_key(self, ui: UI, title: str, public_key: str, *, read_only: bool, silent: bool) -> None:
        assert self._repo is not None
        ui.success(f"public key: {public_key.strip()}")
        try:
            changed = self.provider.ensure_deploy_key(self._repo, title, public_key, read_only=read_only)
        except ProviderError as exc:
            raise BootstrapSourceError(exc.message) from None
        if changed:
            ui.success(f"configured deploy key {title!r} for {self._repo.web_url!r}")

    def deploy_token(self, ui: UI, name: str, keep_username: str) -> DeployToken | None:
        assert self._repo is not None
        ui.action("checking to reconcile deploy token for source secret")
        try:
            token = self.provider.ensure_deploy_token(self._repo, name, keep_username=keep_username)
        except ProviderError as exc:
            raise BootstrapSourceError(exc.message) from None
        if token is not None:
            ui.success(f"configured deploy token {name!r} for {self._repo.web_url!r}")
        else:
            ui.success("reconciled deploy token for source secret")
        return token

    def open_change_request(self, *, head: str, base: str, title: str, body: str) -> ChangeRequest:
        assert self._repo is not None
        try:
            return self.provider.open_change_request(self._repo, head=head, base=base, title=title, body=body)
        except ProviderError as exc:
            raise BootstrapSourceError(exc.message) from None

    def change_request(self, number: int) -> ChangeRequest:
        assert self._repo is not None
        try:
            return self.provider.change_request(self._repo, number)
        except ProviderError as exc:
            raise BootstrapSourceError(exc.message) from None
