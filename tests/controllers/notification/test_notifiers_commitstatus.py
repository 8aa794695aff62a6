"""Commit-status notifiers against a recording server on loopback: the exact paths, headers and bodies the Go
SDKs behind Flux's notification-controller send, their duplicate checks, and the commit status id rules."""
from __future__ import annotations

import base64
import hashlib
import json
import re

import pytest

from controllers.notification.event import Event
from controllers.notification.notifiers import NotifierError, NotifierOptions, http, new_notifier
from controllers.notification.notifiers import commitstatus
from servers.capture import capture_server  # noqa: F401

SHA = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"
OTHER = "69b59063470310ebbd88a9156325322a124e55a3"
ID = "kustomization/podinfo/0c9c2e41"
KEY = hashlib.sha1(ID.encode()).hexdigest()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(http, "RETRY_WAIT_MIN", 0.01)
    monkeypatch.setattr(http, "RETRY_WAIT_MAX", 0.02)


def event(severity="info", reason="ReconciliationSucceeded", metadata=None):
    return Event(involved_object={"kind": "Kustomization", "namespace": "apps", "name": "podinfo",
                                  "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
                 severity=severity, timestamp="2026-12-05T10:00:00Z", message="Applied <revision> & done",
                 reason=reason, metadata={"revision": f"main@sha1:{SHA}"} if metadata is None else metadata,
                 reporting_controller="kustomize-controller")


def options(url, **fields):
    return NotifierOptions(url=url, commit_status=fields.pop("commit_status", ID), **fields)


def reply(capture, *bodies):
    """Script what the server's GETs (and OPTIONS) answer, in order."""
    capture.get_replies = [(b[0], json.dumps(b[1]).encode()) if isinstance(b, tuple) else (200, json.dumps(b).encode())
                           for b in bodies]


# ---------------------------------------------------------------------------------------------- GitHub

def test_github_lists_the_statuses_then_creates_one(capture_server):
    reply(capture_server, [])
    new_notifier("github", options(f"{capture_server.url}/org/app.git", token="ght",
                                   commit_status="a<b&c")).post(event())
    listed, created = capture_server.received()
    assert (listed.method, listed.path) == ("GET", f"/api/v3/repos/org/app/commits/{SHA}/statuses?per_page=50")
    assert (created.method, created.path) == ("POST", f"/api/v3/repos/org/app/statuses/{SHA}")
    for request in (listed, created):
        assert request.headers["Authorization"] == "Bearer ght"
        assert request.headers["Accept"] == "application/vnd.github.v3+json"
        assert request.headers["X-GitHub-Api-Version"] == "2022-11-28"
    assert created.headers["Content-Type"] == "application/json"
    # go-github's json.Encoder: no HTML escaping, a trailing newline
    assert created.body == b'{"state":"success","description":"reconciliation succeeded","context":"a<b&c"}\n'


def test_github_skips_a_duplicate_of_the_latest_status_with_its_context(capture_server):
    same = {"state": "failure", "description": "health check failed", "context": ID}
    incomplete = {"state": "success", "context": ID}
    reply(capture_server, [incomplete, same, {**same, "state": "success"}])
    notifier = new_notifier("github", options(f"{capture_server.url}/org/app", password="from-password"))
    notifier.post(event(severity="error", reason="HealthCheckFailed"))
    assert [r.method for r in capture_server.received()] == ["GET"]
    assert capture_server.received()[0].headers["Authorization"] == "Bearer from-password"
    # the latest with the context differs: posted, although an older one is the same
    reply(capture_server, [{**same, "state": "success"}, same])
    notifier.post(event(severity="error", reason="HealthCheckFailed"))
    assert [r.method for r in capture_server.received()] == ["GET", "GET", "POST"]
    assert capture_server.received()[2].json() == {"state": "failure", "description": "health check failed",
                                                   "context": ID}


def test_github_api_bases_and_errors(capture_server):
    assert new_notifier("github", options("https://github.com/org/app", token="t")).api == "https://api.github.com/"
    assert new_notifier("github", options("git@github.com:org/app.git", token="t")).api == "https://api.github.com/"
    assert new_notifier("github", options("https://ghe.example.com/org/app", token="t")).api == \
        "https://ghe.example.com/api/v3/"
    assert new_notifier("github", options("https://api.ghe.example.com/org/app", token="t")).api == \
        "https://api.ghe.example.com/"
    with pytest.raises(NotifierError, match='^invalid repository id "org/team/app"$'):
        new_notifier("github", options("https://github.com/org/team/app", token="t"))
    with pytest.raises(NotifierError, match="^github token or github app details must be specified$"):
        new_notifier("github", options("https://github.com/org/app"))
    with pytest.raises(NotifierError, match="^commit status cannot be empty$"):
        new_notifier("github", options("https://github.com/org/app", token="t", commit_status=""))
    reply(capture_server, (401, {"message": "Bad credentials"}))
    with pytest.raises(NotifierError) as failure:
        new_notifier("github", options(f"{capture_server.url}/org/app", token="t")).post(event())
    assert str(failure.value) == (f"could not list commit statuses: GET {capture_server.url}/api/v3/repos/org/app/"
                                  f"commits/{SHA}/statuses?per_page=50: 401 Bad credentials []")


# ---------------------------------------------------------------------------------------------- GitLab

def test_gitlab_requests_and_duplicate(capture_server):
    reply(capture_server, [])
    notifier = new_notifier("gitlab", options(f"{capture_server.url}/group/sub/my.app.git", token="glt",
                                              commit_status="a<b"))
    notifier.post(event(severity="error", reason="HealthCheckFailed",
                        metadata={"revision": f"main@sha1:{OTHER}", "originRevision": f"main@sha1:{SHA}"}))
    listed, created = capture_server.received()
    project = "group%2Fsub%2Fmy%2Eapp"
    assert listed.path == f"/api/v4/projects/{project}/repository/commits/{SHA}/statuses?name=a%3Cb"
    assert created.path == f"/api/v4/projects/{project}/statuses/{SHA}"
    assert listed.headers["PRIVATE-TOKEN"] == created.headers["PRIVATE-TOKEN"] == "glt"
    assert created.headers["Content-Type"] == "application/json"
    # json.Marshal: HTML escaped, no newline
    assert created.body == b'{"state":"failed","name":"a\\u003cb","description":"health check failed"}'
    reply(capture_server, [{"sha": SHA, "status": "failed", "name": "a<b", "description": "health check failed"}])
    notifier.post(event(severity="error", reason="HealthCheckFailed", metadata={"originRevision": SHA}))
    assert [r.method for r in capture_server.received()] == ["GET", "POST", "GET"]


def test_gitlab_errors(capture_server):
    with pytest.raises(NotifierError, match="^gitlab token cannot be empty$"):
        new_notifier("gitlab", options("https://gitlab.com/org/app"))
    reply(capture_server, (404, {"message": "404 Project Not Found"}))
    notifier = new_notifier("gitlab", options(f"{capture_server.url}/org/app", password="pw"))
    with pytest.raises(NotifierError, match="^unable to list commit status: 404 Not Found$"):
        notifier.post(event())
    reply(capture_server, (401, {"message": "401 Unauthorized"}))
    with pytest.raises(NotifierError) as failure:
        notifier.post(event())
    assert str(failure.value) == (f"unable to list commit status: GET {capture_server.url}/api/v4/projects/org/app/"
                                  f"repository/commits/{SHA}/statuses: 401 {{message: 401 Unauthorized}}")


# ---------------------------------------------------------------------------------------------- Gitea

def test_gitea_checks_the_version_then_sets_a_pending_status(capture_server):
    reply(capture_server, {"version": "1.21.4"}, [])
    notifier = new_notifier("gitea", options(f"{capture_server.url}/org/app.git", token="gtt"))
    notifier.post(event(reason="Progressing"))
    version, listed, created = capture_server.received()
    assert version.path == "/api/v1/version"
    assert listed.path == f"/api/v1/repos/org/app/commits/{SHA}/statuses?limit=50&page=1"
    assert created.path == f"/api/v1/repos/org/app/statuses/{SHA}"
    assert {r.headers["Authorization"] for r in (version, listed, created)} == {"token gtt"}
    assert created.body == (b'{"state":"pending","target_url":"","description":"progressing","context":"'
                            + ID.encode() + b'"}')
    # Gitea lists the state as "status"
    reply(capture_server, [{"context": ID, "status": "failure", "description": "install failed"}])
    notifier.post(event(severity="error", reason="InstallFailed"))
    assert [r.method for r in capture_server.received()] == ["GET", "GET", "POST", "GET"]


def test_gitea_refusals(capture_server):
    with pytest.raises(NotifierError, match="^gitea token cannot be empty$"):
        new_notifier("gitea", options(f"{capture_server.url}/org/app"))
    with pytest.raises(NotifierError, match='^invalid repository id "org/app/extra"$'):
        new_notifier("gitea", options(f"{capture_server.url}/org/app/extra", token="t"))
    with pytest.raises(NotifierError, match="^invalid proxy URL$"):
        new_notifier("gitea", options(f"{capture_server.url}/org/app", token="t", proxy_url="wrong\nURL"))
    reply(capture_server, {"version": "1.10.0"})
    with pytest.raises(NotifierError, match=f"^failed creating Gitea client: gitea server at {capture_server.url} "
                                            r"is older than 1\.11\.0$"):
        new_notifier("gitea", options(f"{capture_server.url}/org/app", token="t"))
    reply(capture_server, (403, {"message": "token is required"}))
    with pytest.raises(NotifierError, match="^failed creating Gitea client: token is required$"):
        new_notifier("gitea", options(f"{capture_server.url}/org/app", token="t"))
    reply(capture_server, {"version": "1.21.0"})
    with pytest.raises(NotifierError, match="^can't convert to gitea state$"):
        new_notifier("gitea", options(f"{capture_server.url}/org/app", token="t")).post(event(severity="trace"))


# ---------------------------------------------------------------------------------------------- Bitbucket

def test_bitbucket_cloud(capture_server, monkeypatch):
    monkeypatch.setenv("BITBUCKET_API_BASE_URL", f"{capture_server.url}/2.0")
    reply(capture_server, (404, {"type": "error"}))
    notifier = new_notifier("bitbucket", options("https://bitbucket.org/owner/repo.git", token="user:app-pw"))
    notifier.post(event())
    fetched, created = capture_server.received()
    assert fetched.path == f"/2.0/repositories/owner/repo/commit/{SHA}/statuses/build/{KEY}"
    assert created.path == f"/2.0/repositories/owner/repo/commit/{SHA}/statuses/build"
    basic = "Basic " + base64.b64encode(b"user:app-pw").decode()
    assert fetched.headers["Authorization"] == created.headers["Authorization"] == basic
    assert created.body == (b'{"key":"' + KEY.encode() + b'","url":"https://bitbucket.org","state":"SUCCESSFUL",'
                            b'"name":"kustomization/podinfo","description":"reconciliation succeeded"}')
    reply(capture_server, {"key": KEY, "state": "SUCCESSFUL", "description": "reconciliation succeeded"})
    notifier.post(event())
    assert [r.method for r in capture_server.received()] == ["GET", "POST", "GET"]
    reply(capture_server, (401, {}))
    with pytest.raises(NotifierError, match="^could not get commit status: 401 Unauthorized$"):
        notifier.post(event())
    with pytest.raises(NotifierError, match="^invalid token format, expected to be <user>:<password>$"):
        new_notifier("bitbucket", options("https://bitbucket.org/owner/repo", token="token-only"))
    with pytest.raises(NotifierError, match="^can't convert to bitbucket state$"):
        notifier.post(event(severity="trace"))


def test_bitbucket_server(capture_server):
    address = f"{capture_server.url}/ctx/scm/PRJ/app.git"
    reply(capture_server, (404, {}))
    notifier = new_notifier("bitbucketserver", options(address, username="u", password="p"))
    notifier.post(event())
    fetched, created = capture_server.received()
    builds = f"/ctx/rest/api/latest/projects/PRJ/repos/app/commits/{SHA}/builds"
    assert (fetched.path, created.path) == (f"{builds}?key={KEY}", builds)
    for request in (fetched, created):
        assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"u:p").decode()
        assert request.headers["x-atlassian-token"] == "no-check"
        assert request.headers["x-requested-with"] == "XMLHttpRequest"
    name = "kustomization/podinfo [reconciliation succeeded]"
    assert created.body == (b'{"description":"reconciliation succeeded","key":"' + KEY.encode() + b'","name":"'
                            + name.encode() + b'","state":"SUCCESSFUL","url":"' + address.encode() + b'"}\n')
    reply(capture_server, {"key": KEY, "state": "SUCCESSFUL", "description": "reconciliation succeeded",
                           "name": name})
    new_notifier("bitbucketserver", options(address, token="bbt")).post(event())
    assert capture_server.received()[-1].headers["Authorization"] == "Bearer bbt"
    assert [r.method for r in capture_server.received()] == ["GET", "POST", "GET"]
    reply(capture_server, (403, {}))
    with pytest.raises(NotifierError, match="^could not get existing commit status: failed api call to check "
                                            "duplicate commit status: 403 - Forbidden$"):
        notifier.post(event())
    with pytest.raises(NotifierError, match="^could not parse revision: failed to extract commit hash from "
                                            "'main@sha1:abc' revision$"):
        notifier.post(event(metadata={"revision": "main@sha1:abc"}))


