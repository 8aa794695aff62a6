"""Pull-request mode (beyond Flux): ``spec.git.push.pullRequest`` opens — or keeps, when one is already open — a
pull request (GitHub) or merge request (GitLab) from the push branch to the checkout branch, through the same
provider clients bootstrap uses (:mod:`controllers.lib.providers`). The push branch is rebuilt from the checkout
at every change and force-pushed, so the request always shows exactly the pending image updates; its title is
the commit message's first line (or ``title``), its description the rest of the message with the trailers.

The provider's address and the repository default to the GitRepository URL's host and path
(``https://host/owner/name.git``, ``ssh://git@host/owner/name.git`` and ``git@host:owner/name.git`` all give
``https://host`` and ``owner/name``); the API token is the ``token`` key of ``secretRef``, with an optional
``ca.crt`` for a private CA.
"""
from __future__ import annotations

import os
import re
import tempfile
import urllib.parse

from controllers.api.objects import dig
from controllers.lib import credentials
from controllers.lib.credentials import SecretError
from controllers.runtime.outcomes import RetryableError, StalledError

PULL_REQUEST_FAILED = "PullRequestFailed"
INVALID_PULL_REQUEST = "InvalidPullRequestConfig"
_SCP_LIKE = re.compile(r"^(?:[^@/]+@)?([^:/]+):(?!//)(.+)$")


def provider_target(git_url: str) -> tuple[str, str]:
    """``(https://host[:port], owner/name)`` of a Git URL ("" parts when it has none)."""
    match = _SCP_LIKE.match(git_url) if "://" not in git_url else None
    if match:
        host, path = match.group(1), match.group(2)
        scheme = "https"
    else:
        parts = urllib.parse.urlsplit(git_url)
        host, path = parts.hostname or "", parts.path
        if parts.port and parts.scheme in ("http", "https"):
            host += f":{parts.port}"
        scheme = parts.scheme if parts.scheme in ("http", "https") else "https"
    path = path.strip("/")
    path = path[:-4] if path.endswith(".git") else path
    return (f"{scheme}://{host}" if host else ""), path


def validate(obj: dict, checkout_branch: str, switch_branch: bool) -> dict | None:
    """The ``pullRequest`` spec, or None; Stalled unless a branch is checked out and another one pushed."""
    spec = dig(obj, "spec.git.push.pullRequest")
    if not spec:
        return None
    if not checkout_branch or not switch_branch:
        raise StalledError("spec.git.push.pullRequest needs spec.git.push.branch set to a branch other than the "
                           "checkout branch (the pull request goes from the push branch to the checkout branch)",
                           reason=INVALID_PULL_REQUEST)
    return spec


def open_or_keep(kube, obj: dict, spec: dict, git_url: str, head: str, base: str,
                 message: str) -> tuple[dict, bool]:
    """``{"number", "url"}`` of the open request from ``head`` to ``base``, opened now if there is none, and
    whether it was opened now.

    A failure is a RetryableError (PullRequestFailed) naming the call and the provider's answer."""
    from controllers.lib.providers.base import ProviderError, Repository

    ns = obj["metadata"]["namespace"]
    name = dig(spec, "secretRef.name") or ""
    default_address, default_repository = provider_target(git_url)
    address, repository = spec.get("address") or default_address, spec.get("repository") or default_repository
    if not address or "/" not in repository:
        raise StalledError(f"spec.git.push.pullRequest: cannot tell the provider's address and repository from "
                           f"the GitRepository URL '{git_url}': set 'address' and 'repository' (owner/name)",
                           reason=INVALID_PULL_REQUEST)
    try:
        data = credentials.get_secret(kube, ns, name)
    except SecretError as exc:
        raise RetryableError(f"failed to open pull request: {exc}", reason=PULL_REQUEST_FAILED) from None
    token = (data.get("token") or b"").decode().strip()
    if not token:
        raise RetryableError(f"failed to open pull request: secret '{ns}/{name}' has no 'token' key",
                             reason=PULL_REQUEST_FAILED)
    title, _, body = message.partition("\n")
    ca_file = None
    try:
        if data.get("ca.crt"):
            handle, ca_file = tempfile.mkstemp(prefix="fluxpy-pr-ca-")
            with os.fdopen(handle, "wb") as out:
                out.write(data["ca.crt"])
        client = _client(spec["provider"], token, address, ca_file)
        repo = Repository(full_name=repository, http_url="", ssh_url="", web_url="", default_branch=base)
        change = client.open_change_request(repo, head=head, base=base, title=spec.get("title") or title.strip(),
                                            body=body.strip())
    except ProviderError as exc:
        raise RetryableError(f"failed to open pull request: {exc.message}", reason=PULL_REQUEST_FAILED) from None
    finally:
        if ca_file:
            os.unlink(ca_file)
    return {"number": change.number, "url": change.url}, change.created


def _client(provider: str, token: str, address: str, ca_file: str | None):
    if provider == "gitlab":
        from controllers.lib.providers.gitlab import GitLabProvider

        return GitLabProvider(token, address, ca_file=ca_file)
    from controllers.lib.providers.github import GitHubProvider

    return GitHubProvider(token, address, ca_file=ca_file)
