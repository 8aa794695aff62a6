"""The HelmRelease reconciler (helm.toolkit.fluxcd.io/v2), as Flux 2.7's helm-controller.

One reconciliation, in Flux's order, with its conditions, reasons, messages and events:

1. ``Fulfilling prerequisites``: the HelmChart ``<namespace>-<name>`` generated from ``spec.chart`` in the
   chart source's namespace (server-side applied, owner labels; deleted when the release moves to a
   ``chartRef``), ``dependsOn`` (:mod:`controllers.lib.dependencies`: readyExpr, other kinds, cycles), the
   source (the HelmChart, or ``chartRef`` to an OCIRepository, HelmChart or ExternalArtifact) and its
   readiness (SourceNotReady), values (:func:`controllers.lib.values.chart_values`, ValuesError), the chart
   artifact (ArtifactFailed), the client (``serviceAccountName``, ``kubeConfig``; RESTClientError);
2. a changed release name, target or storage namespace, or chart name uninstalls the old release first;
3. failure counters reset on a new generation, chart version, values or ``--reset``
   (``reconcile.fluxcd.io/resetAt``); ``lastAttempted*`` recorded;
4. the atomic release (Flux's AtomicRelease): the release state (:meth:`HelmReleaseReconciler._state`:
   Absent, Locked, Unmanaged, OutOfSync, Untested, Failed, Drifted, InSync) picks the next action
   (install, upgrade, test, rollback or uninstall remediation, unlock, drift correction) until it is in
   sync; each action at most once per reconciliation, a remediation ends it; exhausted retries stall
   (RetriesExceeded); ``RetryOnFailure`` retries after ``retryInterval``; ``reconcile.fluxcd.io/forceAt``
   forces an upgrade (or install).

Ready summarises Remediated, TestSuccess (tests enabled and failures not ignored) and Released, as Flux.
Beyond Flux: a periodic run of a Ready release writes no progress, and the generated HelmChart is read from
the cache and applied only when its template changed or someone else changed it. Drift is detected at every
reconciliation and reported in the Drifted condition even with ``driftDetection.mode: disabled`` (correction
follows the mode); a release stuck in ``pending-*`` is unlocked with an event. The Helm actions themselves are :mod:`controllers.helm.actions`.
"""
from __future__ import annotations

import argparse
import copy
import dataclasses
import tempfile
import time
from pathlib import Path
from typing import Callable, Mapping

import yaml

from controllers.api import meta
from controllers.api.builtin import CONFIGMAP, SECRET, SERVICE_ACCOUNT
from controllers.api.duration import format_duration, parse_duration
from controllers.api.helm import HELM_RELEASE
from controllers.api.objects import dig
from controllers.api.source import EXTERNAL_ARTIFACT, HELM_CHART, OCI_REPOSITORY
from controllers.helm import history as hist
from controllers.helm.actions import (CRDS_CREATE, CRDS_SKIP, ActionError, ActionOptions, Drift, Releaser,
                                      summarize as summarize_drift)
from controllers.lib.clients import ClientError, TargetClients
from controllers.lib.dependencies import CachingResolver, DependencyCycle, check_dependencies, dependencies_of
from controllers.lib.fetch import DEFAULT_RETRIES, ArtifactNotFound, FetchError, fetch_artifact
from controllers.lib.helm import HelmCLI
from controllers.lib.helm_release import (Chart, RenderError, labelled_crds, load_chart, release_name,
                                          release_namespace, render, storage_namespace)
from controllers.lib.helm_storage import PENDING_STATUSES, STATUS_FAILED, STATUS_UNINSTALLED, ReleaseStorage, \
    StorageError, status_of
from controllers.lib.index import ReferenceIndex
from controllers.lib.values import ValuesReferenceError, chart_values, mask, merge_maps
from controllers.runtime import conditions as cond
from controllers.runtime.apply import ResourceManager
from controllers.runtime.conditions import Conditions
from controllers.runtime.controller import ReconcileContext, Reconciler, Watch
from controllers.runtime.flags import (DEFAULT_SERVICE_ACCOUNT, HTTP_RETRY, INSECURE_KUBECONFIG_EXEC,
                                      INSECURE_KUBECONFIG_TLS, NO_CROSS_NAMESPACE_REFS, OVERRIDE_MANAGER, FeatureGates,
                                      add_option_flags, feature_gates_flag, options_from_args)
from controllers.runtime.kube import KubeClient, KubeError, NotFound
from controllers.runtime.outcomes import RetryableError, StalledError, Success, Waiting
from controllers.runtime.predicates import artifact_revision_changed

RELEASED, TEST_SUCCESS, REMEDIATED, DRIFTED = "Released", "TestSuccess", "Remediated", "Drifted"
INSTALL_SUCCEEDED, INSTALL_FAILED = "InstallSucceeded", "InstallFailed"
UPGRADE_SUCCEEDED, UPGRADE_FAILED = "UpgradeSucceeded", "UpgradeFailed"
TEST_SUCCEEDED, TEST_FAILED = "TestSucceeded", "TestFailed"
ROLLBACK_SUCCEEDED, ROLLBACK_FAILED = "RollbackSucceeded", "RollbackFailed"
UNINSTALL_SUCCEEDED, UNINSTALL_FAILED = "UninstallSucceeded", "UninstallFailed"
ARTIFACT_FAILED, DRIFT_DETECTED, NO_DRIFT = "ArtifactFailed", "DriftDetected", "NoDriftDetected"
ACCESS_DENIED, PENDING_RELEASE = "AccessDenied", "PendingRelease"

#: the opt-out of one object from drift detection (Flux's annotation)
DRIFT_DETECTION_ANNOTATION = f"{meta.HELM_GROUP}/driftDetection"
#: event metadata keys (Flux's eventv1 with the API group)
REVISION_KEY, TOKEN_KEY = f"{meta.HELM_GROUP}/revision", f"{meta.HELM_GROUP}/token"
APP_VERSION_KEY, OCI_DIGEST_KEY = f"{meta.HELM_GROUP}/app-version", f"{meta.HELM_GROUP}/oci-digest"
#: chartRef kinds, by Kind
CHART_REF_KINDS = {k.kind: k for k in (OCI_REPOSITORY, HELM_CHART, EXTERNAL_ARTIFACT)}

#: action types (Flux's ReconcilerType): each runs at most once per reconciliation; a remediation ends it
RELEASE, REMEDIATE, UNLOCK, TEST, DRIFT = "release", "remediate", "unlock", "test", "drift"

FEATURE_GATES = FeatureGates({
    "AllowDNSLookups": False, "CacheSecretsAndConfigMaps": False, "DefaultToRetryOnFailure": False,
    "DisableChartDigestTracking": False, "ExternalArtifact": False, "AdditiveCELDependencyCheck": False,
    "OOMWatch": False, "DetectDrift": False, "CorrectDrift": False, "DisableConfigWatchers": False,
})


