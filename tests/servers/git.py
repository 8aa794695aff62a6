"""Real Git servers on loopback, and helpers to make repositories with commits, tags and signatures.

- :class:`GitHTTPServer` — Git's smart HTTP protocol: ``git http-backend`` run as a CGI behind a small
  threaded Python HTTP server; optional basic auth, bearer token, HTTPS with a generated CA (``.ca_pem``)
  and a response delay (to exercise timeouts). ``.requests`` counts requests.
- :class:`GitSSHServer` — Debian's OpenSSH ``sshd`` on a loopback port with a per-server host key and a
  client key (``.client_key``, ``.known_hosts``); the client logs in as the current user through an
  ``AuthorizedKeysFile`` in a temporary directory whose key is restricted to ``git-shell`` (``command=``).
- :class:`Repo` — a bare repository served by both, plus a work tree to commit, branch and tag from
  (optionally signed with a :class:`GPGKey`).

Fixtures: ``git_server`` (HTTP, no auth), ``git_servers`` (a factory: ``git_servers(username=..,
password=..)``, ``bearer_token=..``, ``tls=True``, ``delay=..``), ``git_ssh_server``, ``gpg_key`` (session),
and for tests of consumers: ``artifact_storage`` (a Storage served on loopback) and ``git_source_controller``
(the GitRepository reconciler in-process on the test namespace). All processes are bounded in time and
stopped at teardown::

    from servers.git import git_server, git_servers, git_ssh_server, gpg_key  # noqa: F401
"""
from __future__ import annotations

import base64
import getpass
import http.server
import os
import socket
import ssl
import subprocess
import threading
import time
from pathlib import Path

import pytest

from controllers.localcluster.plane import free_port
from servers.net import PausableHandlers, serve_http, stop_http
from servers.tls import serving_certificate

SSHD = "/usr/sbin/sshd"
START_TIMEOUT = 20.0
GIT_TIMEOUT = 60.0
_IDENTITY = {"GIT_AUTHOR_NAME": "Flux Tester", "GIT_AUTHOR_EMAIL": "tester@fluxpy.test",
             "GIT_COMMITTER_NAME": "Flux Tester", "GIT_COMMITTER_EMAIL": "tester@fluxpy.test"}


