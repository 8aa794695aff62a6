"""A read-only Git client over the real ``git`` binary, with Flux's checkout strategies and revision format.

Credentials come from :class:`controllers.lib.gitauth.GitAuth`.

:class:`GitClient` resolves a reference with ``git ls-remote``, fetches only what is needed (depth 1) and
checks it out; every call shares one deadline (``spec.timeout``) and a call running out of it is killed
with its whole process group. The checkout precedence is Flux's: commit, then name, tag, semver, branch
(default ``master``). With ``last_observed`` (the revision of the stored artifact) an unchanged remote
reference returns a *partial* commit without cloning.
"""
from __future__ import annotations

import dataclasses
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
from pathlib import Path

from controllers.lib.gitauth import GitAuth, redact_url
from controllers.lib.semver import InvalidConstraint, InvalidVersion, new_constraint, parse_version

DEFAULT_BRANCH = "master"
_SHORT_MESSAGE_LENGTH = 50
#: stderr phrases that mean the credentials were missing or refused
_AUTH_ERRORS = ("authentication required", "authorization failed", "permission denied (publickey",
                "host key verification failed", "no more authentication methods", "too many authentication failures",
                "load key", "invalid format")


class GitError(Exception):
    """A git operation failed; ``auth`` tells whether credentials were the cause."""

    def __init__(self, message: str, *, auth: bool = False):
        super().__init__(message)
        self.message, self.auth = message, auth



@dataclasses.dataclass
class Commit:
    """A checked out (or, when ``concrete`` is False, only observed) commit and the reference it came from."""

    hash: str
    reference: str = ""
    """Full reference name, e.g. ``refs/heads/main``, ``refs/tags/v1.0.0``; empty for a bare commit."""
    message: str = ""
    concrete: bool = True
    tag_object: str = ""
    """The annotated tag object the reference points to (for tag signature verification), if any."""
    tag_signed: bool = False
    """Whether that tag object carries a signature."""

    @property
    def digest(self) -> str:
        return f"sha1:{self.hash}"

    def revision(self) -> str:
        """``main@sha1:<hash>``, ``v1.2.3@sha1:<hash>``, or ``sha1:<hash>``."""
        parts = self.reference.split("/", 2)
        return f"{parts[2]}@{self.digest}" if len(parts) == 3 else self.digest

    def absolute_revision(self) -> str:
        """``refs/heads/main@sha1:<hash>`` (used when ``ref.name`` is set)."""
        return f"{self.reference}@{self.digest}" if self.reference else self.digest

    def short_message(self) -> str:
        subject = self.message.split("\n", 1)[0]
        return subject[:_SHORT_MESSAGE_LENGTH] + "..." if len(subject) > _SHORT_MESSAGE_LENGTH else subject


@dataclasses.dataclass
class CheckoutOptions:
    """What to check out (``spec.ref`` plus submodules and sparse directories)."""

    branch: str = ""
    tag: str = ""
    semver: str = ""
    name: str = ""
    commit: str = ""
    recurse_submodules: bool = False
    sparse: list[str] = dataclasses.field(default_factory=list)
    last_observed: str = ""
    """The revision of the stored artifact: when the remote reference still points there, skip the clone."""

    @classmethod
    def from_ref(cls, ref: dict | None, **kw) -> "CheckoutOptions":
        ref = ref or {}
        return cls(branch=ref.get("branch") or "", tag=ref.get("tag") or "", semver=ref.get("semver") or "",
                   name=ref.get("name") or "", commit=ref.get("commit") or "", **kw)


_BOILERPLATE = ("please make sure you have the correct access rights", "and the repository exists.")
#: what OpenSSH's stderr says of a host key it refused, without its banner and advice
_HOST_KEY_FINDINGS = re.compile(r"Host key for \S+ has changed|No \S+ host key is known for|Host key verification failed")


