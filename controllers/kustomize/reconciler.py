"""The Kustomization reconciler (kustomize.toolkit.fluxcd.io/v1), as Flux 2.7's kustomize-controller.

One reconciliation, in Flux's order and with its conditions, reasons and messages:

1. ``healthCheckExprs`` compiled (a bad expression stalls: InvalidCELExpression);
2. the source (GitRepository, OCIRepository, Bucket, ExternalArtifact — the last behind the ExternalArtifact
   feature gate): a cross-namespace reference with ``--no-cross-namespace-refs`` stalls (AccessDenied); a
   missing source or artifact waits (ArtifactFailed, ``Source artifact not found, retrying in 30s``);
3. ``dependsOn`` (:mod:`controllers.lib.dependencies`): Flux's rules, ``readyExpr``, dependencies across
   kinds and cycles (Stalled, DependencyCycle); a dependency not ready waits ``--requeue-dependency``;
4. ``Fetching manifests ...``: download, digest check, safe extraction, ``spec.path`` (ArtifactFailed);
   ``status.lastAttemptedRevision``; ``Building manifests ...``: the client (``serviceAccountName`` /
   ``--default-service-account`` impersonation, ``kubeConfig.secretRef`` for a remote cluster) and the build
   (BuildFailed) — a failure up to here applies nothing and keeps the last applied state;
5. ``Detecting drift ...``: the whole set validated by a server-side dry run, then applied in stages
   (ReconciliationFailed naming the object); a Normal event lists what changed
   (``Deployment/apps/web configured``), with the revision in its annotations;
6. inventory (``status.inventory``) and, with ``prune: true``, stale objects deleted (PruneFailed), objects
   that moved to another Kustomization handed over, not deleted;
7. health (``wait``, ``healthChecks``, ``healthCheckExprs``; ``Healthy`` condition; HealthCheckFailed);
8. ``lastAppliedRevision``, ``lastAppliedOriginRevision``, Ready ``Applied revision: <rev>``, ``history`` (last
   5 snapshots: digest of the built manifests, status, counts, first/last reconciled), and the event
   ``Reconciliation finished in <d>, next run in <interval>``.

A failure is retried after ``spec.retryInterval`` (default ``spec.interval``). Deleting a Kustomization prunes
what it applied as ``deletionPolicy`` says (:func:`controllers.lib.kustomize.inventory.finalize`).

Beyond Flux: the objects each Kustomization applied are watched (:mod:`controllers.kustomize.drift`), and an
object changed or deleted by someone else is re-applied from the last build within seconds, without a new
fetch, build or dry run of the whole set; the watch caches also spare the apply of unchanged objects. A
dependency becoming Ready wakes the Kustomizations waiting for it at once.

Beyond Flux, the periodic run is cheap: the Kustomization and its source are read from the informers' caches,
and a run with nothing new (same revision, generation and reconcile request, Ready, no drift watched) still
fetches and builds, but when the build's digest is the one last applied and every applied object is in the
watch caches it skips the dry run and the apply, writes no progress and no status, and records no event (the
log says so; health checks still run). So an idle Kustomization costs no apiserver request per interval,
where Flux's costs a GET, a dry run per object and several status patches. ``fluxpy reconcile`` (a new
``requestedAt``) always runs Flux's full reconciliation. And a quick reconciliation writes two status patches,
not Flux's eight: the first progress report (``Fetching manifests ...``) and the result; the reports of the
quick steps after it (building, detecting drift) are written only when the reconciliation has been running
for a second (:data:`controllers.runtime.controller.PROGRESS_WRITE_INTERVAL`), and health checks always.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Mapping

from controllers.api import meta
from controllers.api.builtin import CONFIGMAP, SECRET, SERVICE_ACCOUNT
from controllers.api.duration import format_duration, parse_duration
from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.objects import dig
from controllers.api.source import BUCKET, EXTERNAL_ARTIFACT, GIT_REPOSITORY, OCI_REPOSITORY
from controllers.lib.kustomize.build import build, resolve_path
from controllers.lib.dependencies import CachingResolver, DependencyCycle, check_dependencies, dependencies_of
from controllers.kustomize.drift import DriftWatcher
from controllers.lib.kustomize.errors import ArtifactError
from controllers.lib.fetch import DEFAULT_RETRIES, ArtifactNotFound, FetchError, fetch_artifact
from controllers.lib.index import ReferenceIndex
from controllers.lib.clients import ClientError, TargetClients
from controllers.lib.health import (HealthCheckFailed, InvalidCELExpression, StatusReader, check_health,
                                          compile_health_check_exprs, health_check_refs)
from controllers.lib.kustomize.inventory import (HandoverGrace, PruneError, PruneResult, finalizer_should_delete,
                                             find_pending_claimants, inventory_from_changes, inventory_refs, prune,
                                             stale_objects)
from controllers.lib.kustomize.inventory import finalize as prune_on_delete
from controllers.runtime.flags import (DEFAULT_SERVICE_ACCOUNT, HTTP_RETRY, INSECURE_KUBECONFIG_EXEC,
                                      INSECURE_KUBECONFIG_TLS, NO_CROSS_NAMESPACE_REFS, OVERRIDE_MANAGER, FeatureGates,
                                      OptionFlag, add_option_flags, feature_gates_flag, options_from_args)
from controllers.runtime import conditions as cond
from controllers.runtime.apply import (FIELD_MANAGER, SKIPPED, UNCHANGED, UNKNOWN, ApplyError, ChangeSet,
                                       ChangeSetEntry, ObjectRef, ResourceManager, kustomization_apply_options)
from controllers.runtime.conditions import Conditions
from controllers.runtime.controller import ReconcileContext, Reconciler, Watch
from controllers.runtime.kube import KubeClient, KubeError, NotFound
from controllers.runtime.outcomes import RetryableError, StalledError, Success, Waiting
from controllers.runtime.predicates import artifact_revision_changed

#: The kinds a Kustomization takes its artifact from, by Kind.
SOURCE_KINDS = {k.kind: k for k in (OCI_REPOSITORY, GIT_REPOSITORY, BUCKET, EXTERNAL_ARTIFACT)}
ACCESS_DENIED_REASON = "AccessDenied"
TERMINAL_ERROR_MESSAGE = "Reconciliation failed terminally due to configuration error"
ORIGIN_REVISION_KEY = "org.opencontainers.image.revision"
HISTORY_MAX_SIZE = 5
#: event metadata keys (Flux's eventv1), prefixed with the API group
REVISION_KEY, ORIGIN_REVISION_META_KEY = f"{meta.KUSTOMIZE_GROUP}/revision", f"{meta.KUSTOMIZE_GROUP}/originRevision"
COMMIT_STATUS_KEY = f"{meta.KUSTOMIZE_GROUP}/commit_status"

#: Flux 2.7's kustomize-controller feature gates and their defaults.
FEATURE_GATES = FeatureGates({
    "CacheSecretsAndConfigMaps": False, "DisableStatusPollerCache": True, "DisableFailFastBehavior": False,
    "StrictPostBuildSubstitutions": False, "GroupChangeLog": False, "AdditiveCELDependencyCheck": False,
    "ExternalArtifact": False, "CancelHealthCheckOnNewRevision": False, "DisableConfigWatchers": False,
    "ObjectLevelWorkloadIdentity": False,
})
#: ``A=true,B=false`` over Flux's defaults (an argparse error on an unknown gate or value).
parse_feature_gates = FEATURE_GATES.parse


@dataclasses.dataclass
class Options:
    """The kustomize-controller's own settings (its flags)."""

    default_service_account: str = ""
    """Impersonate this service account (in the Kustomization's namespace) when none is set."""
    no_cross_namespace_refs: bool = False
    """Refuse sources in another namespace."""
    no_remote_bases: bool = False
    """Refuse remote kustomize bases (only local files of the artifact are built)."""
    http_retry: int = DEFAULT_RETRIES
    """Retries of a failed artifact download."""
    sops_age_secret: str = ""
    """A Secret in the runtime namespace with a fallback age key for SOPS."""
    runtime_namespace: str = ""
    disallowed_field_managers: tuple[str, ...] = ()
    """Field managers whose changes are undone (``--override-manager``)."""
    insecure_kubeconfig_exec: bool = False
    """Allow ``user.exec`` in kubeconfigs of remote clusters."""
    insecure_kubeconfig_tls: bool = False
    """Allow kubeconfigs of remote clusters to skip TLS verification."""
    feature_gates: dict[str, bool] = dataclasses.field(default_factory=lambda: dict(FEATURE_GATES.defaults))
    watch_applied: bool = True
    """Beyond Flux: watch applied objects and correct drift at once (``--watch-applied``)."""
    health_interval: float = 5.0
    """Seconds between two health polls (Flux: 5s)."""
    min_timeout: float = 30.0
    """The smallest build/apply/health timeout (Flux: 30s)."""
    handover_grace: float = 300.0
    """How long pruning waits for another Kustomization to take over a stale object."""
    handover_requeue: float = 5.0
    """Seconds before a reconciliation with deferred (hand-over) deletions runs again."""

    def gate(self, name: str) -> bool:
        return self.feature_gates.get(name, FEATURE_GATES.defaults.get(name, False))


