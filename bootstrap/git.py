"""The repository side of bootstrap, with GitPython: clone one branch, write files, commit (optionally
GPG-signed), push — and say clearly what failed.

Credentials reach git the way the source-controller passes them (``controllers.lib.git_client.GitAuth``:
environment and 0600 files in a private directory, never the command line), so a URL and credentials that
work here work for the GitRepository and the other way round. Without a private key an SSH URL uses the
user's own SSH set-up (agent, ``~/.ssh``), as ``flux bootstrap git`` does.

Every failure is a :class:`GitRepoError` whose ``kind`` says what went wrong (``unreachable``, ``auth``,
``not-found``, ``protected``, ``non-fast-forward``, ``git``) and whose message names the URL and what to do.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Callable, Iterable, Iterator

from controllers.lib.gitauth import redact_url
from manifestgen.sync import File

#: seconds one git operation may take when the caller gives no deadline.
DEFAULT_TIMEOUT = 120.0

_UNREACHABLE = ("could not resolve host", "connection refused", "failed to connect", "connection timed out",
                "couldn't connect to server", "no route to host", "network is unreachable",
                "could not resolve hostname", "operation timed out", "connection reset",
                "ssl certificate problem", "server certificate verification failed", "unable to access",
                "kex_exchange_identification", "connection closed by remote host")
_AUTH = ("authentication required", "authentication failed", "authorization failed", "could not read username",
         "permission denied", "host key verification failed", "returned error: 401", "returned error: 403",
         "invalid username or password", "bad credentials", "no more authentication methods",
         "load key", "invalid format", "access denied", "http basic: access denied")
_NOT_FOUND = ("repository not found", "not found", "does not appear to be a git repository",
              "returned error: 404", "no such file or directory", "does not exist")


class GitRepoError(Exception):
    """A git operation on the bootstrap repository failed; ``kind`` classifies it."""

    def __init__(self, message: str, kind: str = "git"):
        super().__init__(message)
        self.message, self.kind = message, kind


@dataclasses.dataclass
class Credentials:
    """How bootstrap authenticates to the repository (the same data a Flux Secret holds)."""

    username: str = ""
    password: str = ""
    bearer_token: str = ""
    #: PEM CA bundle for an HTTPS host with a private CA.
    ca: bytes = b""
    #: SSH private key (PEM or OpenSSH format) and its passphrase (``key_password``).
    identity: bytes = b""
    key_password: str = ""
    #: known_hosts lines for the SSH host (required with ``identity``).
    known_hosts: bytes = b""

    def secret_data(self, url: str) -> dict[str, bytes]:
        """The credentials in Secret form for ``url``'s transport (what GitAuth reads)."""
        data: dict[str, bytes] = {}
        if url.startswith(("http://", "https://")):
            if self.bearer_token:
                data["bearerToken"] = self.bearer_token.encode()
            elif self.username or self.password:
                data["username"] = (self.username or "git").encode()
                data["password"] = self.password.encode()
            if self.ca:
                data["ca.crt"] = self.ca
        elif self.identity:
            data["identity"] = self.identity
            data["known_hosts"] = self.known_hosts
            if self.key_password:
                data["password"] = self.key_password.encode()
        return data