def _git_failure(stderr: str) -> str:
    """The useful lines of git's stderr (no hints, warnings or boilerplate), credential prompts translated
    to go-git's words (``authentication required``, ``authorization failed``)."""
    lines = [re.sub(r"^(fatal|error): ", "", line.strip()) for line in stderr.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("hint:", "warning:"))
             and not line.lower().startswith(_BOILERPLATE) and "askpass" not in line]
    if any(line.lower().startswith("host key verification failed") for line in lines):
        # OpenSSH's banner and advice about its known_hosts file (a temporary one): only what it found
        lines = [line for line in lines if _HOST_KEY_FINDINGS.match(line)]
    text = "; ".join(lines) or "git failed"
    lowered = text.lower()
    if "returned error: 403" in lowered:
        return "authorization failed"
    if "could not read username" in lowered or "could not read password" in lowered \
            or "authentication failed for" in lowered or "returned error: 401" in lowered:
        return "authentication required"
    return text


class GitClient:
    """Runs git for one URL with one :class:`GitAuth` under one deadline."""

    def __init__(self, url: str, auth: GitAuth, timeout: float):
        self.url, self.auth, self.timeout = url, auth, timeout
        self.deadline = time.monotonic() + timeout
        self.display_url = redact_url(url)
        self._list_error = f"unable to list remote for '{self.display_url}'"

    # ------------------------------------------------------------------ running git

    def run(self, *args: str, cwd: str | os.PathLike | None = None, what: str = "") -> str:
        """Run ``git args``; GitError (credentials redacted) on failure or when the deadline passes."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise GitError(f"{what}: context deadline exceeded" if what else "context deadline exceeded")
        proc = subprocess.Popen(["git", *args], cwd=cwd, env=self.auth.environment(left), stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            out, err = proc.communicate(timeout=left)
        except subprocess.TimeoutExpired:
            with _suppress_lookup():
                os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            message = f"context deadline exceeded (timeout {_seconds(self.timeout)})"
            raise GitError(f"{what}: {message}" if what else message) from None
        if proc.returncode != 0:
            detail = self.auth.redact(_git_failure(err.decode(errors="replace")))
            auth = any(phrase in detail.lower() for phrase in _AUTH_ERRORS)
            raise GitError(f"{what}: {detail}" if what else detail, auth=auth)
        return out.decode(errors="replace")

    def ls_remote(self, *patterns: str, what: str = "") -> dict[str, str]:
        """Remote references (``refs/...`` → commit hash, annotated tags peeled; ``name^{}`` keys dropped,
        the tag object itself under ``name^tag``)."""
        out = self.run("ls-remote", "--", self.url, *patterns,
                       what=what or self._list_error)
        refs: dict[str, str] = {}
        peeled: dict[str, str] = {}
        for line in out.splitlines():
            sha, _, name = line.partition("\t")
            if name.endswith("^{}"):
                peeled[name[:-3]] = sha
            elif name:
                refs[name] = sha
        for name, sha in peeled.items():
            refs[f"{name}^tag"] = refs.get(name, "")
            refs[name] = sha
        return refs

    # ------------------------------------------------------------------ checkout

    def checkout(self, directory: str | os.PathLike, opts: CheckoutOptions) -> Commit | None:
        """Check out per ``opts`` into ``directory`` (created); None for an empty repository."""
        clone_error = f"unable to clone '{self.display_url}'"
        # listing the remote is the whole job when checking an observed revision; otherwise part of a clone
        self._list_error = f"unable to list remote for '{self.display_url}'" if opts.last_observed else clone_error
        if opts.commit:
            return self._checkout_commit(directory, opts, clone_error)
        if opts.name:
            refs = self.ls_remote(opts.name)
            if opts.name not in refs:
                raise GitError(f"{clone_error}: couldn't find remote ref \"{opts.name}\"")
            return self._checkout_ref(directory, opts, opts.name, refs, clone_error, absolute=True)
        if opts.tag:
            ref = f"refs/tags/{opts.tag}"
            refs = self.ls_remote(ref)
            if ref not in refs:
                raise GitError(f"{clone_error}: couldn't find remote ref \"{ref}\"")
            return self._checkout_ref(directory, opts, ref, refs, clone_error)
        if opts.semver:
            return self._checkout_semver(directory, opts, clone_error)
        ref = f"refs/heads/{opts.branch or DEFAULT_BRANCH}"
        refs = self.ls_remote("HEAD", ref)
        if ref not in refs:
            if not refs and not self.ls_remote():
                return None  # an empty repository
            raise GitError(f"{clone_error}: couldn't find remote ref \"{ref}\"")
        return self._checkout_ref(directory, opts, ref, refs, clone_error)

    def _observed(self, opts: CheckoutOptions, ref: str, sha: str, absolute: bool) -> Commit | None:
        if not opts.last_observed:
            return None
        commit = Commit(sha, ref, concrete=False)
        current = commit.absolute_revision() if absolute else commit.revision()
        return commit if current == opts.last_observed else None

    def _checkout_ref(self, directory, opts: CheckoutOptions, ref: str, refs: dict[str, str], clone_error: str,
                      absolute: bool = False) -> Commit:
        observed = self._observed(opts, ref, refs[ref], absolute)
        if observed:
            return observed
        self._init(directory, opts)
        local = _local(ref)
        self.run("fetch", "--depth", "1", "--no-tags", "origin", f"+{ref}:{local}", cwd=directory, what=clone_error)
        return self._finish(directory, opts, local, ref, clone_error, local_ref=local)

    def _checkout_semver(self, directory, opts: CheckoutOptions, clone_error: str) -> Commit:
        try:
            constraint = new_constraint(opts.semver)
        except InvalidConstraint as exc:
            raise GitError(f"semver parse error: {exc}") from None
        refs = self.ls_remote("refs/tags/*")
        candidates = []
        for name, sha in refs.items():
            if not name.startswith("refs/tags/") or name.endswith("^tag"):
                continue
            tag = name[len("refs/tags/"):]
            try:
                version = parse_version(tag)
            except InvalidVersion:
                continue
            if constraint.check(version):
                candidates.append((version, tag, sha))
        if not candidates:
            raise GitError(f"no match found for semver: {opts.semver}")
        best = max(v for v, _, _ in candidates)
        tied = [c for c in candidates if c[0] == best]
        if len(tied) > 1:  # versions differing only in build metadata: the most recent commit wins, as Flux
            self._init(directory, opts)
            self.run("fetch", "--depth", "1", "--no-tags", "origin",
                     *[f"+refs/tags/{t}:{_local(f'refs/tags/{t}')}" for _, t, _ in tied], cwd=directory,
                     what=clone_error)
            times = {t: int(self.run("log", "-1", "--format=%ct", _local(f"refs/tags/{t}"), cwd=directory) or 0)
                     for _, t, _ in tied}
            tied.sort(key=lambda c: times[c[1]])
        _, tag, _ = tied[-1]
        ref = f"refs/tags/{tag}"
        return self._checkout_ref(directory, opts, ref, refs, clone_error)

    def _checkout_commit(self, directory, opts: CheckoutOptions, clone_error: str) -> Commit:
        ref = f"refs/heads/{opts.branch}" if opts.branch else ""
        self._init(directory, opts)
        if ref:
            refs = self.ls_remote(ref)
            if ref not in refs:
                raise GitError(f"{clone_error}: couldn't find remote ref \"{ref}\"")
            self.run("fetch", "--no-tags", "origin", f"+{ref}:{_local(ref)}", cwd=directory, what=clone_error)
            try:
                self.run("merge-base", "--is-ancestor", opts.commit, _local(ref), cwd=directory)
            except GitError:
                raise GitError(f"unable to resolve commit object for '{opts.commit}': object not found") from None
        else:
            try:
                self.run("fetch", "--depth", "1", "--no-tags", "origin", opts.commit, cwd=directory, what=clone_error)
            except GitError as exc:
                if exc.auth or "deadline" in exc.message or "unable to access" in exc.message \
                        or "Could not read from remote" in exc.message:
                    raise
                raise GitError(f"unable to resolve commit object for '{opts.commit}': object not found") from None
        return self._finish(directory, opts, opts.commit, ref, clone_error)

    def _init(self, directory, opts: CheckoutOptions) -> None:
        if (Path(directory) / ".git").is_dir():
            return
        Path(directory).mkdir(parents=True, exist_ok=True)
        self.run("init", "-q", str(directory))
        self.run("remote", "add", "origin", self.url, cwd=directory)
        if opts.sparse:
            dirs = [d[2:] if d.startswith("./") else d for d in opts.sparse]
            self.run("sparse-checkout", "set", "--no-cone", *[f"/{d.strip('/')}/" for d in dirs], cwd=directory)

    def _finish(self, directory, opts: CheckoutOptions, target: str, ref: str, clone_error: str,
                local_ref: str = "") -> Commit:
        self.run("checkout", "-q", "--force", "--detach", target, cwd=directory,
                 what=f"unable to checkout '{target}'")
        sha = self.run("rev-parse", "HEAD", cwd=directory).strip()
        message = self.run("log", "-1", "--format=%B", "HEAD", cwd=directory).rstrip("\n")
        tag_object, tag_signed = "", False
        if local_ref.startswith("refs/fluxpy/tags/") and \
                self.run("cat-file", "-t", local_ref, cwd=directory).strip() == "tag":
            tag_object = self.run("rev-parse", local_ref, cwd=directory).strip()
            content = self.run("cat-file", "tag", tag_object, cwd=directory)
            tag_signed = "-----BEGIN PGP SIGNATURE-----" in content or "-----BEGIN SSH SIGNATURE-----" in content
        if opts.recurse_submodules and (Path(directory) / ".gitmodules").exists():
            self.run("submodule", "update", "--init", "--recursive", "--depth", "1", cwd=directory,
                     what=f"{clone_error}: submodules")
        return Commit(sha, ref, message, tag_object=tag_object, tag_signed=tag_signed)


def _local(ref: str) -> str:
    """Where a fetched remote reference is kept (a namespace of its own: a fresh repository's unborn
    ``master`` must not collide with a fetched ``refs/heads/master``)."""
    return f"refs/fluxpy/{ref[len('refs/'):]}" if ref.startswith("refs/") else f"refs/fluxpy/{ref}"


def _seconds(value: float) -> str:
    return f"{value:g}s"


class _suppress_lookup:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return exc[0] is not None and issubclass(exc[0], ProcessLookupError)


# --------------------------------------------------------------------------- signatures

@dataclasses.dataclass
class Verified:
    """A good signature: the key id (16 hex digits of the signing primary key) that made it."""

    key_id: str


def verify_signature(directory: str | os.PathLike, what: str, obj: str, key_rings: list[bytes],
                     timeout: float = 30.0) -> Verified:
    """Verify the OpenPGP signature of a commit or tag object (``what``: ``commit`` | ``tag``) against
    armored key rings, with a private GnuPG home. GitError when unsigned or not signed by a given key."""
    with tempfile.TemporaryDirectory(prefix="fluxpy-gpg-") as home:
        os.chmod(home, 0o700)
        env = {"PATH": os.environ.get("PATH", ""), "GNUPGHOME": home, "LC_ALL": "C", "HOME": home,
               "GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"}
        for i, ring in enumerate(key_rings):
            keyfile = Path(home) / f"ring-{i}.asc"
            keyfile.write_bytes(ring)
            subprocess.run(["gpg", "--batch", "--quiet", "--import", str(keyfile)], env=env, capture_output=True,
                           timeout=timeout)
        verb = "verify-commit" if what == "commit" else "verify-tag"
        try:
            proc = subprocess.run(["git", verb, "--raw", obj], cwd=directory, env=env, capture_output=True,
                                  timeout=timeout)
        except subprocess.TimeoutExpired:
            raise GitError("signature verification timed out") from None
        status = proc.stderr.decode(errors="replace")
        valid = re.search(r"^\[GNUPG:\] VALIDSIG .* ([0-9A-F]{40,64})\s*$", status, re.M)
        if proc.returncode == 0 and valid:
            return Verified(valid.group(1)[-16:])
        if "[GNUPG:]" not in status and ("no signature" in status.lower() or not status.strip()):
            raise GitError("unable to verify payload as the provided signature is empty")
        raise GitError("unable to verify payload with any of the given key rings")