def git(*args: str, cwd: Path | str | None = None, env: dict | None = None, input: bytes | None = None) -> str:
    """Run git with a clean configuration (no user/system config); raise with stderr on failure."""
    full_env = {"PATH": os.environ["PATH"], "HOME": str(cwd or "/tmp"), "GIT_CONFIG_NOSYSTEM": "1",
                "GIT_CONFIG_GLOBAL": "/dev/null", "LC_ALL": "C", **_IDENTITY, **(env or {})}
    proc = subprocess.run(["git", *args], cwd=cwd, env=full_env, capture_output=True, input=input,
                          timeout=GIT_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
    return proc.stdout.decode(errors="replace")


# --------------------------------------------------------------------------- repositories

class GPGKey:
    """A passphrase-less OpenPGP signing key in its own GnuPG home."""

    def __init__(self, home: Path, uid: str = "Flux Tester <tester@fluxpy.test>"):
        self.home = Path(home)
        self.home.mkdir(parents=True, exist_ok=True)
        os.chmod(self.home, 0o700)
        self.env = {"GNUPGHOME": str(self.home)}
        self._gpg("--quick-gen-key", uid, "ed25519", "sign", "never")
        listing = self._gpg("--with-colons", "--list-secret-keys")
        self.fingerprint = next(line.split(":")[9] for line in listing.splitlines() if line.startswith("fpr:"))
        self.key_id = self.fingerprint[-16:]
        self.public_armor = self._gpg("--armor", "--export", self.fingerprint).encode()

    def _gpg(self, *args: str) -> str:
        proc = subprocess.run(["gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "", *args],
                              env={"PATH": os.environ["PATH"], **self.env}, capture_output=True, timeout=60)
        if proc.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout.decode()

    def stop(self) -> None:
        subprocess.run(["gpgconf", "--kill", "all"], env={"PATH": os.environ["PATH"], **self.env},
                       capture_output=True, timeout=10)


class Repo:
    """A bare repository ``<root>/<name>.git`` and a work tree next to it to make history with."""

    def __init__(self, root: Path, name: str, branch: str = "main"):
        self.root, self.name, self.default_branch = Path(root), name, branch
        self.bare = self.root / f"{name}.git"
        self.work = self.root / ".work" / name
        git("init", "-q", "--bare", "-b", branch, str(self.bare))
        git("config", "http.receivepack", "false", cwd=self.bare)
        self.work.mkdir(parents=True)
        git("init", "-q", "-b", branch, cwd=self.work)
        git("remote", "add", "origin", str(self.bare), cwd=self.work)

    def commit(self, files: dict[str, str | bytes | None], message: str = "update", *, branch: str | None = None,
               sign: GPGKey | None = None, executable: tuple[str, ...] = (), symlinks: dict[str, str] | None = None,
               submodules: dict[str, str] | None = None) -> str:
        """Write (None: delete) ``files`` on ``branch``, commit, push; return the commit hash."""
        branch = branch or self.default_branch
        if git("branch", "--list", branch, cwd=self.work).strip() or not git("branch", "--list", cwd=self.work):
            git("checkout", "-q", "-B", branch, cwd=self.work)
        else:
            git("checkout", "-q", "-b", branch, cwd=self.work)
        for rel, content in files.items():
            path = self.work / rel
            if content is None:
                if path.exists():
                    git("rm", "-q", "-r", rel, cwd=self.work)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content.encode() if isinstance(content, str) else content)
            if rel in executable:
                os.chmod(path, 0o755)
        for rel, target in (symlinks or {}).items():
            (self.work / rel).parent.mkdir(parents=True, exist_ok=True)
            os.symlink(target, self.work / rel)
        for rel, url in (submodules or {}).items():
            git("-c", "protocol.file.allow=always", "submodule", "add", "-q", url, rel, cwd=self.work)
        git("add", "-A", cwd=self.work)
        args = ["commit", "-q", "--allow-empty", "-m", message]
        env = None
        if sign:
            args.append(f"-S{sign.fingerprint}")
            env = sign.env
        git(*args, cwd=self.work, env=env)
        git("push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}", cwd=self.work)
        return self.head(branch)

    def tag(self, name: str, ref: str = "HEAD", *, annotated: bool = False, sign: GPGKey | None = None,
            message: str = "") -> str:
        """Create (and push) a tag; annotated when ``annotated`` or signed; return the tagged commit hash."""
        args = ["tag", "-f"]
        env = None
        if sign:
            args += ["-s", "-u", sign.fingerprint, "-m", message or name]
            env = sign.env
        elif annotated:
            args += ["-a", "-m", message or name]
        git(*args, name, ref, cwd=self.work, env=env)
        git("push", "-q", "-f", "origin", f"refs/tags/{name}", cwd=self.work)
        return git("rev-parse", f"{name}^{{commit}}", cwd=self.work).strip()

    def head(self, branch: str | None = None) -> str:
        return git("rev-parse", f"refs/heads/{branch or self.default_branch}", cwd=self.bare).strip()

    def allow_push(self) -> "Repo":
        """Accept pushes over smart HTTP too (git http-backend refuses them by default)."""
        git("config", "http.receivepack", "true", cwd=self.bare)
        return self

    def hook(self, name: str, script: str) -> None:
        """Install a server-side hook (``pre-receive``, ``update``…) written as a shell script."""
        path = self.bare / "hooks" / name
        path.write_text("#!/bin/sh\n" + script)
        path.chmod(0o755)

    def show(self, ref: str, path: str) -> str:
        """The content of ``path`` at ``ref`` in the bare repository."""
        return git("show", f"{ref}:{path}", cwd=self.bare)

    def message(self, ref: str = "HEAD") -> str:
        """The exact message of the commit at ``ref`` (as stored, after the headers)."""
        raw = git("cat-file", "commit", ref, cwd=self.bare)
        return raw.split("\n\n", 1)[1] if "\n\n" in raw else ""

    def ref(self, name: str) -> str:
        return git("rev-parse", name, cwd=self.bare).strip()


class _RepoHost:
    """What both servers share: the directory of bare repositories and :meth:`repo`."""

    root: Path

    def repo(self, name: str, files: dict[str, str | bytes | None] | None = None, *, branch: str = "main",
             message: str = "initial commit") -> Repo:
        """A new repository, with a first commit of ``files`` when given."""
        repo = Repo(self.root, name, branch)
        if files is not None:
            repo.commit(files, message)
        return repo


# --------------------------------------------------------------------------- smart HTTP

class GitHTTPServer(PausableHandlers, _RepoHost):
    """``git http-backend`` behind a threaded HTTP(S) server on 127.0.0.1; ``stop()`` then ``start()``
    serves again on the same port, ``pause()`` hangs it."""

    def __init__(self, workdir: Path, *, username: str = "", password: str = "", bearer_token: str = "",
                 tls: bool = False, delay: float = 0.0):
        self.workdir = Path(workdir)
        self.root = self.workdir / "repos"
        self.root.mkdir(parents=True, exist_ok=True)
        self.username, self.password, self.bearer_token = username, password, bearer_token
        self.tls, self.delay = tls, delay
        self.ca_pem = b""
        self.requests = 0
        self._lock = threading.Lock()
        self._server: http.server.ThreadingHTTPServer | None = None
        self._context: ssl.SSLContext | None = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url(self, repo: Repo | str) -> str:
        name = repo.name if isinstance(repo, Repo) else repo
        return f"{self.base_url}/{name}.git"

    def _authorized(self, header: str | None) -> bool:
        if not (self.username or self.bearer_token):
            return True
        if self.bearer_token and header == f"Bearer {self.bearer_token}":
            return True
        if self.username and header and header.startswith("Basic "):
            try:
                user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == self.username and password == self.password
        return False

    def start(self) -> "GitHTTPServer":
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - stdlib naming
                self._cgi()

            def do_POST(self) -> None:  # noqa: N802 - stdlib naming
                self._cgi()

            def _cgi(self) -> None:
                with server._lock:
                    server.requests += 1
                server.held()
                if server.delay:
                    time.sleep(server.delay)
                if not server._authorized(self.headers.get("Authorization")):
                    body = b"authentication required\n"
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="fluxpy-git"')
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                path, _, query = self.path.partition("?")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                env = {"PATH": os.environ["PATH"], "GIT_PROJECT_ROOT": str(server.root), "GIT_HTTP_EXPORT_ALL": "1",
                       "PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": self.command,
                       "CONTENT_TYPE": self.headers.get("Content-Type", ""), "CONTENT_LENGTH": str(len(body)),
                       "REMOTE_ADDR": self.client_address[0], "REMOTE_USER": server.username or "",
                       "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(server.workdir)}
                if self.headers.get("Git-Protocol"):
                    env["GIT_PROTOCOL"] = self.headers["Git-Protocol"]
                if self.headers.get("Content-Encoding"):
                    env["HTTP_CONTENT_ENCODING"] = self.headers["Content-Encoding"]
                proc = subprocess.run(["git", "http-backend"], input=body, env=env, capture_output=True,
                                      timeout=GIT_TIMEOUT)
                out = proc.stdout
                crlf, lf = out.find(b"\r\n\r\n"), out.find(b"\n\n")
                if crlf >= 0 and (lf < 0 or crlf < lf):
                    head, payload = out[:crlf], out[crlf + 4:]
                else:
                    head, payload = (out[:lf], out[lf + 2:]) if lf >= 0 else (b"Status: 500", out)
                status, headers = 200, []
                for line in head.decode(errors="replace").splitlines():
                    key, _, value = line.partition(":")
                    if key.lower() == "status":
                        status = int(value.strip().split()[0])
                    elif key:
                        headers.append((key.strip(), value.strip()))
                self.send_response(status)
                for key, value in headers:
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
                pass

        if self.tls and self._context is None:  # once: a restart keeps the certificate
            self._context = self._tls_context()
        self._server = serve_http(Handler, "git-http", self._context, self.port)
        self.port = self._server.server_address[1]
        return self

    def _tls_context(self) -> ssl.SSLContext:
        serving = serving_certificate(self.workdir, "git-http", "fluxpy-git-test-ca")
        self.ca_pem = serving.ca_pem
        return serving.context()

    def stop(self) -> None:
        stop_http(self._server)
        self._server = None


# --------------------------------------------------------------------------- SSH

def _keygen(path: Path, comment: str, key_type: str = "ed25519") -> None:
    subprocess.run(["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", comment, "-f", str(path)], check=True,
                   capture_output=True, timeout=30)


class GitSSHServer(_RepoHost):
    """``sshd -D`` on a loopback port serving the repositories under :attr:`root` to one client key."""

    def __init__(self, workdir: Path):
        self.workdir = Path(workdir)
        self.root = self.workdir / "repos"
        self.root.mkdir(parents=True, exist_ok=True)
        self.user = getpass.getuser()
        self.port = 0
        self._popen: subprocess.Popen | None = None
        self.log = self.workdir / "sshd.log"

    def url(self, repo: Repo | str) -> str:
        name = repo.name if isinstance(repo, Repo) else repo
        return f"ssh://{self.user}@127.0.0.1:{self.port}{self.root}/{name}.git"

    @property
    def client_key(self) -> bytes:
        return (self.workdir / "client_key").read_bytes()

    @property
    def known_hosts(self) -> bytes:
        key_type, key = (self.workdir / "host_key.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {key_type} {key}\n".encode()

    def authorize(self, public_key: str) -> None:
        """Let another public key (e.g. a generated deploy key) log in, also restricted to git-shell."""
        with open(self.workdir / "authorized_keys", "a") as f:
            f.write(f'command="git-shell -c \\"$SSH_ORIGINAL_COMMAND\\"",no-port-forwarding,no-X11-forwarding,'
                    f'no-agent-forwarding,no-pty {public_key.strip()}\n')

    def start(self) -> "GitSSHServer":
        if not os.path.exists(SSHD):
            pytest.skip(f"{SSHD} is not installed (Debian package openssh-server)")
        _keygen(self.workdir / "host_key", "fluxpy-test-host")
        _keygen(self.workdir / "client_key", "fluxpy-test-client")
        (self.workdir / "authorized_keys").write_text("")
        self.authorize((self.workdir / "client_key.pub").read_text())
        os.chmod(self.workdir / "authorized_keys", 0o600)
        if os.geteuid() == 0:
            Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # the privilege separation directory
        self.port = free_port()
        config = self.workdir / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.workdir / 'host_key'}",
            f"PidFile {self.workdir / 'sshd.pid'}", f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
            "PubkeyAuthentication yes", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
            "UsePAM no", "StrictModes no", "PermitRootLogin prohibit-password", f"AllowUsers {self.user}",
            "AllowTcpForwarding no", "X11Forwarding no", "PermitTTY no", "PrintMotd no", "LogLevel ERROR",
            "MaxStartups 200:30:400", "MaxSessions 100", "",
        ]))
        log = open(self.log, "ab")
        self._popen = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)], stdout=log, stderr=log,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        log.close()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._popen.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                    if s.recv(64).startswith(b"SSH-"):
                        return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"sshd did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT}s")

    def stop(self) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.terminate()
            try:
                self._popen.wait(10)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait(5)
        self._popen = None


