"""What the UI's JSON endpoints answer, apart from HTTP: an object's page, its diff, and the actions.

Each function takes the kube client of the user the page acts for (the CLI's own kubeconfig, or in a
cluster an impersonating client), so the apiserver's RBAC decides what they may see and do. Failures are
:class:`ApiError` (status, short error, message); the server turns them into JSON.
"""
from __future__ import annotations

import tempfile
import threading
from typing import TYPE_CHECKING

from controllers.api.kinds import KINDS
from controllers.api.objects import dig
from controllers.api.types import Kind, ResourceType
from controllers.runtime.kube import Forbidden, KubeClient, KubeError, NotFound, Unauthorized
from flux_cli.web import graph

if TYPE_CHECKING:
    from flux_cli.web.hub import Hub

FLUX_KINDS = {kind.kind: kind for kind in KINDS}
ACTIONS = ("reconcile", "suspend", "resume")
#: how long a requested reconcile is followed for its outcome (the ``action`` events).
ACTION_TIMEOUT = 300.0
#: log lines of one object shown on its page (the most recent).
MAX_LOG_LINES = 200


class ApiError(Exception):
    """A request the server answers with ``status`` and ``{"error", "message"}``."""

    def __init__(self, status: int, error: str, message: str):
        super().__init__(message)
        self.status, self.error, self.message = status, error, message

    @classmethod
    def of(cls, exc: KubeError) -> "ApiError":
        """The answer for an apiserver error (403 stays "forbidden" with the apiserver's own words)."""
        if isinstance(exc, Forbidden):
            return cls(403, "forbidden", exc.message)
        if isinstance(exc, Unauthorized):
            return cls(401, "unauthorized", exc.message)
        if isinstance(exc, NotFound):
            return cls(404, "not found", exc.message)
        return cls(502, "apiserver", exc.message)


def resource_of(kube: KubeClient, kind: str, group: str) -> ResourceType:
    """The resource of ``kind`` in ``group``: a Flux kind from the table, anything else by discovery (the
    group's preferred version)."""
    if kind in FLUX_KINDS and FLUX_KINDS[kind].group == group:
        return FLUX_KINDS[kind]
    if not group:
        return kube.resource_for("v1", kind)
    preferred = (kube.request("GET", f"/apis/{group}").get("preferredVersion") or {}).get("groupVersion")
    if not preferred:
        raise NotFound(404, "NotFound", f"the server does not serve the API group {group!r}")
    return kube.resource_for(preferred, kind)


def read_object(kube: KubeClient, hub: "Hub", object_id: str) -> tuple[ResourceType, dict]:
    """The object of a node id: from the hub's cache for Flux kinds, else a GET."""
    try:
        kind, group, namespace, name = graph.parse_id(object_id)
    except ValueError as exc:
        raise ApiError(400, "bad request", str(exc)) from None
    try:
        rt = resource_of(kube, kind, group)
        obj = hub.cached(kind, namespace, name) if isinstance(rt, Kind) else None
        if obj is None:
            obj = kube.get(rt, name, namespace if rt.namespaced else None)
    except KubeError as exc:
        raise ApiError.of(exc) from None
    obj.setdefault("apiVersion", rt.api_version)
    obj.setdefault("kind", rt.kind)
    return rt, obj


def _without_managed_fields(obj: dict) -> dict:
    meta = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
    return {**obj, "metadata": meta}


def _events(kube: KubeClient, rt: ResourceType, obj: dict) -> list[dict]:
    from controllers.api.builtin import EVENT
    from controllers.runtime.inspect import event_time

    meta = obj["metadata"]
    selector = f"involvedObject.kind={rt.kind},involvedObject.name={meta['name']}"
    try:
        items = kube.list(EVENT, meta.get("namespace"), field_selector=selector).get("items") or []
    except KubeError:
        return []
    return [{"type": e.get("type", ""), "reason": e.get("reason", ""), "message": (e.get("message") or "").strip(),
             "time": event_time(e), "count": e.get("count") or 1} for e in sorted(items, key=event_time)][-50:]


