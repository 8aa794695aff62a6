"""The client side of Flux's object protocol, shared by the CLI and bootstrap.

- request a reconcile: set ``reconcile.fluxcd.io/requestedAt`` and wait for ``status.lastHandledReconcileAt``
  to echo it, then for the Ready condition to settle;
- suspend / resume: ``spec.suspend``;
- what "reconcile with its source" acts on: :func:`source_of`, :func:`sources_of`, and the extra request
  annotations of a kind's reconcile options (:func:`request_annotations`).
"""
from __future__ import annotations

import datetime

from controllers.api.meta import RECONCILE_REQUEST_ANNOTATION
from controllers.api.objects import dig, find_condition
from controllers.api.types import Kind
from controllers.runtime.kube import KubeClient

REQUESTED_AT = RECONCILE_REQUEST_ANNOTATION


class ReconcileFailed(Exception):
    """The object was reconciled but is not Ready; the message is its Ready condition's."""

    def __init__(self, obj: dict, message: str, retry: str = ""):
        super().__init__(message)
        self.obj = obj
        #: when the controller tries again (see :func:`retry_note`), "" when unknown.
        self.retry = retry


def now_token() -> str:
    """A requestedAt value: RFC 3339 with nanoseconds, as the flux CLI writes it."""
    now = datetime.datetime.now(datetime.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


def request_reconcile(kube: KubeClient, kind: Kind, name: str, namespace: str | None,
                      also: tuple[str, ...] = ()) -> str:
    """Annotate the object so its controller reconciles it now; return the token to wait for.

    ``also`` names further request annotations (e.g. ``reconcile.fluxcd.io/forceAt``) that carry the same
    token, in one patch, as the flux CLI writes them."""
    token = now_token()
    annotations = {annotation: token for annotation in (REQUESTED_AT, *also)}
    kube.patch(kind, name, {"metadata": {"annotations": annotations}}, namespace)
    return token


def source_of(kind: Kind, obj: dict) -> tuple[Kind, str, str | None] | None:
    """The (kind, name, namespace) of the object's source: the kind's ``source_resolver``, else its
    ``source_ref_path``; None when it has none. Raises UnknownKind for a source kind not in the kinds table."""
    from controllers.api.kinds import kind_by_name

    if kind.source_resolver is not None:
        ref = kind.source_resolver(obj)
    else:
        ref = dig(obj, kind.source_ref_path) if kind.source_ref_path else None
    if not ref or not ref.get("kind"):
        return None
    source_kind = kind_by_name(ref["kind"])
    return source_kind, ref["name"], ref.get("namespace") or obj["metadata"].get("namespace")


#: how deep "reconcile with source" follows sources of sources (HelmRelease → HelmChart → HelmRepository).
MAX_SOURCE_DEPTH = 3


def sources_of(kube: KubeClient, kind: Kind, obj: dict, max_depth: int = MAX_SOURCE_DEPTH
               ) -> list[tuple[Kind, str, str | None]]:
    """The object's source, that source's source, … (at most ``max_depth``), each as (kind, name, namespace;
    None for a cluster-scoped kind): what "reconcile with source" reconciles first, the deepest last. Each
    source is read with ``kube.get`` to find the next; NotFound propagates, with ``exc.source`` set to the
    (kind, name, namespace) that is missing."""
    from controllers.runtime.kube import NotFound

    chain: list[tuple[Kind, str, str | None]] = []
    while len(chain) < max_depth and (source := source_of(kind, obj)) is not None:
        kind, name, namespace = source
        namespace = namespace if kind.namespaced else None
        chain.append((kind, name, namespace))
        try:
            obj = kube.get(kind, name, namespace)
        except NotFound as exc:
            exc.source = (kind, name, namespace)
            raise
        obj.setdefault("apiVersion", kind.api_version)
        obj.setdefault("kind", kind.kind)
    return chain


def request_annotations(kind: Kind, given: dict[str, bool]) -> tuple[str, ...]:
    """The annotations of the kind's reconcile options (``Kind.reconcile_options``: flag → annotation) that
    are set in ``given`` (e.g. ``{"force": True, "reset": False}``), for :func:`request_reconcile`'s ``also``.
    A flag the kind does not declare raises ValueError."""
    declared = {option.flag: option.annotation for option in kind.reconcile_options}
    annotations = []
    for flag, value in given.items():
        if not value:
            continue
        if flag not in declared:
            offered = ", ".join(f"--{f}" for f in declared) or "none"
            raise ValueError(f"--{flag} does not apply to {kind.kind} (its reconcile options: {offered})")
        annotations.append(declared[flag])
    return tuple(annotations)


def set_suspend(kube: KubeClient, kind: Kind, name: str, namespace: str | None, suspend: bool) -> dict:
    """Set ``spec.suspend``; resuming also requests a reconcile so the object catches up at once."""
    patch: dict = {"spec": {"suspend": suspend}}
    if not suspend:
        patch["metadata"] = {"annotations": {REQUESTED_AT: now_token()}}
    return kube.patch(kind, name, patch, namespace)


def ready_settled(obj: dict) -> bool:
    """Whether the Ready condition reflects the current generation and is not still in progress."""
    ready = find_condition(obj, "Ready")
    if not ready or ready.get("status") not in ("True", "False"):
        return False
    generation = obj["metadata"].get("generation")
    observed = dig(obj, "status.observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return False
    return ready.get("status") == "True" or find_condition(obj, "Reconciling") is None or \
        find_condition(obj, "Stalled") is not None


def wait_ready(kube: KubeClient, kind: Kind, name: str, namespace: str | None, *, timeout: float,
               token: str | None = None) -> dict:
    """Wait until the controller handled ``token`` (if given) and Ready settled; raise ReconcileFailed if False.

    A failure ends the wait as soon as it is the verdict on this request: the controller echoed ``token``
    (or, without a token, Ready=False was written for the current generation). A failing object is retried
    by its controller with Reconciling=True, so waiting for it to "settle" would last the whole timeout.
    """

    def done(obj: dict) -> bool:
        if token is not None and dig(obj, "status.lastHandledReconcileAt") != token:
            return False
        return ready_settled(obj) or failed_now(obj)

    what = f"{kind.kind} '{namespace + '/' if namespace else ''}{name}' reconciliation"
    obj = kube.wait_for(kind, name, namespace, done, timeout=timeout, what=what)
    ready = find_condition(obj, "Ready") or {}
    if ready.get("status") != "True":
        raise ReconcileFailed(obj, ready.get("message") or ready.get("reason") or "not ready",
                              retry=retry_note(kind, obj))
    return obj


def failed_now(obj: dict) -> bool:
    """Whether Ready=False was written for the object's current generation (a failed attempt on it)."""
    ready = find_condition(obj, "Ready") or {}
    generation = obj["metadata"].get("generation")
    return ready.get("status") == "False" and (generation is None or ready.get("observedGeneration") == generation)


def retry_note(kind: Kind, obj: dict) -> str:
    """When the controller tries a failed object again, as the kind's controller decides it: never by
    itself when Stalled; every ``spec.retryInterval``/``spec.interval`` for kinds that declare those
    (``Kind.retry_interval_paths``); otherwise with the runtime's exponential backoff."""
    from controllers.api.duration import format_duration
    from controllers.runtime.settings import ControllerSettings

    controller = kind.controller or "its controller"
    if (find_condition(obj, "Stalled") or {}).get("status") == "True":
        return f"the {controller} will not retry until the object changes"
    try:
        found = kind.retry_interval(obj)
    except ValueError:
        found = None
    if found:
        return f"the {controller} retries it every {format_duration(found[0])} ({found[1]})"
    settings = ControllerSettings()
    return (f"the {controller} keeps retrying with exponential backoff, "
            f"{format_duration(settings.min_retry_delay)} doubling up to {format_duration(settings.max_retry_delay)}")


def component_health(kube: KubeClient, namespace: str, component: str) -> tuple[bool, str]:
    """Whether a controller is alive, and how we know.

    Alive means its Deployment is Available (in a cluster with a kubelet), or its leader-election Lease
    ``<component>-leader-election`` was renewed within the lease duration (a controller running as a local
    process against the embedded control plane has no Pods, but it does hold its Lease).
    """
    import time

    from controllers.api.builtin import DEPLOYMENT, LEASE
    from controllers.runtime.kube import NotFound
    from controllers.runtime.leader import lease_name

    try:
        lease = kube.get(LEASE, lease_name(component), namespace)
        spec = lease.get("spec") or {}
        renewed = spec.get("renewTime")
        if renewed and spec.get("holderIdentity"):
            age = time.time() - _parse_rfc3339(renewed)
            if age <= float(spec.get("leaseDurationSeconds") or 15):
                return True, f"leader lease held by {spec['holderIdentity']} (renewed {age:.0f}s ago)"
    except NotFound:
        pass
    try:
        deploy = kube.get(DEPLOYMENT, component, namespace)
    except NotFound:
        return False, "no deployment and no leader lease found"
    available = next((c for c in (deploy.get("status") or {}).get("conditions") or [] if c.get("type") == "Available"), {})
    if available.get("status") == "True":
        return True, "deployment ready"
    return False, "deployment not ready and no live leader lease"


def _parse_rfc3339(value: str) -> float:
    return datetime.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
