"""The delivery graph the UI draws: Flux objects, what they depend on, and what they applied.

:func:`build` turns the informers' caches (objects by Flux kind) into nodes (see ``docs/ui.md`` for the
JSON). Nothing here talks to the apiserver, except through ``applied_by_release`` (the objects of a
HelmRelease's latest release, read from Helm's storage by the caller, cached per release version):

- a Flux object's incoming edges are :func:`controllers.runtime.inspect.links`: its source, ``dependsOn``
  (across kinds), an ImagePolicy's repository, an Alert's provider;
- its root cause is ``fluxpy why``'s, computed by the same :func:`~controllers.runtime.inspect.walk` over a
  resolver that reads the caches (no request per link). A node that is Ready itself but depends on something
  broken is ``blocked``, and its cause is the first broken link below it;
- the objects a Kustomization (``status.inventory``) or a HelmRelease applied are nodes too, drawn with their
  manager's colour. A Flux object that another one applied (a nested Kustomization) keeps its own state and
  only records ``managedBy``, so the graph keeps its sources → appliers → objects direction.
"""
from __future__ import annotations

from typing import Callable, Iterable, Mapping

from controllers.api.kinds import KINDS, UnknownKind, kind_by_name, kind_for
from controllers.api.objects import dig, find_condition
from controllers.api.types import Kind, ResourceType
from controllers.runtime import inspect

FLUX_GROUP_SUFFIX = "toolkit.fluxcd.io"
KINDS_BY_NAME: dict[str, Kind] = {kind.kind: kind for kind in KINDS}
#: what the UI may offer per Flux object, beyond the kind's capabilities.
APPLIERS = ("Kustomization", "HelmRelease")


def node_id(kind: str, group: str, namespace: str | None, name: str) -> str:
    """``Kind/namespace/name`` for a Flux kind (as ``fluxpy why`` names objects), ``Kind.group/namespace/name``
    for any other (``ConfigMap/ns/name`` for the core group); the namespace is left out when cluster-scoped."""
    qualified = kind if (not group or group.endswith(FLUX_GROUP_SUFFIX)) else f"{kind}.{group}"
    return f"{qualified}/{namespace}/{name}" if namespace else f"{qualified}/{name}"


def parse_id(value: str) -> tuple[str, str, str | None, str]:
    """``(kind, group, namespace, name)`` of a :func:`node_id`; raises ValueError for anything else.

    The group of a Flux kind comes from the kinds table; a two-part id is a cluster-scoped object."""
    parts = value.split("/")
    if len(parts) not in (2, 3) or not all(parts):
        raise ValueError(f"invalid object id {value!r}: expected Kind/namespace/name or Kind.group/namespace/name")
    qualified, name = parts[0], parts[-1]
    namespace = parts[1] if len(parts) == 3 else None
    kind, _, group = qualified.partition(".")
    if not group and kind in KINDS_BY_NAME:
        group = KINDS_BY_NAME[kind].group
    return kind, group, namespace, name


def state_of(kind: Kind | None, obj: dict | None) -> str:
    """ready | reconciling | failed | stalled | suspended | unknown | missing, from the object's conditions."""
    if obj is None:
        return "missing"
    if dig(obj, "spec.suspend"):
        return "suspended"
    if kind is not None and kind.static_ready and (
            kind.static_ready_when is None or dig(obj, kind.static_ready_when[0]) == kind.static_ready_when[1]):
        return "ready"
    if (find_condition(obj, "Stalled") or {}).get("status") == "True":
        return "stalled"
    ready = (find_condition(obj, "Ready") or {}).get("status")
    if ready == "True":
        return "ready"
    if ready == "False" or ready == "Unknown" and any(  # a retry in progress of an attempt that failed
            c.get("type", "").endswith("Failed") and c.get("status") == "True"
            for c in (obj.get("status") or {}).get("conditions") or []):
        return "failed"
    if ready == "Unknown" or (find_condition(obj, "Reconciling") or {}).get("status") == "True":
        return "reconciling"
    return "unknown"


class CacheResolver(inspect.Resolver):
    """``inspect``'s resolver over the graph's caches: an object not cached is missing (no API call)."""

    def __init__(self, objects: Mapping[tuple[str, str, str], dict]):
        super().__init__(None)  # type: ignore[arg-type]
        self.objects = objects

    def resource(self, kind: str, api_version: str | None = None) -> ResourceType | None:
        try:
            found = kind_for(api_version, kind) if api_version else kind_by_name(kind)
        except (UnknownKind, ValueError):
            found = None
        if found is None and api_version:  # a dependsOn naming a non-Flux kind: known by name only
            group, _, version = api_version.rpartition("/")
            return ResourceType(group, version, kind, kind.lower() + "s")
        return found

    def get(self, rt: ResourceType, name: str, namespace: str) -> dict | None:
        return self.objects.get((rt.kind, namespace if rt.namespaced else "", name))


def ref_id(node: inspect.Node, resolver: CacheResolver) -> str:
    api_version = (node.obj or {}).get("apiVersion", "")
    group = api_version.rpartition("/")[0] if api_version else getattr(resolver.resource(node.kind), "group", "")
    return node_id(node.kind, group, node.namespace, node.name)


def _cause(root: inspect.Node, resolver: CacheResolver) -> dict | None:
    """``why``'s root cause of a broken node; for a Ready one, the first broken link anywhere below it."""
    cause = inspect.root_cause(root) or _first_broken_below(root)
    if cause is None:
        return None
    return {"id": ref_id(cause, resolver), "reason": cause.reason, "message": cause.message}