@pytest.mark.parametrize("address, message", [
    ("ssh://git@host/scm/PRJ/app.git", "could not parse git address: unsupported scheme type in address: ssh. "
                                       "Must be http or https"),
    ("https://host/PRJ/app.git", "could not parse git address: supplied provider address is not http(s) git "
                                 "clone url"),
    ("https://host/scm/PRJ/sub/app.git", 'could not parse git address: invalid repository id "PRJ/sub/app"'),
])
def test_bitbucket_server_addresses(address, message):
    with pytest.raises(NotifierError, match=f"^{re.escape(message)}$"):
        new_notifier("bitbucketserver", options(address, token="t"))
    with pytest.raises(NotifierError, match="^invalid credentials, expected to be one of username/password or "
                                            "API Token$"):
        new_notifier("bitbucketserver", options("https://host/scm/PRJ/app.git", username="u"))


# ---------------------------------------------------------------------------------------------- Azure DevOps

LOCATIONS = {"count": 1, "value": [{
    "id": commitstatus.AZURE_STATUSES_LOCATION, "area": "git", "resourceName": "statuses",
    "routeTemplate": "{project}/_apis/{area}/repositories/{repositoryId}/commits/{commitId}/{resource}",
    "resourceVersion": 1, "minVersion": "1.0", "maxVersion": "7.1", "releasedVersion": "7.1"}]}


