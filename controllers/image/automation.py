"""The image-automation-controller: ImageUpdateAutomation (``image.toolkit.fluxcd.io/v1``), as Flux 2.7's,
with commits people can trace and batch.

One run, as Flux's:

1. the ImagePolicies of the namespace matching ``policySelector`` that have a ``latestRef`` (an invalid
   selector stalls: InvalidPolicySelector); their refs become ``status.observedPolicies``;
2. the GitRepository of ``sourceRef`` (another kind stalls: InvalidSourceConfiguration; a blocked
   cross-namespace ref stalls: AccessDenied; a missing one is SourceManagerFailed) with its URL, secret,
   proxy and timeout; the checkout is ``git.checkout.ref``, else the GitRepository's ``ref``; the push
   branch ``git.push.branch``, else the checkout branch;
3. when the policies did not change and the remote still points at ``observedSourceRevision``, nothing is
   cloned; otherwise a shallow clone, the setters (:mod:`.setters`) on ``update.path``; no change is
   ``repository up-to-date``;
4. a commit — author ``git.commit.author``, message from ``messageTemplate`` (Go text/template,
   :mod:`controllers.lib.gotemplate`; data ``.AutomationObject``, ``.Changed`` (``.FileChanges``,
   ``.Objects``, ``.Changes``), ``.Values``), signed with ``signingKey`` (``git.asc``, ``passphrase``) —
   pushed to the push branch (with ``push.options``), then to ``push.refspec``; ``lastPushCommit``,
   ``lastPushTime`` and the event ``pushed commit '<short>' to branch '<branch>'`` + the message.

Beyond Flux:

- **only the marked values change** in a file (see :mod:`.setters`);
- **traceable commits**: trailers ``Image-Automation``, ``Image-Policy`` (one per policy, with the new
  image) and ``Image-Update`` (file, old → new) end the message, then one ``Co-authored-by`` per entry of
  ``git.commit.coAuthors``; ``git.commit.trailers: false`` leaves the message as the template made it;
- **batched commits**: with ``git.commit.batchWindow``, changes found are held (``status.pendingUpdatesSince``)
  until the window has passed since the first of them, then go into one commit;
- a push branch other than the checkout branch is rebuilt from the checkout at every change and
  force-pushed (Flux's GitForcePushBranch), so it always holds exactly one update commit on top of its base;
- a rejected non-fast-forward push is retried on a fresh checkout (up to 3 times); a protected branch is a
  GitOperationFailed condition that says so. Nothing is committed before the message renders;
- **pull-request mode**: ``git.push.pullRequest`` opens or keeps a pull/merge request from the push branch (its
  name may be a template, :func:`push_branch_name`) to the checkout branch (:mod:`.pullrequest`), linked
  from ``status.pullRequest``.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from controllers.api.duration import format_duration, parse_duration
from controllers.api.image import IMAGE_POLICY, IMAGE_UPDATE_AUTOMATION
from controllers.api.objects import dig
from controllers.api.source import GIT_REPOSITORY
from controllers.image import pullrequest, setters
from controllers.lib import acl, credentials, gotemplate
from controllers.lib.credentials import SecretError
from controllers.lib.git_client import CheckoutOptions, Commit, GitClient, GitError
from controllers.lib.gitauth import AuthOptionsError, GitAuth
from controllers.lib.index import ReferenceIndex
from controllers.lib.labels import selector_string
from controllers.runtime import predicates
from controllers.runtime.controller import ReconcileContext, Reconciler, Watch
from controllers.runtime.flags import NO_CROSS_NAMESPACE_REFS, add_option_flags, options_from_args
from controllers.runtime.kube import NotFound
from controllers.runtime.outcomes import RetryableError, StalledError, Success

READY_MESSAGE = "repository up-to-date"
DEFAULT_MESSAGE_TEMPLATE = "Update from image update automation"
GIT_OPERATION_FAILED, UPDATE_FAILED = "GitOperationFailed", "UpdateFailed"
INVALID_SOURCE_CONFIG, SOURCE_MANAGER_FAILED = "InvalidSourceConfiguration", "SourceManagerFailed"
INVALID_POLICY_SELECTOR, REMOVED_TEMPLATE_FIELD = "InvalidPolicySelector", "RemovedTemplateField"
INVALID_UPDATE_STRATEGY, ACCESS_DENIED = "InvalidUpdateStrategy", "AccessDenied"
INVALID_PUSH_BRANCH = "InvalidPushBranch"  # fluxpy: a push branch template that does not render a branch
PUSH_ATTEMPTS = 3
_REMOVED_FIELDS = {
    "can't evaluate field Updated in type source.TemplateData":
        "template uses removed '.Updated' field. Please use '.Changed' instead. See: "
        "https://fluxcd.io/flux/components/image/imageupdateautomations/#message-template",
    "can't evaluate field ImageResult in type update.Result":
        "template uses removed '.Changed.ImageResult' field. Please use '.Changed.FileChanges' or "
        "'.Changed.Objects' instead. See: https://fluxcd.io/flux/components/image/imageupdateautomations/"
        "#message-template",
}
_PROTECTED = ("protected branch", "gh006", "pre-receive hook declined", "not allowed to push")
_NON_FAST_FORWARD = ("non-fast-forward", "fetch first", "failed to update ref", "stale info")


@dataclasses.dataclass(frozen=True)
class Options:
    """The image-automation-controller's own settings (its flags)."""

    no_cross_namespace_refs: bool = False


