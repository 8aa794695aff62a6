"""What every source reconciler shares, as Flux's source-controller does it.

- the condition vocabulary (types and reasons of ``source.toolkit.fluxcd.io/v1``) and
  :func:`source_conditions` (a kind's declared conditions, from which the runtime computes Ready);
- :func:`fail` / :func:`wait_for`: record a failure on its condition (FetchFailed, StorageOperationFailed,
  IncludeUnavailable, BuildFailed are True while failing; SourceVerified is False) and return the error the
  runtime turns into Ready=False with the same reason and message;
- the artifact status protocol: :func:`begin` (progress on a new generation), :func:`check_stored_artifact`
  (garbage collection, a vanished or corrupt artifact is dropped), :func:`mark_outdated` (a new upstream
  revision: ArtifactOutdated + Reconciling), :func:`is_up_to_date` (no new artifact when the revision and
  the content inputs are unchanged), :func:`record_artifact`, :func:`stored` (ArtifactInStorage → Ready),
  :func:`notify` (the ``NewArtifact`` event, or ``Succeeded`` on recovery), :func:`timeout_of`
  (``spec.timeout``);
- :class:`SourceReconciler`: a base class holding the storage, removing artifacts on deletion and handing
  the artifact server to the manager (run only while leading);
- the process flags ``--storage-path``, ``--storage-addr``, ``--storage-adv-addr`` and the retention flags
  (:func:`add_arguments`, :func:`storage_from_args`, :func:`artifact_server_from_args`).
"""
from __future__ import annotations

import argparse
import os
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from controllers.api import meta
from controllers.api.duration import parse_duration
from controllers.api.objects import dig
from controllers.runtime import conditions as cond
from controllers.runtime.conditions import Conditions
from controllers.runtime.controller import Reconciler
from controllers.runtime.kube import KubeClient, KubeError
from controllers.runtime.settings import in_pod
from controllers.runtime.outcomes import ReconcileError, RetryableError, StalledError, Success, Waiting
from controllers.source.storage import RETENTION_RECORDS, RETENTION_TTL, ArtifactServer, Storage

if TYPE_CHECKING:
    from controllers.runtime.controller import ReconcileContext

# --- conditions (fluxcd/source-controller api/v1) ---------------------------------------------------------
ARTIFACT_IN_STORAGE = meta.ARTIFACT_IN_STORAGE
ARTIFACT_OUTDATED = meta.ARTIFACT_OUTDATED
SOURCE_VERIFIED = meta.SOURCE_VERIFIED
FETCH_FAILED = meta.FETCH_FAILED
BUILD_FAILED = meta.BUILD_FAILED
STORAGE_OPERATION_FAILED = meta.STORAGE_OPERATION_FAILED
INCLUDE_UNAVAILABLE = meta.INCLUDE_UNAVAILABLE
#: Conditions that are only present while True (a failure or pending change).
NEGATIVE_CONDITIONS = (STORAGE_OPERATION_FAILED, FETCH_FAILED, INCLUDE_UNAVAILABLE, BUILD_FAILED, ARTIFACT_OUTDATED)
#: Conditions whose disappearance means a failure recovered (Flux's "fail conditions").
FAIL_CONDITIONS = (FETCH_FAILED, INCLUDE_UNAVAILABLE, STORAGE_OPERATION_FAILED, BUILD_FAILED)


def source_conditions(*types: str) -> Conditions:
    """A source kind's declared conditions, as the source-controller lists them: its own ``types`` in
    priority order, then Stalled and Reconciling, summarised into Ready; the failure and pending ones
    (:data:`NEGATIVE_CONDITIONS`) with negative polarity."""
    runtime = (cond.STALLED, cond.RECONCILING)
    return Conditions(owned=(*types, cond.READY, *runtime), summarize=(*types, *runtime),
                      negative_polarity=(*(t for t in types if t in NEGATIVE_CONDITIONS), *runtime))


