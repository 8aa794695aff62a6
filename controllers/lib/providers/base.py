"""What bootstrap needs from a Git provider, and the names Flux gives what it creates there."""
from __future__ import annotations

import abc

import dataclasses
import re
import urllib.parse
from typing import Callable, Protocol, TypeVar

T = TypeVar("T")


class ProviderError(Exception):
    """A provider API call failed; the message names the call, the provider's answer and what to do.

    ``kind``: ``auth`` (token refused), ``forbidden`` (no permission), ``not-found``, ``unreachable``,
    ``invalid`` (bad input) or ``api``."""

    def __init__(self, message: str, kind: str = "api"):
        super().__init__(message)
        self.message, self.kind = message, kind


@dataclasses.dataclass(frozen=True)
class Repository:
    """A provider repository, as bootstrap uses it."""

    #: ``owner/name`` (``group/subgroup/name`` on GitLab).
    full_name: str
    #: the HTTPS (or HTTP) clone URL.
    http_url: str
    #: the SSH clone URL in ``ssh://`` form.
    ssh_url: str
    #: the repository's page, for messages.
    web_url: str
    default_branch: str
    #: the provider's id (GitLab project id; GitHub repository id).
    id: int = 0
    #: whether bootstrap created it just now.
    created: bool = False


@dataclasses.dataclass(frozen=True)
class DeployToken:
    """A GitLab deploy token: the credentials the cluster reads the repository with."""

    name: str
    username: str
    token: str


@dataclasses.dataclass(frozen=True)
class TeamGrant:
    """The outcome of giving one team access to the repository."""

    team: str
    permission: str
    changed: bool = False
    #: why it failed ("" when it did not).
    error: str = ""


@dataclasses.dataclass(frozen=True)
class ChangeRequest:
    """A pull request (GitHub) or merge request (GitLab)."""

    number: int
    url: str
    #: ``open``, ``merged`` or ``closed``.
    state: str
    head: str
    base: str
    created: bool = False


class Provider(Protocol):
    """The provider operations bootstrap uses (each raises ProviderError)."""

    #: "GitHub", "GitLab": for messages.
    name: str
    #: the host users see (github.com, gitlab.example.com:8443).
    domain: str
    #: the word for a change request ("pull request", "merge request").
    change_request_word: str

    def ensure_repository(self, owner: str, name: str, *, personal: bool, visibility: str, description: str = "",
                          default_branch: str = "main") -> Repository: ...

    def grant_teams(self, repo: Repository, teams: dict[str, str]) -> list[TeamGrant]: ...

    def ensure_deploy_key(self, repo: Repository, title: str, public_key: str, *, read_only: bool) -> bool: ...

    def ensure_deploy_token(self, repo: Repository, name: str, *, keep_username: str = "") -> DeployToken | None: ...

    def open_change_request(self, repo: Repository, *, head: str, base: str, title: str,
                            body: str) -> ChangeRequest: ...

    def change_request(self, repo: Repository, number: int) -> ChangeRequest: ...


