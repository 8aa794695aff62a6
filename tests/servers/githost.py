"""A small local GitHub / GitLab: their REST wire format for what bootstrap uses, over real Git repositories.

:class:`GitHost` (``flavor="github"`` or ``"gitlab"``) is a threaded HTTP(S) server on 127.0.0.1 that answers
the documented endpoints PyGithub and python-gitlab call for bootstrap, and serves the same bare repositories
over Git's smart HTTP (``git http-backend``) and, with ``ssh=True``, over SSH (Debian's sshd, see
:class:`servers.git.GitSSHServer`):

- GitHub (REST v3 under ``/api/v3``, as GitHub Enterprise Server): ``GET /user``, ``GET /orgs/{org}``,
  ``GET/POST /repos/{o}/{r}``, ``POST /user/repos``, ``POST /orgs/{org}/repos``, ``GET/PUT
  /orgs/{org}/teams/{slug}[/repos/{o}/{r}]``, ``GET/POST/DELETE /repos/{o}/{r}/keys[/{id}]``, ``GET/POST
  /repos/{o}/{r}/pulls``, ``GET /repos/{o}/{r}/pulls/{n}``, ``PUT /repos/{o}/{r}/pulls/{n}/merge``.
- GitLab (REST v4 under ``/api/v4``): ``GET /user``, ``GET /groups/{id|path}``, ``GET/POST /projects``,
  ``GET /projects/{id|path}``, ``POST /projects/{id}/share``, ``GET/POST/DELETE
  /projects/{id}/deploy_keys[/{id}]``, ``.../deploy_tokens[/{id}]``, ``GET/POST .../merge_requests``,
  ``GET .../merge_requests/{iid}``, ``PUT .../merge_requests/{iid}/merge``, ``POST .../statuses/{sha}``,
  ``GET .../repository/commits/{sha}/statuses``.

Access is modelled the way the real services behave: tokens belong to users; a private repository is
invisible (404) to users without access; deploy keys and tokens are scoped to one repository and read-only
unless made writable; a protected branch refuses pushes (a pre-receive hook, with the provider's message)
but not merges of pull/merge requests. ``requests`` records ``(method, path)`` of every API call.

Fixtures: ``github_host`` and ``gitlab_host`` (TLS with a generated CA in ``.ca_file``; user ``alice``
with token ``.token``), and ``github_ssh_host`` / ``gitlab_ssh_host`` with SSH as well::

    from servers.githost import github_host, gitlab_host  # noqa: F401
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import http.server
import json
import os
import re
import secrets
import subprocess
import tempfile
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from servers.git import GIT_TIMEOUT, GitSSHServer, git
from servers.net import serve_http, stop_http
from servers.tls import serving_certificate

_HOOK = """#!/bin/sh
# refuses updates of protected branches (merges through the API set GITHOST_BYPASS)
[ -n "$GITHOST_BYPASS" ] && exit 0
protected="$(cat "$GIT_DIR/githost-protected" 2>/dev/null)"
status=0
while read old new ref; do
  for branch in $protected; do
    if [ "$ref" = "refs/heads/$branch" ]; then
      echo "{message}" | sed "s#@REF@#$ref#" >&2
      status=1
    fi
  done
done
exit $status
"""
_PROTECTED_MESSAGES = {
    "github": "error: GH006: Protected branch update failed for @REF@.",
    "gitlab": "GitLab: You are not allowed to push code to protected branches on this project.",
}
_SHELL = """#!/bin/sh
# forced command of a deploy key: one repository, read-only unless "rw"
allowed="$1"; mode="$2"; cmd="$SSH_ORIGINAL_COMMAND"
case "$cmd" in
  "git-upload-pack "*|"git-upload-archive "*) ;;
  "git-receive-pack "*)
    if [ "$mode" != rw ]; then
      echo "ERROR: The key you are authenticating with has been marked as read only." >&2; exit 1
    fi ;;
  *) echo "ERROR: unsupported command" >&2; exit 1 ;;