@dataclasses.dataclass
class _Applied:
    """What the last successful full reconciliation applied: enough to re-apply a drifted object alone."""

    generation: int
    requested_at: str | None
    revision: str
    origin_revision: str
    digest: str
    objects: dict[ObjectRef, dict]
    next_full: float


@dataclasses.dataclass
class _HealthCheck:
    """A running health check that a new revision of its source cancels (CancelHealthCheckOnNewRevision)."""

    source: tuple
    revision: str
    cancel: threading.Event = dataclasses.field(default_factory=threading.Event)
    trigger: str = ""


def references(obj: Mapping) -> set[tuple]:
    """What a Kustomization refers to, for its :class:`~controllers.lib.index.ReferenceIndex`: its source,
    dependencies, Secrets and ConfigMaps."""
    ns = dig(obj, "metadata.namespace")
    spec = obj.get("spec") or {}
    src = spec.get("sourceRef") or {}
    refs = {("source", src.get("kind"), src.get("namespace") or ns, src.get("name"))}
    refs |= {("dependsOn", d.kind, d.namespace, d.name) for d in dependencies_of(KUSTOMIZATION, obj)}
    if dig(obj, "spec.decryption.secretRef.name"):
        refs.add(("Secret", ns, dig(obj, "spec.decryption.secretRef.name")))
    for kind, path in (("Secret", "spec.kubeConfig.secretRef.name"),
                       ("ConfigMap", "spec.kubeConfig.configMapRef.name")):
        if dig(obj, path):
            refs.add((kind, ns, dig(obj, path)))
    for entry in dig(obj, "spec.postBuild.substituteFrom", []) or []:
        if entry.get("name"):
            refs.add((entry.get("kind"), ns, entry["name"]))
    return refs