class APIClient(abc.ABC):
    """What the provider classes share: a failed API call turned into a ProviderError. A subclass sets the
    class attributes and :meth:`_api_error` (its library's exceptions); :meth:`_call` handles the network."""

    #: "GitHub", "GitLab": for messages.
    name: str
    #: the host users see.
    domain: str
    #: where the API calls go, for network failures.
    endpoint: str
    #: the token's environment variable and the scope it needs, for a refused token.
    token_env: str
    token_scope: str

    def _call(self, what: str, fn: Callable[[], T], *, not_found: str = "", forbidden: str = "") -> T:
        import requests

        try:
            return fn()
        except requests.exceptions.SSLError as exc:
            raise ProviderError(f"{what}: TLS verification of {self.endpoint} failed ({connection_problem(exc)}); "
                                "pass the server's CA with --ca-file", "unreachable") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise ProviderError(f"{what}: cannot reach {self.endpoint} ({connection_problem(exc)}); check --hostname "
                                "and the network", "unreachable") from None
        except Exception as exc:
            error = self._api_error(what, exc, not_found=not_found, forbidden=forbidden)
            if error is None:
                raise
            raise error from None

    @abc.abstractmethod
    def _api_error(self, what: str, exc: Exception, *, not_found: str, forbidden: str) -> ProviderError | None:
        """The ProviderError for an exception of the provider's library (None: not one of them)."""

    def _refused(self, what: str, answer: str) -> ProviderError:
        """The token was refused (``answer``: e.g. ``401 Unauthorized``)."""
        return ProviderError(f"{what}: {self.domain} refused the token ({answer}): set ${self.token_env} to a valid "
                             f"personal access token (scope '{self.token_scope}')", "auth")

    def _answer_error(self, what: str, status: int, detail: str, *, not_found: str,
                      forbidden: str) -> ProviderError | None:
        """A 404 or 403 answer (``detail``: the provider's message, "" if none); None for other statuses."""
        if status == 404:
            return ProviderError(f"{what}: not found (404{' ' + detail if detail else ''})"
                                 + (f": {not_found}" if not_found else ""), "not-found")
        if status == 403:
            return ProviderError(f"{what}: forbidden (403{' ' + detail if detail else ''})"
                                 + (f": {forbidden}" if forbidden else ": the token lacks the permission"),
                                 "forbidden")
        return None


def deploy_key_name(namespace: str, branch: str, secret_name: str, path: str) -> str:
    """The deploy key title Flux registers: the non-empty parts joined by ``-``, in the order Flux passes
    them (namespace, branch, secret name, path), e.g. ``flux-system-main-flux-system-./clusters/my-cluster``."""
    return "-".join(v for v in (namespace, branch, secret_name, path) if v)


deploy_token_name = deploy_key_name


def ssh_url(url: str) -> str:
    """An SSH clone URL in the ``ssh://`` form Flux needs (``git@host:owner/repo.git`` → ``ssh://git@host/
    owner/repo.git``)."""
    if url.startswith("ssh://"):
        return url
    match = re.match(r"^(?:(?P<user>[^@/]+)@)?(?P<host>[^:/]+):(?P<path>.+)$", url)
    if not match:
        return url
    user = f"{match['user']}@" if match["user"] else ""
    return f"ssh://{user}{match['host']}/{match['path'].lstrip('/')}"


def with_ssh_hostname(url: str, hostname: str) -> str:
    """``url`` with its host (and port) replaced by ``--ssh-hostname`` (host or host:port)."""
    if not hostname:
        return url
    parts = urllib.parse.urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urllib.parse.urlunsplit(parts._replace(netloc=user + hostname))


def api_base(hostname: str, default_domain: str) -> tuple[str, str]:
    """``(scheme://host[:port], host[:port])`` for ``--hostname`` (a host, host:port or URL; https unless
    the URL says http)."""
    value = (hostname or default_domain).strip().rstrip("/")
    if "://" not in value:
        value = "https://" + value
    parts = urllib.parse.urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ProviderError(f"invalid --hostname {hostname!r}: expected a host name such as {default_domain}",
                            "invalid")
    return f"{parts.scheme}://{parts.netloc}", parts.netloc


def connection_problem(exc: BaseException) -> str:
    """A short reason for a failed HTTP connection (requests' messages nest the cause deep inside)."""
    text = str(exc)
    lowered = text.lower()
    for needle, reason in (("certificate_verify_failed", "certificate verify failed"),
                           ("certificate verify failed", "certificate verify failed"),
                           ("wrong version number", "the server does not speak TLS (try http://)"),
                           ("connection refused", "connection refused"),
                           ("name or service not known", "host name not found"),
                           ("nodename nor servname", "host name not found"),
                           ("temporary failure in name resolution", "host name not found"),
                           ("timed out", "timed out"), ("network is unreachable", "network is unreachable"),
                           ("no route to host", "no route to host")):
        if needle in lowered:
            return reason
    return text if len(text) < 160 else text[:160] + "..."