esac
path="$(printf '%s' "${cmd#* }" | sed "s/^'//; s/'\\$//")"
if [ "$path" != "$allowed" ]; then echo "ERROR: Repository not found." >&2; exit 1; fi
exec git-shell -c "$cmd"
"""


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class User:
    id: int
    login: str
    token: str


@dataclasses.dataclass
class Team:
    id: int
    slug: str
    members: set[str] = dataclasses.field(default_factory=set)


@dataclasses.dataclass
class Org:
    """A GitHub organization or a GitLab group."""

    id: int
    name: str
    members: set[str] = dataclasses.field(default_factory=set)
    teams: dict[str, Team] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class DeployKey:
    id: int
    title: str
    key: str
    read_only: bool
    created_at: str = dataclasses.field(default_factory=_now)


@dataclasses.dataclass
class DeployToken:
    id: int
    name: str
    username: str
    token: str
    scopes: list[str]


@dataclasses.dataclass
class Change:
    """A pull request / merge request."""

    number: int
    id: int
    head: str
    base: str
    title: str
    body: str
    author: str
    state: str = "open"  # open, closed, merged
    merge_commit: str = ""
    created_at: str = dataclasses.field(default_factory=_now)


@dataclasses.dataclass
class HostedRepo:
    id: int
    owner: str
    name: str
    private: bool
    visibility: str
    bare: Path
    owner_is_org: bool
    description: str = ""
    keys: list[DeployKey] = dataclasses.field(default_factory=list)
    tokens: list[DeployToken] = dataclasses.field(default_factory=list)
    changes: list[Change] = dataclasses.field(default_factory=list)
    teams: dict[str, str] = dataclasses.field(default_factory=dict)
    collaborators: set[str] = dataclasses.field(default_factory=set)
    statuses: list[dict] = dataclasses.field(default_factory=list)
    """Commit statuses, latest first (GitHub's ``context`` / GitLab's ``name`` and the service's fields)."""

    @property
    def full_name(self) -> str:
        return f"{self.owner}/{self.name}"


class HTTPError(Exception):
    def __init__(self, status: int, body: Any, headers: dict[str, str] | None = None):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}


class GitHost:
    """A GitHub- or GitLab-like server with real repositories; see the module notes."""

    def __init__(self, workdir: Path, flavor: str = "github", *, tls: bool = True, ssh: bool = False):
        if flavor not in ("github", "gitlab"):
            raise ValueError(f"unknown flavor {flavor!r}")
        self.workdir = Path(workdir)
        self.flavor, self.tls = flavor, tls
        self.ssh: GitSSHServer | None = GitSSHServer(self.workdir / "ssh") if ssh else None
        if self.ssh is not None:
            (self.workdir / "ssh").mkdir(parents=True, exist_ok=True)
        self.root = self.ssh.root if self.ssh else self.workdir / "repos"
        self.root.mkdir(parents=True, exist_ok=True)
        self.users: dict[str, User] = {}
        self.orgs: dict[str, Org] = {}
        self.repos: dict[str, HostedRepo] = {}
        self.requests: list[tuple[str, str]] = []
        self.ca_pem = b""
        self.port = 0
        self._ids = 1000
        self._lock = threading.RLock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._ssh_base_keys = ""

    # ------------------------------------------------------------------ set-up helpers (not API)

    def _id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def add_user(self, login: str, token: str | None = None) -> User:
        prefix = "ghp" if self.flavor == "github" else "glpat"
        user = User(self._id(), login, token or f"{prefix}_{secrets.token_hex(16)}")
        self.users[login] = user
        return user

    def add_org(self, name: str, members: tuple[str, ...] = (), teams: dict[str, tuple[str, ...]] | None = None) -> Org:
        org = Org(self._id(), name, set(members))
        for slug, team_members in (teams or {}).items():
            org.teams[slug] = Team(self._id(), slug, set(team_members))
        self.orgs[name] = org
        return org

    def add_repo(self, owner: str, name: str, *, private: bool = True, files: dict[str, str] | None = None,
                 branch: str = "main") -> HostedRepo:
        """A repository (empty, or with a first commit of ``files`` on ``branch``)."""
        with self._lock:
            if f"{owner}/{name}".lower() in {k.lower() for k in self.repos}:
                raise HTTPError(422, {"message": "Repository creation failed."})
            bare = self.root / owner / f"{name}.git"
            bare.parent.mkdir(parents=True, exist_ok=True)
            git("init", "-q", "--bare", "-b", branch, str(bare))
            hook = bare / "hooks" / "pre-receive"
            hook.write_text(_HOOK.replace("{message}", _PROTECTED_MESSAGES[self.flavor]))
            hook.chmod(0o755)
            repo = HostedRepo(self._id(), owner, name, private, "private" if private else "public", bare,
                              owner in self.orgs)
            self.repos[repo.full_name] = repo
        if files:
            self.commit(repo, files, branch=branch)
        return repo

    def repo(self, full_name: str) -> HostedRepo:
        return self.repos[full_name]

    def commit(self, repo: HostedRepo | str, files: dict[str, str | None], message: str = "update", *,
               branch: str = "main") -> str:
        """Commit ``files`` (None deletes) on ``branch`` directly in the bare repository (bypassing branch
        protection, like an administrator); return the new head."""
        repo = self.repos[repo] if isinstance(repo, str) else repo
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp) / "w"
            git("clone", "-q", str(repo.bare), str(work))
            heads = git("ls-remote", "--heads", str(repo.bare), branch, cwd=tmp).strip()
            git("checkout", "-q", "-B", branch, *(["origin/" + branch] if heads else []), cwd=work)
            for rel, content in files.items():
                path = work / rel
                if content is None:
                    if path.exists():
                        git("rm", "-q", "-r", rel, cwd=work)
                    continue
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(content)
            git("add", "-A", cwd=work)
            git("commit", "-q", "--allow-empty", "-m", message, cwd=work)
            git("push", "-q", "origin", f"HEAD:refs/heads/{branch}", cwd=work, env={"GITHOST_BYPASS": "1"})
        return self.head(repo, branch)

    def head(self, repo: HostedRepo | str, branch: str = "main") -> str:
        repo = self.repos[repo] if isinstance(repo, str) else repo
        out = git("ls-remote", "--heads", str(repo.bare), branch, cwd=self.workdir).split()
        return out[0] if out else ""

    def read(self, repo: HostedRepo | str, path: str, branch: str = "main") -> str | None:
        repo = self.repos[repo] if isinstance(repo, str) else repo
        try:
            return git("show", f"refs/heads/{branch}:{path}", cwd=repo.bare)
        except RuntimeError:
            return None

    def log(self, repo: HostedRepo | str, branch: str = "main") -> list[str]:
        """Commit subjects on ``branch``, newest first."""
        repo = self.repos[repo] if isinstance(repo, str) else repo
        try:
            return git("log", "--format=%s", f"refs/heads/{branch}", cwd=repo.bare).splitlines()
        except RuntimeError:
            return []

    def protect(self, repo: HostedRepo | str, branch: str = "main") -> None:
        """Protect ``branch``: pushes to it are refused, merges of pull/merge requests still land."""
        repo = self.repos[repo] if isinstance(repo, str) else repo
        path = repo.bare / "githost-protected"
        existing = path.read_text().split() if path.exists() else []
        path.write_text(" ".join(sorted({*existing, branch})) + "\n")

    def merge(self, repo: HostedRepo | str, number: int, merger: str = "") -> str:
        """Merge pull/merge request ``number`` (a merge commit on its base); return the merge commit."""
        repo = self.repos[repo] if isinstance(repo, str) else repo
        with self._lock:
            change = next(c for c in repo.changes if c.number == number)
            if change.state != "open":
                raise HTTPError(405, {"message": "Pull Request is not mergeable"})
            with tempfile.TemporaryDirectory() as tmp:
                work = Path(tmp) / "w"
                git("clone", "-q", "-b", change.base, str(repo.bare), str(work))
                git("fetch", "-q", "origin", f"refs/heads/{change.head}", cwd=work)
                word = "pull request" if self.flavor == "github" else "merge request"
                git("merge", "-q", "--no-ff", "-m", f"Merge {word} #{number} from {repo.owner}/{change.head}",
                    "FETCH_HEAD", cwd=work)
                git("push", "-q", "origin", f"HEAD:refs/heads/{change.base}", cwd=work, env={"GITHOST_BYPASS": "1"})
            change.state, change.merge_commit = "merged", self.head(repo, change.base)
            return change.merge_commit

    # ------------------------------------------------------------------ addresses

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def hostname(self) -> str:
        """What ``--hostname`` takes to reach this server (host:port; http:// URL without TLS)."""
        return f"127.0.0.1:{self.port}" if self.tls else self.base_url

    @property
    def api_url(self) -> str:
        return self.base_url + ("/api/v3" if self.flavor == "github" else "/api/v4")

    @property
    def ca_file(self) -> str:
        return str(self.workdir / "ca.crt") if self.tls else ""

    def http_url(self, repo: HostedRepo) -> str:
        return f"{self.base_url}/{repo.owner}/{repo.name}.git"

    def ssh_url(self, repo: HostedRepo) -> str:
        if self.ssh is None:
            return f"ssh://git@127.0.0.1/{repo.owner}/{repo.name}.git"  # what a host without SSH would advertise
        return f"ssh://{self.ssh.user}@127.0.0.1:{self.ssh.port}{repo.bare}"

    # ------------------------------------------------------------------ access

    def _visible(self, repo: HostedRepo, user: User | None) -> bool:
        return not repo.private or self._can_write(repo, user)

    def _can_write(self, repo: HostedRepo, user: User | None) -> bool:
        if user is None:
            return False
        if repo.owner == user.login or user.login in repo.collaborators:
            return True
        org = self.orgs.get(repo.owner)
        if org and user.login in org.members:
            return True
        return any(user.login in org.teams[slug].members for slug in repo.teams if org and slug in org.teams)

    def _admin(self, repo: HostedRepo, user: User | None) -> bool:
        if user is None:
            return False
        org = self.orgs.get(repo.owner)
        return repo.owner == user.login or bool(org and user.login in org.members)

    def _sync_ssh_keys(self) -> None:
        """authorized_keys: the test client's key, then one line per deploy key, scoped to its repository."""
        if self.ssh is None:
            return
        shell = self.workdir / "githost-shell"
        if not shell.exists():
            shell.write_text(_SHELL)
            shell.chmod(0o755)
        lines = [self._ssh_base_keys.rstrip("\n")] if self._ssh_base_keys.strip() else []
        for repo in self.repos.values():
            for key in repo.keys:
                mode = "ro" if key.read_only else "rw"
                lines.append(f'command="{shell} {repo.bare} {mode}",no-port-forwarding,no-X11-forwarding,'
                             f"no-agent-forwarding,no-pty {key.key.strip()}")
        (self.ssh.workdir / "authorized_keys").write_text("\n".join(lines) + "\n")

    # ------------------------------------------------------------------ lifetime

    def start(self) -> "GitHost":
        if self.ssh is not None:
            self.ssh.start()
            self._ssh_base_keys = (self.ssh.workdir / "authorized_keys").read_text()
        host = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):  # noqa: N802
                host._handle(self)

            do_POST = do_PUT = do_DELETE = do_PATCH = do_GET  # noqa: N815

            def log_message(self, format, *args):  # noqa: A002
                pass

        context = None
        if self.tls:
            cert = serving_certificate(self.workdir, self.flavor, f"fluxpy-{self.flavor}-test-ca")
            self.ca_pem = cert.ca_pem
            (self.workdir / "ca.crt").write_bytes(self.ca_pem)
            context = cert.context()
        self._server = serve_http(Handler, "githost", context)
        self.port = self._server.server_address[1]
        return self

    def stop(self) -> None:
        stop_http(self._server)
        self._server = None
        if self.ssh is not None:
            self.ssh.stop()

    # ------------------------------------------------------------------ request handling

    def _handle(self, req: http.server.BaseHTTPRequestHandler) -> None:
        path, _, query = req.path.partition("?")
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        try:
            if re.match(r"^/api/v[34]/", path):
                self.requests.append((req.command, req.path))
                status, payload, headers = self._api(req, path, urllib.parse.parse_qs(query), body)
                data = b"" if payload is None else json.dumps(payload).encode()
                self._respond(req, status, data, {"Content-Type": "application/json; charset=utf-8", **headers})
            else:
                self._git_http(req, path, query, body)
        except HTTPError as exc:
            data = json.dumps(exc.body).encode() if exc.body is not None else b""
            self._respond(req, exc.status, data, {"Content-Type": "application/json; charset=utf-8", **exc.headers})
        except Exception as exc:  # noqa: BLE001 - a test server answers 500 and keeps serving
            self._respond(req, 500, json.dumps({"message": f"internal error: {exc!r}"}).encode(),
                          {"Content-Type": "application/json"})

    @staticmethod
    def _respond(req, status: int, data: bytes, headers: dict[str, str]) -> None:
        req.send_response(status)
        for key, value in headers.items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(len(data)))
        req.end_headers()
        if data:
            req.wfile.write(data)

    # -- authentication

    def _api_user(self, req) -> User | None:
        header = req.headers.get("Authorization") or ""
        token = req.headers.get("PRIVATE-TOKEN") or ""
        if header.lower().startswith(("token ", "bearer ")):
            token = header.split(" ", 1)[1].strip()
        if not token:
            return None
        user = next((u for u in self.users.values() if u.token == token), None)
        if user is None:
            if self.flavor == "github":
                raise HTTPError(401, {"message": "Bad credentials",
                                      "documentation_url": "https://docs.github.com/rest"})
            raise HTTPError(401, {"message": "401 Unauthorized"})
        return user

    def _require_user(self, req) -> User:
        user = self._api_user(req)
        if user is None:
            if self.flavor == "github":
                raise HTTPError(401, {"message": "Requires authentication"})
            raise HTTPError(401, {"message": "401 Unauthorized"})
        return user

    def _require_commit(self, repo: HostedRepo, sha: str, body: dict, status: int) -> None:
        """``sha`` must be a commit of ``repo`` (the service's answer otherwise)."""
        if subprocess.run(["git", "--git-dir", str(repo.bare), "cat-file", "-e", f"{sha}^{{commit}}"],
                          capture_output=True).returncode != 0:
            raise HTTPError(status, body)

    def _require_writer(self, req, repo: HostedRepo) -> User:
        """The request's user, who must be able to write to ``repo`` (403 otherwise)."""
        user = self._require_user(req)
        if not self._can_write(repo, user):
            raise HTTPError(403, {"message": "Resource not accessible by personal access token"
                                  if self.flavor == "github" else "403 Forbidden"})
        return user

    # -- the two APIs

    def _api(self, req, path: str, query: dict, body: bytes) -> tuple[int, Any, dict]:
        data = json.loads(body) if body and body.strip().startswith((b"{", b"[")) else {}
        if not data and body:
            data = {k: v[0] for k, v in urllib.parse.parse_qs(body.decode()).items()}
        with self._lock:
            if self.flavor == "github":
                if not path.startswith("/api/v3/"):
                    raise HTTPError(404, {"message": "Not Found"})
                return self._github(req, req.command, path[len("/api/v3"):], query, data)
            if not path.startswith("/api/v4/"):
                raise HTTPError(404, {"message": "404 Not Found"})
            return self._gitlab(req, req.command, path[len("/api/v4"):], query, data)

    # ================================================================== GitHub

    def _gh_user_json(self, user: User) -> dict:
        return {"login": user.login, "id": user.id, "type": "User", "site_admin": False, "name": user.login,
                "url": f"{self.api_url}/users/{user.login}", "html_url": f"{self.base_url}/{user.login}"}

    def _gh_owner_json(self, name: str) -> dict:
        if name in self.orgs:
            org = self.orgs[name]
            return {"login": name, "id": org.id, "type": "Organization", "url": f"{self.api_url}/orgs/{name}",
                    "html_url": f"{self.base_url}/{name}"}
        return self._gh_user_json(self.users[name])

    def _gh_repo_json(self, repo: HostedRepo, user: User | None) -> dict:
        heads = git("ls-remote", "--heads", str(repo.bare), cwd=self.workdir)
        head_ref = git("symbolic-ref", "HEAD", cwd=repo.bare).strip().removeprefix("refs/heads/")
        url = f"{self.api_url}/repos/{repo.full_name}"
        admin, write = self._admin(repo, user), self._can_write(repo, user)
        return {"id": repo.id, "node_id": f"R_{repo.id}", "name": repo.name, "full_name": repo.full_name,
                "owner": self._gh_owner_json(repo.owner), "private": repo.private, "visibility": repo.visibility,
                "description": repo.description or None, "fork": False, "url": url,
                "html_url": f"{self.base_url}/{repo.full_name}", "clone_url": self.http_url(repo),
                "git_url": f"git://127.0.0.1/{repo.full_name}.git", "ssh_url": self.ssh_url(repo),
                "default_branch": head_ref, "size": 0 if not heads else 1, "archived": False, "disabled": False,
                "created_at": _now(), "updated_at": _now(), "pushed_at": _now(),
                "permissions": {"admin": admin, "maintain": admin, "push": write, "triage": write, "pull": True}}

    def _gh_key_json(self, repo: HostedRepo, key: DeployKey) -> dict:
        return {"id": key.id, "key": key.key, "title": key.title, "read_only": key.read_only, "verified": True,
                "url": f"{self.api_url}/repos/{repo.full_name}/keys/{key.id}", "created_at": key.created_at,
                "added_by": None, "last_used": None}

    def _gh_pull_json(self, repo: HostedRepo, change: Change) -> dict:
        def side(branch: str) -> dict:
            return {"label": f"{repo.owner}:{branch}", "ref": branch, "sha": self.head(repo, branch) or "",
                    "repo": self._gh_repo_json(repo, None), "user": self._gh_owner_json(repo.owner)}

        url = f"{self.api_url}/repos/{repo.full_name}/pulls/{change.number}"
        return {"id": change.id, "number": change.number, "state": "open" if change.state == "open" else "closed",
                "merged": change.state == "merged", "title": change.title, "body": change.body, "url": url,
                "html_url": f"{self.base_url}/{repo.full_name}/pull/{change.number}",
                "head": side(change.head), "base": side(change.base),
                "user": self._gh_user_json(self.users[change.author]),
                "merge_commit_sha": change.merge_commit or None, "mergeable": change.state == "open",
                "created_at": change.created_at, "updated_at": change.created_at, "draft": False}

    def _gh_repo(self, owner: str, name: str, user: User | None) -> HostedRepo:
        repo = self.repos.get(f"{owner}/{name}")
        if repo is None or not self._visible(repo, user):
            raise HTTPError(404, {"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
        return repo

    def _gh_create(self, owner: str, user: User, data: dict) -> tuple[int, Any, dict]:
        name = data.get("name") or ""
        if not re.match(r"^[A-Za-z0-9._-]+$", name):
            raise HTTPError(422, {"message": "Repository creation failed.",
                                  "errors": [{"resource": "Repository", "code": "custom", "field": "name",
                                              "message": "name is invalid"}]})
        if f"{owner}/{name}" in self.repos:
            raise HTTPError(422, {"message": "Repository creation failed.",
                                  "errors": [{"resource": "Repository", "code": "custom", "field": "name",
                                              "message": "name already exists on this account"}]})
        private = bool(data.get("private", False)) or data.get("visibility") in ("private", "internal")
        repo = self.add_repo(owner, name, private=private)
        repo.description = data.get("description") or ""
        if data.get("auto_init"):
            self.commit(repo, {"README.md": f"# {name}\n"}, "Initial commit")
        return 201, self._gh_repo_json(repo, user), {}

    def _github(self, req, method: str, path: str, query: dict, data: dict) -> tuple[int, Any, dict]:
        user = self._api_user(req)
        m = re.fullmatch
        if method == "GET" and path == "/user":
            return 200, self._gh_user_json(self._require_user(req)), {}
        if match := m(r"/orgs/([^/]+)", path):
            org = self.orgs.get(match[1])
            if method != "GET" or org is None:
                raise HTTPError(404, {"message": "Not Found"})
            return 200, {**self._gh_owner_json(org.name), "description": None, "name": org.name}, {}
        if method == "POST" and path == "/user/repos":
            u = self._require_user(req)
            return self._gh_create(u.login, u, data)
        if match := m(r"/orgs/([^/]+)/repos", path):
            u = self._require_user(req)
            org = self.orgs.get(match[1])
            if org is None:
                raise HTTPError(404, {"message": "Not Found"})
            if u.login not in org.members:
                raise HTTPError(403, {"message": "You need admin access to the organization before adding a "
                                                 "repository to it."})
            return self._gh_create(org.name, u, data)
        team_path = (m(r"/orgs/(?P<org>[^/]+)/teams/(?P<team>[^/]+)(?:/repos/(?P<o>[^/]+)/(?P<r>[^/]+))?", path)
                     or m(r"/organizations/(?P<org>\d+)/team/(?P<team>\d+)(?:/repos/(?P<o>[^/]+)/(?P<r>[^/]+))?",
                          path))
        if match := team_path:
            u = self._require_user(req)
            org = next((o for o in self.orgs.values() if match["org"] in (o.name, str(o.id))), None)
            team = next((t for t in (org.teams.values() if org else ()) if match["team"] in (t.slug, str(t.id))),
                        None)
            if org is None or team is None or u.login not in org.members:
                raise HTTPError(404, {"message": "Not Found"})
            if match["o"] is None and method == "GET":
                return 200, {"id": team.id, "slug": team.slug, "name": team.slug, "permission": "pull",
                             "url": f"{self.api_url}/organizations/{org.id}/team/{team.id}",
                             "organization": self._gh_owner_json(org.name)}, {}
            if match["o"] is not None and method in ("GET", "PUT"):
                repo = self._gh_repo(match["o"], match["r"], u)
                if method == "GET":
                    return (204 if team.slug in repo.teams else 404), None, {}
                if not self._admin(repo, u):
                    raise HTTPError(403, {"message": "Must have admin rights to Repository."})
                repo.teams[team.slug] = data.get("permission") or "push"
                return 204, None, {}
            raise HTTPError(404, {"message": "Not Found"})
        if not (match := m(r"/repos/([^/]+)/([^/]+)(/.*)?", path)):
            raise HTTPError(404, {"message": "Not Found"})
        repo = self._gh_repo(match[1], match[2], user)
        rest = match[3] or ""
        if rest == "" and method == "GET":
            return 200, self._gh_repo_json(repo, user), {}
        if status := m(r"/statuses/([0-9a-f]{40})|/commits/([0-9a-f]{40})/statuses", rest):
            sha = status[1] or status[2]
            if method == "POST" and status[1]:
                self._require_writer(req, repo)
                self._require_commit(repo, sha, {"message": f"No commit found for SHA: {sha}"}, 422)
                if data.get("state") not in ("error", "failure", "pending", "success"):
                    raise HTTPError(422, {"message": "Validation Failed"})
                entry = {"id": self._id(), "sha": sha, "state": data["state"], "description": data.get("description"),
                         "context": data.get("context") or "default", "target_url": data.get("target_url"),
                         "created_at": _now()}
                repo.statuses.insert(0, entry)
                return 201, entry, {}
            if method == "GET" and status[2]:
                return 200, [s for s in repo.statuses if s["sha"] == sha], {}
        if rest.startswith("/keys"):
            if not self._admin(repo, user):
                raise HTTPError(404 if repo.private else 403, {"message": "Not Found" if repo.private else
                                                               "Must have admin rights to Repository."})
            if rest == "/keys" and method == "GET":
                return 200, [self._gh_key_json(repo, k) for k in repo.keys], {}
            if rest == "/keys" and method == "POST":
                key_text = (data.get("key") or "").strip()
                if len(key_text.split()) < 2:
                    raise HTTPError(422, {"message": "Validation Failed",
                                          "errors": [{"resource": "PublicKey", "code": "custom", "field": "key",
                                                      "message": "key is invalid. You must supply a key in OpenSSH "
                                                                 "public key format"}]})
                body = " ".join(key_text.split()[:2])
                if any(" ".join(k.key.split()[:2]) == body for k in repo.keys):
                    raise HTTPError(422, {"message": "Validation Failed",
                                          "errors": [{"resource": "PublicKey", "code": "custom", "field": "key",
                                                      "message": "key is already in use"}]})
                key = DeployKey(self._id(), data.get("title") or "", key_text, bool(data.get("read_only", True)))
                repo.keys.append(key)
                self._sync_ssh_keys()
                return 201, self._gh_key_json(repo, key), {}
            if km := m(r"/keys/(\d+)", rest):
                key = next((k for k in repo.keys if k.id == int(km[1])), None)
                if key is None:
                    raise HTTPError(404, {"message": "Not Found"})
                if method == "DELETE":
                    repo.keys.remove(key)
                    self._sync_ssh_keys()
                    return 204, None, {}
                return 200, self._gh_key_json(repo, key), {}
        if rest == "/pulls" and method == "GET":
            state = (query.get("state") or ["open"])[0]
            head = (query.get("head") or [""])[0]
            base = (query.get("base") or [""])[0]
            found = [c for c in repo.changes
                     if (state == "all" or (c.state == "open") == (state == "open"))
                     and (not head or f"{repo.owner}:{c.head}" == head or c.head == head)
                     and (not base or c.base == base)]
            return 200, [self._gh_pull_json(repo, c) for c in found], {}
        if rest == "/pulls" and method == "POST":
            u = self._require_writer(req, repo)
            return self._open_change(repo, u, data.get("head", "").split(":")[-1], data.get("base", ""),
                                     data.get("title", ""), data.get("body") or "", github=True)
        if pm := m(r"/pulls/(\d+)(/merge)?", rest):
            change = next((c for c in repo.changes if c.number == int(pm[1])), None)
            if change is None:
                raise HTTPError(404, {"message": "Not Found"})
            if pm[2] and method == "PUT":
                u = self._require_writer(req, repo)
                sha = self.merge(repo, change.number, u.login)
                return 200, {"sha": sha, "merged": True, "message": "Pull Request successfully merged"}, {}
            if pm[2]:
                return (204 if change.state == "merged" else 404), None, {}
            return 200, self._gh_pull_json(repo, change), {}
        raise HTTPError(404, {"message": "Not Found"})

    def _open_change(self, repo: HostedRepo, user: User, head: str, base: str, title: str, body: str, *,
                     github: bool) -> tuple[int, Any, dict]:
        if not self.head(repo, head) or not self.head(repo, base):
            missing = head if not self.head(repo, head) else base
            if github:
                raise HTTPError(422, {"message": "Validation Failed",
                                      "errors": [{"resource": "PullRequest", "field": "head" if missing == head
                                                  else "base", "code": "invalid"}]})
            raise HTTPError(400, {"message": [f"Branch {missing} does not exist"]})
        if any(c.state == "open" and c.head == head and c.base == base for c in repo.changes):
            if github:
                raise HTTPError(422, {"message": "Validation Failed",
                                      "errors": [{"resource": "PullRequest", "code": "custom",
                                                  "message": f"A pull request already exists for "
                                                             f"{repo.owner}:{head}."}]})
            raise HTTPError(409, {"message": ["Another open merge request already exists for this source branch"]})
        number = max([c.number for c in repo.changes], default=0) + 1
        change = Change(number, self._id(), head, base, title, body, user.login)
        repo.changes.append(change)
        if github:
            return 201, self._gh_pull_json(repo, change), {}
        return 201, self._gl_mr_json(repo, change), {}

    # ================================================================== GitLab

    def _gl_namespace(self, owner: str) -> dict:
        if owner in self.orgs:
            org = self.orgs[owner]
            return {"id": org.id, "name": owner, "path": owner, "kind": "group", "full_path": owner}
        user = self.users[owner]
        return {"id": user.id, "name": owner, "path": owner, "kind": "user", "full_path": owner}

    def _gl_project_json(self, repo: HostedRepo) -> dict:
        heads = git("ls-remote", "--heads", str(repo.bare), cwd=self.workdir).strip()
        default = git("symbolic-ref", "HEAD", cwd=repo.bare).strip().removeprefix("refs/heads/") if heads else None
        shared = [{"group_id": self.orgs[g].id, "group_name": g, "group_full_path": g, "group_access_level": 40}
                  for g in repo.teams if g in self.orgs]
        return {"id": repo.id, "name": repo.name, "path": repo.name, "description": repo.description or None,
                "name_with_namespace": f"{repo.owner} / {repo.name}", "path_with_namespace": repo.full_name,
                "namespace": self._gl_namespace(repo.owner), "visibility": repo.visibility,
                "default_branch": default, "empty_repo": not heads, "http_url_to_repo": self.http_url(repo),
                "ssh_url_to_repo": self.ssh_url(repo), "web_url": f"{self.base_url}/{repo.full_name}",
                "created_at": _now(), "last_activity_at": _now(), "shared_with_groups": shared, "archived": False}

    def _gl_mr_json(self, repo: HostedRepo, change: Change) -> dict:
        state = {"open": "opened"}.get(change.state, change.state)
        return {"id": change.id, "iid": change.number, "project_id": repo.id, "title": change.title,
                "description": change.body, "state": state, "source_branch": change.head,
                "target_branch": change.base, "source_project_id": repo.id, "target_project_id": repo.id,
                "web_url": f"{self.base_url}/{repo.full_name}/-/merge_requests/{change.number}",
                "merge_commit_sha": change.merge_commit or None, "sha": self.head(repo, change.head) or None,
                "author": {"id": self.users[change.author].id, "username": change.author},
                "created_at": change.created_at, "updated_at": change.created_at,
                "merged_at": _now() if change.state == "merged" else None}

    def _gl_key_json(self, key: DeployKey) -> dict:
        return {"id": key.id, "title": key.title, "key": key.key, "can_push": not key.read_only,
                "created_at": key.created_at, "fingerprint": "", "expires_at": None}

    def _gl_token_json(self, token: DeployToken, with_secret: bool = False) -> dict:
        out = {"id": token.id, "name": token.name, "username": token.username, "scopes": token.scopes,
               "expires_at": None, "revoked": False, "expired": False}
        if with_secret:
            out["token"] = token.token
        return out

    def _gl_project(self, ident: str, user: User | None) -> HostedRepo:
        ident = urllib.parse.unquote(ident)
        repo = next((r for r in self.repos.values() if str(r.id) == ident or r.full_name == ident), None)
        if repo is None or not self._visible(repo, user):
            raise HTTPError(404, {"message": "404 Project Not Found"})
        return repo

    def _gitlab(self, req, method: str, path: str, query: dict, data: dict) -> tuple[int, Any, dict]:
        user = self._api_user(req)
        m = re.fullmatch
        if method == "GET" and path == "/user":
            u = self._require_user(req)
            return 200, {"id": u.id, "username": u.login, "name": u.login, "state": "active",
                         "web_url": f"{self.base_url}/{u.login}", "is_admin": False}, {}
        if match := m(r"/groups/([^/]+)", path):
            ident = urllib.parse.unquote(match[1])
            org = next((o for o in self.orgs.values() if o.name == ident or str(o.id) == ident), None)
            if method != "GET" or org is None or user is None or user.login not in org.members:
                raise HTTPError(404, {"message": "404 Group Not Found"})
            return 200, {"id": org.id, "name": org.name, "path": org.name, "full_path": org.name,
                         "full_name": org.name, "visibility": "private",
                         "web_url": f"{self.base_url}/groups/{org.name}"}, {}
        if path == "/projects" and method == "POST":
            u = self._require_user(req)
            name = data.get("path") or data.get("name") or ""
            owner = u.login
            if data.get("namespace_id"):
                org = next((o for o in self.orgs.values() if str(o.id) == str(data["namespace_id"])), None)
                if org is None:
                    raise HTTPError(404, {"message": "404 Namespace Not Found"})
                if u.login not in org.members:
                    raise HTTPError(403, {"message": "403 Forbidden"})
                owner = org.name
            if f"{owner}/{name}" in self.repos:
                taken = ["has already been taken"]
                raise HTTPError(400, {"message": {"name": taken, "path": taken}})
            visibility = data.get("visibility") or "private"
            repo = self.add_repo(owner, name, private=visibility != "public")
            repo.visibility, repo.description = visibility, data.get("description") or ""
            return 201, self._gl_project_json(repo), {}
        if not (match := m(r"/projects/([^/]+)(/.*)?", path)):
            raise HTTPError(404, {"message": "404 Not Found"})
        repo = self._gl_project(match[1], user)
        rest = match[2] or ""
        if rest == "" and method == "GET":
            return 200, self._gl_project_json(repo), {}
        if status := m(r"/statuses/([0-9a-f]{40})|/repository/commits/([0-9a-f]{40})/statuses", rest):
            sha = status[1] or status[2]
            if method == "POST" and status[1]:
                self._require_writer(req, repo)
                self._require_commit(repo, sha, {"message": "404 References Not Found"}, 404)
                if data.get("state") not in ("pending", "running", "success", "failed", "canceled"):
                    raise HTTPError(400, {"error": "state does not have a valid value"})
                entry = {"id": self._id(), "sha": sha, "status": data["state"], "name": data.get("name") or "default",
                         "description": data.get("description"), "created_at": _now()}
                repo.statuses.insert(0, entry)
                return 201, entry, {}
            if method == "GET" and status[2]:
                name = query.get("name")
                name = name[0] if isinstance(name, list) else name
                return 200, [s for s in repo.statuses if s["sha"] == sha and (not name or s["name"] == name)], {}
        maintainer = self._admin(repo, user)
        if rest == "/share" and method == "POST":
            if not maintainer:
                raise HTTPError(403, {"message": "403 Forbidden"})
            group = next((o for o in self.orgs.values() if str(o.id) == str(data.get("group_id"))), None)
            if group is None:
                raise HTTPError(404, {"message": "404 Group Not Found"})
            if group.name in repo.teams:
                raise HTTPError(409, {"message": "The project is already shared with this group"})
            repo.teams[group.name] = str(data.get("group_access"))
            return 201, {"id": self._id(), "project_id": repo.id, "group_id": group.id,
                         "group_access": data.get("group_access")}, {}
        if rest.startswith(("/deploy_keys", "/deploy_tokens")) and not maintainer:
            raise HTTPError(403, {"message": "403 Forbidden"})
        if rest == "/deploy_keys" and method == "GET":
            return 200, [self._gl_key_json(k) for k in repo.keys], {}
        if rest == "/deploy_keys" and method == "POST":
            key_text = (data.get("key") or "").strip()
            if len(key_text.split()) < 2:
                raise HTTPError(400, {"message": {"key": ["is invalid"]}})
            if any(" ".join(k.key.split()[:2]) == " ".join(key_text.split()[:2]) for k in repo.keys):
                raise HTTPError(400, {"message": {"deploy_key.fingerprint_sha256": ["has already been taken"]}})
            can_push = data.get("can_push") in (True, "true", "True", 1)
            key = DeployKey(self._id(), data.get("title") or "", key_text, not can_push)
            repo.keys.append(key)
            self._sync_ssh_keys()
            return 201, self._gl_key_json(key), {}
        if km := m(r"/deploy_keys/(\d+)", rest):
            key = next((k for k in repo.keys if k.id == int(km[1])), None)
            if key is None:
                raise HTTPError(404, {"message": "404 Deploy key Not Found"})
            if method == "DELETE":
                repo.keys.remove(key)
                self._sync_ssh_keys()
                return 204, None, {}
            return 200, self._gl_key_json(key), {}
        if rest == "/deploy_tokens" and method == "GET":
            return 200, [self._gl_token_json(t) for t in repo.tokens], {}
        if rest == "/deploy_tokens" and method == "POST":
            scopes = data.get("scopes") or []
            if isinstance(scopes, str):
                scopes = [scopes]
            if not scopes:
                raise HTTPError(400, {"message": {"scopes": ["can't be blank"]}})
            token = DeployToken(self._id(), data.get("name") or "", data.get("username") or
                                f"gitlab+deploy-token-{self._ids}", f"gldt-{secrets.token_hex(10)}", list(scopes))
            repo.tokens.append(token)
            return 201, self._gl_token_json(token, with_secret=True), {}
        if tm := m(r"/deploy_tokens/(\d+)", rest):
            token = next((t for t in repo.tokens if t.id == int(tm[1])), None)
            if token is None:
                raise HTTPError(404, {"message": "404 Deploy token Not Found"})
            if method == "DELETE":
                repo.tokens.remove(token)
                return 204, None, {}
            return 200, self._gl_token_json(token), {}
        if rest == "/merge_requests" and method == "GET":
            state = (query.get("state") or ["all"])[0]
            source = (query.get("source_branch") or [""])[0]
            target = (query.get("target_branch") or [""])[0]
            wanted = {"opened": "open"}.get(state, state)
            found = [c for c in repo.changes if (state == "all" or c.state == wanted)
                     and (not source or c.head == source) and (not target or c.base == target)]
            return 200, [self._gl_mr_json(repo, c) for c in found], {}
        if rest == "/merge_requests" and method == "POST":
            u = self._require_writer(req, repo)
            return self._open_change(repo, u, data.get("source_branch", ""), data.get("target_branch", ""),
                                     data.get("title", ""), data.get("description") or "", github=False)
        if mm := m(r"/merge_requests/(\d+)(/merge)?", rest):
            change = next((c for c in repo.changes if c.number == int(mm[1])), None)
            if change is None:
                raise HTTPError(404, {"message": "404 Not found"})
            if mm[2] and method == "PUT":
                u = self._require_writer(req, repo)
                self.merge(repo, change.number, u.login)
                return 200, self._gl_mr_json(repo, change), {}
            return 200, self._gl_mr_json(repo, change), {}
        raise HTTPError(404, {"message": "404 Not Found"})

    # ================================================================== git over HTTP

    def _git_http(self, req, path: str, query: str, body: bytes) -> None:
        match = re.match(r"^/(?P<owner>[^/]+)/(?P<name>[^/]+?)(?:\.git)?(?P<rest>/.*)$", path)
        repo = self.repos.get(f"{match['owner']}/{match['name']}") if match else None
        if repo is None:
            raise HTTPError(404, {"message": "Repository not found"})
        rest = match["rest"]
        service = (urllib.parse.parse_qs(query).get("service") or [""])[0]
        push = rest.endswith("/git-receive-pack") or service == "git-receive-pack"
        user, deploy = self._git_credentials(req, repo)
        if push:
            allowed = user is not None and self._can_write(repo, user)
        else:
            allowed = not repo.private or deploy or (user is not None and self._can_write(repo, user))
        if not allowed:
            if user is None and not deploy:
                raise HTTPError(401, None, {"WWW-Authenticate": 'Basic realm="githost"'})
            raise HTTPError(403, {"message": "You are not allowed to push code to this project." if push
                                  else "Repository not found"})
        env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(self.root), "GIT_HTTP_EXPORT_ALL": "1",
               "PATH_INFO": f"/{repo.owner}/{repo.name}.git{rest}", "QUERY_STRING": query,
               "REQUEST_METHOD": req.command, "CONTENT_TYPE": req.headers.get("Content-Type", ""),
               "CONTENT_LENGTH": str(len(body)), "REMOTE_ADDR": req.client_address[0],
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(self.workdir)}
        if user is not None:
            env["REMOTE_USER"] = user.login
        if req.headers.get("Git-Protocol"):
            env["GIT_PROTOCOL"] = req.headers["Git-Protocol"]
        if req.headers.get("Content-Encoding"):
            env["HTTP_CONTENT_ENCODING"] = req.headers["Content-Encoding"]
        proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True, timeout=GIT_TIMEOUT)
        out = proc.stdout
        crlf, lf = out.find(b"\r\n\r\n"), out.find(b"\n\n")
        if crlf >= 0 and (lf < 0 or crlf < lf):
            head, payload = out[:crlf], out[crlf + 4:]
        else:
            head, payload = (out[:lf], out[lf + 2:]) if lf >= 0 else (b"Status: 500", out)
        status, headers = 200, {}
        for line in head.decode(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.lower() == "status":
                status = int(value.strip().split()[0])
            elif key:
                headers[key.strip()] = value.strip()
        self._respond(req, status, payload, headers)

    def _git_credentials(self, req, repo: HostedRepo) -> tuple[User | None, bool]:
        """The user a Basic/Bearer header authenticates (token as password, any user name, as both
        providers accept), or whether it is a deploy token of this repository."""
        header = req.headers.get("Authorization") or ""
        secret, username = "", ""
        if header.startswith("Basic "):
            try:
                username, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return None, False
        elif header.lower().startswith("bearer "):
            secret = header[7:].strip()
        if not secret:
            return None, False
        user = next((u for u in self.users.values() if u.token == secret), None)
        if user is not None:
            return user, False
        deploy = any(t.token == secret and (not username or t.username == username) and "read_repository" in t.scopes
                     for t in repo.tokens)
        if not deploy:
            raise HTTPError(401, None, {"WWW-Authenticate": 'Basic realm="githost"'})
        return None, True


# --------------------------------------------------------------------------- fixtures


def _host(tmp_path_factory, flavor: str, ssh: bool) -> GitHost:
    workdir = tmp_path_factory.mktemp(flavor)
    host = GitHost(workdir, flavor, tls=True, ssh=ssh)
    host.alice = host.add_user("alice")
    host.token = host.alice.token
    host.add_user("mallory")
    host.add_org("acme", members=("alice",), teams={"platform": ("alice",), "dev": ()})
    host.add_org("other-org")
    if flavor == "gitlab":  # GitLab's "teams" are groups a project is shared with
        host.add_org("platform", members=("alice",))
    return host.start()


def _serve(tmp_path_factory, flavor: str, ssh: bool):
    host = _host(tmp_path_factory, flavor, ssh=ssh)
    try:
        yield host
    finally:
        host.stop()


@pytest.fixture
def github_host(tmp_path_factory):
    """A local GitHub (TLS, ``.ca_file``): user ``alice`` (``.token``), org ``acme`` with teams ``platform``
    and ``dev``, user ``mallory``, org ``other-org`` alice is not in."""
    yield from _serve(tmp_path_factory, "github", ssh=False)


@pytest.fixture
def gitlab_host(tmp_path_factory):
    """A local GitLab, set up like :func:`github_host` (groups instead of organizations)."""
    yield from _serve(tmp_path_factory, "gitlab", ssh=False)


@pytest.fixture
def github_ssh_host(tmp_path_factory):
    """:func:`github_host` whose repositories are also served over SSH (deploy keys work)."""
    yield from _serve(tmp_path_factory, "github", ssh=True)


@pytest.fixture
def gitlab_ssh_host(tmp_path_factory):
    """:func:`gitlab_host` whose repositories are also served over SSH (deploy keys work)."""
    yield from _serve(tmp_path_factory, "gitlab", ssh=True)


__all__ = ["GitHost", "HostedRepo", "github_host", "gitlab_host", "github_ssh_host", "gitlab_ssh_host"]