def test_azure_devops(capture_server):
    handler = capture_server._server.RequestHandlerClass
    handler.do_OPTIONS = handler.do_GET  # the Go client asks the resource locations first
    reply(capture_server, LOCATIONS, {"count": 0, "value": []})
    notifier = new_notifier("azuredevops", options(f"{capture_server.url}/Org/proj/_git/app", token="pat"))
    notifier.post(event(metadata={"revision": f"main@sha1:{SHA}", "summary": "prod"}))
    located, listed, created = capture_server.received()
    statuses = f"/org/proj/_apis/git/repositories/app/commits/{SHA}/statuses"
    assert [(r.method, r.path) for r in (located, listed, created)] == [
        ("OPTIONS", "/org/_apis"), ("GET", statuses), ("POST", statuses)]
    auth = "Basic " + base64.b64encode(b":pat").decode()
    assert {r.headers["Authorization"] for r in (located, listed, created)} == {auth}
    assert located.headers["Accept"] == "application/json"
    assert listed.headers["Accept"] == created.headers["Accept"] == "application/json;api-version=6.0"
    assert created.headers["Content-Type"] == "application/json;charset=utf-8"
    assert created.headers["X-TFS-FedAuthRedirect"] == "Suppress"
    assert created.body == (b'{"context":{"genre":"fluxcd:prod","name":"' + ID.encode() + b'"},'
                            b'"description":"reconciliation succeeded","state":"succeeded"}')
    # the locations are kept per organization; a same status (name and genre) is not posted again
    reply(capture_server, {"count": 1, "value": [{"context": {"name": ID, "genre": "fluxcd"}, "state": "error",
                                                  "description": "build failed"}]})
    notifier.post(event(severity="error", reason="BuildFailed"))
    assert [r.method for r in capture_server.received()] == ["OPTIONS", "GET", "POST", "GET"]