FLAGS = (NO_CROSS_NAMESPACE_REFS,)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, Options, FLAGS)


def new_reconciler(args: argparse.Namespace) -> "ImageUpdateAutomationReconciler":
    """Factory for ``controllers.components`` (image-automation-controller)."""
    return ImageUpdateAutomationReconciler(options_from_args(Options, args, FLAGS))


# ------------------------------------------------------------------------------------------- template data

@dataclasses.dataclass(frozen=True)
class NamespacedName:
    Namespace: str
    Name: str
    go_type = "types.NamespacedName"

    def __str__(self) -> str:
        return f"{self.Namespace}/{self.Name}"


@dataclasses.dataclass
class TemplateData:
    AutomationObject: NamespacedName
    Changed: setters.Result
    Values: gotemplate.StringMap
    go_type = "source.TemplateData"


def push_branch_name(obj: dict) -> str:
    """``git.push.branch``; fluxpy renders one holding ``{{`` as a Go template (data ``.AutomationObject`` and
    ``.Values``; ``.Changed`` is empty: the branch is chosen before the update), e.g.
    ``flux/{{ .AutomationObject.Name }}-{{ .Values.env }}``. A template error or a name git refuses is Stalled
    (InvalidPushBranch)."""
    branch = dig(obj, "spec.git.push.branch") or ""
    if "{{" not in branch:
        return branch
    values = gotemplate.StringMap(dig(obj, "spec.git.commit.messageTemplateValues") or {})
    data = TemplateData(NamespacedName(obj["metadata"]["namespace"], obj["metadata"]["name"]), setters.Result(),
                        values)
    try:
        rendered = gotemplate.Template(branch, "push branch").execute(data).strip()
    except gotemplate.TemplateError as exc:
        raise StalledError(f"invalid spec.git.push.branch template: {exc}", reason=INVALID_PUSH_BRANCH) from None
    check = subprocess.run(["git", "check-ref-format", "--branch", rendered], capture_output=True, timeout=30)
    if not rendered or check.returncode != 0 or "<no value>" in rendered:
        raise StalledError(f"spec.git.push.branch template rendered {rendered!r}, which is not a valid branch name",
                           reason=INVALID_PUSH_BRANCH)
    return rendered


