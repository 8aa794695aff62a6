"""Health of applied objects, as Flux judges it: kstatus for built-in kinds and for custom resources with
``Ready``/``Reconciling``/``Stalled`` conditions and ``observedGeneration``, Flux's stricter Job rule, and the
Kustomization's ``healthCheckExprs`` (CEL ``current`` / ``inProgress`` / ``failed`` per apiVersion and kind).

:func:`check_health` polls a set of objects until all are ``Current``, one fails (with ``fail_fast``) or the
timeout passes, and returns a :class:`HealthResult` naming each object that is not healthy and why; its
``message`` has the shape of Flux's (``timeout waiting for: [Deployment/apps/web status: 'InProgress': ...]``).

CEL needs the ``cel-expr-python`` package (Google's CEL, the C++ implementation behind the same conformance
suite as cel-go): it is imported only when a Kustomization has ``healthCheckExprs`` or a ``readyExpr``.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import threading
import time
from typing import Any, Callable, Iterable, Mapping

from controllers.api import meta
from controllers.api.duration import format_duration
from controllers.api.objects import dig
from controllers.runtime.apply import ObjectRef
from controllers.runtime.kube import KubeClient, KubeError, NotFound
from controllers.runtime.outcomes import RetryableError, StalledError

CURRENT, IN_PROGRESS, FAILED = "Current", "InProgress", "Failed"
TERMINATING, NOT_FOUND, UNKNOWN = "Terminating", "NotFound", "Unknown"

#: how long a Pod may stay unschedulable before kstatus calls it Failed (seconds)
SCHEDULE_WINDOW = 15.0


class InvalidCELExpression(StalledError):
    """A ``healthCheckExprs`` or ``readyExpr`` expression does not compile: fixing the spec is the only way on."""

    default_reason = meta.INVALID_CEL_EXPRESSION_REASON


class CELEvaluationError(Exception):
    """An expression failed at evaluation (a missing field, a wrong type)."""


class HealthCheckFailed(RetryableError):
    """The health check failed or timed out; ``result`` says which objects and why."""

    default_reason = meta.HEALTH_CHECK_FAILED_REASON

    def __init__(self, result: "HealthResult"):
        super().__init__(f"health check failed after {format_duration(result.elapsed)}: {result.message}")
        self.result = result


# --- kstatus ----------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ObjectStatus:
    """One object's kstatus: Current, InProgress, Failed, Terminating, NotFound or Unknown, and why."""

    ref: ObjectRef
    status: str
    message: str = ""

    def __str__(self) -> str:
        text = f"{self.ref.subject} status: '{self.status}'"
        return f"{text}: {self.message}" if self.message and self.status != CURRENT else text


def _int(obj: Mapping, path: str, default: int) -> int:
    value = dig(obj, path)
    return value if isinstance(value, int) and not isinstance(value, bool) else default


def _str(obj: Mapping, path: str, default: str = "") -> str:
    value = dig(obj, path)
    return value if isinstance(value, str) else default


def _conditions(obj: Mapping) -> list[dict]:
    conds = dig(obj, "status.conditions")
    return [c for c in conds if isinstance(c, dict)] if isinstance(conds, list) else []


def _cond(obj: Mapping, type_: str, status: str | None = None) -> dict | None:
    for c in _conditions(obj):
        if c.get("type") == type_ and (status is None or c.get("status") == status):
            return c
    return None


def _generic(obj: Mapping) -> tuple[str, str] | None:
    """Deletion, generation not yet observed, Reconciling=True or Stalled=True; None when none applies."""
    if dig(obj, "metadata.deletionTimestamp"):
        return TERMINATING, "Resource scheduled for deletion"
    generation, observed = dig(obj, "metadata.generation"), dig(obj, "status.observedGeneration")
    if isinstance(generation, int) and isinstance(observed, int) and generation != observed:
        return IN_PROGRESS, (f"{obj.get('kind')} generation is {generation}, but latest observed generation "
                             f"is {observed}")
    for c in _conditions(obj):
        if c.get("type") == "Reconciling" and c.get("status") == "True":
            return IN_PROGRESS, c.get("message") or ""
        if c.get("type") == "Stalled" and c.get("status") == "True":
            return FAILED, c.get("message") or ""
    return None