def test_azure_devops_refusals_and_version_negotiation():
    with pytest.raises(NotifierError, match='^invalid repository id "org/proj/app"$'):
        new_notifier("azuredevops", options("https://dev.azure.com/org/proj/app", token="t"))
    with pytest.raises(NotifierError, match="^failed to acquire azure devops token: "):
        new_notifier("azuredevops", options("https://dev.azure.com/org/proj/_git/app"))
    location = LOCATIONS["value"][0]
    assert commitstatus._azure_version(location, "6.0") == "6.0"
    assert commitstatus._azure_version({**location, "maxVersion": "5.1", "releasedVersion": "5.0"}, "6.0") == \
        "5.1-preview"
    assert commitstatus._azure_version({**location, "releasedVersion": "0.0"}, "6.0") == "6.0-preview"


# ---------------------------------------------------------------------------------------------- shared rules

def test_events_without_a_usable_revision_or_state(capture_server):
    notifier = new_notifier("github", options(f"{capture_server.url}/org/app", token="t"))
    notifier.post(event(reason="Progressing", metadata={}))  # skipped before anything
    with pytest.raises(NotifierError, match="^missing revision metadata$"):
        notifier.post(event(metadata={}))
    with pytest.raises(NotifierError, match="^failed to extract commit hash from 'v1.0.0' revision$"):
        notifier.post(event(metadata={"revision": "v1.0.0"}))
    with pytest.raises(NotifierError, match="^can't convert to github state$"):
        notifier.post(event(severity="trace"))
    assert capture_server.received() == []
    # the commit metadata comes first, then originRevision, then revision; legacy "<branch>/<sha>" too
    reply(capture_server, [])
    notifier.post(event(metadata={"revision": f"main@sha1:{OTHER}", "commit": f"main/{SHA}"}))
    assert capture_server.received()[-1].path.endswith(f"/statuses/{SHA}")