def commit_message(obj: dict, result: setters.Result) -> str:
    """The rendered ``messageTemplate``; StalledError for a removed field, RetryableError otherwise."""
    commit = dig(obj, "spec.git.commit") or {}
    source = commit.get("messageTemplate") or DEFAULT_MESSAGE_TEMPLATE
    data = TemplateData(NamespacedName(obj["metadata"]["namespace"], obj["metadata"]["name"]), result,
                        gotemplate.StringMap(commit.get("messageTemplateValues") or {}))
    try:
        template = gotemplate.Template(source, "commit message")
    except gotemplate.TemplateError as exc:
        raise RetryableError(f"failed to update source: unable to create commit message template from spec: {exc}",
                             reason=GIT_OPERATION_FAILED) from None
    try:
        return template.execute(data)
    except gotemplate.TemplateError as exc:
        for pattern, message in _REMOVED_FIELDS.items():
            if pattern in str(exc):
                raise StalledError(message, reason=REMOVED_TEMPLATE_FIELD) from None
        raise RetryableError(f"failed to update source: failed to run template from spec: {exc}",
                             reason=GIT_OPERATION_FAILED) from None


def trailers(obj: dict, result: setters.Result, values: dict[str, str]) -> list[str]:
    """The traceability trailers of a commit (see the module docstring)."""
    commit = dig(obj, "spec.git.commit") or {}
    lines = []
    if commit.get("trailers", True) is not False:
        meta = obj["metadata"]
        lines.append(f"Image-Automation: {meta['namespace']}/{meta['name']}")
        policies = sorted({":".join(c.Setter.split(":")[:2]) for c in result.Changes()})
        lines += [f"Image-Policy: {p.replace(':', '/', 1)} {values.get(p, '')}".rstrip() for p in policies]
        for file, objects in sorted(result.FileChanges.items()):
            for changes in objects.values():
                lines += [f"Image-Update: {file} {c.OldValue} -> {c.NewValue}" for c in changes]
    lines += [f"Co-authored-by: {who}" for who in commit.get("coAuthors") or []]
    return lines


def with_trailers(message: str, lines: list[str]) -> str:
    if not lines:
        return message
    return message.rstrip("\n") + "\n\n" + "\n".join(lines) + "\n"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _timestamp(value: str | None) -> float | None:
    try:
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


# ------------------------------------------------------------------------------------------------ git

@dataclasses.dataclass
class GitSource:
    """Where and how to check out and push (Flux's gitSrcCfg)."""

    url: str
    data: dict[str, bytes]
    proxy: str
    timeout: float
    checkout: dict
    push_branch: str
    switch_branch: bool
    signing_key: tuple[bytes, bytes | None] | None = None
    """``git.asc`` and ``passphrase`` of ``signingKey.secretRef``."""


@dataclasses.dataclass
class Pushed:
    commit: str
    branch: str
    message: str
    refspecs: list[str]

    def summary(self) -> str:
        """Flux's PushResult.Summary."""
        text = f"pushed commit '{self.commit[:7]}' to branch '{self.branch}'"
        if self.refspecs:
            text += " and refspecs '" + "', '".join(self.refspecs) + "'"
        return text + (f"\n{self.message}" if self.message else "")


