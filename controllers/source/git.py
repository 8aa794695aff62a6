"""The GitRepository reconciler: clone with the real ``git``, verify, package, publish — as Flux's does.

One reconciliation, in Flux's order:

1. storage: old artifacts garbage-collected, a vanished or corrupt artifact dropped;
2. source: ``spec.url`` parsed (unparsable: Stalled, ``URLInvalid``), credentials read from
   ``spec.secretRef`` (``AuthenticationFailed`` when missing or invalid), the included GitRepositories'
   artifacts looked up (``IncludeUnavailable``, retried like a dependency), then the reference resolved and
   checked out (:mod:`controllers.lib.git_client`; ``GitOperationFailed``, also when the server refused the
   credentials, as Flux). When the remote still points at the stored revision and
   nothing that shapes the content changed (ignore, include, submodules, sparse checkout, verification),
   the reconciliation ends there: no clone, no new artifact;
3. verification of the commit and/or tag signature against the PGP keys of ``spec.verify.secretRef``
   (``SourceVerified``);
4. includes copied in (``fromPath`` → ``toPath``), symlinks inside the repository resolved, and the tree
   archived with the ``.sourceignore`` rules as ``<commit>.tar.gz``; the status records the artifact
   (revision ``main@sha1:<hash>``, ``v1.2.3@sha1:<hash>``, ``sha1:<hash>``, or ``refs/...@sha1:<hash>`` for
   ``ref.name``) and the inputs it was built from (``observedIgnore``, ``observedInclude``, ...);
5. a ``NewArtifact`` event ``stored artifact for commit '<subject>'``.

A failure leaves the last artifact in place and in the status.
"""
from __future__ import annotations

import argparse
import copy
import os
import re
import shutil
import tempfile
import urllib.parse
from pathlib import Path

from controllers.api.duration import parse_duration
from controllers.api.source import GIT_REPOSITORY
from controllers.runtime import conditions as cond
from controllers.runtime.kube import KubeError
from controllers.runtime.outcomes import Success
from controllers.lib import credentials
from controllers.source import common
from controllers.source.common import (ARTIFACT_IN_STORAGE, AUTHENTICATION_FAILED, FETCH_FAILED,
                                       GIT_OPERATION_FAILED, INCLUDE_UNAVAILABLE, SOURCE_VERIFIED,
                                       STORAGE_OPERATION_FAILED, SourceReconciler, fail)
from controllers.lib.credentials import SecretError
from controllers.lib.gitauth import AuthOptionsError, GitAuth, redact_url
from controllers.lib.git_client import CheckoutOptions, Commit, GitClient, GitError, verify_signature
from controllers.lib.ignore import source_filter
from controllers.lib.archive import UnsafeArchive, extract_tarball, secure_join

DEFAULT_TIMEOUT = 60.0
VERIFY_HEAD, VERIFY_TAG, VERIFY_TAG_AND_HEAD = "HEAD", "Tag", "TagAndHEAD"
_HOST_CHARS = re.compile(r"^[A-Za-z0-9\-._~!$&'()*+,;=:\[\]%]*$")


# --------------------------------------------------------------------------- small pure helpers

def parse_url_error(url: str) -> str | None:
    """Why Go's ``url.Parse`` would reject ``url`` (its wording), or None when it parses."""
    quoted = f'parse "{redact_url(url)}"'
    if any(ord(c) < 0x20 or ord(c) == 0x7f for c in url):
        return f"{quoted}: net/url: invalid control character in URL"
    bad_escape = re.search(r"%(?![0-9A-Fa-f]{2})(.{0,2})", url)
    if bad_escape:
        return f'{quoted}: invalid URL escape "%{bad_escape.group(1)}"'
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", url) is None and url.split("/", 1)[0].count(":"):
        return f"{quoted}: first path segment in URL cannot contain colon"
    parts = urllib.parse.urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    hostname, port = host, ""
    if ":" in host and not host.endswith("]"):
        hostname, _, port = host.rpartition(":")
    if port and not port.isdigit():
        return f'{quoted}: invalid port ":{port}" after host'
    for char in hostname:
        if not _HOST_CHARS.match(char):
            return f'{quoted}: invalid character "{char}" in host name'
    return None


def verification_mode(spec: dict) -> str:
    """``spec.verify.mode`` as Flux reads it (anything else than Tag/TagAndHEAD means HEAD)."""
    mode = ((spec.get("verify") or {}).get("mode")) or ""
    return mode if mode in (VERIFY_HEAD, VERIFY_TAG, VERIFY_TAG_AND_HEAD) else VERIFY_HEAD