def _shortfall(*checks: tuple[str, int, int]) -> tuple[str, str] | None:
    """The first ``(label, have, want)`` with fewer than wanted, as ``(InProgress, "Label: have/want")``."""
    for label, have, want in checks:
        if want > have:
            return IN_PROGRESS, f"{label}: {have}/{want}"
    return None


def _surplus(replicas: int, spec: int) -> tuple[str, str] | None:
    return (IN_PROGRESS, f"Pending termination: {replicas - spec}") if replicas > spec else None


def _deployment(obj: Mapping) -> tuple[str, str]:
    progressing = dig(obj, "spec.progressDeadlineSeconds") is None
    available = False
    for c in _conditions(obj):
        if c.get("type") == "Progressing":
            if c.get("reason") == "ProgressDeadlineExceeded":
                return FAILED, "Progress deadline exceeded"
            if c.get("status") == "True" and c.get("reason") == "NewReplicaSetAvailable":
                progressing = True
        elif c.get("type") == "Available" and c.get("status") == "True":
            available = True
    spec = _int(obj, "spec.replicas", 1)
    replicas, updated = _int(obj, "status.replicas", 0), _int(obj, "status.updatedReplicas", 0)
    ready, avail = _int(obj, "status.readyReplicas", 0), _int(obj, "status.availableReplicas", 0)
    pending = (_shortfall(("Replicas", replicas, spec), ("Updated", updated, spec)) or _surplus(replicas, spec)
               or _shortfall(("Available", avail, updated), ("Ready", ready, spec)))
    if pending:
        return pending
    if not progressing:
        return IN_PROGRESS, "ReplicaSet not Available"
    if not available:
        return IN_PROGRESS, "Deployment not Available"
    return CURRENT, f"Deployment is available. Replicas: {replicas}"


def _statefulset(obj: Mapping) -> tuple[str, str]:
    if _str(obj, "spec.updateStrategy.type") == "OnDelete":
        return CURRENT, "StatefulSet is using the ondelete update strategy"
    spec = _int(obj, "spec.replicas", 1)
    ready, current = _int(obj, "status.readyReplicas", 0), _int(obj, "status.currentReplicas", 0)
    updated, replicas = _int(obj, "status.updatedReplicas", 0), _int(obj, "status.replicas", 0)
    partition = _int(obj, "spec.updateStrategy.rollingUpdate.partition", -1)
    pending = _shortfall(("Replicas", replicas, spec), ("Ready", ready, spec)) or _surplus(replicas, spec)
    if pending:
        return pending
    if partition != -1:
        if updated < spec - partition:
            return IN_PROGRESS, f"updated: {updated}/{spec - partition}"
        return CURRENT, f"Partition rollout complete. updated: {updated}"
    if spec > current:
        return IN_PROGRESS, f"current: {current}/{spec}"
    if _str(obj, "status.currentRevision") != _str(obj, "status.updateRevision"):
        return IN_PROGRESS, "Waiting for updated revision to match current"
    return CURRENT, f"All replicas scheduled as expected. Replicas: {replicas}"


def _daemonset(obj: Mapping) -> tuple[str, str]:
    for path in ("metadata.generation", "status.observedGeneration"):
        if dig(obj, path) is None:
            return IN_PROGRESS, f"DaemonSet {path} not found"
    desired = _int(obj, "status.desiredNumberScheduled", -1)
    if desired == -1:
        return IN_PROGRESS, "Missing .status.desiredNumberScheduled"
    return _shortfall(*((label, _int(obj, f"status.{field}", 0), desired) for field, label in (
        ("currentNumberScheduled", "Current"), ("updatedNumberScheduled", "Updated"),
        ("numberAvailable", "Available"), ("numberReady", "Ready")))) or \
        (CURRENT, f"All replicas scheduled as expected. Replicas: {desired}")


