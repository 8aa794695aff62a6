"""Commit-status notifiers (github, gitlab, gitea, bitbucket, bitbucketserver, azuredevops): a status on the
commit an event is about, sent as the Go SDKs behind Flux's notification-controller send it.

Flux's rules, common to all: Progressing events are skipped (Gitea posts them as ``pending``); the commit is
the event's ``commit``, ``originRevision`` or ``revision`` metadata (none: "missing revision metadata") reduced
to its hash (``main@sha1:<sha>``, ``main/<sha>``, ``<sha>``: 40 characters, else refused); the state comes
from the severity (info/error, per service); the description is the event's *reason* in lower-case words
(``ReconciliationSucceeded`` → "reconciliation succeeded"), not its message; the context/name/key is the
commit status id (:func:`default_commit_status` or the Provider's ``commitStatusExpr``). Each notifier reads
the service's current statuses first and posts nothing when the same one is already there; the body of a
created status is not read (Flux's SDKs would refuse one that is not JSON).

Plain HTTP (:func:`controllers.notification.notifiers.http.request`). The API lives on the address's host
(``http://`` works, for self-hosted instances and tests), except github.com (``https://api.github.com``) and
Bitbucket Cloud (``$BITBUCKET_API_BASE_URL``, default ``https://api.bitbucket.org/2.0``, as go-bitbucket).
As in Flux, the Secret's ``headers`` are not sent, and only Gitea uses the Provider's proxy.
"""
from __future__ import annotations

import abc
import base64
import dataclasses
import hashlib
import http as _http
import json
import os
import posixpath
import re
import threading
import urllib.parse
import uuid
from typing import Any, Mapping

from controllers.notification.event import Event, go_json
from controllers.notification.notifiers import NotifierError, NotifierOptions, name_and_description, split_camelcase
from controllers.notification.notifiers import http

GITHUB_API = "https://api.github.com/"
BITBUCKET_API = "https://api.bitbucket.org/2.0"
AZURE_DEVOPS_GENRE = "fluxcd"
#: the Azure DevOps resource location of commit statuses, and the API version the Go client asks for
AZURE_STATUSES_LOCATION, AZURE_API_VERSION = "428dd4fb-fda5-4722-af02-9313b80305da", "6.0"
_PROGRESSING = "Progressing"
_COMMIT_STATUS_EMPTY = "commit status cannot be empty"


# ---------------------------------------------------------------------------------------------- status ids

def default_commit_status(provider_uid: str, event: Event) -> str:
    """Flux's default commit status id: ``kind/name/<UID up to its first '-'>``, lower case."""
    return f"{event.kind}/{event.name}/{provider_uid.split('-')[0]}".lower()


def commit_status_from_expr(expr: str, event: Event, alert: Mapping[str, Any], provider: Mapping[str, Any]) -> str:
    """Evaluate a Provider's ``commitStatusExpr`` over ``event`` (the event's JSON), ``alert`` and ``provider``
    (the objects). As Flux, the expression must be typed string (``event.x`` alone is dyn: refused) and give a
    string; errors carry Flux's messages (the caller adds "failed to create commit status: ")."""
    from controllers.lib.health import CELEvaluationError, CelExpression, InvalidCELExpression

    prefix = "failed to evaluate the spec.commitStatusExpr CEL expression for the event: "
    try:
        compiled = CelExpression(expr, variables=("event", "alert", "provider"), returns=("string",))
        result = compiled.evaluate({"event": event.to_json(), "alert": dict(alert), "provider": dict(provider)})
    except InvalidCELExpression as exc:
        raise NotifierError(f"{prefix}failed to compile expression: {exc.message}") from None
    except CELEvaluationError as exc:
        raise NotifierError(f"{prefix}{exc}") from None
    if not isinstance(result, str):
        raise NotifierError(f"{prefix}failed to evaluate CEL expression as string: '{expr}'")
    return result