def test_helpers():
    assert commitstatus.parse_git_address("ssh://git@host:2222/org/app.git") == ("https://host:2222", "org/app")
    assert commitstatus.parse_git_address("git@gitlab.com:group/sub/app.git") == ("https://gitlab.com",
                                                                                  "group/sub/app")
    assert commitstatus.parse_git_address("http://127.0.0.1:8080//org/app") == ("http://127.0.0.1:8080", "org/app")
    assert commitstatus.parse_git_address("org/app") == ("file://", "org/app")
    assert commitstatus.split_camelcase("PDFLoaderHealthCheckFailed2") == ["PDF", "Loader", "Health", "Check",
                                                                          "Failed", "2"]
    assert commitstatus.name_and_description(event(reason="ArtifactUpToDate")) == ("kustomization/podinfo",
                                                                                   "artifact up to date")


# ---------------------------------------------------------------------------------------------- status ids

def test_default_commit_status():
    assert commitstatus.default_commit_status("0C9C2E41-d2f9-4f9b-9c41-bebc1984d67a", event()) == \
        "kustomization/podinfo/0c9c2e41"
    assert commitstatus.default_commit_status("", event()) == "kustomization/podinfo/"


def test_commit_status_from_expr():
    alert, provider = {"metadata": {"name": "on-call"}}, {"metadata": {"uid": "0c9c2e41-d2f9"}}
    expr = ("(event.involvedObject.kind + '/' + event.involvedObject.name + '/' + event.metadata.env + '/' "
            "+ provider.metadata.uid + '/' + alert.metadata.name).lowerAscii()")
    assert commitstatus.commit_status_from_expr(expr, event(metadata={"env": "Prod"}), alert, provider) == \
        "kustomization/podinfo/prod/0c9c2e41-d2f9/on-call"
    prefix = "^failed to evaluate the spec.commitStatusExpr CEL expression for the event: "
    with pytest.raises(NotifierError, match=prefix + "failed to compile expression: CEL expression output type "
                                                     "mismatch: expected string, got dyn$"):
        commitstatus.commit_status_from_expr("event.involvedObject.name", event(), alert, provider)
    with pytest.raises(NotifierError, match="output type mismatch: expected string, got int$"):
        commitstatus.commit_status_from_expr("1 + 1", event(), alert, provider)
    with pytest.raises(NotifierError, match=prefix + "failed to compile expression: failed to parse the CEL "
                                                     "expression 'notification.metadata.name': .*undeclared"):
        commitstatus.commit_status_from_expr("notification.metadata.name", event(), alert, provider)
    with pytest.raises(NotifierError, match=prefix + "failed to evaluate the CEL expression 'event.metadata.env "
                                                     r"\+ \"x\"': "):
        commitstatus.commit_status_from_expr('event.metadata.env + "x"', event(), alert, provider)