def _replicaset(obj: Mapping) -> tuple[str, str]:
    if _cond(obj, "ReplicaFailure", "True"):
        return IN_PROGRESS, "Replica Failure condition. Check Pods"
    spec, replicas = _int(obj, "spec.replicas", 1), _int(obj, "status.replicas", 0)
    return _shortfall(*((label, _int(obj, f"status.{field}", 0), spec) for field, label in (
        ("fullyLabeledReplicas", "Labelled"), ("availableReplicas", "Available"), ("readyReplicas", "Ready")))) \
        or _surplus(replicas, spec) or (CURRENT, f"ReplicaSet is available. Replicas: {replicas}")


def _pod(obj: Mapping) -> tuple[str, str]:
    phase = _str(obj, "status.phase")
    if phase == "Succeeded":
        return CURRENT, "Pod has completed successfully"
    if phase == "Failed":
        return CURRENT, "Pod has completed, but not successfully"
    if phase == "Running":
        if _cond(obj, "Ready", "True"):
            return CURRENT, "Pod is Ready"
        looping = [s.get("name", "") for s in dig(obj, "status.containerStatuses", []) or []
                   if dig(s, "state.waiting.reason") == "CrashLoopBackOff"]
        if looping:
            return FAILED, f"Containers in CrashLoop state: {','.join(looping)}"
        return IN_PROGRESS, "Pod is running but is not Ready"
    if phase == "Pending":
        unscheduled = _cond(obj, "PodScheduled", "False")
        if unscheduled and unscheduled.get("reason") == "Unschedulable":
            if time.time() - _timestamp(_str(obj, "metadata.creationTimestamp")) < SCHEDULE_WINDOW:
                return IN_PROGRESS, "Pod has not been scheduled"
            return FAILED, "Pod could not be scheduled"
        return IN_PROGRESS, "Pod is in the Pending phase"
    if not phase:
        return IN_PROGRESS, "Pod phase not available"
    return UNKNOWN, f"unknown phase {phase}"


def _job(obj: Mapping) -> tuple[str, str]:
    """Flux's Job rule: Current only once complete (kstatus alone says Current while it runs)."""
    if dig(obj, "spec.suspend") is True:
        return CURRENT, "Job is suspended"
    parallelism = _int(obj, "spec.parallelism", 1)
    completions = _int(obj, "spec.completions", parallelism)
    succeeded, failed, active = (_int(obj, f"status.{f}", 0) for f in ("succeeded", "failed", "active"))
    if _cond(obj, "Complete", "True"):
        return CURRENT, f"Job Completed. succeeded: {succeeded}/{completions}"
    if _cond(obj, "Failed", "True"):
        return FAILED, f"Job Failed. failed: {failed}/{completions}"
    if not _str(obj, "status.startTime"):
        return IN_PROGRESS, f"Job not started. active: 0/{parallelism}"
    return IN_PROGRESS, f"Job in progress. success:{succeeded}, active: {active}, failed: {failed}"


def _pvc(obj: Mapping) -> tuple[str, str]:
    phase = _str(obj, "status.phase", "unknown")
    return (CURRENT, "PVC is Bound") if phase == "Bound" else (IN_PROGRESS, f"PVC is not Bound. phase: {phase}")


def _service(obj: Mapping) -> tuple[str, str]:
    if _str(obj, "spec.type", "ClusterIP") == "LoadBalancer" and not _str(obj, "spec.clusterIP"):
        return IN_PROGRESS, "ClusterIP not set. Service type: LoadBalancer"
    return CURRENT, "Service is ready"


def _crd(obj: Mapping) -> tuple[str, str]:
    for c in _conditions(obj):
        if c.get("type") == "NamesAccepted" and c.get("status") == "False":
            return FAILED, c.get("message") or ""
        if c.get("type") == "Established":
            if c.get("status") == "False" and c.get("reason") != "Installing":
                return FAILED, c.get("message") or ""
            if c.get("status") == "True":
                return CURRENT, "CRD is established"
    return IN_PROGRESS, "Install in progress"


def _always_ready(_obj: Mapping) -> tuple[str, str]:
    return CURRENT, "Resource is always ready"