# ---------------------------------------------------------------------------------------------- Flux's helpers

def parse_revision(revision: str) -> str:
    """The commit hash of a revision (Flux's ``parseRevision``): after the last ':', else the last '/'
    segment, else all of it; it must be 40 characters long (SHA-1)."""
    sha = revision.rpartition(":")[2] if ":" in revision else revision.rpartition("/")[2]
    if len(sha.encode()) != 40:
        raise NotifierError(f"failed to extract commit hash from '{revision}' revision")
    return sha


_TRANSPORTS = {"ssh", "git", "git+ssh", "http", "https", "ftp", "ftps", "rsync", "file"}
_SCP = re.compile(r"^([a-zA-Z0-9._~-]+@)?([a-zA-Z0-9._-]+):([a-zA-Z0-9./_-]+)(?:\?||$)(.*)$", re.S)
_HOST_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:\[\]<>\"%]*$")


def _go_url(text: str) -> tuple[str, str, str, str]:
    """``(scheme, host[:port], decoded path, raw query)`` as Go's ``url.Parse`` reads an absolute URL;
    ValueError where Go refuses it."""
    if any(ord(c) < 0x20 or c == "\x7f" for c in text):
        raise ValueError("net/url: invalid control character in URL")
    parts = urllib.parse.urlsplit(text)
    host = parts.netloc.rpartition("@")[2]
    port = host.rpartition("]")[2].rpartition(":")
    if (port[1] and not port[2].isdigit() and port[2]) or not _HOST_CHARS.match(host):
        raise ValueError(f"invalid host {host!r}")
    if re.search(r"%(?![0-9A-Fa-f]{2})", parts.path):
        raise ValueError(f"invalid URL escape in {parts.path!r}")
    return parts.scheme.lower(), host, urllib.parse.unquote(parts.path), parts.query


def parse_git_address(address: str) -> tuple[str, str]:
    """Flux's ``parseGitAddress``: ``(scheme://host, path without leading '/' and '.git')`` of a Git URL (a
    URL with a Git transport, else scp-like ``user@host:path``, else a local path); ssh becomes https."""
    try:
        scheme, host, path, _ = _go_url(address)
        if scheme not in _TRANSPORTS:
            raise ValueError(scheme)
    except ValueError:
        scp = _SCP.match(address) if len(address) <= 2048 else None
        scheme, host, path = ("ssh", scp.group(2), scp.group(3)) if scp else ("file", "", address)
    path = path.lstrip("/")
    return f"{'https' if scheme == 'ssh' else scheme}://{host}", path[:-4] if path.endswith(".git") else path


def _repository_id(path: str, parts: int = 2, prefix: str = "") -> list[str]:
    components = path.split("/")
    if len(components) != parts:
        raise NotifierError(f"{prefix}invalid repository id {json.dumps(path, ensure_ascii=False)}")
    return components


