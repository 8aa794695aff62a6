"""Commit statuses against the local GitHub / GitLab (tests/servers/githost.py, the server the bootstrap tests
use, over TLS with real repositories): the status lands on the commit the event names, an identical one is
not posted twice, and a bad token or unknown commit is a clear error."""
from __future__ import annotations

import ssl

import pytest

from controllers.notification.event import Event
from controllers.notification.notifiers import NotifierError, NotifierOptions, new_notifier
from servers.githost import github_host, gitlab_host  # noqa: F401


def event(sha: str, severity: str = "info", reason: str = "ReconciliationSucceeded") -> Event:
    return Event({"kind": "Kustomization", "namespace": "apps", "name": "podinfo",
                  "apiVersion": "kustomize.toolkit.fluxcd.io/v1"}, severity, "2026-12-05T10:00:00Z",
                 "Applied revision", reason, {"revision": f"main@sha1:{sha}"}, "kustomize-controller")


@pytest.mark.parametrize("flavor", ["github", "gitlab"])
def test_commit_status_round_trip(flavor, request):
    host = request.getfixturevalue(f"{flavor}_host")
    repo = host.add_repo("alice", f"app-{flavor}", files={"README.md": "hi\n"})
    sha = host.head(repo)
    tls = ssl.create_default_context(cafile=host.ca_file)
    options = NotifierOptions(url=host.http_url(repo), token=host.token, commit_status="kustomization/podinfo/abc",
                              tls=tls)
    notifier = new_notifier(flavor, options)
    notifier.post(event(sha))
    notifier.post(event(sha))  # the same state and description: not posted again
    notifier.post(event(sha, "error", "HealthCheckFailed"))
    state = "state" if flavor == "github" else "status"
    name = "context" if flavor == "github" else "name"
    assert [(s[state], s["description"], s[name]) for s in repo.statuses] == [
        ("failure" if flavor == "github" else "failed", "health check failed", "kustomization/podinfo/abc"),
        ("success", "reconciliation succeeded", "kustomization/podinfo/abc")]

    with pytest.raises(NotifierError):
        new_notifier(flavor, NotifierOptions(url=host.http_url(repo), token="wrong", commit_status="c", tls=tls)) \
            .post(event(sha))
    with pytest.raises(NotifierError):
        notifier.post(event("0" * 40))
    assert len(repo.statuses) == 2