def upsert_history(status: dict, digest: str, *, reason: str, duration: float, metadata: dict[str, str],
                   now: str | None = None) -> None:
    """Flux's History.Upsert: the snapshot with this digest and status moves first (counted), else a new one."""
    now = now or cond.now()
    history = [dict(s) for s in status.get("history") or []]
    for i, snapshot in enumerate(history):
        if snapshot.get("digest") == digest and snapshot.get("lastReconciledStatus") == reason:
            snapshot.update(lastReconciled=now, lastReconciledDuration=format_duration(duration),
                            totalReconciliations=int(snapshot.get("totalReconciliations") or 0) + 1,
                            metadata=dict(metadata))
            history.insert(0, history.pop(i))
            break
    else:
        history.insert(0, {"digest": digest, "firstReconciled": now, "lastReconciled": now,
                           "lastReconciledDuration": format_duration(duration), "lastReconciledStatus": reason,
                           "totalReconciliations": 1, "metadata": dict(metadata)})
    status["history"] = history[:HISTORY_MAX_SIZE]


class KustomizationReconciler(Reconciler):
    """Reconciles Kustomizations (see the module docstring)."""

    kind = KUSTOMIZATION
    #: kustomize-controller's owned conditions; Ready is the outcome's (a failure outranks a stale Healthy).
    conditions = Conditions(owned=(cond.READY, cond.RECONCILING, cond.STALLED, meta.HEALTHY),
                            summarize=(cond.STALLED, cond.RECONCILING, meta.HEALTHY),
                            negative_polarity=(cond.STALLED, cond.RECONCILING))

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.index = ReferenceIndex()
        self.grace = HandoverGrace(self.options.handover_grace)
        self.drift: DriftWatcher | None = None
        self._controller = None
        self._lock = threading.Lock()
        self._applied: dict[str, _Applied] = {}
        self._waiting: set[str] = set()
        self._health: dict[str, _HealthCheck] = {}
        self.clients = TargetClients(self.options.default_service_account,
                                     allow_exec=self.options.insecure_kubeconfig_exec,
                                     allow_insecure_tls=self.options.insecure_kubeconfig_tls)

    # ------------------------------------------------------------------ wiring

    def watches(self) -> list[Watch]:
        """Sources (a new artifact revision), and Secrets/ConfigMaps labelled ``reconcile.fluxcd.io/watch:
        Enabled`` that a Kustomization reads."""
        kinds = [OCI_REPOSITORY, GIT_REPOSITORY, BUCKET]
        if self.options.gate("ExternalArtifact"):
            kinds.append(EXTERNAL_ARTIFACT)
        watches = [Watch(k, self._source_changed(k.kind), predicate=artifact_revision_changed) for k in kinds]
        if not self.options.gate("DisableConfigWatchers"):
            selector = f"{meta.WATCH_LABEL}={meta.WATCH_LABEL_ENABLED}"
            for rt in (CONFIGMAP, SECRET):
                watches.append(Watch(rt, self._config_changed(rt.kind), label_selector=selector))
        return watches

    def _source_changed(self, kind: str):
        def keys(source: dict) -> list[str]:
            ref = ("source", kind, dig(source, "metadata.namespace"), dig(source, "metadata.name"))
            revision = dig(source, "status.artifact.revision")
            with self._lock:
                for check in self._health.values():
                    if check.source == ref and revision and revision != check.revision:
                        check.trigger = f"{kind}/{ref[2]}/{ref[3]}"
                        check.cancel.set()
            return self.index.keys_for(ref)
        return keys

    def _config_changed(self, kind: str):
        def keys(obj: dict) -> list[str]:
            return self.index.keys_for((kind, dig(obj, "metadata.namespace"), dig(obj, "metadata.name")))
        return keys

    def leader_runnables(self) -> list:
        """The drift watcher, stopped with the controllers (its watches start as inventories are seen)."""
        return [self]

    def start(self) -> None:
        if self.drift is not None:
            self.drift.start()

    def stop(self) -> None:
        """Stop the watches of applied objects."""
        if self.drift is not None:
            self.drift.stop()

    def _drift_watcher(self, ctx: ReconcileContext) -> DriftWatcher | None:
        if not self.options.watch_applied:
            return None
        with self._lock:
            self._controller = ctx.controller
            if self.drift is None:
                self.drift = DriftWatcher(ctx.kube, self._on_drift, own_managers=(FIELD_MANAGER,),
                                          log=ctx.controller.log.with_values(watch="applied-objects"))
            return self.drift

    def _on_drift(self, key: str) -> None:
        controller = self._controller
        if controller is not None and key in self.index:
            controller.enqueue(key)

    # ------------------------------------------------------------------ settings of one object

    def _timeout(self, obj: Mapping) -> float:
        """Flux's GetTimeout: ``spec.timeout``, else the interval minus 30s; at least 30s."""
        value = dig(obj, "spec.timeout")
        seconds = parse_duration(value) if value else _interval(obj) - 30.0
        return max(seconds, self.options.min_timeout)

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        self.index.update(ctx.key, references(obj))
        return self._reconcile(ctx, obj)

    def _reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        started = time.monotonic()
        spec = obj.get("spec") or {}
        try:
            evaluators = compile_health_check_exprs(spec.get("healthCheckExprs"))
        except InvalidCELExpression as exc:
            raise StalledError(f"{TERMINAL_ERROR_MESSAGE}: {exc.message}", reason=exc.reason) from None
        if dig(obj, "spec.decryption.serviceAccountName") and not self.options.gate("ObjectLevelWorkloadIdentity"):
            raise StalledError("to use spec.decryption.serviceAccountName for decryption authentication please "
                               "enable the ObjectLevelWorkloadIdentity feature gate in the controller",
                               reason=meta.FEATURE_GATE_DISABLED_REASON)
        source = self._source(ctx, obj)
        artifact = dig(source, "status.artifact")
        if not artifact:
            raise Waiting(f"Source artifact not found, retrying in {format_duration(ctx.requeue_dependency)}",
                          reason=meta.ARTIFACT_FAILED_REASON)
        revision = artifact.get("revision", "")
        corrected = self._correct_drift(ctx, obj, revision)
        if corrected is not None:
            return corrected
        if spec.get("dependsOn"):
            try:
                check_dependencies(ctx.kube, KUSTOMIZATION, obj, source_revision=revision,
                                   additive_cel=self.options.gate("AdditiveCELDependencyCheck"),
                                   resolver=CachingResolver(ctx.kube))
            except DependencyCycle as exc:  # re-checked: the cycle may be broken elsewhere
                raise StalledError(exc.message, reason=exc.reason, requeue_after=ctx.requeue_dependency) from None
            except Waiting:
                with self._lock:
                    self._waiting.add(ctx.key)
                raise
            ctx.log.info("All dependencies are ready, proceeding with reconciliation")
        with self._lock:
            self._waiting.discard(ctx.key)
        return self._apply_revision(ctx, obj, source, artifact, evaluators, started)

    def _source(self, ctx: ReconcileContext, obj: dict) -> dict:
        ref = dig(obj, "spec.sourceRef") or {}
        own_ns = obj["metadata"]["namespace"]
        kind, name, namespace = ref.get("kind", ""), ref.get("name", ""), ref.get("namespace") or own_ns
        if self.options.no_cross_namespace_refs and namespace != own_ns:
            raise StalledError(f"can't access '{kind}/{namespace}/{name}', cross-namespace references have been "
                               "blocked", reason=ACCESS_DENIED_REASON)
        if kind == EXTERNAL_ARTIFACT.kind and not self.options.gate("ExternalArtifact"):
            raise StalledError(f"can't access '{kind}/{namespace}/{name}', ExternalArtifact feature gate is "
                               "disabled", reason=ACCESS_DENIED_REASON)
        rt = SOURCE_KINDS.get(kind)
        if rt is None:
            raise RetryableError(f"source `{name}` kind '{kind}' not supported", reason=meta.ARTIFACT_FAILED_REASON)
        cached = ctx.controller.cached(rt, namespace, name)
        if cached is not None:
            return cached
        try:
            return ctx.kube.get(rt, name, namespace)
        except NotFound as exc:
            ctx.log.info(f"Source '{kind}/{namespace}/{name}' not found")
            raise Waiting(exc.message, reason=meta.ARTIFACT_FAILED_REASON,
                          requeue_after=self.retry_interval(obj)) from None
        except KubeError as exc:
            raise RetryableError(f"unable to get source '{namespace}/{name}': {exc.message}",
                                 reason=meta.ARTIFACT_FAILED_REASON) from None

    # ------------------------------------------------------------------ the full reconciliation

    def _apply_revision(self, ctx: ReconcileContext, obj: dict, source: dict, artifact: dict,
                        evaluators: dict, started: float) -> Success:
        spec, status = obj.get("spec") or {}, obj.setdefault("status", {})
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        revision = artifact.get("revision", "")
        origin = (artifact.get("metadata") or {}).get(ORIGIN_REVISION_KEY, "")
        annotations = _revision_annotations(revision, origin)
        timeout = self._timeout(obj)
        took = format_duration(timeout)
        watcher = self._drift_watcher(ctx)
        applied = self._periodic_rerun(ctx, obj, watcher, revision)
        if applied is None:
            ctx.progress(f"Fetching manifests for revision {revision} with a timeout of {took}")
        old_inventory = copy.deepcopy(status.get("inventory"))

        with tempfile.TemporaryDirectory(prefix="kustomization-") as tmp:
            try:
                fetch_artifact(artifact, tmp, timeout=timeout, retries=self.options.http_retry,
                               user_agent="fluxpy-kustomize-controller")
            except ArtifactNotFound:
                raise Waiting(f"Source is not ready, artifact not found, retrying in "
                              f"{format_duration(ctx.requeue_dependency)}",
                              reason=meta.ARTIFACT_FAILED_REASON) from None
            except FetchError as exc:
                raise ArtifactError(exc.message) from None
            resolve_path(Path(tmp), spec.get("path") or "")
            status["lastAttemptedRevision"] = revision
            if applied is None:
                ctx.progress(f"Building manifests for revision {revision} with a timeout of {took}", throttle=True)
            client, remote = self._target_client(ctx, obj)
            result = build(tmp, spec, name=name, namespace=namespace, kube=ctx.kube,
                           strict_substitution=self.options.gate("StrictPostBuildSubstitutions"),
                           no_remote_bases=self.options.no_remote_bases,
                           sops_age_secret=self._sops_age_secret(), timeout=timeout)

        if applied is not None and self._unchanged(ctx.key, applied, watcher, result.digest, status):
            return self._confirm(ctx, obj, client, evaluators, applied, revision, annotations, timeout, started)
        if watcher is not None:
            watcher.take(ctx.key)  # this run re-applies everything
        history_meta = _history_metadata(revision, origin)
        objects = result.objects
        manager = ResourceManager(client)
        manager.set_owner_labels(objects, name, namespace)
        ctx.progress(f"Detecting drift for revision {revision} with a timeout of {took}", throttle=True)
        options = kustomization_apply_options(force=bool(spec.get("force")), wait_timeout=timeout,
                                              disallowed_field_managers=self.options.disallowed_field_managers)
        live = watcher.live if watcher is not None and not remote else None
        try:
            changes = manager.apply_all_staged(objects, options, live=live) if objects else ChangeSet()
        except (ApplyError, KubeError) as exc:  # a KubeError: a request outside the dry run/apply (RBAC on a GET)
            upsert_history(status, result.digest, reason=meta.RECONCILIATION_FAILED_REASON,
                           duration=time.monotonic() - started, metadata=history_meta)
            raise RetryableError(exc.message, reason=meta.RECONCILIATION_FAILED_REASON) from None
        changed = changes.changed()
        if changes:
            grouped = self.options.gate("GroupChangeLog")
            ctx.log.info("server-side apply completed", output=changes.to_grouped_map() if grouped
                         else changes.to_map(), revision=revision)
        if changed:
            ctx.event("Normal", _ready_reason(obj), str(changed), annotations)

        skipped = [e.ref for e in changes if e.action == SKIPPED]
        new_inventory = inventory_from_changes(changes)
        stale = stale_objects(old_inventory, new_inventory, skipped)
        status["inventory"] = new_inventory
        pruned = PruneResult()
        if spec.get("prune") and stale:
            owner = manager.owner(name, namespace)
            try:
                pruned = prune(manager, stale, owner, claimants=_claimants(ctx, owner), grace=self.grace)
            except PruneError as exc:
                survivors = [e.ref for e in exc.changes if e.action == UNKNOWN]
                status["inventory"] = inventory_from_changes(changes, extra=survivors)
                upsert_history(status, result.digest, reason=meta.PRUNE_FAILED_REASON,
                               duration=time.monotonic() - started, metadata=history_meta)
                raise RetryableError(exc.message, reason=meta.PRUNE_FAILED_REASON) from None
            if pruned.changes:
                ctx.log.info(f"garbage collection completed: {pruned.changes}")
                ctx.event("Normal", _ready_reason(obj), str(pruned.changes), annotations)
            if pruned.deferred:
                status["inventory"] = inventory_from_changes(changes, extra=pruned.deferred)
                ctx.log.info(pruned.deferred_message)

        is_new_revision = revision != status.get("lastAppliedRevision")
        try:
            self._check_health(ctx, obj, client, evaluators, changes, revision, annotations,
                               is_new_revision=is_new_revision, drifted=bool(changed), timeout=timeout)
        except HealthCheckFailed:
            upsert_history(status, result.digest, reason=meta.HEALTH_CHECK_FAILED_REASON,
                           duration=time.monotonic() - started, metadata=history_meta)
            raise

        status["lastAppliedRevision"] = revision
        if origin:
            status["lastAppliedOriginRevision"] = origin
        else:
            status.pop("lastAppliedOriginRevision", None)
        elapsed = time.monotonic() - started
        upsert_history(status, result.digest, reason=meta.RECONCILIATION_SUCCEEDED_REASON, duration=elapsed,
                       metadata=history_meta)
        self._remember(ctx, obj, watcher, remote, objects, changes, revision, origin, result.digest)
        interval = format_duration(_interval(obj))
        message = f"Reconciliation finished in {format_duration(time.monotonic() - started)}, next run in {interval}"
        ctx.event("Normal", meta.RECONCILIATION_SUCCEEDED_REASON, message,
                  {**_revision_annotations(revision, origin), COMMIT_STATUS_KEY: "update"})
        self._wake_dependents(ctx, obj)
        return Success(f"Applied revision: {revision}", reason=meta.RECONCILIATION_SUCCEEDED_REASON, notify=False,
                       requeue_after=self.options.handover_requeue if pruned.deferred else None)

    # ------------------------------------------------------------------ periodic runs (beyond Flux)

    def _periodic_rerun(self, ctx: ReconcileContext, obj: dict, watcher: DriftWatcher | None,
                        revision: str) -> _Applied | None:
        """What this controller last applied, when this run is only the periodic one: the same revision,
        generation and reconcile request, Ready, and no drift reported. None: a run with news."""
        if watcher is None or watcher.pending(ctx.key) or not ctx.periodic:
            return None
        meta_ = obj["metadata"]
        with self._lock:
            applied = self._applied.get(ctx.key)
        if (applied is None or applied.revision != revision or dig(obj, "status.lastAppliedRevision") != revision
                or applied.generation != int(meta_.get("generation") or 0)
                or applied.requested_at != (meta_.get("annotations") or {}).get(meta.RECONCILE_REQUEST_ANNOTATION)):
            return None
        return applied

    @staticmethod
    def _unchanged(key: str, applied: _Applied, watcher: DriftWatcher, digest: str, status: dict) -> bool:
        """Whether a server-side dry run would find nothing to do: the build is the one applied, no drift
        is reported and every object of the inventory is in the watch caches (so a change would have been).
        An inventory holding more than was applied keeps deferred (hand-over) deletions: the prune must run."""
        inventory = inventory_refs(status.get("inventory"))
        return (digest == applied.digest and not watcher.pending(key) and set(inventory) <= applied.objects.keys()
                and watcher.covers(inventory))

    def _confirm(self, ctx: ReconcileContext, obj: dict, client: KubeClient, evaluators: dict, applied: _Applied,
                 revision: str, annotations: dict[str, str], timeout: float, started: float) -> Success:
        """End a periodic run that found nothing new: no dry run, no apply, no status write, no event (only
        the health checks run again, when the Kustomization has them)."""
        ctx.log.info("manifests unchanged and no drift watched since the last apply, skipping the dry run",
                     revision=revision)
        if dig(obj, "spec.wait") or dig(obj, "spec.healthChecks"):
            refs = inventory_refs(dig(obj, "status.inventory"))
            unchanged = ChangeSet(ChangeSetEntry(ref, UNCHANGED) for ref in refs)
            try:
                self._check_health(ctx, obj, client, evaluators, unchanged, revision, annotations,
                                   is_new_revision=False, drifted=False, timeout=timeout, quiet=True)
            except HealthCheckFailed:
                upsert_history(obj["status"], applied.digest, reason=meta.HEALTH_CHECK_FAILED_REASON,
                               duration=time.monotonic() - started,
                               metadata=_history_metadata(revision, applied.origin_revision))
                raise
        with self._lock:
            applied.next_full = time.monotonic() + _interval(obj)
        return Success(f"Applied revision: {revision}", reason=meta.RECONCILIATION_SUCCEEDED_REASON, notify=False)

    # ------------------------------------------------------------------ health

    def _check_health(self, ctx: ReconcileContext, obj: dict, client: KubeClient, evaluators: dict,
                      changes: ChangeSet, revision: str, annotations: dict[str, str], *, is_new_revision: bool,
                      drifted: bool, timeout: float, quiet: bool = False) -> None:
        """Flux's health checks (``wait``, ``healthChecks``, ``healthCheckExprs``) of what was applied; a
        ``quiet`` re-check (a periodic run with nothing new) writes nothing while the objects stay healthy."""
        spec = obj.get("spec") or {}
        refs = health_check_refs(obj, changes.refs()) if spec.get("wait") or spec.get("healthChecks") else []
        if not refs:
            cond.delete(obj, meta.HEALTHY)
            return
        was_healthy = cond.is_true(obj, meta.HEALTHY)
        message = f"Running health checks for revision {revision} with a timeout of {format_duration(timeout)}"
        if not (quiet and was_healthy):
            cond.mark_unknown(obj, meta.HEALTHY, cond.PROGRESSING, message)
            ctx.progress(message)
        running = None
        if self.options.gate("CancelHealthCheckOnNewRevision"):
            ref = dig(obj, "spec.sourceRef") or {}
            running = _HealthCheck(
                ("source", ref.get("kind"), ref.get("namespace") or obj["metadata"]["namespace"], ref.get("name")),
                revision)
            with self._lock:
                self._health[ctx.key] = running
        try:
            result = check_health(StatusReader(client, evaluators), refs, timeout=timeout,
                                  interval=self.options.health_interval,
                                  fail_fast=not self.options.gate("DisableFailFastBehavior"),
                                  cancel=running.cancel if running else None)
        finally:
            with self._lock:
                self._health.pop(ctx.key, None)
        if result.cancelled:
            what = running.trigger or "a new source revision"
            ctx.event("Normal", _ready_reason(obj), f"Health checks canceled due to new reconciliation triggered by "
                      f"{what}", annotations)
            raise RetryableError(f"New reconciliation triggered by {what}", reason=meta.HEALTH_CHECK_CANCELED_REASON,
                                 requeue_after=0.0)
        if not result.healthy:
            failure = HealthCheckFailed(result)
            cond.mark_false(obj, meta.HEALTHY, meta.HEALTH_CHECK_FAILED_REASON, result.message)
            raise failure
        passed = f"Health check passed in {format_duration(result.elapsed)}"
        if not was_healthy or (is_new_revision and drifted):
            ctx.event("Normal", _ready_reason(obj), passed, annotations)
        if quiet and was_healthy:
            return
        cond.mark_true(obj, meta.HEALTHY, meta.SUCCEEDED_REASON, passed)
        ctx.patch_status()

    def _remember(self, ctx: ReconcileContext, obj: dict, watcher: DriftWatcher | None, remote: bool,
                  objects: list[dict], changes: ChangeSet, revision: str, origin: str, digest: str) -> None:
        """Keep what was applied (for drift corrections) and watch it."""
        if watcher is None or remote:
            if watcher is not None:
                watcher.forget(ctx.key)
            with self._lock:
                self._applied.pop(ctx.key, None)
            return
        built = {ObjectRef.from_object(o): o for o in objects}
        cluster_scoped = {(r.group, r.kind, r.name): o for r, o in built.items()}
        applied = {}
        for entry in changes:
            if entry.action != SKIPPED:
                found = built.get(entry.ref) or cluster_scoped.get((entry.ref.group, entry.ref.kind, entry.ref.name))
                if found is not None:
                    applied[entry.ref] = found
        meta_ = obj["metadata"]
        with self._lock:
            self._applied[ctx.key] = _Applied(
                generation=int(meta_.get("generation") or 0),
                requested_at=(meta_.get("annotations") or {}).get(meta.RECONCILE_REQUEST_ANNOTATION),
                revision=revision, origin_revision=origin, digest=digest, objects=applied,
                next_full=time.monotonic() + _interval(obj))
        watcher.track(ctx.key, inventory_refs(obj["status"].get("inventory")))

    def _wake_dependents(self, ctx: ReconcileContext, obj: dict) -> None:
        """Queue the Kustomizations waiting for this one (Flux polls them every --requeue-dependency)."""
        ref = ("dependsOn", KUSTOMIZATION.kind, obj["metadata"]["namespace"], obj["metadata"]["name"])
        for key in self.index.keys_for(ref):
            with self._lock:
                waiting = key in self._waiting
            if waiting:
                ctx.enqueue_after_status(key)

    # ------------------------------------------------------------------ drift corrections (beyond Flux)

    def _correct_drift(self, ctx: ReconcileContext, obj: dict, revision: str) -> Success | None:
        """Re-apply just the objects changed by someone else, when nothing else asks for a full run; None
        means: run the full reconciliation."""
        watcher = self.drift if self.options.watch_applied else None
        if watcher is None or not watcher.pending(ctx.key):
            return None
        meta_ = obj["metadata"]
        with self._lock:
            applied = self._applied.get(ctx.key)
        now = time.monotonic()
        if (applied is None or not cond.is_ready(obj) or applied.revision != revision
                or applied.generation != int(meta_.get("generation") or 0)
                or applied.requested_at != (meta_.get("annotations") or {}).get(meta.RECONCILE_REQUEST_ANNOTATION)
                or now >= applied.next_full):
            return None
        drifted = watcher.take(ctx.key)
        objects = [applied.objects[ref] for ref in sorted(drifted, key=ObjectRef.sort_key) if ref in applied.objects]
        started = time.monotonic()
        if objects:
            client, _ = self._target_client(ctx, obj)
            manager = ResourceManager(client)
            options = kustomization_apply_options(force=bool(dig(obj, "spec.force")), wait_timeout=self._timeout(obj),
                                                  disallowed_field_managers=self.options.disallowed_field_managers)
            try:
                changes = manager.apply_all_staged(copy.deepcopy(objects), options)
            except ApplyError as exc:
                ctx.log.error("drift correction failed, running a full reconciliation", error=exc.message)
                return None
            changed = changes.changed()
            if changed:
                ctx.log.info("drift corrected", output=changed.to_map(), revision=revision)
                ctx.event("Normal", _ready_reason(obj), str(changed),
                          _revision_annotations(revision, applied.origin_revision))
                history_meta = _history_metadata(revision, applied.origin_revision)
                upsert_history(obj.setdefault("status", {}), applied.digest,
                               reason=meta.RECONCILIATION_SUCCEEDED_REASON, duration=time.monotonic() - started,
                               metadata=history_meta)
        return Success(f"Applied revision: {revision}", reason=meta.RECONCILIATION_SUCCEEDED_REASON, notify=False,
                       requeue_after=max(applied.next_full - time.monotonic(), 1.0))

    # ------------------------------------------------------------------ tenancy

    def _target_client(self, ctx: ReconcileContext, obj: Mapping) -> tuple[KubeClient, bool]:
        """The client that applies (see :class:`controllers.lib.clients.TargetClients`) and whether remote."""
        try:
            return self.clients.for_object(ctx.kube, obj)
        except ClientError as exc:
            raise RetryableError(str(exc), reason=meta.RECONCILIATION_FAILED_REASON) from None

    def _sops_age_secret(self) -> tuple[str, str] | None:
        name, namespace = self.options.sops_age_secret, self.options.runtime_namespace
        return (namespace, name) if name and namespace else None

    # ------------------------------------------------------------------ deletion

    def finalize(self, ctx: ReconcileContext, obj: dict) -> None:
        """Prune the inventory as ``deletionPolicy`` says (deferred while a renamed Kustomization may still
        take objects over: the finalizer stays and this runs again)."""
        key = ctx.key
        if self.drift is not None:
            self.drift.forget(key)
        with self._lock:
            self._applied.pop(key, None)
            self._waiting.discard(key)
        self.index.remove(key)
        if not finalizer_should_delete(obj):
            return
        revision = dig(obj, "status.lastAppliedRevision", "")
        annotations = _revision_annotations(revision, dig(obj, "status.lastAppliedOriginRevision", ""))
        account = dig(obj, "spec.serviceAccountName") or self.options.default_service_account
        if account and not _exists(ctx.kube, SERVICE_ACCOUNT, account, obj["metadata"]["namespace"]):
            listing = "\n".join(r.subject for r in inventory_refs(dig(obj, "status.inventory")))
            ctx.log.error("skiping pruning, failed to find account to impersonate")
            ctx.event("Warning", _ready_reason(obj), f"unable to prune objects: \n{listing}", annotations)
            return
        client, _ = self._target_client(ctx, obj)
        manager = ResourceManager(client)
        owner = manager.owner(obj["metadata"]["name"], obj["metadata"]["namespace"])
        try:
            result = prune_on_delete(manager, obj, claimants=_claimants(ctx, owner), grace=self.grace,
                                     timeout=self._timeout(obj))
        except PruneError:
            ctx.event("Warning", _ready_reason(obj), "pruning for deleted resource failed", annotations)
            raise
        if result.changes:
            ctx.event("Normal", _ready_reason(obj), str(result.changes), annotations)
        if result.termination_error:
            ctx.log.error("failed to wait for resources termination", error=result.termination_error)
            ctx.event("Warning", _ready_reason(obj), "failed to wait for resources termination", annotations)
        if result.deferred:
            raise RetryableError(result.deferred_message, reason=meta.PRUNE_FAILED_REASON)