#: kstatus's rules per ``group/Kind`` (core kinds without a group)
BUILTIN_RULES: dict[str, Callable[[Mapping], tuple[str, str]]] = {
    "Service": _service, "Pod": _pod, "Secret": _always_ready, "ConfigMap": _always_ready,
    "PersistentVolumeClaim": _pvc,
    "apps/StatefulSet": _statefulset, "apps/DaemonSet": _daemonset, "extensions/DaemonSet": _daemonset,
    "apps/Deployment": _deployment, "extensions/Deployment": _deployment,
    "apps/ReplicaSet": _replicaset, "extensions/ReplicaSet": _replicaset,
    "policy/PodDisruptionBudget": lambda _o: (CURRENT, "AllowedDisruptions has been computed."),
    "batch/CronJob": _always_ready, "batch/Job": _job,
    "apiextensions.k8s.io/CustomResourceDefinition": _crd,
}


def compute_status(obj: Mapping) -> tuple[str, str]:
    """kstatus of one live object: ``(status, message)``."""
    generic = _generic(obj)
    if generic:
        return generic
    group = str(obj.get("apiVersion") or "").rpartition("/")[0]
    rule = BUILTIN_RULES.get(f"{group}/{obj.get('kind')}" if group else str(obj.get("kind")))
    if rule:
        return rule(obj)
    ready = _cond(obj, "Ready")
    if ready and ready.get("status") == "True":
        return CURRENT, "Resource is Ready"
    if ready and ready.get("status") in ("False", "Unknown"):
        return IN_PROGRESS, ready.get("message") or ""
    return CURRENT, "Resource is current"


def _timestamp(value: str) -> float:
    try:
        return _dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


# --- CEL ------------------------------------------------------------------------------------------------

_cel_env_lock = threading.Lock()
_cel_envs: dict[tuple[str, ...], Any] = {}


def _cel_env(variables: tuple[str, ...]):
    """A CEL environment with Flux's extensions (strings, optional types, encoders), cached per variable set."""
    with _cel_env_lock:
        if variables not in _cel_envs:
            try:
                from cel_expr_python import cel
                from cel_expr_python.ext import ext_encoders, ext_optional, ext_strings
            except ImportError:
                raise InvalidCELExpression("CEL expressions need the 'cel-expr-python' package, which is not "
                                           "installed") from None
            _cel_envs[variables] = cel.NewEnv(
                variables={v: cel.Type.DYN for v in variables},
                extensions=[ext_strings.ExtStrings(), ext_optional.ExtOptional(), ext_encoders.ExtEncoders()])
        return _cel_envs[variables]


class CelExpression:
    """A compiled CEL expression. Without ``variables`` it is evaluated against an object's top-level fields
    (``status.phase == 'Ready'``), as Flux's health check expressions are; with them (``self``, ``dep`` for a
    ``readyExpr``) it is type-checked and must be of type bool (not dyn), as Flux requires."""

    def __init__(self, expression: str, *, variables: Iterable[str] = (), returns: tuple[str, ...] = ("bool",)):
        """``returns``: the type names the checked expression may have (a commit status id: string or dyn)."""
        self.expression = expression
        self.variables = tuple(variables)
        env = _cel_env(self.variables)
        try:
            self._compiled = env.compile(expression, disable_check=not self.variables)
        except RuntimeError as exc:
            raise InvalidCELExpression(f"failed to parse the CEL expression '{expression}': "
                                       f"{_cel_error(str(exc))}") from None
        if self.variables:
            from cel_expr_python import cel

            returned = self._compiled.return_type()
            if returned.name().lower() not in returns:
                raise InvalidCELExpression(f"CEL expression output type mismatch: expected {returns[0]}, got "
                                           f"{returned.name().lower()}")

    def evaluate(self, data: Mapping[str, Any]) -> Any:
        from cel_expr_python import cel

        value = self._compiled.eval(data=dict(data))
        if value.type() == cel.Type.ERROR:
            raise CELEvaluationError(f"failed to evaluate the CEL expression '{self.expression}': "
                                     f"{_cel_error(str(value.value()))}")
        return value.plain_value()

    def evaluate_bool(self, data: Mapping[str, Any]) -> bool:
        result = self.evaluate(data)
        if not isinstance(result, bool):
            raise CELEvaluationError(f"failed to evaluate CEL expression as boolean: '{self.expression}'")
        return result