def _logs(kube: KubeClient, kind: str, namespace: str | None, name: str, flux_namespace: str,
          state_dir: str | None) -> tuple[list[dict], str]:
    from controllers.runtime import logread

    try:
        lines, _ = logread.open_logs(kube, flux_namespace=flux_namespace, state_dir=state_dir)
    except logread.NoLogs as exc:
        return [], f"logs unavailable: {exc}"
    except Forbidden as exc:
        return [], f"logs unavailable: not allowed to read the controllers' logs ({exc.message})"
    selector = logread.LogFilter(kind=kind, name=name, namespace=namespace)
    selected = [line for line in logread.merge(lines) if selector.matches(line)][-MAX_LOG_LINES:]
    return [{"ts": line.ts, "level": line.level, "controller": line.component, "message": line.message}
            for line in selected], ""


def _chain(node, resolver) -> dict:
    return {"id": graph.ref_id(node, resolver), "relation": node.relation,
            "state": "failed" if node.cycle is not None else graph.state_of(None, node.obj),
            "reason": node.reason, "message": node.message, "children": [_chain(c, resolver) for c in node.children]}


def object_page(kube: KubeClient, hub: "Hub", object_id: str, *, flux_namespace: str = "flux-system",
                state_dir: str | None = None) -> dict:
    """Everything the object page shows (see ``docs/ui.md``): the object, its conditions, history, events,
    the controllers' log lines for it, ``why``'s root cause in one line, and what it applied."""
    from controllers.runtime import inspect

    rt, obj = read_object(kube, hub, object_id)
    meta = obj["metadata"]
    namespace = meta.get("namespace")
    node = hub.nodes.get(object_id) or graph.missing_node(object_id)
    page = {"node": node, "object": _without_managed_fields(obj),
            "conditions": dig(obj, "status.conditions", []) or [], "revision": node.get("revision", ""),
            "lastHandledReconcileAt": dig(obj, "status.lastHandledReconcileAt", ""),
            "history": dig(obj, "status.history", []) or [], "events": _events(kube, rt, obj),
            "logs": [], "logsNote": "", "why": {"rootCause": None, "line": "", "chain": None},
            "objects": sorted(other["id"] for other in hub.nodes.values()
                              if any(d["id"] == object_id and d["relation"] == "applies" for d in other["deps"])
                              or other.get("managedBy") == object_id)}
    if not isinstance(rt, Kind):
        return page
    page["logs"], page["logsNote"] = _logs(kube, rt.kind, namespace, meta["name"], flux_namespace, state_dir)
    try:
        explained = inspect.explain(kube, rt.kind, meta["name"], namespace or "", flux_namespace=flux_namespace,
                                    state_dir=state_dir)
    except KubeError as exc:
        raise ApiError.of(exc) from None
    resolver = inspect.Resolver(kube)
    page["why"]["chain"] = _chain(explained.root, resolver)
    cause = explained.cause
    if cause is None and node.get("cause"):  # Ready itself, but something it depends on is broken
        cause_id = node["cause"]["id"]
        page["why"]["rootCause"] = node["cause"]
        page["why"]["line"] = f"root cause: {cause_id}: {node['cause']['reason']}: {node['cause']['message']}"
    elif cause is not None:
        what = f"{cause.reason}: {cause.message}" if cause.reason else cause.message
        page["why"]["rootCause"] = {"id": graph.ref_id(cause, resolver), "reason": cause.reason,
                                    "message": cause.message,
                                    "events": [e.get("message") for e in cause.events],
                                    "logs": [line.message for line in cause.log_lines]}
        page["why"]["line"] = f"root cause: {page['why']['rootCause']['id']}: {what}"
    return page


def diff_of(kube: KubeClient, hub: "Hub", object_id: str) -> dict:
    """What the next apply of a Kustomization or HelmRelease would change (computed now; may take seconds)."""
    from controllers.lib import preview

    rt, obj = read_object(kube, hub, object_id)
    if rt.kind not in ("Kustomization", "HelmRelease"):
        raise ApiError(400, "bad request", f"{object_id}: only Kustomizations and HelmReleases have a diff")
    with tempfile.TemporaryDirectory(prefix="fluxpy-ui-diff-") as workdir:
        try:
            if rt.kind == "Kustomization":
                found = preview.kustomization_next_apply(kube, obj, workdir)
            else:
                found = preview.helm_release_diff(kube, obj, workdir).result
        except preview.PreviewError as exc:
            raise ApiError(422, "diff failed", str(exc)) from None
        except KubeError as exc:
            raise ApiError.of(exc) from None
    from controllers.lib.kustomize.diff import render_diff

    changed = [o for o in found.objects if o.changed]
    return {"id": object_id, "changed": found.changed, "diff": render_diff(found, color=False),
            "drift": [graph.node_id(o.ref.kind, o.ref.group, o.ref.namespace or None, o.ref.name) for o in changed],
            "actions": {graph.node_id(o.ref.kind, o.ref.group, o.ref.namespace or None, o.ref.name): o.action
                        for o in changed}, "errors": list(found.errors)}