# ---------------------------------------------------------------------------------------------- helpers

def _interval(obj: Mapping) -> float:
    value = dig(obj, "spec.interval")
    try:
        return parse_duration(value) if value else 600.0
    except ValueError:
        return 600.0


def _claimants(ctx: ReconcileContext, owner) -> list[str]:
    """The Kustomizations that may still take over stale objects of ``owner``: pending ones this controller
    reconciles (those outside its scope — another shard, another namespace — are not waited for)."""
    informer = ctx.controller.informer
    return [key for key in find_pending_claimants(ctx.kube, owner) if informer.get(key) is not None]


def _ready_reason(obj: Mapping) -> str:
    """Flux's event reason: the Ready condition's reason at the time (Progressing during a reconciliation)."""
    return cond.reason_of(obj, cond.READY) or "info"


def _history_metadata(revision: str, origin: str) -> dict[str, str]:
    """A history snapshot's metadata: the revision, and the origin revision when there is one."""
    return {"revision": revision, **({"originRevision": origin} if origin else {})}


def _revision_annotations(revision: str, origin: str) -> dict[str, str]:
    out = {REVISION_KEY: revision} if revision else {}
    if origin:
        out[ORIGIN_REVISION_META_KEY] = origin
    return out


def _exists(kube: KubeClient, rt, name: str, namespace: str) -> bool:
    try:
        kube.get(rt, name, namespace)
        return True
    except NotFound:
        return False