def requires_verification(obj: dict) -> bool:
    """Whether verification must run again: none recorded yet, or the mode now covers another object."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if not spec.get("verify"):
        return False
    observed, mode = status.get("sourceVerificationMode"), verification_mode(spec)
    if not observed:
        return True
    return (observed == VERIFY_TAG and mode in (VERIFY_HEAD, VERIFY_TAG_AND_HEAD)) or \
        (observed == VERIFY_HEAD and mode in (VERIFY_TAG, VERIFY_TAG_AND_HEAD))


def _include_key(include: dict) -> tuple:
    return ((include.get("repository") or {}).get("name"), include.get("fromPath") or "", include.get("toPath") or "")


def includes_differ(current: list[dict], observed: list[dict] | None) -> bool:
    """Flux's artifactSet.Diff: a different count, or an included revision not among the observed."""
    observed = observed or []
    if len(current) != len(observed):
        return True
    revisions = {a.get("revision") for a in observed}
    return any(a.get("revision") not in revisions for a in current)


def content_config_changed(obj: dict, includes: list[dict]) -> bool:
    """Whether anything besides the revision that shapes the artifact changed since it was built."""
    spec, status = obj.get("spec") or {}, obj.get("status") or {}
    if spec.get("ignore") != status.get("observedIgnore"):
        return True
    if bool(spec.get("recurseSubmodules")) != bool(status.get("observedRecurseSubmodules")):
        return True
    wanted, observed = spec.get("include") or [], status.get("observedInclude") or []
    if len(wanted) != len(observed) or requires_verification(obj):
        return True
    if list(spec.get("sparseCheckout") or []) != list(status.get("observedSparseCheckout") or []):
        return True
    included = status.get("includedArtifacts") or []
    if len(wanted) != len(includes) or len(wanted) != len(included):
        return True
    for incl, seen, stored, current in zip(wanted, observed, included, includes):
        if _include_key(incl) != _include_key(seen):
            return True
        if stored.get("revision") != current.get("revision") or stored.get("digest") != current.get("digest"):
            return True
    return False


def resolve_symlinks(root: Path) -> None:
    """Replace symlinks that point inside ``root`` by copies of their targets (the archive skips links);
    links that escape ``root`` or dangle are left (and so left out)."""
    root = root.resolve()
    links = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath, name)
            if path.is_symlink():
                target = Path(os.path.normpath(Path(dirpath, os.readlink(path))))
                real = target.resolve()
                if (real == root or root in real.parents) and (target == root or root in target.parents):
                    links.append((path, real))
    for path, target in reversed(links):
        if not target.exists():
            continue
        path.unlink()
        if target.is_dir():
            shutil.copytree(target, path, symlinks=False, ignore_dangling_symlinks=True)
        else:
            shutil.copy2(target, path)


def _remove_git_metadata(root: Path) -> None:
    """Drop ``.git`` directories and submodule ``.git`` files before archiving."""
    for dirpath, dirnames, filenames in os.walk(root):
        if ".git" in dirnames:
            shutil.rmtree(Path(dirpath, ".git"), ignore_errors=True)
            dirnames.remove(".git")
        if ".git" in filenames:
            Path(dirpath, ".git").unlink()


# --------------------------------------------------------------------------- the reconciler