class Signer:
    """A private GnuPG home holding the signing key of ``signingKey.secretRef`` (``git.asc``,
    ``passphrase``), and the git configuration that signs commits with it."""

    def __init__(self, armored: bytes, passphrase: bytes | None):
        self.home = Path(tempfile.mkdtemp(prefix="fluxpy-sign-"))
        os.chmod(self.home, 0o700)
        env = {"PATH": os.environ.get("PATH", ""), "GNUPGHOME": str(self.home), "LC_ALL": "C"}
        key = self.home / "key.asc"
        key.write_bytes(armored)
        proc = subprocess.run(["gpg", "--batch", "--import", "--import-options", "import-show", "--with-colons",
                               str(key)], env=env, capture_output=True, timeout=30,
                              input=None)
        key.unlink()
        fingerprints = [line.split(":")[9] for line in proc.stdout.decode().splitlines() if line.startswith("fpr:")]
        secret = subprocess.run(["gpg", "--batch", "--list-secret-keys", "--with-colons"], env=env,
                                capture_output=True, timeout=30).stdout.decode()
        if proc.returncode != 0 or not fingerprints or "sec:" not in secret:
            self.close()
            raise SecretError("failed to read signing key: the secret's 'git.asc' is not an armored OpenPGP "
                              "private key")
        self.fingerprint = fingerprints[0]
        passfile = self.home / "passphrase"
        passfile.write_bytes(passphrase or b"")
        program = self.home / "gpg"
        program.write_text("#!/bin/sh\n"
                           f'exec gpg --homedir "{self.home}" --batch --pinentry-mode loopback '
                           f'--passphrase-file "{passfile}" "$@"\n')
        program.chmod(0o700)
        self.program = str(program)

    def config(self) -> list[tuple[str, str]]:
        return [("gpg.program", self.program), ("user.signingKey", self.fingerprint), ("commit.gpgSign", "true")]

    def close(self) -> None:
        shutil.rmtree(self.home, ignore_errors=True)


class PushRejected(GitError):
    """The remote refused the push because its branch moved on (retry on a fresh checkout)."""


# ------------------------------------------------------------------------------------------- reconciler

def latest_ref_changed(old: dict, new: dict) -> bool:
    """An ImagePolicy selected another image (Flux's latestImageChangePredicate)."""
    return dig(new, "status.latestRef") is not None and dig(old, "status.latestRef") != dig(new, "status.latestRef")