# ---------------------------------------------------------------------------------------------- flags

#: The kustomize-controller's own flags (Flux's names; the defaults are the Options fields').
FLAGS = (
    DEFAULT_SERVICE_ACCOUNT,
    NO_CROSS_NAMESPACE_REFS,
    OptionFlag("no_remote_bases", "--no-remote-bases", "Disallow remote bases usage in Kustomize overlays. When "
               "this flag is enabled, all resources must refer to local files included in the source artifact."),
    HTTP_RETRY,
    OptionFlag("sops_age_secret", "--sops-age-secret", "The name of a Kubernetes secret in the RUNTIME_NAMESPACE "
               "containing a SOPS age decryption key for fallback usage."),
    OVERRIDE_MANAGER,
    INSECURE_KUBECONFIG_EXEC,
    INSECURE_KUBECONFIG_TLS,
    feature_gates_flag(FEATURE_GATES),
    OptionFlag("watch_applied", "--watch-applied", "Watch the applied objects and correct drift as soon as it "
               "happens (fluxpy; Flux corrects drift at the next interval)."),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The kustomize-controller's own flags (``--requeue-dependency`` is common)."""
    add_option_flags(parser, Options, FLAGS)
    parser.add_argument("--concurrent-ssa", type=int, default=4,
                        help="The number of concurrent server-side apply operations.")


def new_reconciler(args: argparse.Namespace) -> KustomizationReconciler:
    """Factory for ``controllers.components`` (kustomize-controller)."""
    return KustomizationReconciler(options_from_args(Options, args, FLAGS,
                                                     runtime_namespace=os.environ.get("RUNTIME_NAMESPACE", "")))