def _cel_error(text: str) -> str:
    """The CEL library's message without its status-code prefix (``NOT_FOUND: ...``)."""
    text = _CEL_CODE.sub("", text.strip())
    return text.replace(" [INVALID_ARGUMENT]", "")


_CEL_CODE = re.compile(r"^[A-Z_]+: ")


@dataclasses.dataclass
class CelStatusEvaluator:
    """Flux's custom health check for one kind: observedGeneration first, then inProgress, failed, current."""

    current: CelExpression
    in_progress: CelExpression | None = None
    failed: CelExpression | None = None

    def evaluate(self, obj: Mapping) -> tuple[str, str]:
        generation, observed = dig(obj, "metadata.generation"), dig(obj, "status.observedGeneration")
        if isinstance(observed, int) and isinstance(generation, int) and observed != generation:
            return IN_PROGRESS, ""
        for expr, status in ((self.in_progress, IN_PROGRESS), (self.failed, FAILED), (self.current, CURRENT)):
            if expr is not None and expr.evaluate_bool(obj):
                return status, ""
        return IN_PROGRESS, ""


def compile_health_check_exprs(exprs: Iterable[Mapping] | None) -> dict[tuple[str, str], CelStatusEvaluator]:
    """``spec.healthCheckExprs`` as evaluators keyed by ``(group, kind)`` (kind "" matches a whole group).

    Raises :class:`InvalidCELExpression` (Flux's reason; the Kustomization stalls) on a bad entry.
    """
    evaluators: dict[tuple[str, str], CelStatusEvaluator] = {}
    for i, entry in enumerate(exprs or []):
        group = str(entry.get("apiVersion") or "").rpartition("/")[0]
        key = (group, str(entry.get("kind") or ""))
        if key in evaluators:
            raise InvalidCELExpression(f"duplicate custom health check for GroupKind {key[1]}.{key[0]} at "
                                       f"healthchecks[{i}]")
        try:
            if not entry.get("current"):
                raise InvalidCELExpression("expression Current not specified")
            evaluators[key] = CelStatusEvaluator(
                current=_parse(entry["current"], "Current"),
                in_progress=_parse(entry["inProgress"], "InProgress") if entry.get("inProgress") else None,
                failed=_parse(entry["failed"], "Failed") if entry.get("failed") else None)
        except InvalidCELExpression as exc:
            raise InvalidCELExpression(f"failed to create custom status evaluator for healthchecks[{i}]: "
                                       f"{exc.message}") from None
    return evaluators


def _parse(expression: str, which: str) -> CelExpression:
    try:
        return CelExpression(expression)
    except InvalidCELExpression as exc:
        raise InvalidCELExpression(f"failed to parse the expression {which}: {exc.message}") from None


# --- reading and waiting ----------------------------------------------------------------------------------


class StatusReader:
    """Reads objects and computes their status: the CEL evaluators first (by group/kind, then group), kstatus
    otherwise. Callable as ``reader(ref, obj)`` on an object already read."""

    def __init__(self, kube: KubeClient, evaluators: Mapping[tuple[str, str], CelStatusEvaluator] | None = None):
        self.kube = kube
        self.evaluators = dict(evaluators or {})

    def status_of(self, ref: ObjectRef, obj: Mapping) -> ObjectStatus:
        evaluator = self.evaluators.get((ref.group, ref.kind)) or self.evaluators.get((ref.group, ""))
        try:
            status, message = evaluator.evaluate(obj) if evaluator else compute_status(obj)
        except CELEvaluationError as exc:
            return ObjectStatus(ref, UNKNOWN, str(exc))
        return ObjectStatus(ref, status, message)

    def read(self, ref: ObjectRef) -> ObjectStatus:
        try:
            rt = self.kube.resource_for(ref.api_version, ref.kind)
            obj = self.kube.get(rt, ref.name, ref.namespace or None)
        except NotFound:
            return ObjectStatus(ref, NOT_FOUND, "Resource not found")
        except KubeError as exc:
            return ObjectStatus(ref, UNKNOWN, exc.message)
        return self.status_of(ref, obj)


