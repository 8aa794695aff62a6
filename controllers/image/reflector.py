"""The image-reflector-controller: ImageRepository (scan a registry's tags) and ImagePolicy (select the
latest), ``image.toolkit.fluxcd.io/v1``, as Flux 2.7's controller does.

**ImageRepository.** ``spec.image`` parses as an image name without scheme or tag (else Stalled,
ImageURLInvalid); credentials come from ``secretRef`` and the image pull secrets of ``serviceAccountName``,
TLS from ``certSecretRef``, a proxy from ``proxySecretRef`` (AuthenticationFailed when one cannot be read).
A scan runs only when due — ``first scan``, ``reconcile requested``, ``new image name``, ``updated exclusion
list``, ``no tags in database``, ``triggered by interval`` — lists every tag (``/v2/`` ping, token flow,
``Link`` pages), drops those matching ``exclusionList`` (default ``^.*\\.sig$``) and stores the rest, newest
first, in the controller's tag database (:mod:`.tags`). Ready: ``successful scan: found N tags with
checksum C``; a failed scan is ReadOperationFailed (``scan failed: …``). ``provider`` aws/azure/gcp stalls:
cloud workload identity is not supported by fluxpy.

**ImagePolicy.** Reads the ImageRepository (``--no-cross-namespace-refs`` and its ``accessFrom`` apply),
its tags from the database, and picks the latest with :class:`.policy.Policy`. ``digestReflectionPolicy``
IfNotPresent looks the digest up once per tag, Always at every ``interval``. ``status.latestRef`` and
``observedPreviousRef`` follow Flux; Ready: ``Latest image tag for <image> resolved to <tag>`` (``with
digest …``, ``(previously …)``). An invalid policy stalls (InvalidPolicy); a repository without tags yet
waits (DependencyNotReady). A policy is re-run when its repository's scan revision changes.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import ssl
import time
from pathlib import Path

from controllers.api.duration import format_duration, parse_duration
from controllers.api.image import IMAGE_POLICY, IMAGE_REPOSITORY
from controllers.api.meta import RECONCILE_REQUEST_ANNOTATION
from controllers.api.objects import dig
from controllers.image import tags as tagdb
from controllers.image.policy import Policy, PolicyError
from controllers.lib import acl
from controllers.lib.credentials import SecretError
from controllers.lib.index import ReferenceIndex
from controllers.lib.goregex import InvalidExpression, compile_go
from controllers.lib.oci import pullsecrets
from controllers.lib.oci.registry import Credentials, OCIError, Reference, RegistryClient
from controllers.runtime.controller import ReconcileContext, Reconciler, Watch
from controllers.runtime.flags import NO_CROSS_NAMESPACE_REFS, OptionFlag, add_option_flags, options_from_args
from controllers.runtime.kube import NotFound
from controllers.runtime.outcomes import RetryableError, StalledError, Success, Waiting
from controllers.runtime.settings import state_path

COMPONENT = "image-reflector-controller"
IMAGE_URL_INVALID, AUTHENTICATION_FAILED = "ImageURLInvalid", "AuthenticationFailed"
READ_OPERATION_FAILED, INVALID_POLICY = "ReadOperationFailed", "InvalidPolicy"
INTERVAL_NOT_CONFIGURED, ACCESS_DENIED, FAILURE = "IntervalNotConfigured", "AccessDenied", "Failure"
DEPENDENCY_NOT_READY = "DependencyNotReady"
DEFAULT_EXCLUSION_LIST = (r"^.*\.sig$",)
LATEST_TAGS_COUNT = 10
DATABASE_FILE = "tags.sqlite"


@dataclasses.dataclass(frozen=True)
class Options:
    """The image-reflector-controller's own settings (its flags)."""

    storage_path: str = ""
    """Where the tag database lives (default: /data in a Pod, else <state dir>/storage/<component>)."""
    no_cross_namespace_refs: bool = False