class GitRepositoryReconciler(SourceReconciler):
    """Reconciles ``source.toolkit.fluxcd.io/v1`` GitRepositories (see the module docstring)."""

    kind = GIT_REPOSITORY
    conditions = common.source_conditions(STORAGE_OPERATION_FAILED, FETCH_FAILED, INCLUDE_UNAVAILABLE,
                                          common.ARTIFACT_OUTDATED, ARTIFACT_IN_STORAGE, SOURCE_VERIFIED)

    def reconcile(self, ctx, obj: dict) -> Success:
        old = copy.deepcopy(obj)
        common.begin(ctx, obj)
        common.check_stored_artifact(ctx, self.storage, obj)
        spec = obj.get("spec") or {}
        if cond.is_false(obj, SOURCE_VERIFIED):
            cond.delete(obj, SOURCE_VERIFIED)

        proxy = self._proxy(ctx, obj)
        url = spec.get("url", "")
        problem = parse_url_error(url)
        if problem:
            raise fail(obj, FETCH_FAILED, common.URL_INVALID, f"failed to parse url '{redact_url(url)}': {problem}",
                       stalled=True)
        data = self._auth_data(ctx, obj)
        includes = self._fetch_includes(ctx, obj)
        if includes_differ(includes, (obj.get("status") or {}).get("includedArtifacts")):
            message = "included artifacts differ from last observed includes"
            if (obj.get("status") or {}).get("includedArtifacts") is not None:
                cond.mark_true(obj, common.ARTIFACT_OUTDATED, "IncludeChange", message)
            common.progressive(ctx, obj, f"building artifact: {message}")
        cond.delete(obj, common.ARTIFACT_OUTDATED)

        try:
            auth = GitAuth(url, data, proxy=proxy)
        except AuthOptionsError as exc:
            raise fail(obj, FETCH_FAILED, AUTHENTICATION_FAILED,
                       f"failed to configure authentication options: {exc}") from None
        work = common.work_dir(obj)
        try:
            with auth:
                return self._reconcile_checkout(ctx, old, obj, auth, work / "repo", includes)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    # ------------------------------------------------------------------ steps

    def _reconcile_checkout(self, ctx, old: dict, obj: dict, auth: GitAuth, directory: Path,
                            includes: list[dict]) -> Success:
        spec = obj.get("spec") or {}
        timeout = parse_duration(spec["timeout"]) if spec.get("timeout") else DEFAULT_TIMEOUT
        client = GitClient(spec["url"], auth, timeout)
        absolute = bool((spec.get("ref") or {}).get("name"))
        opts = CheckoutOptions.from_ref(spec.get("ref"), recurse_submodules=bool(spec.get("recurseSubmodules")),
                                        sparse=list(spec.get("sparseCheckout") or []))
        artifact = common.artifact_of(obj)
        if artifact and cond.is_true(obj, ARTIFACT_IN_STORAGE):
            opts.last_observed = artifact.get("revision", "")
        commit = self._checkout(obj, client, directory, opts)
        revision = commit.absolute_revision() if absolute else commit.revision()

        if not commit.concrete:
            if not content_config_changed(obj, includes):
                ctx.log.info(f"no changes since last reconcilation: observed revision '{revision}'")
                cond.delete(obj, FETCH_FAILED)
                outcome = common.stored(obj)
                common.notify(ctx, old, obj, f"stored artifact for commit '{revision}'")
                return outcome
            opts.last_observed = ""
            commit = self._checkout(obj, client, directory, opts)
            revision = commit.absolute_revision() if absolute else commit.revision()
        cond.delete(obj, FETCH_FAILED)

        for path in opts.sparse:
            if not os.path.lexists(directory / path):
                raise fail(obj, FETCH_FAILED, GIT_OPERATION_FAILED,
                           f"failed to sparse checkout directories : sparse checkout dir '{path}' does not exist "
                           f"in repository: lstat {directory / path}: no such file or directory")
        self._verify(ctx, obj, directory, commit)

        if not artifact or artifact.get("revision") != revision:
            common.mark_outdated(ctx, obj, f"new upstream revision '{revision}'")
        self._copy_includes(obj, directory, includes)
        cond.delete(obj, INCLUDE_UNAVAILABLE)

        status = obj.get("status") or {}
        if artifact and artifact.get("revision") == revision \
                and not includes_differ(includes, status.get("includedArtifacts")) \
                and not content_config_changed(obj, includes):
            ctx.log.info(f"artifact up-to-date with remote revision: '{revision}'")
            outcome = common.stored(obj)
            common.notify(ctx, old, obj, f"stored artifact for commit '{commit.short_message()}'")
            return outcome

        self._archive(ctx, obj, directory, commit, revision, includes)
        outcome = common.stored(obj)
        common.notify(ctx, old, obj, f"stored artifact for commit '{commit.short_message()}'")
        return outcome

    def _checkout(self, obj: dict, client: GitClient, directory: Path, opts: CheckoutOptions) -> Commit:
        if directory.exists():
            shutil.rmtree(directory)
        try:
            commit = client.checkout(directory, opts)
        except GitError as exc:  # Flux's reason for every failed clone, the server's refusal of credentials too
            raise fail(obj, FETCH_FAILED, GIT_OPERATION_FAILED,
                       f"failed to checkout and determine revision: {exc.message}") from None
        if commit is None:
            raise fail(obj, FETCH_FAILED, "EmptyGitRepository", "git repository is empty")
        return commit

    def _proxy(self, ctx, obj: dict) -> str:
        ref = ((obj.get("spec") or {}).get("proxySecretRef") or {}).get("name")
        if not ref:
            return ""
        ns = obj["metadata"]["namespace"]
        try:
            address = credentials.proxy_url(credentials.get_secret(ctx.kube, ns, ref), f"{ns}/{ref}")
        except SecretError as exc:
            raise fail(obj, FETCH_FAILED, AUTHENTICATION_FAILED, f"failed to configure proxy options: {exc}") from None
        return address

    def _auth_data(self, ctx, obj: dict) -> dict[str, bytes]:
        spec, ns = obj.get("spec") or {}, obj["metadata"]["namespace"]
        name = (spec.get("secretRef") or {}).get("name")
        data: dict[str, bytes] = {}
        if name:
            try:
                data = credentials.get_secret(ctx.kube, ns, name)
            except SecretError as exc:
                raise fail(obj, FETCH_FAILED, AUTHENTICATION_FAILED, str(exc)) from None
        provider = spec.get("provider") or "generic"
        if provider == "github":
            if not name:
                raise fail(obj, FETCH_FAILED, common.INVALID_PROVIDER_CONFIGURATION,
                           "secretRef with github app data must be specified when provider is set to github",
                           stalled=True)
            raise fail(obj, FETCH_FAILED, common.INVALID_PROVIDER_CONFIGURATION,
                       "GitHub App authentication (provider 'github') is not supported by fluxpy", stalled=True)
        if provider != "generic":
            raise fail(obj, FETCH_FAILED, AUTHENTICATION_FAILED,
                       f"provider '{provider}' (workload identity) is not supported by fluxpy", stalled=True)
        if data.get("githubAppID"):
            raise fail(obj, FETCH_FAILED, common.INVALID_PROVIDER_CONFIGURATION,
                       f"secretRef '{ns}/{name}' has github app data but provider is not set to github")
        if spec.get("url", "").startswith("ssh://") and data.get("identity") and not data.get("password") \
                and _encrypted_key(data["identity"]):
            raise fail(obj, FETCH_FAILED, AUTHENTICATION_FAILED,
                       f"SSH identity key is encrypted but no 'password' field was provided in the secret "
                       f"'{ns}/{name}'")
        return data

    def _fetch_includes(self, ctx, obj: dict) -> list[dict]:
        artifacts = []
        ns = obj["metadata"]["namespace"]
        for include in (obj.get("spec") or {}).get("include") or []:
            name = (include.get("repository") or {}).get("name", "")
            try:
                dep = ctx.kube.get(GIT_REPOSITORY, name, ns)
            except KubeError as exc:
                raise common.wait_for(obj, INCLUDE_UNAVAILABLE, "NotFound",
                                      f"could not get resource for include '{name}': {exc.message}",
                                      ctx.requeue_dependency)
            artifact = common.artifact_of(dep)
            if not artifact:
                raise common.wait_for(obj, INCLUDE_UNAVAILABLE, "NoArtifact",
                                      f"no artifact available for include '{name}'", ctx.requeue_dependency)
            artifacts.append(copy.deepcopy(artifact))
        cond.delete(obj, INCLUDE_UNAVAILABLE)
        return artifacts

    def _verify(self, ctx, obj: dict, directory: Path, commit: Commit) -> None:
        spec, status, ns = obj.get("spec") or {}, obj.setdefault("status", {}), obj["metadata"]["namespace"]
        verify = spec.get("verify") or {}
        if not verify or not verify.get("mode"):
            status.pop("sourceVerificationMode", None)
            cond.delete(obj, SOURCE_VERIFIED)
            return
        secret = (verify.get("secretRef") or {}).get("name", "")
        try:
            rings = list(credentials.get_secret(ctx.kube, ns, secret).values())
        except SecretError as exc:
            detail = str(exc).split(": ", 1)[-1]
            raise fail(obj, SOURCE_VERIFIED, common.VERIFICATION_ERROR, f"PGP public keys secret error: {detail}") \
                from None
        mode = verification_mode(spec)
        targets = []  # (object type, object id, how messages name it, failure reason)
        if mode in (VERIFY_TAG, VERIFY_TAG_AND_HEAD):
            tag = commit.reference[len("refs/tags/"):] if commit.reference.startswith("refs/tags/") else ""
            if not tag:
                raise fail(obj, SOURCE_VERIFIED, "InvalidVerificationMode",
                           "cannot verify tag object's signature if a tag reference is not specified", stalled=True)
            if not commit.tag_signed:
                raise fail(obj, SOURCE_VERIFIED, "InvalidGitObject",
                           f"cannot verify signature of tag '{tag}' since it is not signed")
            targets.append(("tag", commit.tag_object, f"tag '{tag}'", "InvalidTagSignature"))
        if mode in (VERIFY_HEAD, VERIFY_TAG_AND_HEAD):
            targets.append(("commit", commit.hash, f"commit '{commit.hash}'", "InvalidCommitSignature"))
        lines = []
        for object_type, object_id, label, reason in targets:
            try:
                key = verify_signature(directory, object_type, object_id, rings).key_id
            except GitError as exc:
                raise fail(obj, SOURCE_VERIFIED, reason, f"signature verification of {label} failed: {exc.message}") \
                    from None
            lines.append(f"{label} with key '{key}'")
        message = "verified signature of\n\t- " + "\n\t- ".join(lines)
        status["sourceVerificationMode"] = mode
        cond.mark_true(obj, SOURCE_VERIFIED, common.SUCCEEDED, message)
        ctx.log.info(message)

    def _copy_includes(self, obj: dict, directory: Path, includes: list[dict]) -> None:
        for include, artifact in zip((obj.get("spec") or {}).get("include") or [], includes):
            name = (include.get("repository") or {}).get("name", "")
            from_path, to_path = include.get("fromPath") or "", include.get("toPath") or name
            target = secure_join(directory, to_path)
            try:
                with tempfile.TemporaryDirectory(prefix="include-") as tmp:
                    extract_tarball(self.storage.local_path(artifact["path"]), tmp)
                    source = secure_join(Path(tmp), from_path)
                    if not source.exists():
                        raise FileNotFoundError(f"no such file or directory: '{from_path}'")
                    if target.is_dir() and not target.is_symlink():
                        shutil.rmtree(target)
                    elif target.exists() or target.is_symlink():
                        target.unlink()
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.move(str(source), str(target))
            except (OSError, ValueError, UnsafeArchive) as exc:
                raise fail(obj, STORAGE_OPERATION_FAILED, "CopyFailure",
                           f"failed to copy '{name}' include from {from_path} to {to_path}: {exc}") from None

    def _archive(self, ctx, obj: dict, directory: Path, commit: Commit, revision: str, includes: list[dict]) -> None:
        spec, meta_ = obj.get("spec") or {}, obj["metadata"]
        path = self.storage.artifact_path(self.kind.kind, meta_["namespace"], meta_["name"], f"{commit.hash}.tar.gz")
        with self.storage.lock(self.kind.kind, meta_["namespace"], meta_["name"]):
            try:
                resolve_symlinks(directory)
            except OSError as exc:
                raise fail(obj, STORAGE_OPERATION_FAILED, common.ARCHIVE_OPERATION_FAILED,
                           f"failed to resolve symlinks in repository: {exc}") from None
            _remove_git_metadata(directory)
            try:
                artifact = self.storage.archive(path, directory, ignore=source_filter(directory, spec.get("ignore")))
            except (OSError, ValueError) as exc:
                raise fail(obj, STORAGE_OPERATION_FAILED, common.ARCHIVE_OPERATION_FAILED,
                           f"unable to archive artifact to storage: {exc}") from None
        common.record_artifact(obj, artifact, revision, {
            "includedArtifacts": includes or None,
            "observedIgnore": spec.get("ignore"),
            "observedRecurseSubmodules": True if spec.get("recurseSubmodules") else None,
            "observedInclude": copy.deepcopy(spec.get("include")) or None,
            "observedSparseCheckout": list(spec.get("sparseCheckout") or []) or None,
        })
        try:
            self.storage.garbage_collect(self.kind.kind, meta_["namespace"], meta_["name"], path)
        except (OSError, ValueError) as exc:
            ctx.log.error("garbage collection of artifacts failed", error=exc)


def _encrypted_key(identity: bytes) -> bool:
    """Whether a private key needs a passphrase (OpenSSH or PEM format)."""
    from cryptography.hazmat.primitives import serialization

    loaders = (serialization.load_ssh_private_key, serialization.load_pem_private_key)
    for load in loaders:
        try:
            load(identity, None)
            return False
        except TypeError:
            return True  # "Password was not given but private key is encrypted"
        except Exception:  # noqa: BLE001 - not this format (or an unsupported key type): try the next
            continue
    return False


def new_reconciler(args: argparse.Namespace) -> GitRepositoryReconciler:
    """The factory ``controllers.components`` loads for the source-controller."""
    return GitRepositoryReconciler.from_args(args)