@dataclasses.dataclass
class Options:
    """The helm-controller's own settings (its flags)."""

    default_service_account: str = ""
    """Impersonate this service account (in the HelmRelease's namespace) when none is set."""
    no_cross_namespace_refs: bool = False
    http_retry: int = DEFAULT_RETRIES
    disallowed_field_managers: tuple[str, ...] = ()
    insecure_kubeconfig_exec: bool = False
    insecure_kubeconfig_tls: bool = False
    feature_gates: dict[str, bool] = dataclasses.field(default_factory=lambda: dict(FEATURE_GATES.defaults))
    health_interval: float = 2.0
    """Seconds between two readiness polls of released objects."""
    artifact_timeout: float = 60.0
    """Seconds a chart download may take."""

    def gate(self, name: str) -> bool:
        return self.feature_gates.get(name, FEATURE_GATES.defaults.get(name, False))


def references(obj: Mapping) -> set[tuple]:
    """What a HelmRelease refers to (its :class:`~controllers.lib.index.ReferenceIndex` entry): its chart
    source, dependencies, values objects and kubeconfig Secret."""
    ns = dig(obj, "metadata.namespace")
    refs: set[tuple] = set()
    if dig(obj, "spec.chartRef"):
        ref = dig(obj, "spec.chartRef")
        refs.add(("source", ref.get("kind"), ref.get("namespace") or ns, ref.get("name")))
    elif dig(obj, "spec.chart.spec.sourceRef"):
        chart_ns = dig(obj, "spec.chart.spec.sourceRef.namespace") or ns
        refs.add(("source", HELM_CHART.kind, chart_ns, f"{ns}-{dig(obj, 'metadata.name')}"))
    refs |= {("dependsOn", d.kind, d.namespace, d.name) for d in dependencies_of(HELM_RELEASE, obj)}
    for entry in dig(obj, "spec.valuesFrom", []) or []:
        if entry.get("name"):
            refs.add((entry.get("kind"), ns, entry["name"]))
    if dig(obj, "spec.kubeConfig.secretRef.name"):
        refs.add(("Secret", ns, dig(obj, "spec.kubeConfig.secretRef.name")))
    return refs


def _seconds(value, default: float) -> float:
    try:
        return parse_duration(value) if value else default
    except ValueError:
        return default


def _digest_of(value) -> str:
    return hist.config_digest({"v": value})[len("sha256:"):] if value else ""


@dataclasses.dataclass
class _Request:
    """One reconciliation's inputs to the atomic release (Flux's Request)."""

    ctx: ReconcileContext
    obj: dict
    chart: Chart
    values: dict
    releaser: Releaser
    oci_digest: str = ""
    force: bool = False
    secrets: list[str] = dataclasses.field(default_factory=list)
    """The strings the values took from Secrets: masked in the messages of a failed render."""

    @property
    def status(self) -> dict:
        return self.obj.setdefault("status", {})

    @property
    def spec(self) -> dict:
        return self.obj.get("spec") or {}

    def timeout(self, action: str = "") -> float:
        default = _seconds(self.spec.get("timeout"), 300.0)
        return _seconds(dig(self.spec, f"{action}.timeout"), default) if action else default


@dataclasses.dataclass
class _State:
    status: str
    reason: str = ""
    drifts: list[Drift] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _Action:
    name: str
    type: str
    run: Callable[[_Request], None]
    timeout_of: str = ""


