"""Why an object is not Ready, as data (``fluxpy why``, ``fluxpy trace``, the web UI): the dependency chain
of :mod:`controllers.runtime.chain` (re-exported here: :class:`Node`, :class:`Resolver`, :func:`links`,
:func:`walk`, :func:`failing_path`, :func:`root_cause`, :func:`manager_of`) and the evidence of its root
cause: its Warning events (:func:`recent_warnings`) and the controllers' log lines of its last
reconciliation (:func:`attach_evidence`). :func:`explain` is ``why``'s data. Nothing here prints.

Controllers import :mod:`controllers.runtime.chain`, not this module: reading the logs
(:mod:`controllers.runtime.logread`) may look for ``fluxpy dev``'s local cluster, which no controller may load.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from controllers.api.objects import find_condition
from controllers.runtime.chain import (  # noqa: F401 - re-exported
    EXTRA_REFS, MANAGERS, Node, Resolver, failing_path, is_broken, links, manager_of, root_cause, walk,
)
from controllers.runtime.kube import KubeClient, NotFound


def event_time(event: dict) -> str:
    """When an Event happened (its last occurrence), as an RFC 3339 string that sorts in time order."""
    return event.get("lastTimestamp") or event.get("eventTime") or event.get("firstTimestamp") or \
        event["metadata"].get("creationTimestamp", "")


def flux_event_filter(for_kind: str | None, for_name: str | None, types: set[str]) -> Callable[[dict], bool]:
    """Which Events to keep: those about a Flux kind (or only about ``for_kind``, and ``for_name`` when given),
    of the ``types`` given (lower case; empty: every type)."""
    from controllers.api.kinds import KINDS

    flux_kinds = {k.kind for k in KINDS}

    def keep(event: dict) -> bool:
        ref = event.get("involvedObject") or {}
        if types and event.get("type", "").lower() not in types:
            return False
        if for_kind:
            return ref.get("kind") == for_kind and (not for_name or ref.get("name") == for_name)
        return ref.get("kind") in flux_kinds

    return keep


def recent_warnings(kube: KubeClient, node: Node, limit: int = 3) -> list[dict]:
    """The node's latest ``limit`` Warning events, oldest first."""
    from controllers.api.builtin import EVENT

    selector = f"involvedObject.kind={node.kind},involvedObject.name={node.name}"
    items = kube.list(EVENT, node.namespace or None, field_selector=selector).get("items") or []
    warnings = [e for e in items if e.get("type") == "Warning"]
    return sorted(warnings, key=event_time)[-limit:]


def attach_evidence(kube: KubeClient, cause: Node, flux_namespace: str, state_dir: str | None = None) -> str:
    """Add the root cause's events and last-reconciliation log lines (``cause.events``, ``cause.log_lines``);
    return a note when the logs are unavailable, else ""."""
    from controllers.runtime import logread
    from controllers.runtime.kube import Forbidden

    if cause.obj is None or cause.cycle is not None:
        return ""
    cause.events = recent_warnings(kube, cause)
    try:
        lines, _ = logread.open_logs(kube, flux_namespace=flux_namespace, state_dir=state_dir)
    except logread.NoLogs as exc:
        return f"logs unavailable: {exc}"
    except Forbidden as exc:
        return f"logs unavailable: not allowed to read the controllers' logs ({exc.message})"
    cause.log_lines = logread.last_reconciliation(lines, cause.kind, cause.namespace, cause.name)
    return ""


def statusless_failure(kube: KubeClient, node: Node) -> dict | None:
    """For an object without status (an Alert or Provider, v1beta3): its latest Warning event, which is
    how its failures are reported (a notification that could not be delivered); None when it has none.
    Sets ``node.events`` and, on a failure, ``node.failure``."""
    if (node.obj.get("status") or {}).get("conditions") is not None or find_condition(node.obj, "Ready"):
        return None
    node.events = recent_warnings(kube, node)
    if not node.events:
        return None
    latest = node.events[-1]
    node.failure = (latest.get("reason") or "", (latest.get("message") or "").strip())
    return latest


def as_json(node: Node) -> dict:
    """The chain as ``why -o json`` prints it (``dependencies`` nested)."""
    return {"kind": node.kind, "namespace": node.namespace, "name": node.name, "relation": node.relation,
            "ready": node.ready, "reason": node.reason, "message": node.message, "cycle": node.cycle,
            "dependencies": [as_json(c) for c in node.children]}


@dataclasses.dataclass
class Explanation:
    """Why an object is not Ready (``fluxpy why``'s data): the tree from ``root``, the ``path`` from the root
    to the first broken link (empty when Ready), that link (``cause``, None when Ready) with its evidence
    attached, and a ``note`` when the controllers' logs could not be read ("" otherwise)."""

    root: Node
    path: list[Node]
    cause: Node | None
    note: str = ""

    @property
    def ready(self) -> bool:
        return self.cause is None


def explain(kube: KubeClient, kind: str, name: str, namespace: str, *, flux_namespace: str = "flux-system",
            state_dir: str | None = None, api_version: str | None = None,
            resolver: Resolver | None = None) -> Explanation:
    """Walk ``kind/name``, find the failing path and attach the root cause's events and log lines (for an
    object without status that reported a failure by a Warning event, the object itself is the cause).

    Raises NotFound when the kind is unknown or the root object does not exist (message ``<ref> not found``).
    ``resolver`` as for :func:`walk`; the events and logs are still read with ``kube``."""
    root = walk(kube, kind, name, namespace, api_version=api_version, resolver=resolver)
    if root.obj is None:
        raise NotFound(404, "NotFound", f"{root.ref} not found")
    path = failing_path(root)
    cause = path[-1] if path else None
    note = attach_evidence(kube, cause, flux_namespace, state_dir) if cause else ""
    if cause is None and statusless_failure(kube, root) is not None:
        cause, path = root, [root]
    return Explanation(root, path, cause, note)