# --- reasons ----------------------------------------------------------------------------------------------
SUCCEEDED = meta.SUCCEEDED_REASON
URL_INVALID = "URLInvalid"
AUTHENTICATION_FAILED = "AuthenticationFailed"
VERIFICATION_ERROR = "VerificationError"
DIR_CREATION_FAILED = "DirectoryCreationFailed"
STAT_OPERATION_FAILED = "StatOperationFailed"
READ_OPERATION_FAILED = "ReadOperationFailed"
ACQUIRE_LOCK_FAILED = "AcquireLockFailed"
INVALID_PATH = "InvalidPath"
ARCHIVE_OPERATION_FAILED = "ArchiveOperationFailed"
SYMLINK_UPDATE_FAILED = "SymlinkUpdateFailed"
ARTIFACT_UP_TO_DATE = "ArtifactUpToDate"
CACHE_OPERATION_FAILED = "CacheOperationFailed"
PATCH_OPERATION_FAILED = "PatchOperationFailed"
INVALID_PROVIDER_CONFIGURATION = "InvalidProviderConfiguration"
GIT_OPERATION_SUCCEEDED = "GitOperationSucceeded"
GIT_OPERATION_FAILED = "GitOperationFailed"
NEW_REVISION = "NewRevision"
#: Event reasons.
NEW_ARTIFACT = "NewArtifact"
ARTIFACT_VERIFICATION_FAILED = "ArtifactVerificationFailed"
GARBAGE_COLLECTION_FAILED = "GarbageCollectionFailed"
#: Event annotations carrying the artifact (``<group>/revision``, ``<group>/digest``).
REVISION_ANNOTATION = f"{meta.SOURCE_GROUP}/revision"
DIGEST_ANNOTATION = f"{meta.SOURCE_GROUP}/digest"
#: Flux's default ``spec.timeout`` of the sources that fetch over the network.
DEFAULT_TIMEOUT = 60.0


# --- failures ---------------------------------------------------------------------------------------------

def fail(obj: dict, condition: str, reason: str, message: str, *, stalled: bool = False,
         requeue_after: float | None = None) -> ReconcileError:
    """Record a failure on ``condition`` and return the error to raise.

    ``SourceVerified`` is set False; the others (FetchFailed, StorageOperationFailed, ...) True. A stalled
    failure (``stalled=True``) is not retried until the spec changes.
    """
    if condition == SOURCE_VERIFIED:
        cond.mark_false(obj, condition, reason, message)
    else:
        cond.mark_true(obj, condition, reason, message)
    if stalled:
        return StalledError(message, reason=reason)
    return RetryableError(message, reason=reason, requeue_after=requeue_after)


def wait_for(obj: dict, condition: str, reason: str, message: str, requeue_after: float | None = None) -> Waiting:
    """Record that something this object needs is not there yet (e.g. IncludeUnavailable) and return the
    :class:`Waiting` to raise (retried after ``--requeue-dependency``)."""
    cond.mark_true(obj, condition, reason, message)
    return Waiting(message, reason=reason, requeue_after=requeue_after)


# --- the artifact status protocol -------------------------------------------------------------------------

def artifact_of(obj: dict) -> dict | None:
    return (obj.get("status") or {}).get("artifact")


def progressive(ctx: "ReconcileContext", obj: dict, message: str, *, reconciling: bool = True,
                write: bool = True) -> None:
    """Flux's progressive status (through :meth:`ReconcileContext.progress`): Reconciling=True (Progressing)
    and Ready=Unknown, both with ``message``; written at once unless ``write`` is False."""
    ctx.progress(message, ready_message=message, reconciling=reconciling, write=write)


def begin(ctx: "ReconcileContext", obj: dict) -> None:
    """Report a new generation as in progress (Ready=Unknown) before the real work starts."""
    generation = int(obj["metadata"].get("generation") or 0)
    observed = int((obj.get("status") or {}).get("observedGeneration", -1))
    if generation != observed:
        progressive(ctx, obj, f"processing object: new generation {observed} -> {generation}", reconciling=False)


def check_stored_artifact(ctx: "ReconcileContext", storage: Storage, obj: dict, link: str = "") -> bool:
    """Garbage-collect old artifacts and check the advertised one is still stored with its digest.

    A missing or corrupt artifact is dropped from the status (corrupt files are removed, with a Warning
    event); without an artifact the object is marked as building one. With ``link`` (the name of the
    :meth:`Storage.link` next to the artifacts, e.g. ``latest.tar.gz``), ``status.url`` is that link's
    address while an artifact remains, and is removed otherwise. Returns whether an artifact remains.
    """
    kind, ns, name = obj["kind"], obj["metadata"]["namespace"], obj["metadata"]["name"]
    artifact = artifact_of(obj)
    missing = False
    if artifact:
        try:
            storage.garbage_collect(kind, ns, name, artifact.get("path", ""))
        except (OSError, ValueError) as exc:
            ctx.log.error("garbage collection of artifacts failed", error=exc)
        if not storage.has(artifact):
            missing = True
            if storage.digest_of(artifact.get("path", "")) is not None:
                ctx.event("Warning", ARTIFACT_VERIFICATION_FAILED,
                          f"failed to verify integrity of artifact: computed digest doesn't match "
                          f"'{artifact.get('digest')}'")
                try:
                    storage.local_path(artifact["path"]).unlink()
                except (OSError, ValueError):
                    pass
            obj["status"].pop("artifact", None)
    if not artifact_of(obj):
        cond.delete(obj, ARTIFACT_IN_STORAGE)
        progressive(ctx, obj, "building artifact" + (": disappeared from storage" if missing else ""))
        if link:
            obj["status"].pop("url", None)
        return False
    artifact = artifact_of(obj)
    artifact["url"] = storage.url_for(artifact["path"])  # the advertised address may have changed
    if link:
        obj["status"]["url"] = storage.url_for(storage.artifact_path(kind, ns, name, link))
    return True