# --------------------------------------------------------------------------- fixtures

@pytest.fixture
def git_server(tmp_path_factory):
    """A git smart-HTTP server without authentication (``.repo(name, files)``, ``.url(repo)``)."""
    server = GitHTTPServer(tmp_path_factory.mktemp("git-http")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def git_servers(tmp_path_factory):
    """A factory of git smart-HTTP servers: ``git_servers(username=, password=, bearer_token=, tls=, delay=)``."""
    started: list[GitHTTPServer] = []

    def start(**options) -> GitHTTPServer:
        server = GitHTTPServer(tmp_path_factory.mktemp("git-http"), **options).start()
        started.append(server)
        return server

    try:
        yield start
    finally:
        for server in started:
            server.stop()


@pytest.fixture
def git_ssh_server(tmp_path_factory):
    """An sshd serving git on a loopback port (``.client_key``, ``.known_hosts``, ``.url(repo)``)."""
    server = GitSSHServer(tmp_path_factory.mktemp("git-ssh")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def artifact_storage(tmp_path_factory):
    """A source-controller Storage in a temporary directory whose ArtifactServer runs on a loopback port
    (the storage advertises that address)."""
    from controllers.source.storage import ArtifactServer, Storage

    storage = Storage(tmp_path_factory.mktemp("artifacts"), "127.0.0.1:0")
    server = ArtifactServer(storage, "127.0.0.1:0").start()
    storage.advertised_address = f"127.0.0.1:{server.port}"
    try:
        yield storage
    finally:
        server.stop()


@pytest.fixture
def git_source_controller(start_controller, namespace, flux_crds, artifact_storage):
    """The GitRepository reconciler running in-process on the test namespace (``.storage``)."""
    from controllers.source.git import GitRepositoryReconciler

    reconciler = GitRepositoryReconciler(artifact_storage)
    start_controller(reconciler, namespace)
    return reconciler


@pytest.fixture(scope="session")
def gpg_key(tmp_path_factory):
    """A session-wide OpenPGP signing key (``.fingerprint``, ``.key_id``, ``.public_armor``)."""
    key = GPGKey(tmp_path_factory.mktemp("gnupg"))
    try:
        yield key
    finally:
        key.stop()


__all__ = ["GPGKey", "GitHTTPServer", "GitSSHServer", "Repo", "artifact_storage", "git", "git_server",
           "git_servers", "git_source_controller", "git_ssh_server", "gpg_key"]