class HelmReleaseReconciler(Reconciler):
    """Reconciles HelmReleases (see the module docstring)."""

    kind = HELM_RELEASE
    conditions = Conditions(owned=(cond.READY, cond.RECONCILING, cond.STALLED, RELEASED, TEST_SUCCESS, REMEDIATED,
                                   DRIFTED),
                            summarize=(REMEDIATED, TEST_SUCCESS, RELEASED, cond.STALLED, cond.RECONCILING),
                            negative_polarity=(cond.STALLED, cond.RECONCILING, REMEDIATED))
    #: without tests (or with their failures ignored) TestSuccess does not count (Flux's summarize)
    untested_conditions = dataclasses.replace(
        conditions, summarize=tuple(t for t in conditions.summarize if t != TEST_SUCCESS))

    def conditions_for(self, obj: dict) -> Conditions:
        counts = dig(obj, "spec.test.enable") and not dig(obj, "spec.test.ignoreFailures")
        return self.conditions if counts else self.untested_conditions

    def __init__(self, options: Options | None = None):
        self.options = options or Options()
        self.index = ReferenceIndex()
        self._charts: dict[str, dict] = {}
        """key -> the HelmChart this process last applied for it (see :meth:`_chart_template`)."""
        self.clients = TargetClients(self.options.default_service_account,
                                     allow_exec=self.options.insecure_kubeconfig_exec,
                                     allow_insecure_tls=self.options.insecure_kubeconfig_tls)

    # ------------------------------------------------------------------ wiring

    def watches(self) -> list[Watch]:
        """Chart sources (a new artifact revision), and labelled Secrets/ConfigMaps that values come from."""
        kinds = [HELM_CHART, OCI_REPOSITORY] + ([EXTERNAL_ARTIFACT] if self.options.gate("ExternalArtifact") else [])
        watches = [Watch(k, self._keys_of(lambda o, k=k: ("source", k.kind, dig(o, "metadata.namespace"),
                                                          dig(o, "metadata.name"))),
                         predicate=artifact_revision_changed) for k in kinds]
        if not self.options.gate("DisableConfigWatchers"):
            selector = f"{meta.WATCH_LABEL}={meta.WATCH_LABEL_ENABLED}"
            for rt in (CONFIGMAP, SECRET):
                watches.append(Watch(rt, self._keys_of(lambda o, rt=rt: (rt.kind, dig(o, "metadata.namespace"),
                                                                         dig(o, "metadata.name"))),
                                     label_selector=selector))
        return watches

    def _keys_of(self, ref_of: Callable[[dict], tuple]):
        return lambda obj: self.index.keys_for(ref_of(obj))

    # ------------------------------------------------------------------ reconcile

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        self.index.update(ctx.key, references(obj))
        status = obj.setdefault("status", {})
        # beyond Flux: a periodic run of a Ready release writes nothing unless it finds work (then its action
        # is reported as it starts)
        ctx.progress("Fulfilling prerequisites", ready=False, write=not ctx.periodic)
        self._chart_template(ctx, obj)
        if dig(obj, "spec.dependsOn"):
            try:
                check_dependencies(ctx.kube, HELM_RELEASE, obj, resolver=CachingResolver(ctx.kube),
                                   additive_cel=self.options.gate("AdditiveCELDependencyCheck"))
            except DependencyCycle as exc:
                raise StalledError(exc.message, reason=exc.reason, requeue_after=ctx.requeue_dependency) from None
            except Waiting as exc:
                raise Waiting(exc.message, reason=meta.DEPENDENCY_NOT_READY_REASON, summarize=False) from None
            ctx.log.info("all dependencies are ready")
        source = self._source(ctx, obj)
        secrets: list[str] = []
        values = self._values(ctx, obj, secrets)
        client = self._client(ctx, obj)
        with tempfile.TemporaryDirectory(prefix="helmrelease-") as tmp:
            chart, oci_digest = self._load_chart(ctx, obj, source, Path(tmp))
            releaser = Releaser(client, ReleaseStorage(client, storage_namespace(obj)), release_name(obj),
                                release_namespace(obj), health_interval=self.options.health_interval)
            changed = self._target_changed(obj, chart)
            if changed:
                ctx.log.info(f"release target configuration changed ({changed}): running uninstall for current "
                             "release")
                self._uninstall_current(ctx, obj, client)
                hist.clear_failures(status)
                status.pop("history", None)
                status.pop("storageNamespace", None)
                raise RetryableError(f"release target configuration changed ({changed})",
                                     reason=meta.PROGRESSING_REASON)
            status["storageNamespace"] = storage_namespace(obj)
            reset = self._handle_request(obj, meta.RESET_REQUEST_ANNOTATION, "lastHandledResetAt")
            if self._must_reset_failures(obj, chart, values) or reset:
                if reset and any(status.get(k) for k in ("failures", "installFailures", "upgradeFailures")):
                    ctx.event("Normal", "ResetRequested", "Failure counters reset through annotation: the "
                              "release is retried", self._event_meta(chart, values, oci_digest))
                hist.clear_failures(status)
            status.update(lastAttemptedGeneration=int(obj["metadata"].get("generation") or 0),
                          lastAttemptedRevision=chart.version, lastAttemptedConfigDigest=hist.config_digest(values))
            if oci_digest:
                status["lastAttemptedRevisionDigest"] = oci_digest
            else:
                status.pop("lastAttemptedRevisionDigest", None)
            status.pop("lastAttemptedValuesChecksum", None)
            status.pop("lastReleaseRevision", None)
            force = self._handle_request(obj, meta.FORCE_REQUEST_ANNOTATION, "lastHandledForceAt")
            request = _Request(ctx, obj, chart, values, releaser, oci_digest, force, secrets)
            return self._atomic_release(ctx, request)

    # ------------------------------------------------------------------ prerequisites

    def _chart_template(self, ctx: ReconcileContext, obj: dict) -> None:
        """The generated HelmChart: applied from ``spec.chart``, the old one deleted when it moved or when the
        release now uses ``chartRef``."""
        status, ns, name = obj["status"], obj["metadata"]["namespace"], obj["metadata"]["name"]
        template = dig(obj, "spec.chart")
        chart_ns = (dig(template, "spec.sourceRef.namespace") or ns) if template else ""
        wanted = f"{chart_ns}/{ns}-{name}" if template else ""
        if status.get("helmChart") and status["helmChart"] != wanted:
            self._delete_chart(ctx, obj)
        if not template:
            return
        if self.options.no_cross_namespace_refs and chart_ns != ns:
            raise StalledError(f"can't access '{HELM_CHART.kind}/{chart_ns}/{ns}-{name}', cross-namespace "
                               "references have been blocked", reason=ACCESS_DENIED, summarize=False)
        chart = helm_chart_from_template(obj)
        manager = ResourceManager(ctx.kube, field_manager="helm-controller", owner_group=meta.HELM_GROUP)
        manager.set_owner_labels([chart], name, ns)
        live = ctx.controller.cached(HELM_CHART, chart_ns, chart["metadata"]["name"])
        if live is not None and self._charts.get(ctx.key) == chart and _holds(live, chart):
            status["helmChart"] = wanted  # beyond Flux: no dry run of an unchanged HelmChart
            return
        applying = copy.deepcopy(chart)
        try:
            (entry,) = manager.apply_all([chart])
        except (KubeError, RetryableError) as exc:
            raise RetryableError(f"failed to run server-side apply: {getattr(exc, 'message', exc)}",
                                 reason="HelmChartSyncErr", summarize=False) from None
        source = dig(template, "spec.sourceRef") or {}
        if entry.action in ("created", "configured"):
            ctx.log.info(f"{entry.action} {entry.subject} with SourceRef '{source.get('kind')}/{chart_ns}/"
                         f"{source.get('name')}'")
        status["helmChart"] = wanted
        self._charts[ctx.key] = applying

    def _delete_chart(self, ctx: ReconcileContext, obj: dict) -> None:
        ns, _, name = obj["status"]["helmChart"].partition("/")
        try:
            ctx.kube.delete(HELM_CHART, name, ns)
            ctx.log.info(f"deleted HelmChart '{obj['status']['helmChart']}'")
        except NotFound:
            pass
        except KubeError as exc:
            raise RetryableError(f"failed to delete HelmChart '{obj['status']['helmChart']}': {exc.message}",
                                 summarize=False) from None
        obj["status"].pop("helmChart", None)

    def _source(self, ctx: ReconcileContext, obj: dict) -> dict:
        """The chart source, Ready with an artifact (SourceNotReady waits, AccessDenied stalls)."""
        own_ns = obj["metadata"]["namespace"]
        if dig(obj, "spec.chartRef"):
            ref = dig(obj, "spec.chartRef")
            kind, name, namespace = ref.get("kind", ""), ref.get("name", ""), ref.get("namespace") or own_ns
            rt = CHART_REF_KINDS.get(kind)
            if rt is None or (kind == EXTERNAL_ARTIFACT.kind and not self.options.gate("ExternalArtifact")):
                raise StalledError(f"unsupported source kind '{kind}'", reason=ARTIFACT_FAILED, summarize=False)
            if self.options.no_cross_namespace_refs and namespace != own_ns:
                raise StalledError(f"can't access '{kind}/{namespace}/{name}', cross-namespace references have "
                                   "been blocked", reason=ACCESS_DENIED, summarize=False)
        else:
            rt, kind = HELM_CHART, HELM_CHART.kind
            namespace, _, name = obj["status"].get("helmChart", "").partition("/")
        try:
            source = ctx.controller.cached(rt, namespace, name) or ctx.kube.get(rt, name, namespace)
        except KubeError as exc:
            raise RetryableError(f"could not get Source object: {exc.message}", reason=ARTIFACT_FAILED,
                                 summarize=False) from None
        not_ready = source_not_ready(source, kind)
        if not_ready:
            ctx.log.info(not_ready)
            raise Waiting(not_ready, reason="SourceNotReady", summarize=False)
        return source

    def _values(self, ctx: ReconcileContext, obj: dict, secrets: list[str]) -> dict:
        try:
            return chart_values(ctx.kube, obj["metadata"]["namespace"], dig(obj, "spec.values"),
                                dig(obj, "spec.valuesFrom"), secrets=secrets)
        except ValuesReferenceError as exc:
            ctx.event("Warning", "ValuesError", str(exc))
            raise RetryableError(str(exc), reason="ValuesError", summarize=False) from None

    def _client(self, ctx: ReconcileContext, obj: dict) -> KubeClient:
        try:
            return self.clients.for_object(ctx.kube, obj)[0]
        except ClientError as exc:
            raise RetryableError(str(exc), reason="RESTClientError", summarize=False) from None

    def _load_chart(self, ctx: ReconcileContext, obj: dict, source: dict, tmp: Path) -> tuple[Chart, str]:
        """The chart of the source's artifact; for an OCIRepository the digest of its revision, appended to
        the chart version as Flux does (``<version>+<first 12 hex digits>``) unless DisableChartDigestTracking."""
        artifact = dig(source, "status.artifact") or {}
        try:
            fetch_artifact(artifact, tmp / "chart", timeout=self.options.artifact_timeout,
                           retries=self.options.http_retry, user_agent="fluxpy-helm-controller")
            chart = load_chart(tmp / "chart")
        except ArtifactNotFound:
            raise Waiting(f"Source not ready: artifact not found. Retrying in {format_duration(ctx.requeue_dependency)}",
                          reason=ARTIFACT_FAILED, summarize=False) from None
        except (FetchError, RenderError) as exc:
            message = getattr(exc, "message", "") or str(exc)
            ctx.event("Warning", ARTIFACT_FAILED, message)
            raise RetryableError(f"Could not load chart: {message}", reason=ARTIFACT_FAILED, summarize=False) from None
        oci_digest = ""
        revision = str(artifact.get("revision") or "")
        if source.get("kind") == OCI_REPOSITORY.kind and "@" in revision:
            oci_digest = revision.rpartition("@")[2]
            if not self.options.gate("DisableChartDigestTracking"):
                algorithm, _, hexa = oci_digest.partition(":")
                chart.metadata["version"] = f"{chart.version}+{hexa[:12]}"
                (chart.directory / "Chart.yaml").write_text(yaml.safe_dump(chart.metadata, sort_keys=False))
        return chart, oci_digest

    def _target_changed(self, obj: dict, chart: Chart) -> str:
        """Flux's ReleaseTargetChanged: what moved since the current release ('' when nothing did)."""
        status = obj["status"]
        current = hist.latest(status)
        if not status.get("storageNamespace") or current is None:
            return ""
        if storage_namespace(obj) != status["storageNamespace"]:
            return "storage namespace"
        if release_namespace(obj) != current.get("namespace"):
            return "release namespace"
        if release_name(obj) != current.get("name"):
            return "release name"
        if chart.name != current.get("chartName"):
            return "chart name"
        return ""

    @staticmethod
    def _handle_request(obj: dict, annotation: str, handled: str) -> bool:
        """Flux's ShouldHandleForce/ResetRequest: the annotation set together with ``requestedAt`` (the same
        token) and not handled before; recorded in ``status.<handled>``."""
        annotations = obj["metadata"].get("annotations") or {}
        token = annotations.get(annotation)
        if not token or token != annotations.get(meta.RECONCILE_REQUEST_ANNOTATION) \
                or token == obj["status"].get(handled):
            return False
        obj["status"][handled] = token
        return True

    @staticmethod
    def _must_reset_failures(obj: dict, chart: Chart, values: dict) -> bool:
        status = obj["status"]
        return (status.get("lastAttemptedGeneration") != int(obj["metadata"].get("generation") or 0)
                or status.get("lastAttemptedRevision") != chart.version
                or (bool(status.get("lastAttemptedConfigDigest"))
                    and status["lastAttemptedConfigDigest"] != hist.config_digest(values)))

    # ------------------------------------------------------------------ the atomic release

    def _atomic_release(self, ctx: ReconcileContext, req: _Request) -> Success:
        obj, status = req.obj, req.status
        done: list[str] = []
        for _ in range(16):
            state = self._state(ctx, req)
            ctx.log.debug(f"determining next Helm action based on state: '{state.status}' reason '{state.reason}'")
            action = self._action_for(ctx, req, state)
            if action is None:
                return self._summarize(ctx, req)
            if action.type in done:
                return self._stop(ctx, req)
            timeout = req.timeout(action.timeout_of)
            message = f"Running '{action.name}' action with timeout of {format_duration(timeout)}"
            ctx.progress(message, ready=action.type == RELEASE)
            ctx.log.info(message[0].lower() + message[1:])
            try:
                action.run(req)
            except (ActionError, KubeError, StorageError) as exc:
                text = getattr(exc, "message", "") or str(exc)
                retry = hist.active_retry_interval(obj, self.options.gate("DefaultToRetryOnFailure"))
                if retry is not None:
                    raise RetryableError(text, reason=cond.reason_of(obj, RELEASED) or "ReconcileError",
                                         requeue_after=retry) from None
                raise RetryableError(text, reason="ReconcileError") from None
            if action.type == REMEDIATE:
                return self._after_remediation(ctx, req)
            done.append(action.type)
            ctx.patch_status()
        raise RetryableError("the release did not settle: too many actions in one reconciliation")

    def _stop(self, ctx: ReconcileContext, req: _Request) -> Success:
        """An action would run a second time: retry later (Flux's MustContinue false)."""
        obj = req.obj
        retry = hist.active_retry_interval(obj, self.options.gate("DefaultToRetryOnFailure"))
        if retry is not None:
            raise RetryableError(f"retrying after {format_duration(retry)}", requeue_after=retry,
                                 reason=cond.reason_of(obj, RELEASED) or "ReconcileError")
        remediation = hist.Remediation.active(obj)
        if remediation is None or not remediation.exhausted():
            raise RetryableError((cond.get(obj, RELEASED) or {}).get("message", "") or "retrying",
                                 reason=cond.reason_of(obj, RELEASED) or "ReconcileError")
        return self._summarize(ctx, req)

    def _after_remediation(self, ctx: ReconcileContext, req: _Request) -> Success:
        """A remediation ends the reconciliation (Flux's MustStop): requeue while retries remain, else stall."""
        obj = req.obj
        retry = hist.active_retry_interval(obj, self.options.gate("DefaultToRetryOnFailure"))
        if retry is not None:
            raise RetryableError(f"retrying after {format_duration(retry)}", requeue_after=retry,
                                 reason=cond.reason_of(obj, REMEDIATED))
        remediation = hist.Remediation.active(obj)
        if remediation is None or not remediation.exhausted() or remediation.uninstall_after_upgrade():
            raise RetryableError((cond.get(obj, REMEDIATED) or {}).get("message", ""),
                                 reason=cond.reason_of(obj, REMEDIATED))
        raise self._retries_exceeded(obj)

    @staticmethod
    def _retries_exceeded(obj: dict) -> StalledError:
        remediation = hist.Remediation.active(obj)
        count = remediation.failure_count() if remediation else 0
        return StalledError(f"Failed to {dig(obj, 'status.lastAttemptedReleaseAction')} after {count} attempt(s)",
                            reason="RetriesExceeded")

    def _summarize(self, ctx: ReconcileContext, req: _Request) -> Success:
        """Flux's summarize: Ready from Remediated, TestSuccess (when it counts) and Released."""
        obj, status = req.obj, req.status
        spec = req.spec
        tests = bool(dig(spec, "test.enable"))
        if not tests:
            cond.delete(obj, TEST_SUCCESS)
        _observe_digests(req)
        order = [REMEDIATED] + ([TEST_SUCCESS] if tests and not dig(spec, "test.ignoreFailures") else []) + [RELEASED]
        first = next((cond.get(obj, t) for t in order if cond.get(obj, t)), None)
        interval = self.interval(obj)
        if first is None:
            return Success("Reconciliation succeeded")
        if first["type"] == REMEDIATED or first["status"] != cond.TRUE:
            if cond.get(obj, cond.STALLED):
                raise StalledError(cond.get(obj, cond.STALLED)["message"], reason=cond.reason_of(obj, cond.STALLED))
            raise RetryableError(first["message"], reason=first["reason"], requeue_after=interval, summarize=False)
        return Success(first["message"], reason=first["reason"], notify=False)

    # ------------------------------------------------------------------ state

    def _state(self, ctx: ReconcileContext, req: _Request) -> _State:
        """Flux's DetermineReleaseState."""
        obj, status, releaser = req.obj, req.status, req.releaser
        try:
            release = releaser.storage.latest(releaser.name)
        except (StorageError, KubeError) as exc:
            raise RetryableError(f"Could not determine release state: {getattr(exc, 'message', exc)}",
                                 reason="StateError") from None
        if release is None:
            return _State("Absent", "no release in storage for object")
        release_status = status_of(release)
        if release_status in PENDING_STATUSES:
            return _State("Locked", f"release with status '{release_status}'")
        current = hist.latest(status)
        if current is None:
            if release_status == STATUS_UNINSTALLED:
                return _State("Absent", "found uninstalled release in storage")
            return _State("Unmanaged", "found existing release in storage")
        if not hist.verified(current, release):
            return _State("Unmanaged", "release not observed to be made for object")
        if release_status == STATUS_FAILED:
            return _State("Failed")
        if release_status == STATUS_UNINSTALLED:
            return _State("Absent", "found uninstalled release in storage")
        if release_status != "deployed":
            raise RetryableError(f"Could not determine release state: unable to determine state for release with "
                                 f"status '{release_status}'", reason="StateError")
        chart_meta = dig(release, "chart.metadata") or {}
        if chart_meta.get("name") != req.chart.name or chart_meta.get("version") != req.chart.version:
            return _State("OutOfSync", "release chart changed")
        if current.get("configDigest") != hist.config_digest(req.values):
            return _State("OutOfSync", "release config values changed")
        if status.get("observedGeneration") != obj["metadata"].get("generation"):
            if _digest_of(req.spec.get("postRenderers")) != (status.get("observedPostRenderersDigest") or ""):
                return _State("OutOfSync", "postrenderers digest has changed")
            if _digest_of(req.spec.get("commonMetadata")) != (status.get("observedCommonMetadataDigest") or ""):
                return _State("OutOfSync", "common metadata digest has changed")
        if dig(req.spec, "test.enable"):
            if not hist.has_been_tested(current):
                return _State("Untested")
            remediation = hist.Remediation.active(obj)
            if remediation is not None and not remediation.ignore_test_failures() and hist.test_phase_in(
                    current, "Failed"):
                return _State("Failed", "release has test in failed phase")
        drifts = self._drift(ctx, req, release)
        if drifts and drift_mode(obj) != "disabled":
            return _State("Drifted", drifts=drifts)
        return _State("InSync", drifts=drifts)

    def _drift(self, ctx: ReconcileContext, req: _Request, release: dict) -> list[Drift]:
        """What changed in the cluster since the release (objects annotated ``driftDetection: disabled`` left
        out); recorded in the Drifted condition whatever the mode (beyond Flux)."""
        try:
            drifts = req.releaser.diff(release, dig(req.spec, "driftDetection.ignore"))
        except (KubeError, RetryableError) as exc:
            ctx.log.error("diff of release against cluster state completed with error",
                          error=getattr(exc, "message", exc))
            return []
        drifts = [d for d in drifts if (dig(d.desired, "metadata.annotations") or {}).get(
            DRIFT_DETECTION_ANNOTATION) != "disabled"]
        current = hist.latest(req.status)
        if drifts:
            message = (f"Cluster state of release {hist.full_name(current)} has drifted from the desired state:\n"
                       f"{summarize_drift(drifts)}")
            if drift_mode(req.obj) == "disabled":
                message += "\n(driftDetection.mode is disabled: not corrected)"
            cond.mark_true(req.obj, DRIFTED, DRIFT_DETECTED, message)
        else:
            cond.mark_false(req.obj, DRIFTED, NO_DRIFT, "No drift detected against the cluster state")
        return drifts

    def _action_for(self, ctx: ReconcileContext, req: _Request, state: _State) -> _Action | None:
        """Flux's actionForState."""
        obj, status, log = req.obj, req.status, ctx.log
        install = _Action("install", RELEASE, self._install, "install")
        upgrade = _Action("upgrade", RELEASE, self._upgrade, "upgrade")
        retry_default = self.options.gate("DefaultToRetryOnFailure")
        if state.status == "InSync":
            if hist.active_retry_interval(obj, retry_default) is not None:
                hist.truncate_ignoring_previous(status)
            else:
                remediation = hist.Remediation.active(obj)
                ignore = remediation.ignore_test_failures() if remediation else bool(dig(req.spec, "test.ignoreFailures"))
                hist.truncate(status, ignore)
            if req.force:
                log.info("forcing upgrade for in-sync release: force requested through annotation")
                return upgrade
            current = hist.latest(status)
            if cond.is_true(obj, REMEDIATED):
                _replace_condition(obj, REMEDIATED, RELEASED, UPGRADE_SUCCEEDED,
                                   f"Helm upgrade succeeded for release {hist.full_name(current)} with chart "
                                   f"{hist.chart_label(current)}")
            if not cond.is_true(obj, RELEASED):
                reason = {INSTALL_FAILED: INSTALL_SUCCEEDED, UPGRADE_FAILED: UPGRADE_SUCCEEDED}.get(
                    cond.reason_of(obj, RELEASED))
                if reason:
                    verb = "install" if reason == INSTALL_SUCCEEDED else "upgrade"
                    cond.mark_true(obj, RELEASED, reason, f"Helm {verb} succeeded for release "
                                   f"{hist.full_name(current)} with chart {hist.chart_label(current)}")
            return None
        log.info(f"{_describe(state.status)}" + (f": {state.reason}" if state.reason else ""))
        if state.status == "Locked":
            return _Action("unlock", UNLOCK, self._unlock)
        if state.status == "Absent":
            if hist.exhausted(obj, hist.INSTALL):
                if req.force:
                    return install
                raise self._retries_exceeded(obj)
            return install
        if state.status == "Unmanaged":
            status.pop("history", None)
            return upgrade
        if state.status == "OutOfSync":
            if hist.exhausted(obj, hist.UPGRADE):
                if req.force:
                    return upgrade
                raise self._retries_exceeded(obj)
            return upgrade
        if state.status == "Drifted":
            current = hist.latest(status)
            message = cond.get(obj, DRIFTED)["message"]
            ctx.event("Warning", DRIFT_DETECTED, message, self._snapshot_meta(current))
            if drift_mode(obj) == "enabled":
                return _Action("correct cluster drift", DRIFT, lambda r: self._correct_drift(r, state.drifts))
            return None
        if state.status == "Untested":
            if cond.is_true(obj, REMEDIATED):
                current = hist.latest(status)
                _replace_condition(obj, REMEDIATED, RELEASED, UPGRADE_SUCCEEDED,
                                   f"Helm upgrade succeeded for release {hist.full_name(current)} with chart "
                                   f"{hist.chart_label(current)}")
            return _Action("test", TEST, self._test, "test")
        if state.status == "Failed":
            if hist.active_retry_interval(obj, retry_default) is not None:
                hist.truncate_ignoring_previous(status)
                return upgrade
            remediation = hist.Remediation.active(obj)
            if remediation is None or remediation.failure_count() <= 0 or req.force:
                return upgrade
            if remediation.exhausted() and not remediation.remediate_last_failure():
                raise self._retries_exceeded(obj)
            hist.truncate(status, remediation.ignore_test_failures())
            if remediation.strategy == hist.ROLLBACK_STRATEGY:
                previous = hist.previous(status, remediation.ignore_test_failures())
                if previous is None:
                    raise StalledError("Failed to perform remediation: missing target release for rollback: "
                                       "cannot remediate failed release", reason="MissingRollbackTarget")
                target = req.releaser.storage.get(previous["name"], int(previous["version"]))
                if target is None or not hist.verified(previous, target):
                    log.info("unable to verify previous release in storage to roll back to")
                    return upgrade
                return _Action("rollback", REMEDIATE, lambda r: self._rollback(r, previous, target), "rollback")
            return _Action("uninstall", REMEDIATE, self._uninstall_remediation, "uninstall")
        raise RetryableError(f"unknown release status: {state.status}")

    # ------------------------------------------------------------------ actions

    def _install(self, req: _Request) -> None:
        self._release(req, hist.INSTALL)

    def _upgrade(self, req: _Request) -> None:
        self._release(req, hist.UPGRADE)

    def _release(self, req: _Request, action: str) -> None:
        """Install or upgrade (Flux's Install/Upgrade reconcilers)."""
        obj, status, spec, chart = req.obj, req.status, req.spec, req.chart
        status["lastAttemptedReleaseAction"] = action
        if action == hist.INSTALL:
            status.pop("history", None)
            cond.delete(obj, TEST_SUCCESS)
            cond.delete(obj, REMEDIATED)
        settings = spec.get(action) or {}
        options = self._action_options(req, action)
        values = req.values
        started = time.monotonic()
        stored = None
        try:
            if action == hist.UPGRADE and settings.get("preserveValues"):
                deployed = req.releaser.storage.deployed(req.releaser.name)
                values = merge_maps((deployed or {}).get("config") or {}, values)
            with HelmCLI(req.timeout(action)) as helm:
                rendered = render(helm, chart, obj, values,
                                  skip_schema_validation=bool(settings.get("disableSchemaValidation")))
            if action == hist.INSTALL:
                stored = req.releaser.install(rendered, options, labelled_crds(chart, obj),
                                              replace=bool(settings.get("replace")))
            else:
                stored = req.releaser.upgrade(rendered, options, labelled_crds(chart, obj))
            error = ""
        except RenderError as exc:  # a schema error quotes the values it rejects: those of Secrets are masked
            error = mask(str(exc), req.secrets)
        except ActionError as exc:
            error, stored = exc.message, exc.release
        status["lastAttemptedReleaseActionDuration"] = format_duration(round(time.monotonic() - started, 3))
        _observe_digests(req)
        if stored is not None:
            self._observe_storage(req)
        verb, failed, succeeded = ("install", INSTALL_FAILED, INSTALL_SUCCEEDED) if action == hist.INSTALL else \
            ("upgrade", UPGRADE_FAILED, UPGRADE_SUCCEEDED)
        event_meta = self._event_meta(chart, values, req.oci_digest)
        if error:
            message = (f"Helm {verb} failed for release {release_namespace(obj)}/{release_name(obj)} with chart "
                       f"{chart.name}@{chart.version}: {error.strip()}")
            self._report(req, RELEASED, failed, message, event_meta)
            if stored is None:
                raise ActionError(message)
            hist.Remediation(obj, action).increment(status)
            return
        current = hist.latest(status)
        message = (f"Helm {verb} succeeded for release {hist.full_name(current)} with chart "
                   f"{hist.chart_label(current)}")
        self._report(req, RELEASED, succeeded, message, self._snapshot_meta(current))
        if dig(spec, "test.enable") and not hist.has_been_tested(current):
            cond.mark_unknown(obj, TEST_SUCCESS, "AwaitingTests", f"Helm release {hist.full_name(current)} with "
                              f"chart {hist.chart_label(current)} is awaiting tests")
        if hist.active_retry_interval(obj, self.options.gate("DefaultToRetryOnFailure")) is not None:
            hist.clear_failures(status)

    def _test(self, req: _Request) -> None:
        obj, status = req.obj, req.status
        current = hist.latest(status)
        release = req.releaser.storage.get(current["name"], int(current["version"]))
        if release is None:
            raise ActionError("no latest release: required for test")
        filters = dig(req.spec, "test.filters") or []
        tested, failure = req.releaser.test(release, req.timeout("test"), filters)
        hooks = {}
        from controllers.helm.actions import test_selected
        for hook in tested.get("hooks") or []:
            if "test" in (hook.get("events") or []) and test_selected(hook.get("name") or "", filters):
                run = hook.get("last_run") or {}
                entry = {"lastStarted": hist.meta_time(run.get("started_at")),
                         "lastCompleted": hist.meta_time(run.get("completed_at")), "phase": run.get("phase") or None}
                hooks[hook["name"]] = {k: v for k, v in entry.items() if v}
        snapshot = dict(current, testHooks=hooks)
        hist.record(status, snapshot)
        if failure:
            message = (f"Helm test failed for release {hist.full_name(snapshot)} with chart "
                       f"{hist.chart_label(snapshot)}: {failure}")
            self._report(req, TEST_SUCCESS, TEST_FAILED, message, self._snapshot_meta(snapshot))
            remediation = hist.Remediation.active(obj)
            if hist.has_been_tested(snapshot) and remediation is not None and not remediation.ignore_test_failures():
                remediation.increment(status)
            return
        count = len(hooks)
        what = "no test hooks" if not count else f"{count} test hook{'s' if count > 1 else ''} completed successfully"
        message = f"Helm test succeeded for release {hist.full_name(snapshot)} with chart {hist.chart_label(snapshot)}: {what}"
        self._report(req, TEST_SUCCESS, TEST_SUCCEEDED, message, self._snapshot_meta(snapshot))

    def _rollback(self, req: _Request, previous: dict, target: dict) -> None:
        obj, status = req.obj, req.status
        options = self._action_options(req, "rollback")
        try:
            stored = req.releaser.rollback(target, options)
            error = ""
        except ActionError as exc:
            stored, error = exc.release, exc.message
        self._observe_storage(req)
        if error:
            self._report(req, REMEDIATED, ROLLBACK_FAILED, f"Helm rollback to previous release "
                         f"{hist.full_name(previous)} with chart {hist.chart_label(previous)} failed: {error}",
                         self._snapshot_meta(previous))
            return
        self._report(req, REMEDIATED, ROLLBACK_SUCCEEDED, f"Helm rollback to previous release "
                     f"{hist.full_name(previous)} with chart {hist.chart_label(previous)} succeeded",
                     self._snapshot_meta(hist.latest(status)))

    @staticmethod
    def _report(req: _Request, condition: str, reason: str, message: str, event_meta: dict[str, str]) -> None:
        """An action's outcome, as Flux records it: a ``…Failed`` reason counts a failure, sets ``condition``
        False and records a Warning event; any other sets it True with a Normal event."""
        if reason.endswith("Failed"):
            req.status["failures"] = int(req.status.get("failures") or 0) + 1
            cond.mark_false(req.obj, condition, reason, message)
            req.ctx.event("Warning", reason, message, event_meta)
        else:
            cond.mark_true(req.obj, condition, reason, message)
            req.ctx.event("Normal", reason, message, event_meta)

    def _observe_storage(self, req: _Request) -> None:
        """Refresh the snapshots of every stored revision the history holds, and add the newest revision."""
        status = req.status
        known = {(s["name"], int(s["version"])): s for s in hist.history(status)}
        revisions = req.releaser.storage.history(req.releaser.name)
        for release in revisions:
            key = (release["name"], int(release["version"]))
            if key in known or release is revisions[-1]:
                snapshot = hist.snapshot_of(release, oci_digest=(known.get(key) or {}).get("ociDigest", "")
                                            or req.oci_digest)
                if key in known and known[key].get("testHooks") is not None:
                    snapshot["testHooks"] = known[key]["testHooks"]
                hist.record(status, snapshot)

    def _uninstall_remediation(self, req: _Request) -> None:
        obj, status = req.obj, req.status
        current = hist.latest(status)
        release = req.releaser.storage.latest(req.releaser.name)
        if current is None or release is None:
            raise ActionError("no latest release: required to uninstall")
        try:
            uninstalled = req.releaser.uninstall(release, self._action_options(req, "uninstall"))
            error = ""
        except ActionError as exc:
            uninstalled, error = exc.release, exc.message
        if uninstalled is not None:
            hist.record(status, dict(hist.snapshot_of(uninstalled, oci_digest=current.get("ociDigest", "")),
                                     **({"testHooks": current["testHooks"]} if "testHooks" in current else {})))
        what = f"Helm uninstall remediation for release {hist.full_name(current)} with chart {hist.chart_label(current)}"
        if error:
            self._report(req, REMEDIATED, UNINSTALL_FAILED, f"{what} failed: {error}", self._snapshot_meta(current))
            return
        self._report(req, REMEDIATED, UNINSTALL_SUCCEEDED, f"{what} succeeded", self._snapshot_meta(current))

    def _unlock(self, req: _Request) -> None:
        obj, status = req.obj, req.status
        release = req.releaser.storage.latest(req.releaser.name)
        if release is None or status_of(release) not in PENDING_STATUSES:
            return
        stale = status_of(release)
        unlocked = req.releaser.unlock(release)
        current = hist.latest(status)
        if current is not None and current.get("version") == unlocked["version"]:
            hist.record(status, dict(current, status=STATUS_FAILED, digest=hist.release_digest(unlocked)))
        else:
            current = hist.snapshot_of(unlocked, oci_digest=req.oci_digest)
            if status.get("history"):
                hist.record(status, current)
        message = (f"Unlocked Helm release {hist.full_name(current)} with chart {hist.chart_label(current)} in "
                   f"{stale} state")
        cond.mark_false(obj, RELEASED, PENDING_RELEASE, message)
        req.ctx.event("Normal", PENDING_RELEASE, message, self._snapshot_meta(current))

    def _correct_drift(self, req: _Request, drifts: list[Drift]) -> None:
        current = hist.latest(req.status)
        req.ctx.progress("correcting cluster drift")
        try:
            changes = req.releaser.correct(drifts)
        except (RetryableError, KubeError) as exc:
            req.ctx.event("Warning", "DriftCorrectionFailed", f"Failed to correct cluster state of release "
                      f"{hist.full_name(current)}:\n{getattr(exc, 'message', exc)}", self._snapshot_meta(current))
            return
        if changes:
            req.ctx.event("Normal", "DriftCorrected", f"Cluster state of release {hist.full_name(current)} has been "
                      f"corrected:\n{changes}", self._snapshot_meta(current))

    # ------------------------------------------------------------------ settings and events

    def _action_options(self, req: _Request, action: str) -> ActionOptions:
        spec = req.spec
        settings = spec.get(action) or {}
        crds = settings.get("crds") or (CRDS_SKIP if settings.get("skipCRDs") else (
            CRDS_CREATE if action == hist.INSTALL else CRDS_SKIP))
        max_history = spec.get("maxHistory")
        return ActionOptions(
            timeout=req.timeout(action), disable_wait=bool(settings.get("disableWait")),
            disable_wait_for_jobs=bool(settings.get("disableWaitForJobs")),
            disable_hooks=bool(settings.get("disableHooks")), force=bool(settings.get("force")),
            cleanup_on_fail=bool(settings.get("cleanupOnFail")),
            take_ownership=not settings.get("disableTakeOwnership"), crds=crds,
            max_history=hist.DEFAULT_MAX_HISTORY if max_history is None else int(max_history),
            propagation=settings.get("deletionPropagation") or "background",
            keep_history=bool(settings.get("keepHistory")),
            create_namespace=action == hist.INSTALL and bool(settings.get("createNamespace")))

    @staticmethod
    def _event_meta(chart: Chart, values: dict, oci_digest: str) -> dict[str, str]:
        out = {REVISION_KEY: chart.version, TOKEN_KEY: hist.config_digest(values)}
        if chart.app_version:
            out[APP_VERSION_KEY] = chart.app_version
        if oci_digest:
            out[OCI_DIGEST_KEY] = oci_digest
        return out

    @staticmethod
    def _snapshot_meta(snapshot: Mapping | None) -> dict[str, str]:
        if not snapshot:
            return {}
        out = {REVISION_KEY: snapshot.get("chartVersion", ""), TOKEN_KEY: snapshot.get("configDigest", "")}
        if snapshot.get("appVersion"):
            out[APP_VERSION_KEY] = snapshot["appVersion"]
        if snapshot.get("ociDigest"):
            out[OCI_DIGEST_KEY] = snapshot["ociDigest"]
        return out

    # ------------------------------------------------------------------ deletion

    def finalize(self, ctx: ReconcileContext, obj: dict) -> None:
        """Uninstall the release (unless suspended), then delete the generated HelmChart."""
        self.index.remove(ctx.key)
        self._charts.pop(ctx.key, None)
        if dig(obj, "spec.suspend"):
            return
        if dig(obj, "status.storageNamespace"):
            account = dig(obj, "spec.serviceAccountName") or self.options.default_service_account
            if account and not dig(obj, "spec.kubeConfig") and not _exists(ctx.kube, SERVICE_ACCOUNT, account,
                                                                           obj["metadata"]["namespace"]):
                ctx.log.error("skipping Helm release uninstallation: service account not found")
            else:
                self._uninstall_current(ctx, obj, self._client(ctx, obj))
                ctx.log.info("uninstalled Helm release for deleted resource")
        if dig(obj, "status.helmChart"):
            self._delete_chart(ctx, obj)

    def _uninstall_current(self, ctx: ReconcileContext, obj: dict, client: KubeClient) -> None:
        """Flux's Uninstall of the current release (storage in ``status.storageNamespace``)."""
        current = hist.latest(obj["status"])
        releaser = Releaser(client, ReleaseStorage(client, obj["status"].get("storageNamespace") or
                                                   storage_namespace(obj)),
                            (current or {}).get("name") or release_name(obj),
                            (current or {}).get("namespace") or release_namespace(obj),
                            health_interval=self.options.health_interval)
        release = releaser.storage.latest(releaser.name)
        if release is None or status_of(release) == STATUS_UNINSTALLED:
            return
        settings = dig(obj, "spec.uninstall") or {}
        options = ActionOptions(timeout=_seconds(settings.get("timeout"), _seconds(dig(obj, "spec.timeout"), 300.0)),
                                disable_hooks=bool(settings.get("disableHooks")),
                                disable_wait=bool(settings.get("disableWait")),
                                keep_history=bool(settings.get("keepHistory")),
                                propagation=settings.get("deletionPropagation") or "background")
        snapshot = current or hist.snapshot_of(release)
        try:
            releaser.uninstall(release, options)
        except ActionError as exc:
            message = (f"Helm uninstall failed for release {hist.full_name(snapshot)} with chart "
                       f"{hist.chart_label(snapshot)}: {exc.message}")
            ctx.event("Warning", UNINSTALL_FAILED, message, self._snapshot_meta(snapshot))
            raise RetryableError(message, reason=UNINSTALL_FAILED) from None
        message = f"Helm uninstall succeeded for release {hist.full_name(snapshot)} with chart {hist.chart_label(snapshot)}"
        cond.mark_false(obj, RELEASED, UNINSTALL_SUCCEEDED, message)
        ctx.event("Normal", UNINSTALL_SUCCEEDED, message, self._snapshot_meta(snapshot))