def is_up_to_date(obj: dict, revision: str, observed: dict[str, Any] | None = None) -> bool:
    """Whether the stored artifact has ``revision`` and every ``status`` field in ``observed`` equals its
    value (e.g. ``observedIgnore``): then no new artifact is built."""
    artifact = artifact_of(obj)
    if not artifact or artifact.get("revision") != revision:
        return False
    status = obj.get("status") or {}
    return all(status.get(key) == value for key, value in (observed or {}).items())


def mark_outdated(ctx: "ReconcileContext", obj: dict, message: str, reason: str = NEW_REVISION) -> None:
    """A new upstream revision (or input) was seen: ArtifactOutdated=True when there is an artifact, and
    Reconciling/Ready=Unknown "building artifact: <message>", written at once."""
    if artifact_of(obj):
        cond.mark_true(obj, ARTIFACT_OUTDATED, reason, message)
    progressive(ctx, obj, f"building artifact: {message}")


def stored_message(revision: str) -> str:
    return f"stored artifact for revision '{revision}'"


def stored(obj: dict, message: str | None = None, reason: str = SUCCEEDED) -> Success:
    """ArtifactInStorage=True for the current artifact (ArtifactOutdated removed) and the Ready outcome with
    the same reason and message — the kind's own words (``stored artifact: revision '<rev>'``, a chart's
    build summary), by default ``stored artifact for revision '<rev>'``; events are sent by :func:`notify`."""
    if message is None:
        message = stored_message(artifact_of(obj)["revision"])
    cond.delete(obj, ARTIFACT_OUTDATED)
    cond.mark_true(obj, ARTIFACT_IN_STORAGE, reason, message)
    return Success(message, reason=reason, notify=False)


def record_artifact(obj: dict, artifact: dict, revision: str, observed: dict[str, Any] | None = None) -> dict:
    """Put a freshly stored artifact (and the inputs it was built from, e.g. ``observedIgnore``; a None
    value removes the field) in the status; StorageOperationFailed is cleared."""
    status = obj.setdefault("status", {})
    status["artifact"] = {**{k: v for k, v in artifact.items() if k != "revision"}, "revision": revision}
    for key, value in (observed or {}).items():
        if value is None:
            status.pop(key, None)
        else:
            status[key] = value
    cond.delete(obj, STORAGE_OPERATION_FAILED)
    return status["artifact"]


def notify(ctx: "ReconcileContext", old: dict, obj: dict, message: str, reason: str | None = None) -> None:
    """After a successful reconciliation: a ``NewArtifact`` event when the digest changed, else a
    ``Succeeded`` event when the object recovered from a failure — both with ``reason`` instead when given
    (a HelmChart's ChartPullSucceeded / ChartPackageSucceeded). ``old`` is the object as read (its status
    before this reconciliation)."""
    artifact = artifact_of(obj)
    if not artifact:
        return
    annotations = {REVISION_ANNOTATION: artifact["revision"], DIGEST_ANNOTATION: artifact["digest"]}
    old_artifact = artifact_of(old) or {}
    if old_artifact.get("digest") != artifact["digest"]:
        ctx.event("Normal", reason or NEW_ARTIFACT, message, annotations)
        ctx.log.info(message)
    elif any(cond.is_true(old, c) for c in FAIL_CONDITIONS) and not any(cond.is_true(obj, c) for c in FAIL_CONDITIONS):
        ctx.event("Normal", reason or SUCCEEDED, message, annotations)
        ctx.log.info(message)