def ssh_host(url: str) -> tuple[str, int]:
    """``(host, port)`` of an ``ssh://`` URL (port 22 by default)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "ssh" or not parts.hostname:
        raise ValueError(f"not an ssh:// URL with a host: {redact_url(url)}")
    return parts.hostname, parts.port or 22


def scan_host_keys(host: str, port: int = 22, timeout: float = 10.0) -> bytes:
    """The SSH host's public keys as known_hosts lines (sorted, so a re-scan compares equal).

    ``ssh-keyscan`` asks for every key type; GitRepoError(kind="unreachable") when none comes back."""
    if not shutil.which("ssh-keyscan"):
        raise GitRepoError("ssh-keyscan is not installed (Debian package openssh-client): it is needed to "
                           "read the SSH host key of the Git server", "git")
    try:
        proc = subprocess.run(["ssh-keyscan", "-T", str(max(1, int(timeout))), "-p", str(port), host],
                              capture_output=True, timeout=timeout + 5, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        proc = None
    lines = sorted({line.strip() for line in (proc.stdout.decode(errors="replace") if proc else "").splitlines()
                    if line.strip() and not line.startswith("#")})
    if not lines:
        where = host if port == 22 else f"{host}:{port}"
        raise GitRepoError(f"cannot read the SSH host key of {where}: the host did not answer on port {port}; "
                           "check the URL (and --ssh-hostname) and that the Git server is reachable", "unreachable")
    return ("\n".join(lines) + "\n").encode()


# ------------------------------------------------------------------------------------------ signing


class GPGSigner:
    """Signs commits with a key from an OpenPGP key ring file (``--gpg-key-ring``), through git's
    ``gpg.program`` and a private GnuPG home; the passphrase goes to gpg through a 0600 file."""

    def __init__(self, key_ring: str | os.PathLike, passphrase: str = "", key_id: str = ""):
        if not shutil.which("gpg"):
            raise GitRepoError("gpg is not installed (Debian package gnupg): it is needed to sign commits with "
                               "--gpg-key-ring", "git")
        try:
            ring = Path(key_ring).read_bytes()
        except OSError as exc:
            raise GitRepoError(f"failed to read the GPG key ring {key_ring}: {exc.strerror or exc}", "git") from None
        self.home = Path(tempfile.mkdtemp(prefix="fluxpy-gpg-"))
        os.chmod(self.home, 0o700)
        try:
            self._setup(ring, passphrase, key_id)
        except BaseException:
            self.close()
            raise

    def _gpg(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--batch", "--no-tty", "--pinentry-mode", "loopback",
                               "--passphrase-file", str(self.home / "passphrase"), *args],
                              env={**os.environ, "GNUPGHOME": str(self.home)}, capture_output=True,
                              input=input, timeout=60)

    def _setup(self, ring: bytes, passphrase: str, key_id: str) -> None:
        fd = os.open(self.home / "passphrase", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(passphrase)
        imported = self._gpg("--import", input=ring)
        if imported.returncode != 0:
            raise GitRepoError("invalid GPG key ring: " + _last_line(imported.stderr.decode(errors="replace")), "git")
        listing = self._gpg("--with-colons", "--list-secret-keys").stdout.decode(errors="replace")
        keys = [line.split(":")[4] for line in listing.splitlines() if line.startswith("sec:")]
        if not keys:
            raise GitRepoError("the GPG key ring holds no private key: export it with 'gpg --export-secret-keys' "
                               "(or pass --gpg-key-id)", "git")
        if key_id:
            wanted = key_id.upper().removeprefix("0X")
            if len(wanted) != 16:
                raise GitRepoError(f"invalid GPG key id length; expected 16, got {len(wanted)}", "git")
            if wanted not in keys:
                raise GitRepoError(f"no GPG keyring matching key id '{wanted}' found", "git")
            self.key_id = wanted
        else:
            self.key_id = keys[0]
        probe = self._gpg("--local-user", self.key_id, "--detach-sign", "--armor", input=b"fluxpy")
        if probe.returncode != 0:
            raise GitRepoError("unable to decrypt GPG private key: check --gpg-passphrase ("
                               + _last_line(probe.stderr.decode(errors="replace")) + ")", "git")
        self.program = self.home / "gpg-program"
        self.program.write_text("#!/bin/sh\nexec gpg --batch --no-tty --pinentry-mode loopback "
                                f"--passphrase-file '{self.home / 'passphrase'}' \"$@\"\n")
        os.chmod(self.program, 0o700)

    def config(self) -> list[tuple[str, str]]:
        return [("gpg.program", str(self.program)), ("user.signingkey", self.key_id), ("commit.gpgsign", "true")]

    def env(self) -> dict[str, str]:
        return {"GNUPGHOME": str(self.home)}

    def close(self) -> None:
        if self.home.exists():
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(self.home)},
                               capture_output=True, timeout=10)
            shutil.rmtree(self.home, ignore_errors=True)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1].removeprefix("gpg: ") if lines else "gpg failed"


# ------------------------------------------------------------------------------------------ the clone


@dataclasses.dataclass(frozen=True)
class PushResult:
    """What a push did: the branch and the commit it now points at."""

    branch: str
    commit: str


class Checkout:
    """A clone of one branch in a private temporary directory; :meth:`close` removes it.

    ``branch`` need not exist: an empty repository starts it from nothing, a repository without it starts
    it from the default branch (``created`` tells).
    """

    def __init__(self, url: str, branch: str, credentials: Credentials | None = None, *,
                 author_name: str = "Flux", author_email: str = "", signer: GPGSigner | None = None,
                 timeout: float = DEFAULT_TIMEOUT, workdir: str | os.PathLike | None = None):
        self.url, self.branch = url, branch
        self.display_url = redact_url(url)
        self.credentials = credentials or Credentials()
        self.author_name, self.author_email, self.signer = author_name, author_email, signer
        self.timeout = timeout
        self.created = False
        self.empty = False
        self.base = ""
        self._tmp = Path(tempfile.mkdtemp(prefix="fluxpy-bootstrap-", dir=workdir))
        self.path = self._tmp / "repo"
        self._auth = None
        self._env: dict[str, str] = {}
        self.repo = None

    # ------------------------------------------------------------------ environment

    def _environment(self) -> dict[str, str]:
        """git's environment: our credentials and configuration, no user/system configuration, no prompts."""
        if self._env:
            return self._env
        data = self.credentials.secret_data(self.url)
        scheme = urllib.parse.urlsplit(self.url).scheme
        if scheme not in ("http", "https", "ssh"):
            raise GitRepoError(f"unsupported URL scheme {scheme!r} in {self.display_url}: use ssh://, https:// "
                               "or http://", "git")
        if scheme == "ssh" and not data.get("identity"):
            env = self._agent_environment()
        else:
            from controllers.lib.gitauth import AuthOptionsError, GitAuth

            try:
                self._auth = GitAuth(self.url, data)
            except AuthOptionsError as exc:
                raise GitRepoError(f"invalid credentials for {self.display_url}: {exc}", "auth") from None
            env = dict(self._auth.environment(self.timeout))
            for i in range(int(env.get("GIT_CONFIG_COUNT") or 0)):
                if env.get(f"GIT_CONFIG_KEY_{i}") == "http.sslCAInfo":
                    # GitPython passes our environment on top of the user's: their $GIT_SSL_CAINFO would win
                    env["GIT_SSL_CAINFO"] = env[f"GIT_CONFIG_VALUE_{i}"]
        config = [("user.name", self.author_name), ("user.email", self.author_email)]
        if self.signer is not None:
            config += self.signer.config()
            env.update(self.signer.env())
        start = int(env.get("GIT_CONFIG_COUNT") or 0)
        for i, (key, value) in enumerate(config, start):
            env[f"GIT_CONFIG_KEY_{i}"], env[f"GIT_CONFIG_VALUE_{i}"] = key, value
        env["GIT_CONFIG_COUNT"] = str(start + len(config))
        env.update(GIT_AUTHOR_NAME=self.author_name, GIT_AUTHOR_EMAIL=self.author_email,
                   GIT_COMMITTER_NAME=self.author_name, GIT_COMMITTER_EMAIL=self.author_email)
        self._env = env
        return env

    def _agent_environment(self) -> dict[str, str]:
        """SSH with the user's own keys and known_hosts (no prompts: BatchMode)."""
        env = {k: v for k, v in os.environ.items()
               if k in ("PATH", "LANG", "TZ", "TMPDIR", "HOME", "SSH_AUTH_SOCK", "USER", "LOGNAME")}
        env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL="/dev/null", GIT_TERMINAL_PROMPT="0", LC_ALL="C",
                   GIT_SSH_COMMAND=f"ssh -o BatchMode=yes -o ConnectTimeout={max(1, int(self.timeout))}")
        return env

    def _redact(self, text: str) -> str:
        return self._auth.redact(text) if self._auth is not None else text

    def _git(self, *args: str, cwd: Path | None = None, what: str, env: dict[str, str] | None = None) -> str:
        """Run ``git args`` through GitPython; GitRepoError (classified, credentials redacted) on failure."""
        import git

        runner = git.Git(str(cwd or self.path)) if (cwd or self.repo is None) else self.repo.git
        try:
            return runner.execute(["git", *args], env={**self._environment(), **(env or {})},
                                  kill_after_timeout=self.timeout, with_extended_output=False)
        except git.GitCommandError as exc:
            raise self._classify(what, str(exc.stderr or exc.stdout or exc)) from None

    def _classify(self, what: str, stderr: str) -> GitRepoError:
        lines = [re.sub(r"^\s*(stderr: )?'?(fatal|error): ", "", line).strip(" '")
                 for line in stderr.splitlines() if line.strip()]
        lines = [line for line in lines if not line.startswith(("hint:", "warning:"))
                 and "please make sure you have the correct access rights" not in line.lower()
                 and line.lower() != "and the repository exists."]
        detail = self._redact("; ".join(lines) or "git failed")
        lowered = detail.lower()
        if any(p in lowered for p in _AUTH):
            return GitRepoError(f"{what}: {detail}: the Git host refused the credentials; check the token, password "
                                "or key and that it has access to the repository", "auth")
        if any(p in lowered for p in _UNREACHABLE):
            return GitRepoError(f"{what}: {detail}: cannot reach the Git host; check the URL and that the server "
                                "is up and reachable from here", "unreachable")
        if any(p in lowered for p in _NOT_FOUND):
            return GitRepoError(f"{what}: {detail}: check the repository URL (and that the credentials can see "
                                "the repository)", "not-found")
        if "timed out" in lowered or "killed" in lowered:
            return GitRepoError(f"{what}: timed out after {self.timeout:.0f}s; check that the Git host is reachable",
                                "unreachable")
        return GitRepoError(f"{what}: {detail}", "git")

    # ------------------------------------------------------------------ clone

    def clone(self) -> "Checkout":
        """Fetch the branch (or note that it must be created) and check it out."""
        import git

        what = f"failed to clone {self.display_url}"
        self.repo = git.Repo.init(str(self.path), mkdir=True)
        self._git("symbolic-ref", "HEAD", f"refs/heads/{self.branch}", what=what)
        self._git("remote", "add", "origin", self.url, what=what)
        refs = self.ls_remote(what=what)
        heads = {name.removeprefix("refs/heads/"): sha for name, sha in refs.items() if name.startswith("refs/heads/")}
        if not heads:
            self.empty = True
            return self
        if self.branch in heads:
            self._git("fetch", "--no-tags", "origin", f"+refs/heads/{self.branch}:refs/remotes/origin/{self.branch}",
                      what=what)
            self._git("checkout", "-q", "-B", self.branch, f"refs/remotes/origin/{self.branch}", what=what)
            self.base = heads[self.branch]
            return self
        default = refs.get("HEAD@symref", "") or ("main" if "main" in heads else sorted(heads)[0])
        self._git("fetch", "--no-tags", "origin", f"+refs/heads/{default}:refs/remotes/origin/{default}", what=what)
        self._git("checkout", "-q", "-B", self.branch, f"refs/remotes/origin/{default}", what=what)
        self.created = True
        self.base = heads[default]
        return self

    def ls_remote(self, *, what: str = "") -> dict[str, str]:
        """The remote's references (``refs/...`` → hash; ``HEAD@symref`` → the default branch's name)."""
        out = self._git("ls-remote", "--symref", "origin", what=what or f"failed to list {self.display_url}")
        refs: dict[str, str] = {}
        for line in out.splitlines():
            if line.startswith("ref: "):
                target, _, name = line[5:].partition("\t")
                if name == "HEAD":
                    refs["HEAD@symref"] = target.removeprefix("refs/heads/")
                continue
            sha, _, name = line.partition("\t")
            if name and not name.endswith("^{}"):
                refs[name] = sha
        return refs

    def same_tree_as(self, branch: str) -> bool:
        """Whether remote ``branch`` exists and holds exactly the checked out files (same tree)."""
        if not self.ls_remote().get(f"refs/heads/{branch}"):
            return False
        what = f"failed to fetch branch {branch!r} of {self.display_url}"
        self._git("fetch", "--no-tags", "origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}", what=what)
        theirs = self._git("rev-parse", f"refs/remotes/origin/{branch}^{{tree}}", what=what).strip()
        return theirs == self._git("rev-parse", "HEAD^{tree}", what=what).strip()

    def remote_head(self, branch: str | None = None) -> str:
        """The commit the remote branch points at now ("" when it does not exist)."""
        return self.ls_remote().get(f"refs/heads/{branch or self.branch}", "")

    @property
    def head(self) -> str:
        """The checked out commit ("" before the first commit)."""
        try:
            return self._git("rev-parse", "--verify", "-q", "HEAD", what="rev-parse").strip()
        except GitRepoError:
            return ""

    # ------------------------------------------------------------------ files

    def _resolve(self, relative: str) -> Path:
        """The absolute path of a repository-relative path; it must stay inside the clone (symlinks too)."""
        root = os.path.realpath(self.path)
        target = os.path.realpath(os.path.join(root, relative))
        if target != root and not target.startswith(root + os.sep) or "/.git/" in f"/{relative}/":
            raise GitRepoError(f"refusing to write {relative!r}: it resolves outside the repository "
                               "(a symlink in the repository?)", "git")
        return Path(target)

    def read(self, relative: str) -> str | None:
        path = self._resolve(relative)
        try:
            return path.read_text()
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            return None
        except UnicodeDecodeError:
            return None

    def exists(self, relative: str) -> bool:
        return self._resolve(relative).exists()

    def walk(self, directory: str) -> Iterator[tuple[str, str | None]]:
        """``(path relative to directory, text)`` of files under ``directory``; sub-directories holding a
        kustomization file come as ``(path, None)`` and are not descended into (Flux's scan)."""
        from manifestgen.sync import KUSTOMIZATION_FILES

        base = self._resolve(directory)
        if not base.is_dir():
            return
        for root, dirs, files in os.walk(base):
            dirs.sort()
            rel_root = os.path.relpath(root, base)
            for d in list(dirs):
                if d == ".git":
                    dirs.remove(d)
                    continue
                if any((Path(root) / d / k).exists() for k in KUSTOMIZATION_FILES):
                    dirs.remove(d)
                    yield (os.path.normpath(os.path.join(rel_root, d)), None)
            for name in sorted(files):
                try:
                    text = (Path(root) / name).read_text()
                except (UnicodeDecodeError, OSError):
                    continue
                yield (os.path.normpath(os.path.join(rel_root, name)), text)

    def write(self, files: Iterable[File]) -> list[str]:
        """Write files (creating directories); return the paths whose content changed."""
        changed = []
        for f in files:
            path = self._resolve(f.path)
            if path.is_dir():
                raise GitRepoError(f"cannot write {f.path}: a directory of that name exists in the repository", "git")
            if path.exists() and path.read_bytes() == f.content.encode():
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f.content)
            changed.append(f.path)
        return changed

    # ------------------------------------------------------------------ commit and push

    def commit(self, message: str, paths: Iterable[str]) -> str:
        """Stage ``paths`` and commit them; "" when nothing changed (no empty commits)."""
        paths = list(paths)
        what = "failed to commit"
        if not paths:
            return ""
        self._git("add", "-A", "--", *paths, what=what)
        if not self._git("diff", "--cached", "--name-only", what=what).strip():
            return ""
        args = ["commit", "-q", "--no-verify", "-m", message]
        if self.signer is not None:
            args.insert(1, f"-S{self.signer.key_id}")
        self._git(*args, what="failed to commit" + (" (signing with the GPG key)" if self.signer else ""))
        return self.head

    def push(self, target: str | None = None, *, force: bool = False) -> PushResult:
        """Push HEAD to ``target`` (default: the cloned branch).

        GitRepoError kinds: ``non-fast-forward`` (the branch moved: clone again and redo), ``protected``
        (the host refused the update, e.g. branch protection), ``auth``, ``unreachable``, ``git``."""
        import git

        branch = target or self.branch
        what = f"failed to push to branch {branch!r} of {self.display_url}"
        refspec = f"{'+' if force else ''}HEAD:refs/heads/{branch}"
        try:
            out = self.repo.git.execute(["git", "push", "--porcelain", "origin", refspec], env=self._environment(),
                                        kill_after_timeout=self.timeout, with_extended_output=True,
                                        with_exceptions=False)
        except git.GitCommandError as exc:  # pragma: no cover - with_exceptions=False
            raise self._classify(what, str(exc.stderr)) from None
        status, stdout, stderr = out
        rejected = [line for line in stdout.splitlines() if line.startswith("!")]
        if status == 0 and not rejected:
            return PushResult(branch, self.head)
        remote_lines = [line.removeprefix("remote:").strip() for line in stderr.splitlines()
                        if line.startswith("remote:") and line.removeprefix("remote:").strip()]
        remote_text = self._redact("; ".join(remote_lines))
        summary = rejected[0].split("\t")[-1] if rejected else ""
        if "[rejected]" in summary and ("fetch first" in summary or "non-fast-forward" in summary):
            raise GitRepoError(f"{what}: the branch moved on the remote ({summary})", "non-fast-forward")
        if "[remote rejected]" in summary or "protected" in remote_text.lower() or \
                "pre-receive hook declined" in stderr.lower():
            reason = remote_text or summary
            raise GitRepoError(f"{what}: the Git host refused the update: {reason}", "protected")
        raise self._classify(what, stderr or stdout)

    # ------------------------------------------------------------------ lifetime

    def close(self) -> None:
        if self.repo is not None:
            with contextlib.suppress(Exception):
                self.repo.close()
        if self._auth is not None:
            self._auth.close()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "Checkout":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def with_retries(attempts: int, action: Callable[[int], object], *, on_retry: Callable[[GitRepoError], None],
                 kinds: tuple[str, ...] = ("non-fast-forward",), delay: float = 0.5):
    """Run ``action(attempt)``; when it raises a GitRepoError of one of ``kinds``, report it and run it
    again (``attempts`` in all)."""
    for attempt in range(1, attempts + 1):
        try:
            return action(attempt)
        except GitRepoError as exc:
            if exc.kind not in kinds or attempt == attempts:
                raise
            on_retry(exc)
            time.sleep(delay)
    raise AssertionError("unreachable")