def _first_broken_below(node: inspect.Node) -> inspect.Node | None:
    for child in node.children:
        found = inspect.root_cause(child) or _first_broken_below(child)
        if found is not None:
            return found
    return None


def actions_of(kind: Kind) -> list[str]:
    """The actions the object page offers for a kind (the kinds table's capabilities)."""
    out = []
    if kind.reconcilable:
        out.append("reconcile")
        if kind.source_ref_path or kind.source_resolver is not None:
            out.append("withSource")
        out += [option.flag for option in kind.reconcile_options]
    if kind.suspendable:
        out += ["suspend", "resume"]
    return out


def flux_node(kind: Kind, obj: dict, resolver: CacheResolver) -> dict:
    """The node of one Flux object: state, message, revision, incoming edges and root cause."""
    from controllers.api.kinds import ready_of, revision_of

    meta = obj["metadata"]
    namespace = meta.get("namespace") or ""
    state = state_of(kind, obj)
    ready = find_condition(obj, "Ready") or {}
    deps = []
    for relation, dep_kind, dep_name, dep_api, dep_ns in inspect.links(kind, obj):
        rt = resolver.resource(dep_kind, dep_api)
        group = rt.group if rt is not None else (dep_api or "").rpartition("/")[0]
        deps.append({"id": node_id(dep_kind, group, dep_ns if (rt is None or rt.namespaced) else None, dep_name),
                     "relation": relation})
    cause = None
    if state != "suspended":  # a suspended object names no cause: its chain is not walked
        root = inspect.walk(None, kind.kind, meta["name"], namespace, api_version=obj.get("apiVersion"),
                            resolver=resolver)
        cause = _cause(root, resolver)
    message = ready_of(kind, obj)[1] if kind.static_ready else ready.get("message", "")
    return {"id": node_id(kind.kind, kind.group, namespace, meta["name"]), "kind": kind.kind, "group": kind.group,
            "namespace": namespace, "name": meta["name"], "flux": True, "state": state,
            "blocked": state in ("ready", "reconciling", "unknown") and cause is not None,
            "reason": ready.get("reason", ""), "message": message, "revision": revision_of(kind, obj),
            "lastHandledReconcileAt": dig(obj, "status.lastHandledReconcileAt", ""),
            "cause": cause, "deps": deps, "actions": actions_of(kind)}


def applied_node(ref, manager: dict) -> dict:
    """The node of an object a Kustomization or HelmRelease applied, in its manager's colour."""
    return {"id": node_id(ref.kind, ref.group, ref.namespace or None, ref.name), "kind": ref.kind,
            "group": ref.group, "namespace": ref.namespace, "name": ref.name, "flux": False,
            "state": manager["state"], "blocked": manager["blocked"], "reason": "", "message": "",
            "revision": "", "cause": manager["cause"], "deps": [{"id": manager["id"], "relation": "applies"}],
            "actions": []}


def missing_node(dep_id: str) -> dict:
    kind, group, namespace, name = parse_id(dep_id)
    return {"id": dep_id, "kind": kind, "group": group, "namespace": namespace or "", "name": name,
            "flux": group.endswith(FLUX_GROUP_SUFFIX), "state": "missing", "blocked": False, "reason": "NotFound",
            "message": f"{dep_id} not found", "revision": "", "cause": None, "deps": [], "actions": []}


def inventory_refs(obj: dict) -> list:
    """The objects of a Kustomization's ``status.inventory`` (entries that do not parse are skipped)."""
    from controllers.runtime.apply import ObjectRef

    refs = []
    for entry in dig(obj, "status.inventory.entries", []) or []:
        try:
            refs.append(ObjectRef.from_id(entry["id"], entry.get("v", "")))
        except (KeyError, ValueError):
            continue
    return refs


def build(objects_by_kind: Mapping[str, Iterable[dict]],
          applied_by_release: Callable[[dict], list] | None = None) -> dict[str, dict]:
    """Every node of the graph, by id, from the cached objects of each Flux kind (by ``Kind.kind``).

    ``applied_by_release(helmrelease)`` returns the ObjectRefs of its latest release (or ``[]``)."""
    cached = {(kind, obj["metadata"].get("namespace") or "", obj["metadata"]["name"]): obj
              for kind, objs in objects_by_kind.items() for obj in objs}
    resolver = CacheResolver(cached)
    nodes: dict[str, dict] = {}
    managers: list[tuple[dict, list]] = []
    for (kind_name, _, _), obj in cached.items():
        kind = KINDS_BY_NAME[kind_name]
        node = flux_node(kind, obj, resolver)
        nodes[node["id"]] = node
        if kind_name == "Kustomization":
            managers.append((node, inventory_refs(obj)))
        elif kind_name == "HelmRelease" and applied_by_release is not None:
            managers.append((node, applied_by_release(obj)))
    for manager, refs in managers:
        for ref in refs:
            applied = applied_node(ref, manager)
            if applied["id"] == manager["id"]:
                continue
            if applied["id"] in nodes and nodes[applied["id"]]["flux"]:
                nodes[applied["id"]]["managedBy"] = manager["id"]
            else:
                nodes.setdefault(applied["id"], applied)
    for node in list(nodes.values()):
        for dep in node["deps"]:
            if dep["id"] not in nodes:
                nodes[dep["id"]] = missing_node(dep["id"])
    return nodes


def matches(node: dict, *, namespace: str = "", kind: str = "", state: str = "", text: str = "") -> bool:
    """Whether a node passes the page's filters (empty filters pass everything)."""
    if namespace and node["namespace"] != namespace:
        return False
    if kind and node["kind"] != kind:
        return False
    if state and not (node["state"] == state or (state == "failed" and node["blocked"])):
        return False
    return not text or text.lower() in node["id"].lower()