# ---------------------------------------------------------------------------------------------- helpers

def _observe_digests(req: _Request) -> None:
    """``observedPostRenderersDigest``/``observedCommonMetadataDigest`` of the spec released (Flux's summarize
    records them after every release action)."""
    for key, field in (("observedPostRenderersDigest", "postRenderers"), ("observedCommonMetadataDigest",
                                                                          "commonMetadata")):
        digest = _digest_of(req.spec.get(field))
        if digest:
            req.status[key] = digest
        else:
            req.status.pop(key, None)


def _holds(live: dict, chart: dict) -> bool:
    """Whether the live HelmChart still has every spec field and label of ``chart`` (no one changed it)."""
    labels = dig(live, "metadata.labels") or {}
    return (all((live.get("spec") or {}).get(k) == v for k, v in (chart.get("spec") or {}).items())
            and all(labels.get(k) == v for k, v in (dig(chart, "metadata.labels") or {}).items()))


def helm_chart_from_template(obj: Mapping) -> dict:
    """The HelmChart Flux generates from ``spec.chart``: ``<namespace>-<name>`` in the source's namespace."""
    template = dig(obj, "spec.chart") or {}
    spec = template.get("spec") or {}
    ns = dig(obj, "metadata.namespace")
    chart_spec = {"chart": spec.get("chart"), "version": spec.get("version") or "*",
                  "sourceRef": {"kind": dig(spec, "sourceRef.kind"), "name": dig(spec, "sourceRef.name")},
                  "interval": spec.get("interval") or dig(obj, "spec.interval"),
                  "reconcileStrategy": spec.get("reconcileStrategy") or "ChartVersion"}
    for key in ("valuesFiles", "ignoreMissingValuesFiles"):
        if spec.get(key):
            chart_spec[key] = spec[key]
    if spec.get("verify"):
        chart_spec["verify"] = {k: v for k, v in spec["verify"].items() if k in ("provider", "secretRef")}
    metadata = {"name": f"{ns}-{dig(obj, 'metadata.name')}", "namespace": dig(spec, "sourceRef.namespace") or ns}
    for key in ("labels", "annotations"):
        if dig(template, f"metadata.{key}"):
            metadata[key] = dict(dig(template, f"metadata.{key}"))
    return {"apiVersion": HELM_CHART.api_version, "kind": HELM_CHART.kind, "metadata": metadata, "spec": chart_spec}