class ImageUpdateAutomationReconciler(Reconciler):
    """Runs ImageUpdateAutomations (see the module docstring)."""

    kind = IMAGE_UPDATE_AUTOMATION

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.sources = ReferenceIndex()
        self.namespaces = ReferenceIndex()

    def watches(self) -> list[Watch]:
        return [
            Watch(GIT_REPOSITORY, lambda repo: self.sources.keys_for(
                (dig(repo, "metadata.namespace"), dig(repo, "metadata.name"))), predicate=predicates.generation_changed),
            Watch(IMAGE_POLICY, lambda policy: self.namespaces.keys_for(dig(policy, "metadata.namespace")),
                  predicate=latest_ref_changed),
        ]

    def finalize(self, ctx: ReconcileContext, obj: dict) -> None:
        self.sources.remove(ctx.key)
        self.namespaces.remove(ctx.key)

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        status = obj.setdefault("status", {})
        status["lastAutomationRunTime"] = _now()
        ns = obj["metadata"]["namespace"]
        self.namespaces.update(ctx.key, [ns])
        policies = self._policies(ctx, obj)
        observed = {p["metadata"]["name"]: _image_ref(p["status"]["latestRef"]) for p in policies}
        sync_needed = observed != (status.get("observedPolicies") or {})
        source = self._source(ctx, obj)
        pull_request = pullrequest.validate(obj, source.checkout.get("branch") or "", source.switch_branch)
        sync_needed = sync_needed or source.switch_branch or bool(dig(obj, "spec.git.push.refspec"))
        strategy = dig(obj, "spec.update.strategy") or "Setters"
        if strategy != "Setters":
            raise StalledError(f"update strategy '{strategy}' not supported", reason=INVALID_UPDATE_STRATEGY)
        auth = self._auth(obj, source)
        try:
            pushed, revision, pending = self._run(ctx, obj, source, auth, policies, sync_needed)
        finally:
            auth.close()
        status["observedSourceRevision"] = revision
        if pending is not None:
            return Success(pending[0], requeue_after=pending[1])
        status["observedPolicies"] = observed
        status.pop("pendingUpdatesSince", None)
        if pushed:
            status["lastPushCommit"], status["lastPushTime"] = pushed.commit, _now()
            ctx.event("Normal", "Succeeded", pushed.summary())
            if pull_request:
                status["pullRequest"], opened = pullrequest.open_or_keep(
                    ctx.kube, obj, pull_request, source.url, source.push_branch, source.checkout["branch"],
                    pushed.message)
                if opened:
                    opened_pr = status["pullRequest"]
                    ctx.event("Normal", "PullRequestOpened", f"opened pull request #{opened_pr['number']} from "
                                                             f"'{source.push_branch}': {opened_pr['url']}")
            return Success(READY_MESSAGE, notify=False)
        return Success(READY_MESSAGE)

    # ---------------------------------------------------------------- inputs

    def _policies(self, ctx: ReconcileContext, obj: dict) -> list[dict]:
        try:
            selector = selector_string(dig(obj, "spec.policySelector"))
        except ValueError as exc:
            raise StalledError(f"failed to parse policy selector: {exc}", reason=INVALID_POLICY_SELECTOR) from None
        items = ctx.kube.list(IMAGE_POLICY, obj["metadata"]["namespace"], label_selector=selector or None)["items"]
        return sorted((p for p in items if dig(p, "status.latestRef")), key=lambda p: p["metadata"]["name"])

    def _source(self, ctx: ReconcileContext, obj: dict) -> GitSource:
        ref = dig(obj, "spec.sourceRef") or {}
        own = obj["metadata"]["namespace"]
        ns, name = ref.get("namespace") or own, ref.get("name") or ""
        self.sources.update(ctx.key, [(ns, name)])
        kind = ref.get("kind") or "GitRepository"
        if kind != "GitRepository":
            raise StalledError(f"source kind '{kind}' not supported: invalid source configuration",
                               reason=INVALID_SOURCE_CONFIG)
        if not dig(obj, "spec.git"):
            raise StalledError("source kind 'GitRepository' necessitates field .spec.git: invalid source "
                               "configuration", reason=INVALID_SOURCE_CONFIG)
        try:
            acl.check_cross_namespace("GitRepository", ns, name, own, self.options.no_cross_namespace_refs)
        except acl.AccessDenied as exc:
            raise StalledError(str(exc).replace("cannot access", "can't access"), reason=ACCESS_DENIED) from None

        def failed(message: str) -> RetryableError:
            return RetryableError(f"failed configuring source manager: {message}", reason=SOURCE_MANAGER_FAILED)

        try:
            repo = ctx.kube.get(GIT_REPOSITORY, name, ns)
        except NotFound as exc:
            raise failed(f"referenced git repository does not exist: {exc.message}") from None
        spec = repo.get("spec") or {}
        provider = spec.get("provider") or "generic"
        if provider != "generic":
            raise StalledError(f"GitRepository provider '{provider}' is not supported by fluxpy's image "
                               "automation; use a secretRef", reason=INVALID_SOURCE_CONFIG)
        try:
            data = credentials.get_secret(ctx.kube, ns, spec["secretRef"]["name"]) if spec.get("secretRef") else {}
            proxy = ""
            if spec.get("proxySecretRef"):
                proxy_name = spec["proxySecretRef"]["name"]
                proxy = credentials.proxy_url(credentials.get_secret(ctx.kube, ns, proxy_name), f"{ns}/{proxy_name}")
            signing_key = self._signing_key(ctx, obj)
        except SecretError as exc:
            raise failed(str(exc)) from None
        checkout = dig(obj, "spec.git.checkout.ref") or spec.get("ref") or {}
        push = push_branch_name(obj)
        if push:
            switch = push != (checkout.get("branch") or ("master" if not checkout else ""))
        elif checkout.get("branch"):
            push, switch = checkout["branch"], False
        else:
            raise failed("push spec not provided, and cannot be inferred from .spec.git.checkout.ref or "
                         "GitRepository .spec.ref")
        try:
            timeout = parse_duration(spec["timeout"]) if spec.get("timeout") else 60.0
        except ValueError:
            timeout = 60.0
        return GitSource(spec.get("url") or "", data, proxy, timeout, checkout, push, switch, signing_key)

    @staticmethod
    def _signing_key(ctx: ReconcileContext, obj: dict) -> tuple[bytes, bytes | None] | None:
        name = dig(obj, "spec.git.commit.signingKey.secretRef.name")
        if not name:
            return None
        ns = obj["metadata"]["namespace"]
        data = credentials.get_secret(ctx.kube, ns, name)
        if "git.asc" not in data:
            raise SecretError(f"secret '{ns}/{name}' does not contain a 'git.asc' key")
        return data["git.asc"], data.get("passphrase")

    def _auth(self, obj: dict, source: GitSource) -> GitAuth:
        try:
            auth = GitAuth(source.url, source.data, proxy=source.proxy)
        except AuthOptionsError as exc:
            raise RetryableError(f"failed configuring source manager: failed to configure authentication "
                                 f"options: {exc}", reason=SOURCE_MANAGER_FAILED) from None
        author = dig(obj, "spec.git.commit.author") or {}
        email = author.get("email") or ""
        auth.config += [("user.name", author.get("name") or email), ("user.email", email),
                        ("commit.gpgSign", "false"), ("core.autocrlf", "false")]
        return auth

    # ---------------------------------------------------------------- the run

    def _run(self, ctx: ReconcileContext, obj: dict, source: GitSource, auth: GitAuth, policies: list[dict],
             sync_needed: bool) -> tuple[Pushed | None, str, tuple[str, float] | None]:
        """Check out, update, commit and push (retrying a rejected push on a fresh checkout).

        Returns (what was pushed, the source revision observed, a pending batch's (message, delay))."""
        observed = dig(obj, "status.observedSourceRevision") or ""
        for attempt in range(PUSH_ATTEMPTS):
            workdir = Path(tempfile.mkdtemp(prefix=f"{obj['metadata']['namespace']}-{source.push_branch}-"
                                               .replace("/", "-")))  # branches may hold slashes
            try:
                client = GitClient(source.url, auth, source.timeout)
                opts = CheckoutOptions.from_ref(source.checkout,
                                                last_observed="" if sync_needed or attempt else observed)
                commit = self._checkout(client, workdir, opts)
                if not commit.concrete:
                    return None, observed, None
                revision = commit.revision()
                if source.switch_branch:
                    client.run("checkout", "-q", "-B", source.push_branch, cwd=workdir)
                try:
                    result = setters.apply_setters(workdir, dig(obj, "spec.update.path") or "", policies)
                except (setters.SetterError, OSError) as exc:
                    raise RetryableError(f"failed to apply policies: {exc}", reason=UPDATE_FAILED) from None
                if not result.FileChanges:
                    return None, revision, None
                pending = self._batch_pending(obj, result)
                if pending:
                    return None, observed, pending
                values = setters.setter_values(policies)
                message = with_trailers(commit_message(obj, result), trailers(obj, result, values))
                try:
                    pushed = self._commit_and_push(obj, client, workdir, source, result, message)
                except PushRejected as exc:
                    if attempt + 1 < PUSH_ATTEMPTS:
                        ctx.log.info(f"push rejected, retrying on a fresh checkout: {exc.message}")
                        continue
                    raise RetryableError(f"failed to update source: {exc.message}",
                                         reason=GIT_OPERATION_FAILED) from None
                revision = revision if source.switch_branch else f"{source.push_branch}@sha1:{pushed.commit}"
                return pushed, revision, None
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
        raise AssertionError("unreachable")

    @staticmethod
    def _checkout(client: GitClient, workdir: Path, opts: CheckoutOptions) -> Commit:
        try:
            commit = client.checkout(workdir, opts)
        except GitError as exc:
            raise RetryableError(f"failed to checkout source: {exc.message}", reason=GIT_OPERATION_FAILED) from None
        if commit is None:
            raise RetryableError("failed to checkout source: the repository is empty", reason=GIT_OPERATION_FAILED)
        return commit

    @staticmethod
    def _batch_pending(obj: dict, result: setters.Result) -> tuple[str, float] | None:
        """While a ``batchWindow`` is open: the Ready message and seconds left (None: commit now)."""
        window = dig(obj, "spec.git.commit.batchWindow")
        if not window:
            return None
        try:
            seconds = parse_duration(window)
        except ValueError:
            return None
        status = obj["status"]
        since = _timestamp(status.get("pendingUpdatesSince"))
        if since is None:
            status["pendingUpdatesSince"] = _now()
            since = time.time()
        left = seconds - (time.time() - since)
        if left <= 0:
            return None
        count = len(result.Changes())
        return (f"batching {count} image update{'s' if count != 1 else ''} in {len(result.FileChanges)} "
                f"file{'s' if len(result.FileChanges) != 1 else ''}: commit in {format_duration(round(left))}",
                left)

    def _commit_and_push(self, obj: dict, client: GitClient, workdir: Path, source: GitSource,
                         result: setters.Result, message: str) -> Pushed:
        base = dig(obj, "spec.update.path") or ""
        files = [str(Path(base, f)) for f in result.FileChanges]
        try:
            signer = Signer(*source.signing_key) if source.signing_key else None
        except SecretError as exc:
            raise RetryableError(f"failed configuring source manager: {exc}", reason=SOURCE_MANAGER_FAILED) from None
        try:
            client.run("add", "--", *files, cwd=workdir)
            (workdir / ".git" / "FLUXPY_MSG").write_text(message)
            extra = []
            if signer:
                extra = [arg for k, v in signer.config() for arg in ("-c", f"{k}={v}")]
            try:
                client.run(*extra, "commit", "-q", "-F", str(workdir / ".git" / "FLUXPY_MSG"), cwd=workdir,
                           what="failed to commit")
            except GitError as exc:
                raise RetryableError(f"failed to update source: {exc.message}", reason=GIT_OPERATION_FAILED) from None
        finally:
            if signer:
                signer.close()
        sha = client.run("rev-parse", "HEAD", cwd=workdir).strip()
        options = [f"--push-option={k}={v}" if v else f"--push-option={k}"
                   for k, v in sorted((dig(obj, "spec.git.push.options") or {}).items())]
        target = f"HEAD:refs/heads/{source.push_branch}"
        self._push(client, workdir, options, f"+{target}" if source.switch_branch else target, source.push_branch)
        refspecs = []
        refspec = dig(obj, "spec.git.push.refspec")
        if refspec:
            if source.push_branch and not source.switch_branch:
                client.run("branch", "-f", source.push_branch, "HEAD", cwd=workdir)
            forced = f"+{refspec}" if source.switch_branch and not refspec.startswith("+") else refspec
            self._push(client, workdir, options, forced, refspec)
            refspecs.append(refspec)
        return Pushed(sha, source.push_branch, message, refspecs)

    @staticmethod
    def _push(client: GitClient, workdir: Path, options: list[str], refspec: str, what: str) -> None:
        try:
            client.run("push", *options, "origin", refspec, cwd=workdir,
                       what="failed to push to remote")
        except GitError as exc:
            lowered = exc.message.lower()
            if any(p in lowered for p in _PROTECTED):
                raise RetryableError(f"failed to update source: failed to push to remote: the branch '{what}' is "
                                     f"protected ({exc.message.split(': ', 1)[-1]}); push to another branch with "
                                     "spec.git.push.branch and merge through a pull request",
                                     reason=GIT_OPERATION_FAILED) from None
            if any(p in lowered for p in _NON_FAST_FORWARD) or "rejected" in lowered:
                raise PushRejected(exc.message) from None
            raise RetryableError(f"failed to update source: {exc.message}", reason=GIT_OPERATION_FAILED) from None


def _image_ref(ref: dict) -> dict:
    return {k: ref[k] for k in ("name", "tag", "digest") if ref.get(k)}