def start_action(kube: KubeClient, hub: "Hub", body: dict) -> dict:
    """Request ``reconcile`` (optionally with its sources first, ``force``, ``reset``), ``suspend`` or
    ``resume`` on a Flux object, with the user's credentials; its progress goes to every page as ``action``
    events (``requested``, then ``done`` or ``failed``), followed in a background thread."""
    from controllers.runtime import protocol

    object_id, action = body.get("id"), body.get("action")
    if not isinstance(object_id, str) or action not in ACTIONS:
        raise ApiError(400, "bad request", f"expected {{\"id\": <object id>, \"action\": one of {', '.join(ACTIONS)}}}")
    rt, obj = read_object(kube, hub, object_id)
    if not isinstance(rt, Kind):
        raise ApiError(400, "bad request", f"{object_id} is not a Flux object: it has no {action}")
    kind, name, namespace = rt, obj["metadata"]["name"], obj["metadata"].get("namespace")
    if action == "reconcile" and not kind.reconcilable or action != "reconcile" and not kind.suspendable:
        raise ApiError(400, "bad request", f"{kind.kind} does not support {action}")
    try:
        if action != "reconcile":
            protocol.set_suspend(kube, kind, name, namespace, action == "suspend")
            event = {"id": object_id, "action": action, "token": "", "phase": "done",
                     "message": f"{kind.kind} {action}{'ed' if action == 'suspend' else 'd'}"}
            hub.publish("action", event)
            return event
        if dig(obj, "spec.suspend"):
            raise ApiError(409, "suspended", f"{object_id} is suspended: resume it first")
        also = protocol.request_annotations(kind, {"force": bool(body.get("force")), "reset": bool(body.get("reset"))})
        chain = protocol.sources_of(kube, kind, obj) if body.get("withSource") else []
        if body.get("withSource") and not chain:
            raise ApiError(400, "bad request", f"{kind.kind} has no source to reconcile")
    except ValueError as exc:
        raise ApiError(400, "bad request", str(exc)) from None
    except KubeError as exc:
        raise ApiError.of(exc) from None
    steps = [(k, n, ns, ()) for k, n, ns in reversed(chain)] + [(kind, name, namespace, also)]
    threading.Thread(target=_follow_reconcile, args=(kube, hub, object_id, steps), name="ui-action",
                     daemon=True).start()
    return {"id": object_id, "action": action, "token": "", "phase": "requested",
            "steps": [graph.node_id(k.kind, k.group, ns, n) for k, n, ns, _ in steps], "message": ""}


def _follow_reconcile(kube: KubeClient, hub: "Hub", object_id: str, steps: list) -> None:
    """Reconcile each step in order (the deepest source first), waiting for its outcome, as ``fluxpy reconcile
    --with-source`` does; publish each step's progress."""
    from controllers.runtime import protocol

    for kind, name, namespace, also in steps:
        step_id = graph.node_id(kind.kind, kind.group, namespace, name)
        event = {"id": object_id, "action": "reconcile", "step": step_id, "token": "", "phase": "requested",
                 "message": f"annotating {step_id} for reconciliation"}
        try:
            event["token"] = protocol.request_reconcile(kube, kind, name, namespace, also)
            hub.publish("action", dict(event))
            protocol.wait_ready(kube, kind, name, namespace, timeout=ACTION_TIMEOUT, token=event["token"])
        except protocol.ReconcileFailed as exc:
            hub.publish("action", {**event, "phase": "failed", "message": f"{step_id} reconciliation failed: {exc}"})
            return
        except (KubeError, TimeoutError) as exc:
            message = exc.message if isinstance(exc, KubeError) else (str(exc) or "timed out")
            hub.publish("action", {**event, "phase": "failed", "message": message})
            return
    hub.publish("action", {**event, "phase": "done", "message": f"{object_id} reconciliation completed"})