def _json(value: Any, *, escape_html: bool = True, newline: bool = False) -> bytes:
    """Go's JSON: ``json.Marshal`` (HTML escaped), or ``json.Encoder`` (newline; HTML escaping optional)."""
    data = go_json(value)
    if not escape_html:
        data = (json.dumps(value, separators=(",", ":"), ensure_ascii=False)
                .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").encode())
    return data + b"\n" if newline else data


def _path_escape(segment: str) -> str:
    """Go's ``url.PathEscape``."""
    return urllib.parse.quote(segment, safe=":@&=+$")


def _status_line(status: int) -> str:
    """Go's ``Response.Status`` (``404 Not Found``)."""
    try:
        return f"{status} {_http.HTTPStatus(status).phrase}"
    except ValueError:
        return str(status)


def _status_text(status: int) -> str:
    """Go's ``http.StatusText``."""
    return _status_line(status).partition(" ")[2]


def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _loads(body: bytes) -> Any:
    """A response's JSON (None when empty); a body that is not JSON fails, as the SDKs' decoders."""
    if not body.strip():
        return None
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise NotifierError(f"invalid JSON in the response: {exc}") from None


def _without_proxy(options: NotifierOptions, tls: bool = True) -> NotifierOptions:
    """The SDK clients Flux uses ignore the Provider's proxy (and github.com its certificates)."""
    return dataclasses.replace(options, proxy_url="", tls=options.tls if tls else None)


class _Notifier(abc.ABC):
    """The shared flow: skip Progressing (or ``pending``), find the commit and the state, then :meth:`send`."""

    service = ""
    states = ("success", "failure")
    pending: str | None = None
    options: NotifierOptions

    def post(self, event: Event) -> None:
        progressing = event.reason == _PROGRESSING
        if progressing and self.pending is None:
            return
        revision = event.revision()
        if revision is None:
            raise NotifierError("missing revision metadata")
        sha = self.revision(revision)
        if progressing:
            state = self.pending
        else:
            state = {"info": self.states[0], "error": self.states[1]}.get(event.severity) or self.bad_state()
        self.send(event, sha, state)

    def revision(self, revision: str) -> str:
        return parse_revision(revision)

    def bad_state(self) -> str:
        raise NotifierError(f"can't convert to {self.service} state")

    def call(self, method: str, url: str, headers: Mapping[str, str], body: bytes | None = None,
             failure: str = "") -> http.Response:
        """One request with Flux's retries; the final response whatever its status (``failure`` prefixes a
        transport error)."""
        try:
            return http.request(method, url, body, options=self.options, headers=headers, validate=None)
        except NotifierError as exc:
            raise NotifierError(f"{failure}{exc}") from None

    @abc.abstractmethod
    def send(self, event: Event, sha: str, state: str) -> None:
        """Set the status ``state`` on commit ``sha`` (each service's API)."""


# ---------------------------------------------------------------------------------------------- GitHub

class _GitHub(_Notifier):
    service = "github"

    def __init__(self, options: NotifierOptions):
        if not options.commit_status:
            raise NotifierError(_COMMIT_STATUS_EMPTY)
        token = options.token or options.password
        if not token:
            if "githubAppID" in options.secret_data:
                raise NotifierError("GitHub App authentication of the github provider is not supported by fluxpy: "
                                    "set a token in the Provider's secret")
            raise NotifierError("github token or github app details must be specified")
        host, path = parse_git_address(options.url)
        self.owner, self.repo = _repository_id(path)
        hostname = host.partition("://")[2]
        if hostname == "github.com":
            self.api, self.options = GITHUB_API, _without_proxy(options, tls=False)
        else:
            # go-github's WithEnterpriseURLs
            api_host = hostname.startswith("api.") or ".api." in hostname
            self.api, self.options = host + ("/" if api_host else "/api/v3/"), _without_proxy(options)
        self.headers = {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github.v3+json",
                        "User-Agent": "go-github/v64.0.0", "X-GitHub-Api-Version": "2022-11-28"}

    def send(self, event, sha, state):
        _, desc = name_and_description(event)
        context = self.options.commit_status
        repo = f"{self.api}repos/{_path_escape(self.owner)}/{_path_escape(self.repo)}"
        url = f"{repo}/commits/{sha}/statuses?per_page=50"
        listed = self._check("GET", url, self.call("GET", url, self.headers, failure="could not list commit "
                                                                                     "statuses: "),
                             "could not list commit statuses")
        for status in listed if isinstance(listed, list) else []:
            if not isinstance(status, dict) or None in (status.get("context"), status.get("state"),
                                                        status.get("description")):
                continue
            if status["context"] == context:
                if (status["state"], status["description"]) == (state, desc):
                    return
                break
        url = f"{repo}/statuses/{sha}"
        body = _json({"state": state, "description": desc, "context": context}, escape_html=False, newline=True)
        response = self.call("POST", url, {**self.headers, "Content-Type": "application/json"}, body,
                             failure="could not create commit status: ")
        self._check("POST", url, response, "could not create commit status", parse=False)

    @staticmethod
    def _check(method: str, url: str, response: http.Response, failure: str, parse: bool = True) -> Any:
        """go-github's ``CheckResponse``: the decoded body of a 2xx, else ``METHOD url: code message [errors]``."""
        if response.status == 202:
            raise NotifierError(f"{failure}: job scheduled on GitHub side; try again later")
        if not 200 <= response.status < 300:
            message, errors = "", []
            try:
                data = json.loads(response.body)
                message, errors = str(data.get("message") or ""), list(data.get("errors") or [])
            except (ValueError, UnicodeDecodeError, AttributeError, TypeError):
                pass
            fields = ("resource", "field", "code", "message")
            shown = " ".join("{" + " ".join(f"{f.capitalize()}:{e.get(f, '') if isinstance(e, dict) else ''}"
                                            for f in fields) + "}" for e in errors)
            raise NotifierError(f"{failure}: {method} {url}: {response.status} {message} [{shown}]")
        try:
            return _loads(response.body) if parse else None
        except NotifierError as exc:
            raise NotifierError(f"{failure}: {exc}") from None


# ---------------------------------------------------------------------------------------------- GitLab

class _GitLab(_Notifier):
    service = "gitlab"
    states = ("success", "failed")

    def __init__(self, options: NotifierOptions):
        token = options.token or options.password
        if not token:
            raise NotifierError("gitlab token cannot be empty")
        host, self.project = parse_git_address(options.url)
        if not options.commit_status:
            raise NotifierError(_COMMIT_STATUS_EMPTY)
        self.options = _without_proxy(options)
        self.api = f"{host}/api/v4/"
        self.headers = {"PRIVATE-TOKEN": token, "Accept": "application/json", "User-Agent": "go-gitlab"}

    def send(self, event, sha, state):
        _, desc = name_and_description(event)
        name = self.options.commit_status
        project = _path_escape(self.project).replace(".", "%2E")
        path = f"projects/{project}/repository/commits/{_path_escape(sha)}/statuses"
        response = self.call("GET", f"{self.api}{path}?{urllib.parse.urlencode({'name': name})}", self.headers,
                             failure="unable to list commit status: ")
        self._check("GET", path, response, "unable to list commit status: ")
        listed = _loads(response.body)
        for status in listed if isinstance(listed, list) else []:
            if isinstance(status, dict) and status.get("sha") == sha and (
                    status.get("status"), status.get("description"), status.get("name")) == (state, desc, name):
                return
        path = f"projects/{project}/statuses/{_path_escape(sha)}"
        response = self.call("POST", self.api + path, {**self.headers, "Content-Type": "application/json"},
                             _json({"state": state, "name": name, "description": desc}))
        self._check("POST", path, response, "")

    def _check(self, method: str, path: str, response: http.Response, failure: str) -> None:
        """client-go's ``CheckResponse``: ``404 Not Found``, else ``METHOD url: code message``."""
        if response.status in (200, 201, 202, 204, 304):
            return
        if response.status == 404:
            raise NotifierError(f"{failure}404 Not Found")
        message = ""
        if response.body.strip():
            try:
                message = _gitlab_error(json.loads(response.body))
            except (ValueError, UnicodeDecodeError):
                message = f"failed to parse unknown error format: {response.body.decode('utf-8', 'replace')}"
        url = urllib.parse.unquote(self.api + path)
        raise NotifierError(f"{failure}{method} {url}: {response.status}" + (f" {message}" if message else ""))


def _gitlab_error(raw: Any) -> str:
    """client-go's ``parseError`` of a JSON error body."""
    if isinstance(raw, str):
        return raw
    if isinstance(raw, list):
        return "[" + ", ".join(_gitlab_error(v) for v in raw) + "]"
    if isinstance(raw, dict):
        return ", ".join(sorted(f"{{{k}: {_gitlab_error(v)}}}" for k, v in raw.items()))
    kind = {bool: "bool", float: "float64", int: "float64", type(None): "<nil>"}.get(type(raw), "interface {}")
    return f"failed to parse unexpected error type: {kind}"


# ---------------------------------------------------------------------------------------------- Gitea

class _Gitea(_Notifier):
    service = "gitea"
    pending = "pending"

    def __init__(self, options: NotifierOptions):
        token = options.token or options.password
        if not token:
            raise NotifierError("gitea token cannot be empty")
        if not options.commit_status:
            raise NotifierError(_COMMIT_STATUS_EMPTY)
        self.host, path = parse_git_address(options.url)
        self.owner, self.repo = _repository_id(path)
        if options.proxy_url:
            try:
                _go_url(options.proxy_url)
            except ValueError:
                raise NotifierError("invalid proxy URL") from None
        self.options = options
        self.headers = {"Authorization": f"token {token}", "Content-Type": "application/json"}
        # gitea.NewClient asks the server's version (at least 1.11) before anything else
        try:
            version = str((self._request("GET", f"{self.host}/api/v1/version") or {}).get("version") or "")
        except (NotifierError, AttributeError) as exc:
            raise NotifierError(f"failed creating Gitea client: {exc}") from None
        match = re.match(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?", version)
        if not match:
            raise NotifierError(f"failed creating Gitea client: "
                                + (f"unknown version: {version}" if version.strip() else "Malformed version: "))
        if tuple(int(g or 0) for g in match.groups()) < (1, 11, 0):
            raise NotifierError(f"failed creating Gitea client: gitea server at {self.host} is older than 1.11.0")

    def _request(self, method: str, url: str, body: bytes | None = None, parse: bool = True) -> Any:
        """One SDK call: the decoded body of a 2xx, else the SDK's ``statusCodeToErr`` message."""
        response = self.call(method, url, self.headers, body)
        if response.status // 100 != 2:
            text = response.body.decode("utf-8", "replace")
            try:
                data = json.loads(response.body)
            except (ValueError, UnicodeDecodeError):
                raise NotifierError(f"unknown API error: {response.status}\nRequest: "
                                    f"'{urllib.parse.urlsplit(url).path}' with '{method}' method and '{text}' body"
                                    ) from None
            if isinstance(data, dict) and "message" in data:
                raise NotifierError(str(data["message"]))
            raise NotifierError(f"{_status_line(response.status)}: {text}")
        return _loads(response.body) if parse else None

    def send(self, event, sha, state):
        _, desc = name_and_description(event)
        context = self.options.commit_status
        repo = f"{self.host}/api/v1/repos/{_path_escape(self.owner)}/{_path_escape(self.repo)}"
        try:
            listed = self._request("GET", f"{repo}/commits/{_path_escape(sha)}/statuses?limit=50&page=1")
        except NotifierError as exc:
            raise NotifierError(f"could not list commit statuses: {exc}") from None
        for status in listed if isinstance(listed, list) else []:
            if not isinstance(status, dict) or not (status.get("context") and status.get("status")
                                                    and status.get("description")):
                continue
            if status["context"] == context:
                if (status["status"], status["description"]) == (state, desc):
                    return
                break
        body = _json({"state": state, "target_url": "", "description": desc, "context": context})
        self._request("POST", f"{repo}/statuses/{urllib.parse.quote_plus(sha)}", body, parse=False)


# ---------------------------------------------------------------------------------------------- Bitbucket Cloud

class _Bitbucket(_Notifier):
    service = "bitbucket"
    states = ("SUCCESSFUL", "FAILED")

    def __init__(self, options: NotifierOptions):
        if not options.token:
            raise NotifierError("bitbucket token cannot be empty")
        if not options.commit_status:
            raise NotifierError(_COMMIT_STATUS_EMPTY)
        _, path = parse_git_address(options.url)
        credentials = options.token.split(":")
        if len(credentials) != 2:
            raise NotifierError("invalid token format, expected to be <user>:<password>")
        self.owner, self.repo = _repository_id(path)
        self.options = _without_proxy(options)
        base = urllib.parse.urlsplit(os.environ.get("BITBUCKET_API_BASE_URL") or BITBUCKET_API)
        self.api = f"{base.scheme}://{base.netloc}{base.path}"
        self.headers = {"Authorization": _basic(*credentials)} if all(credentials) else {}

    def send(self, event, sha, state):
        name, desc = name_and_description(event)
        key = hashlib.sha1(self.options.commit_status.encode()).hexdigest()
        url = f"{self.api}/repositories/{self.owner}/{self.repo}/commit/{sha}/statuses/build"
        response = self.call("GET", f"{url}/{key}", self.headers, failure="could not get commit status: ")
        existing: Any = None
        if response.status in (200, 201, 202):
            try:
                existing = _loads(response.body)
            except NotifierError as exc:
                raise NotifierError(f"could not get commit status: {exc}") from None
        elif response.status != 204 and response.status != 404:
            raise NotifierError(f"could not get commit status: {_status_line(response.status)}")
        existing = existing if isinstance(existing, dict) else {}
        if (existing.get("state", ""), existing.get("description", "")) == (state, desc):
            return
        body = _json({"key": key, "url": "https://bitbucket.org", "state": state, "name": name,
                      "description": desc})
        response = self.call("POST", url, {**self.headers, "Content-Type": "application/json"}, body)
        if response.status not in (200, 201, 202, 204):
            raise NotifierError(_status_line(response.status))


# ---------------------------------------------------------------------------------------------- Bitbucket Server

class _BitbucketServer(_Notifier):
    service = "bitbucket server"
    states = ("SUCCESSFUL", "FAILED")

    def __init__(self, options: NotifierOptions):
        failure = "could not parse git address: "
        try:
            scheme, host, path, self.query = _go_url(options.url)
        except ValueError as exc:
            raise NotifierError(f"{failure}{exc}") from None
        if scheme not in ("http", "https"):
            raise NotifierError(f"{failure}unsupported scheme type in address: {scheme}. Must be http or https")
        path = path[:-4] if path.endswith(".git") else path
        context, marker, repo_id = path.rpartition("/scm/")
        if not marker:
            raise NotifierError(f"{failure}supplied provider address is not http(s) git clone url")
        project, slug = _repository_id(repo_id, prefix=failure)
        if not options.commit_status:
            raise NotifierError(_COMMIT_STATUS_EMPTY)
        if not options.token and not (options.username and options.password):
            raise NotifierError("invalid credentials, expected to be one of username/password or API Token")
        self.options = _without_proxy(options)
        self.commits = f"{scheme}://{host}", f"{context}/rest/api/latest/projects/{project}/repos/{slug}/commits"
        auth = f"Bearer {options.token}" if options.token else _basic(options.username, options.password)
        self.headers = {"Authorization": auth, "x-atlassian-token": "no-check", "x-requested-with": "XMLHttpRequest"}

    def revision(self, revision):
        try:
            return parse_revision(revision)
        except NotifierError as exc:
            raise NotifierError(f"could not parse revision: {exc}") from None

    def bad_state(self):
        raise NotifierError("couldn't convert to bitbucket server state: bitbucket server state generated on "
                            "info or error events only")

    def send(self, event, sha, state):
        name, desc = name_and_description(event)
        name = f"{name} [{desc}]"
        key = hashlib.sha1(self.options.commit_status.encode()).hexdigest()
        origin, commits = self.commits
        url = origin + urllib.parse.quote(posixpath.normpath(f"{commits}/{sha}/builds"), safe="/:@&=+$,;~")
        failure = "could not get existing commit status: failed api call to check duplicate commit status: "
        response = self._call("GET", f"{url}?{urllib.parse.urlencode({'key': key})}", None, failure)
        if response.status > 399 and response.status != 404:
            raise NotifierError(f"{failure}{response.status} - {_status_text(response.status)}")
        if response.status == 200:
            try:
                existing = json.loads(response.body)
            except (ValueError, UnicodeDecodeError) as exc:
                raise NotifierError(f"could not get existing commit status: could not unmarshal json response "
                                    f"body for duplicate commit status: {exc}") from None
            if isinstance(existing, dict) and (existing.get("key"), existing.get("state"),
                                               existing.get("description"), existing.get("name")) == (
                    key, state, desc, name):
                return
        body = {"description": desc, "key": key, "name": name, "state": state, "url": self.options.url}
        body = {k: v for k, v in body.items() if v or k not in ("description", "name")}
        failure = "could not post build status: could not post build commit status: "
        response = self._call("POST", url + (f"?{self.query}" if self.query else ""),
                              _json(body, newline=True), failure)
        if response.status > 399:
            raise NotifierError(f"{failure}{response.status} - {_status_text(response.status)}")

    def _call(self, method: str, url: str, body: bytes | None, failure: str) -> http.Response:
        headers = {**self.headers, **({"Content-Type": "application/json"} if body is not None else {})}
        response = self.call(method, url, headers, body, failure)
        if response.status == 429 or (response.status >= 500 and response.status != 501):
            # retryablehttp gave up (every attempt failed)
            raise NotifierError(f"{failure}{method} {url} giving up after {http.RETRY_MAX + 1} attempt(s)")
        return response


# ---------------------------------------------------------------------------------------------- Azure DevOps

_azure_lock = threading.Lock()
_azure_locations: dict[str, dict[str, dict]] = {}
#: the client's session id (a process-wide UUID the server may replace), as azure-devops-go-api
_azure_session = [str(uuid.uuid4())]


class _AzureDevOps(_Notifier):
    service = "azure devops"
    states = ("succeeded", "error")

    def __init__(self, options: NotifierOptions):
        if not options.token:
            raise NotifierError("failed to acquire azure devops token: managed identity (workload identity) is not "
                                "supported by fluxpy: set a personal access token in the Provider's secret")
        host, path = parse_git_address(options.url)
        if not options.commit_status:
            raise NotifierError(_COMMIT_STATUS_EMPTY)
        org, self.project, _, self.repo = _repository_id(path, 4)
        self.options = _without_proxy(options)
        self.org_url = f"{host}/{org}".rstrip("/").lower()
        self.auth = _basic("", options.token)

    def send(self, event, sha, state):
        summary = event.metadata.get("summary")
        genre = AZURE_DEVOPS_GENRE if summary is None else f"{AZURE_DEVOPS_GENRE}:{summary}"
        _, desc = name_and_description(event)
        name = self.options.commit_status
        routes = {"project": self.project, "repositoryId": self.repo, "commitId": sha}
        failure = "could not list commit statuses: "
        listed = self._send("GET", routes, None, failure)
        for status in (listed or {}).get("value") or [] if isinstance(listed, dict) else []:
            context = status.get("context") if isinstance(status, dict) else None
            if not isinstance(context, dict) or None in (context.get("name"), context.get("genre"),
                                                         status.get("state"), status.get("description")):
                continue
            if (context["name"], context["genre"]) == (name, genre):
                if (status["state"], status["description"]) == (state, desc):
                    return
                break
        body = _json({"context": {"genre": genre, "name": name}, "description": desc, "state": state})
        self._send("POST", routes, body, "could not create commit status: ")

    def _request(self, method: str, url: str, accept: str, body: bytes | None, failure: str,
                 parse: bool = True) -> Any:
        headers = {"Authorization": self.auth, "Accept": accept, "X-TFS-FedAuthRedirect": "Suppress",
                   "X-TFS-Session": _azure_session[0]}
        if body is not None:
            headers["Content-Type"] = "application/json;charset=utf-8"
        response = self.call(method, url, headers, body, failure)
        session = {k.lower(): v for k, v in response.headers.items()}.get("x-tfs-session")
        if session:
            _azure_session[0] = session
        if not 200 <= response.status < 300:
            raise NotifierError(failure + _azure_error(response))
        try:
            return _loads(response.body.removeprefix(b"\xef\xbb\xbf")) if parse else None
        except NotifierError as exc:
            raise NotifierError(f"{failure}{exc}") from None

    def _send(self, method: str, routes: dict[str, str], body: bytes | None, failure: str) -> Any:
        """The Go client's ``Send``: the route template and API version of the commit statuses' resource
        location (asked once per organization with ``OPTIONS <org>/_apis``), then the request."""
        with _azure_lock:
            locations = _azure_locations.get(self.org_url)
        if locations is None:
            listed = self._request("OPTIONS", f"{self.org_url}/_apis", "application/json", None, failure)
            values = listed.get("value") if isinstance(listed, dict) else None
            locations = {str(v.get("id")): v for v in values or [] if isinstance(v, dict)}
            with _azure_lock:
                _azure_locations[self.org_url] = locations
        location = locations.get(AZURE_STATUSES_LOCATION)
        if location is None:
            raise NotifierError(f"{failure}API resource location {AZURE_STATUSES_LOCATION} is not registered on "
                                f"{self.org_url}.")
        values = {**routes, "area": str(location.get("area") or ""), "resource": str(location.get("resourceName")
                                                                                    or "")}
        generated = ""
        for segment in str(location.get("routeTemplate") or "").replace("{*", "{").split("/"):
            if len(segment) > 2 and segment[0] == "{" and segment[-1] == "}":
                if segment[1:-1] in values:
                    generated += "/" + _path_escape(values[segment[1:-1]])
            else:
                generated += "/" + segment
        for key, value in values.items():
            generated = generated.replace("{" + key + "}", value)
        url = self.org_url.rstrip("/") + "/" + generated.lstrip("/")
        version = _azure_version(location, AZURE_API_VERSION)
        return self._request(method, url, f"application/json;api-version={version}", body, failure,
                             parse=method == "GET")


def _azure_version(location: Mapping[str, Any], requested: str) -> str:
    """The Go client's version negotiation for a released ``requested`` version (``6.0``)."""
    def parse(text: Any) -> tuple[int, int]:
        major, _, minor = str(text or "").partition(".")
        try:
            return int(major), int(minor.partition(".")[0])
        except ValueError:
            raise NotifierError(f"The version string was invalid: {text}") from None

    wanted = parse(requested)
    if parse(location.get("minVersion")) > wanted:
        return requested
    maximum = str(location.get("maxVersion") or "")
    if parse(maximum) < wanted:
        return maximum + ("-preview" if str(location.get("releasedVersion") or "") < maximum else "")
    released = parse(location.get("releasedVersion"))
    return requested + ("-preview" if released == (0, 0) or released < wanted else "")


def _azure_error(response: http.Response) -> str:
    """The Go client's ``UnwrapError`` message."""
    if not response.body:
        return f"Request returned status: {_status_line(response.status)}"
    body = response.body.removeprefix(b"\xef\xbb\xbf")
    content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", "")
    if "text/plain" in content_type:
        return body.decode("utf-8", "replace")
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        return str(exc)
    if isinstance(data, dict):
        if isinstance(data.get("message"), str):
            return data["message"]
        value = data.get("value")
        if isinstance(value, dict) and isinstance(value.get("message"), str):
            return value["message"]
    return f"REST call returned status code {response.status}"


github, gitlab, gitea, bitbucket = _GitHub, _GitLab, _Gitea, _Bitbucket
bitbucketserver, azuredevops = _BitbucketServer, _AzureDevOps