FLAGS = (
    OptionFlag("storage_path", "--storage-path", "Where to store the persistent database of image metadata."),
    NO_CROSS_NAMESPACE_REFS,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_option_flags(parser, Options, FLAGS)


def _database(args: argparse.Namespace) -> tagdb.TagDatabase:
    path = Path(getattr(args, "storage_path", "") or state_path(COMPONENT))
    return tagdb.open_database(path / DATABASE_FILE)


def new_repository_reconciler(args: argparse.Namespace) -> "ImageRepositoryReconciler":
    """Factory for ``controllers.components`` (image-reflector-controller)."""
    return ImageRepositoryReconciler(_database(args))


def new_policy_reconciler(args: argparse.Namespace) -> "ImagePolicyReconciler":
    """Factory for ``controllers.components`` (image-reflector-controller)."""
    return ImagePolicyReconciler(_database(args), options_from_args(Options, args, FLAGS))


# ------------------------------------------------------------------------------------------ shared helpers

def parse_image(image: str) -> Reference:
    """``registry.ParseImageReference``: an image name without scheme or tag → its repository Reference;
    ValueError with Flux's message."""
    if "://" in image:
        raise ValueError(f"image '{image}' should not include URL scheme; remove '{image.split('://')[0]}://'")
    try:
        ref = Reference.parse(image)
    except OCIError as exc:
        raise ValueError(str(exc)) from None
    name = image[len(ref.registry):] if image.startswith(ref.registry) else image
    if ":" in name:
        raise ValueError(f"image '{image}' should not include a tag; remove ':{name.split(':')[1]}'")
    return Reference(ref.registry, ref.repository)


def exclusion_list(obj: dict) -> list[str]:
    return list(dig(obj, "spec.exclusionList") or DEFAULT_EXCLUSION_LIST)


def _unsupported_provider(obj: dict, what: str = "") -> StalledError | None:
    provider = dig(obj, "spec.provider") or "generic"
    if provider == "generic":
        return None
    return StalledError(f"failed to configure authentication options: provider '{provider}'{what}: cloud "
                        "workload identity is not supported by fluxpy; use the 'generic' provider with "
                        "spec.secretRef", reason=AUTHENTICATION_FAILED)


@dataclasses.dataclass
class RegistryAccess:
    """How to reach an ImageRepository's registry (its credentials, TLS, proxy, timeout)."""

    reference: Reference
    credentials: Credentials | None
    ssl_context: ssl.SSLContext | None
    proxy: str
    insecure: bool
    timeout: float

    @classmethod
    def of(cls, ctx: ReconcileContext, repo: dict, reference: Reference) -> "RegistryAccess":
        """From the repository's Secrets; SecretError when one cannot be read."""
        spec, ns = repo["spec"], repo["metadata"]["namespace"]
        creds = pullsecrets.registry_credentials(ctx.kube, ns, reference,
                                                 secret_name=dig(spec, "secretRef.name") or "",
                                                 service_account=spec.get("serviceAccountName") or "")
        return cls(reference, creds, pullsecrets.tls_context(ctx.kube, ns, dig(spec, "certSecretRef.name") or ""),
                   pullsecrets.proxy_address(ctx.kube, ns, dig(spec, "proxySecretRef.name") or ""),
                   bool(spec.get("insecure")), _timeout(repo))

    def client(self) -> RegistryClient:
        return RegistryClient(self.reference.registry, credentials=self.credentials, insecure=self.insecure,
                              ssl_context=self.ssl_context, timeout=self.timeout, proxy=self.proxy)


def _access(ctx: ReconcileContext, repo: dict, reference: Reference) -> RegistryAccess:
    try:
        return RegistryAccess.of(ctx, repo, reference)
    except (SecretError, OCIError) as exc:
        raise RetryableError(f"failed to configure authentication options: {exc}",
                             reason=AUTHENTICATION_FAILED) from None


def _seconds(value: str | None, default: float) -> float:
    try:
        return parse_duration(value) if value else default
    except ValueError:
        return default


def _timeout(repo: dict) -> float:
    """``spec.timeout``, else the interval (Flux's GetTimeout)."""
    interval = _seconds(dig(repo, "spec.interval"), 600.0)
    return _seconds(dig(repo, "spec.timeout"), interval)


def _timestamp(value: str | None) -> float | None:
    try:
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() if value else None
    except ValueError:
        return None


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------- ImageRepository

class ImageRepositoryReconciler(Reconciler):
    """Scans the tags of ImageRepositories into the tag database (see the module docstring)."""

    kind = IMAGE_REPOSITORY

    def __init__(self, database: tagdb.TagDatabase):
        self.database = database

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        stalled = _unsupported_provider(obj)
        if stalled:
            raise stalled
        try:
            reference = parse_image(obj["spec"].get("image") or "")
        except ValueError as exc:
            raise StalledError(str(exc), reason=IMAGE_URL_INVALID) from None
        access = _access(ctx, obj, reference)
        status = obj.setdefault("status", {})
        previous = dig(obj, "status.lastScanResult.revision")
        due, reason, next_scan = self.should_scan(obj, reference, time.time())
        if due:
            ctx.progress(f"scanning: {reason}")
            self.scan(obj, access)
            verb = "tags did not change" if previous == status["lastScanResult"]["revision"] else "successful scan"
            ctx.log.info(f"{verb}, next scan in {format_duration(next_scan)}")
        else:
            ctx.log.debug(f"no change in repository configuration since last scan, next scan in "
                          f"{format_duration(next_scan)}")
        status["canonicalImageName"] = reference.name
        status["observedExclusionList"] = exclusion_list(obj)
        result = status["lastScanResult"]
        return Success(f"successful scan: found {result['tagCount']} tags with checksum {result['revision']}",
                       requeue_after=next_scan)

    def should_scan(self, obj: dict, reference: Reference, now: float) -> tuple[bool, str, float]:
        """(scan now?, why, seconds until the next scan), as Flux's shouldScan."""
        interval = _seconds(dig(obj, "spec.interval"), 600.0)
        status = obj.get("status") or {}
        last = status.get("lastScanResult")
        if not last:
            return True, "first scan", interval
        token = (dig(obj, "metadata.annotations") or {}).get(RECONCILE_REQUEST_ANNOTATION)
        if token and token != status.get("lastHandledReconcileAt"):
            return True, "reconcile requested", interval
        if reference.name != status.get("canonicalImageName"):
            return True, "new image name", interval
        if sorted(exclusion_list(obj)) != sorted(status.get("observedExclusionList") or []):
            return True, "updated exclusion list", interval
        if not self.database.tags(reference.name):
            return True, "no tags in database", interval
        when = interval - (now - (_timestamp(last.get("scanTime")) or 0))
        if when < 1:
            return True, "triggered by interval", interval
        return False, "", when

    def scan(self, obj: dict, access: RegistryAccess) -> None:
        """List, filter and store the tags; ``status.lastScanResult``. ReadOperationFailed on failure."""
        try:
            patterns = []
            for pattern in exclusion_list(obj):
                try:
                    patterns.append(compile_go(pattern))
                except InvalidExpression as exc:
                    raise OCIError(f"failed to compile regex {pattern}: {exc}") from None
            with contextlib.closing(access.client()) as client:
                found = client.list_tags(access.reference.repository)
            kept = sorted((t for t in found if not any(p.search(t) for p in patterns)), reverse=True)
            try:
                revision = self.database.set_tags(access.reference.name, kept)
            except Exception as exc:  # noqa: BLE001 - sqlite errors of any kind
                raise OCIError(f'failed to set tags for "{access.reference.name}": {exc}') from None
        except OCIError as exc:
            raise RetryableError(f"scan failed: {exc}", reason=READ_OPERATION_FAILED) from None
        result = {"revision": revision, "tagCount": len(kept), "scanTime": _now()}
        if kept:
            result["latestTags"] = kept[:LATEST_TAGS_COUNT]
        obj.setdefault("status", {})["lastScanResult"] = result


# ------------------------------------------------------------------------------------------- ImagePolicy

def scan_revision_changed(old: dict, new: dict) -> bool:
    """An ImageRepository got a first or new scan revision (Flux's imageRepositoryPredicate)."""
    revision = dig(new, "status.lastScanResult.revision")
    return revision is not None and dig(old, "status.lastScanResult.revision") != revision


def repository_key(policy: dict) -> tuple[str, str]:
    ref = dig(policy, "spec.imageRepositoryRef") or {}
    return ref.get("namespace") or dig(policy, "metadata.namespace"), ref.get("name") or ""


def ready_message(latest: dict, previous: dict | None) -> str:
    """Flux's composeImagePolicyReadyMessage."""
    message = f"Latest image tag for {latest['name']} resolved to {latest['tag']}"
    if latest.get("digest"):
        message += f" with digest {latest['digest']}"
    if previous and previous != latest:
        message += f" (previously {previous['name']}:{previous['tag']}"
        if previous.get("digest"):
            message += f"@{previous['digest']}"
        message += ")"
    return message


class ImagePolicyReconciler(Reconciler):
    """Selects the latest image of ImagePolicies (see the module docstring)."""

    kind = IMAGE_POLICY

    def __init__(self, database: tagdb.TagDatabase, options: Options | None = None):
        self.database, self.options = database, options or Options()
        self.index = ReferenceIndex()

    def watches(self) -> list[Watch]:
        return [Watch(IMAGE_REPOSITORY, lambda repo: self.index.keys_for(
            (dig(repo, "metadata.namespace"), dig(repo, "metadata.name"))), predicate=scan_revision_changed)]

    def finalize(self, ctx: ReconcileContext, obj: dict) -> None:
        self.index.remove(ctx.key)

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        spec = obj.get("spec") or {}
        reflect = spec.get("digestReflectionPolicy") or "Never"
        if reflect == "Always" and not spec.get("interval"):
            raise StalledError("spec.interval must be set when spec.digestReflectionPolicy is set to 'Always'",
                               reason=INTERVAL_NOT_CONFIGURED)
        ns, name = repository_key(obj)
        self.index.update(ctx.key, [(ns, name)])
        repo = self._repository(ctx, obj, ns, name)
        try:
            reference = parse_image(dig(repo, "spec.image") or "")
        except ValueError as exc:
            raise StalledError(str(exc), reason=IMAGE_URL_INVALID) from None
        stalled = _unsupported_provider(repo, " in the ImageRepository")
        if stalled:
            raise stalled
        try:
            policy = Policy(spec.get("policy") or {}, spec.get("filterTags"))
        except PolicyError as exc:
            prefix = "failed to filter tags" if "regular expression" in str(exc) else "invalid policy"
            raise StalledError(f"{prefix}: {exc}", reason=INVALID_POLICY) from None
        tags = self.database.tags(dig(repo, "status.canonicalImageName") or "")
        if not tags:
            delay = ctx.requeue_dependency
            raise Waiting(f"retrying in {format_duration(round(delay))} error: no tags in database",
                          reason=DEPENDENCY_NOT_READY, requeue_after=delay)
        try:
            tag = policy.latest(tags)
        except PolicyError as exc:
            raise RetryableError(str(exc), reason=FAILURE) from None
        self._update_refs(ctx, obj, repo, reference, tag, reflect)
        status = obj["status"]
        return Success(ready_message(status["latestRef"], status.get("observedPreviousRef")))

    def _repository(self, ctx: ReconcileContext, obj: dict, ns: str, name: str) -> dict:
        """The referenced ImageRepository, or a failure worded as Flux's."""
        own = obj["metadata"]["namespace"]

        def failed(message: str, reason: str) -> RetryableError:
            return RetryableError(f"failed to get the referred ImageRepository: {message}", reason=reason)

        try:
            acl.check_cross_namespace(IMAGE_REPOSITORY.kind, ns, name, own, self.options.no_cross_namespace_refs)
            repo = ctx.kube.get(IMAGE_REPOSITORY, name, ns)
        except acl.AccessDenied as exc:
            raise failed(str(exc), ACCESS_DENIED) from None
        except NotFound as exc:
            raise failed(f"referenced ImageRepository does not exist: {exc.message}", DEPENDENCY_NOT_READY) from None
        try:
            acl.check_access_from(ctx.kube, own, ns, name, dig(repo, "spec.accessFrom"))
        except acl.AccessDenied as exc:
            raise failed(f"access denied: {exc}", ACCESS_DENIED) from None
        return repo

    def _update_refs(self, ctx: ReconcileContext, obj: dict, repo: dict, reference: Reference, tag: str,
                     reflect: str) -> None:
        """``latestRef`` (with the digest as ``digestReflectionPolicy`` says) and ``observedPreviousRef``."""
        status = obj.setdefault("status", {})
        current = status.get("latestRef")
        latest = {"name": repo["spec"]["image"], "tag": tag}
        fetch = reflect == "Always"
        if reflect == "IfNotPresent":
            same = current and current.get("name") == latest["name"] and current.get("tag") == tag
            fetch = not (same and current.get("digest"))
            if not fetch:
                latest["digest"] = current["digest"]
        if fetch:
            try:
                with contextlib.closing(_access(ctx, repo, reference).client()) as client:
                    latest["digest"] = client.resolve_digest(Reference(reference.registry, reference.repository,
                                                                       tag))
            except OCIError as exc:
                raise RetryableError(f"failed fetching digest of {latest['name']}:{tag}: failed fetching "
                                     f"descriptor for \"{reference.name}:{tag}\": {exc}", reason=FAILURE) from None
        if current != latest:
            if current:
                status["observedPreviousRef"] = current
            status["latestRef"] = latest