@dataclasses.dataclass
class HealthResult:
    """The last status of every checked object, and how the check ended."""

    statuses: list[ObjectStatus]
    elapsed: float = 0.0
    timed_out: bool = False
    cancelled: bool = False

    @property
    def healthy(self) -> bool:
        return all(s.status == CURRENT for s in self.statuses)

    @property
    def failures(self) -> list[ObjectStatus]:
        """The objects that are not Current (all of them at a timeout; the Failed ones when failing early)."""
        if self.timed_out or self.cancelled:
            return [s for s in self.statuses if s.status != CURRENT]
        return [s for s in self.statuses if s.status == FAILED]

    @property
    def message(self) -> str:
        """Flux's message: ``timeout waiting for: [...]`` or ``failed early due to stalled resources: [...]``."""
        if self.healthy:
            return ""
        lead = "timeout waiting for" if self.timed_out else \
            "health check canceled" if self.cancelled else "failed early due to stalled resources"
        return f"{lead}: [{', '.join(str(s) for s in self.failures)}]"

    def raise_for_health(self) -> None:
        """Raise :class:`HealthCheckFailed` unless every object is Current."""
        if not self.healthy:
            raise HealthCheckFailed(self)


def health_check_refs(kustomization: Mapping, applied: Iterable[ObjectRef] = ()) -> list[ObjectRef]:
    """The objects a Kustomization's health check covers: every applied object with ``spec.wait``, else
    ``spec.healthChecks`` (a missing apiVersion is ``apps/v1``, as in Flux; a missing namespace is the
    Kustomization's). The Kustomization itself is left out, so it never waits on itself."""
    spec = kustomization.get("spec") or {}
    own_ns, own_name = dig(kustomization, "metadata.namespace", ""), dig(kustomization, "metadata.name", "")
    if spec.get("wait"):
        refs = list(applied)
    else:
        refs = []
        for check in spec.get("healthChecks") or []:
            group, _, version = str(check.get("apiVersion") or "apps/v1").rpartition("/")
            refs.append(ObjectRef(group, check.get("kind", ""), check.get("namespace") or own_ns,
                                  check.get("name", ""), version))
    return [r for r in refs if not (r.kind == "Kustomization" and r.group == meta.KUSTOMIZE_GROUP
                                    and r.name == own_name and r.namespace == own_ns)]


def check_health(reader: StatusReader, refs: Iterable[ObjectRef], *, timeout: float, interval: float = 5.0,
                 fail_fast: bool = False, cancel: threading.Event | None = None) -> HealthResult:
    """Poll ``refs`` until all are Current, one is Failed (``fail_fast``), ``cancel`` is set, or ``timeout``
    seconds pass. The first polls come quickly (0.25 s, doubling up to ``interval``): freshly applied objects
    usually settle within moments."""
    refs = list(dict.fromkeys(refs))
    start = time.monotonic()
    deadline = start + timeout
    delay = min(0.25, interval)
    while True:
        statuses = [reader.read(ref) for ref in refs]
        result = HealthResult(statuses, elapsed=time.monotonic() - start)
        if result.healthy or (fail_fast and any(s.status == FAILED for s in statuses)):
            return result
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            result.timed_out = True
            return result
        if cancel is not None and cancel.wait(min(delay, remaining)):
            result.cancelled = True
            return result
        if cancel is None:
            time.sleep(min(delay, remaining))
        delay = min(delay * 2, interval)


def stage_waiter(reader: StatusReader) -> Callable[[list[ObjectRef], float, float], None]:
    """A waiter for :class:`~controllers.runtime.apply.ResourceManager`: the stages wait on kstatus, as Flux's."""

    def wait(refs: list[ObjectRef], timeout: float, interval: float) -> None:
        result = check_health(reader, refs, timeout=timeout, interval=interval)
        if not result.healthy:
            raise TimeoutError(result.message)

    return wait