def source_not_ready(source: Mapping, kind: str) -> str:
    """Flux's isSourceReady: '' when the source is reconciled, Ready and has an artifact, else why not."""
    ns, name = dig(source, "metadata.namespace"), dig(source, "metadata.name")
    artifact = dig(source, "status.artifact")
    if kind == EXTERNAL_ARTIFACT.kind:
        return "" if artifact else f"ExternalArtifact '{ns}/{name}' is not ready: does not have an artifact"
    ready = cond.get(dict(source), cond.READY) or {}
    if dig(source, "metadata.generation") != dig(source, "status.observedGeneration"):
        message = ready.get("message") if ready.get("status") == cond.FALSE else \
            "latest generation of object has not been reconciled"
        return f"{kind} '{ns}/{name}' is not ready: {message}"
    if ready.get("status") != cond.TRUE:
        return f"{kind} '{ns}/{name}' is not ready: {ready.get('message') or 'not ready'}"
    if not artifact:
        return f"{kind} '{ns}/{name}' is not ready: does not have an artifact"
    return ""


def drift_mode(obj: Mapping) -> str:
    return dig(obj, "spec.driftDetection.mode") or "disabled"


def _describe(state: str) -> str:
    return {"Locked": "release locked", "Absent": "release not installed", "Unmanaged":
            "release not managed by controller", "OutOfSync": "release out-of-sync with desired state",
            "Drifted": "detected changes in cluster state", "Untested": "release has not been tested",
            "Failed": "release is in a failed state"}.get(state, state)


def _replace_condition(obj: dict, target: str, replacement: str, reason: str, message: str) -> None:
    """Flux's replaceCondition: ``target`` becomes ``replacement`` (True, with reason and message)."""
    if cond.get(obj, target):
        cond.delete(obj, target)
        cond.mark_true(obj, replacement, reason, message)


def _exists(kube: KubeClient, rt, name: str, namespace: str) -> bool:
    try:
        kube.get(rt, name, namespace)
        return True
    except NotFound:
        return False


# ---------------------------------------------------------------------------------------------- flags

FLAGS = (
    DEFAULT_SERVICE_ACCOUNT,
    NO_CROSS_NAMESPACE_REFS,
    HTTP_RETRY,
    OVERRIDE_MANAGER,
    INSECURE_KUBECONFIG_EXEC,
    INSECURE_KUBECONFIG_TLS,
    feature_gates_flag(FEATURE_GATES),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The helm-controller's own flags."""
    add_option_flags(parser, Options, FLAGS)


def new_reconciler(args: argparse.Namespace) -> HelmReleaseReconciler:
    """Factory for ``controllers.components`` (helm-controller)."""
    return HelmReleaseReconciler(options_from_args(Options, args, FLAGS))