def timeout_of(obj: dict) -> float:
    """``spec.timeout`` of a source in seconds; Flux's default (60s) when it is not set or does not parse."""
    value = dig(obj, "spec.timeout")
    try:
        return parse_duration(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT


def work_dir(obj: dict) -> Path:
    """A fresh temporary directory for one reconciliation of ``obj`` (the caller removes it)."""
    meta_ = obj["metadata"]
    return Path(tempfile.mkdtemp(prefix=f"{obj['kind'].lower()}-{meta_['namespace']}-{meta_['name']}-"))


class SourceReconciler(Reconciler):
    """Base of the source kinds' reconcilers: artifacts in :attr:`storage`, removed when the object is
    deleted; the artifact server (when given) runs while this process leads."""

    def __init__(self, storage: Storage, server: ArtifactServer | None = None):
        self.storage, self.server = storage, server

    @classmethod
    def from_args(cls, args: argparse.Namespace, component: str = "source-controller") -> "SourceReconciler":
        """The factory ``controllers.components`` calls with the parsed command line."""
        return cls(storage_from_args(args, component), artifact_server_from_args(args, component))

    def leader_runnables(self) -> list:
        """Started when this process starts leading, stopped when it stops (see the Manager)."""
        return [self.server] if self.server else []

    def finalize(self, ctx: "ReconcileContext", obj: dict) -> None:
        meta_ = obj["metadata"]
        self.storage.remove_all(obj.get("kind") or self.kind.kind, meta_["namespace"], meta_["name"])
        (obj.get("status") or {}).pop("artifact", None)


# --- process flags ----------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The source-controller's storage flags (Flux's names; environment variables as Flux reads them)."""
    env = os.environ.get
    parser.add_argument("--storage-path", default=env("STORAGE_PATH", ""),
                        help="The local storage path (default: /data in a Pod, else <dev state dir>/storage/"
                             "<component>).")
    parser.add_argument("--storage-addr", "--storage-address", dest="storage_addr",
                        default=env("STORAGE_ADDR") or env("STORAGE_ADDRESS") or "",
                        help="The address the static file server binds to (default: :9090 in a Pod, else "
                             "127.0.0.1:9090 for the source-controller and 127.0.0.1:9091 for the source-watcher).")
    parser.add_argument("--storage-adv-addr", "--storage-adv-address", dest="storage_adv_addr",
                        default=env("STORAGE_ADV_ADDR", ""),
                        help="The advertised address of the static file server (default: "
                             "source-controller.$RUNTIME_NAMESPACE.svc.cluster.local. in a Pod, else "
                             "127.0.0.1:<port>).")
    parser.add_argument("--artifact-retention-ttl", type=parse_duration, default=RETENTION_TTL,
                        help="The duration of time that artifacts from previous reconciliations will be kept "
                             "in storage before being garbage collected.")
    parser.add_argument("--artifact-retention-records", type=int, default=RETENTION_RECORDS,
                        help="The maximum number of artifacts to be kept in storage after a garbage collection.")


#: Local processes (no Pod, several components on one host) bind loopback on a port of their own.
LOCAL_STORAGE_PORTS = {"source-controller": 9090, "source-watcher": 9091}


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host or "127.0.0.1", 0))
        return s.getsockname()[1]


def _resolve_storage_flags(args: argparse.Namespace, component: str) -> None:
    """Fill in the defaults that depend on where the process runs (once per args)."""
    if getattr(args, "_storage_resolved", False):
        return
    pod = in_pod()
    if not args.storage_path:
        if pod:
            args.storage_path = "/data"
        else:
            from controllers.runtime.settings import default_state_dir

            args.storage_path = str(default_state_dir() / "storage" / component)
    if not args.storage_addr:
        args.storage_addr = ":9090" if pod else f"127.0.0.1:{LOCAL_STORAGE_PORTS.get(component, 9090)}"
    host, _, port = args.storage_addr.rpartition(":")
    if port == "0":
        args.storage_addr = f"{host}:{_free_port(host.strip('[]'))}"
    if not args.storage_adv_addr:
        namespace = os.environ.get("RUNTIME_NAMESPACE", "flux-system")
        args.storage_adv_addr = (f"{component}.{namespace}.svc.cluster.local." if pod
                                 else f"127.0.0.1:{args.storage_addr.rpartition(':')[2]}")
    args._storage_resolved = True


def storage_from_args(args: argparse.Namespace, component: str = "source-controller") -> Storage:
    """The process's one :class:`Storage` (created on first use, shared by its reconcilers)."""
    if getattr(args, "_storage", None) is None:
        _resolve_storage_flags(args, component)
        args._storage = Storage(args.storage_path, args.storage_adv_addr,
                                retention_records=getattr(args, "artifact_retention_records", RETENTION_RECORDS),
                                retention_ttl=getattr(args, "artifact_retention_ttl", RETENTION_TTL))
    return args._storage


def artifact_server_from_args(args: argparse.Namespace, component: str = "source-controller") -> ArtifactServer:
    """The process's one :class:`ArtifactServer` (not started: the manager starts it while leading)."""
    if getattr(args, "_artifact_server", None) is None:
        args._artifact_server = ArtifactServer(storage_from_args(args, component), args.storage_addr)
    return args._artifact_server
