"""The dependency chain of a Flux object, to explain why it is not Ready (``fluxpy why``, ``fluxpy trace``,
the notification-controller's grouping of alerts, dependency checks of the appliers, the web UI's graph).

An object's links, read from its spec through the kinds table:

- its **source** (``Kind.source_ref_path``, or the kind's ``source_resolver``: a HelmRelease's chart goes
  through the HelmChart Flux makes for it, ``<release namespace>-<release name>`` in the source's namespace,
  or ``spec.chartRef``);
- its **dependencies** (``spec.dependsOn``; beyond Flux an entry may name any ``apiVersion``/``kind``);
- for image policies and automations and alerts, the object they point at.

:func:`walk` builds the tree (a link back to an object already on the path is a cycle, reported, never
followed), reading objects through a :class:`Resolver` (the apiserver, or a cache in a subclass);
:func:`root_cause` names the first broken link: the deepest object that is not Ready although everything it
depends on is. :func:`manager_of` names the applier of an object from its owner labels.

Controllers import this module; :mod:`controllers.runtime.inspect` (which re-exports everything here) adds
the evidence of a root cause, read from Events and the controllers' logs, for the CLI and the web UI.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

from controllers.api.objects import dig, find_condition
from controllers.api.types import Kind, ResourceType
from controllers.runtime.kube import KubeClient, NotFound

#: extra references some kinds carry, beyond sources and dependsOn: (path, default kind).
EXTRA_REFS = {
    "ImagePolicy": (("spec.imageRepositoryRef", "ImageRepository"),),
    "Alert": (("spec.providerRef", "Provider"),),
}


@dataclasses.dataclass
class Node:
    """One object in the chain and its state."""

    kind: str
    namespace: str
    name: str
    relation: str = ""
    obj: dict | None = None
    children: list["Node"] = dataclasses.field(default_factory=list)
    #: set when this link points back to an object already on the path: the cycle, as names.
    cycle: list[str] | None = None
    events: list[dict] = dataclasses.field(default_factory=list)
    log_lines: list = dataclasses.field(default_factory=list)
    #: (reason, message) of an object without status that reported a failure by a Warning event
    failure: tuple[str, str] | None = None

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @property
    def missing(self) -> bool:
        return self.obj is None and self.cycle is None

    @property
    def suspended(self) -> bool:
        return bool(self.obj and dig(self.obj, "spec.suspend"))

    @property
    def ready(self) -> str:
        """"True", "False", "Unknown", "Missing" or "Suspended"."""
        if self.cycle is not None:
            return "False"
        if self.obj is None:
            return "Missing"
        if self.suspended:
            return "Suspended"
        if self.failure is not None:
            return "False"
        cond = find_condition(self.obj, "Ready")
        if cond is None:
            # objects without conditions (ConfigMaps, v1beta3 Alerts/Providers) are fine by existing
            return "Unknown" if (self.obj.get("status") or {}).get("conditions") is not None else "True"
        return cond.get("status", "Unknown")

    @property
    def reason(self) -> str:
        if self.cycle is not None:
            return "DependencyCycle"
        if self.obj is None:
            return "NotFound"
        if self.failure is not None:
            return self.failure[0]
        return self._explaining_condition().get("reason", "")

    @property
    def message(self) -> str:
        if self.cycle is not None:
            return "dependency cycle: " + " → ".join(self.cycle)
        if self.obj is None:
            return f"{self.ref} not found"
        if self.suspended:
            return "reconciliation is suspended"
        if self.failure is not None:
            return self.failure[1]
        return self._explaining_condition().get("message", "")

    def _explaining_condition(self) -> dict:
        """The Ready condition; while a retry is in progress (Ready Unknown), the failure it retries: a
        ``...Failed`` condition still True (e.g. FetchFailed), so ``why`` names the cause at any instant."""
        ready = find_condition(self.obj, "Ready") or {}
        if ready.get("status") == "Unknown":
            failed = next((c for c in (self.obj.get("status") or {}).get("conditions") or []
                           if c.get("type", "").endswith("Failed") and c.get("status") == "True"), None)
            if failed:
                return failed
        return ready

    def walk(self) -> Iterator["Node"]:
        yield self
        for child in self.children:
            yield from child.walk()


class Resolver:
    """Finds the resource of a kind name (Flux kinds first, then discovery) and reads objects.

    :func:`walk` calls only :meth:`resource` and :meth:`get`: override them to read something else than the
    apiserver (a watch cache); ``kube`` is used by these two methods only, and may be None in a subclass that
    overrides both (or that never meets a kind outside the kinds table with an ``apiVersion``)."""

    def __init__(self, kube: KubeClient | None):
        self.kube = kube

    def resource(self, kind: str, api_version: str | None = None) -> ResourceType | None:
        from controllers.api.kinds import UnknownKind, kind_by_name, kind_for

        try:
            if api_version:
                found = kind_for(api_version, kind)
                if found:
                    return found
                return self.kube.resource_for(api_version, kind)
            return kind_by_name(kind)
        except (UnknownKind, NotFound, ValueError):
            return None

    def get(self, rt: ResourceType, name: str, namespace: str) -> dict | None:
        try:
            obj = self.kube.get(rt, name, namespace if rt.namespaced else None)
        except NotFound:
            return None
        obj.setdefault("apiVersion", rt.api_version)
        obj.setdefault("kind", rt.kind)
        return obj


def links(kind: Kind | ResourceType, obj: dict) -> list[tuple[str, str, str, str | None, str]]:
    """The objects ``obj`` depends on: ``(relation, kind, name, apiVersion, namespace)``."""
    namespace = obj["metadata"].get("namespace", "")
    out = []
    source_path = getattr(kind, "source_ref_path", "")
    resolver = getattr(kind, "source_resolver", None)
    if resolver is not None:  # e.g. a HelmRelease: its chartRef, or the HelmChart Flux makes for it
        ref = resolver(obj)
        if ref and ref.get("name"):
            out.append((ref.get("relation") or "source", ref.get("kind") or "", ref["name"], ref.get("apiVersion"),
                        ref.get("namespace") or namespace))
    elif source_path:
        ref = dig(obj, source_path)
        if ref and ref.get("name"):
            out.append(("source", ref.get("kind") or "", ref["name"], ref.get("apiVersion"),
                        ref.get("namespace") or namespace))
    for path, default_kind in EXTRA_REFS.get(kind.kind, ()):
        ref = dig(obj, path)
        if ref and ref.get("name"):
            out.append((path.rsplit(".", 1)[-1], ref.get("kind") or default_kind, ref["name"],
                        ref.get("apiVersion"), ref.get("namespace") or namespace))
    for dep in dig(obj, "spec.dependsOn", []) or []:
        if dep.get("name"):
            out.append(("dependsOn", dep.get("kind") or kind.kind, dep["name"], dep.get("apiVersion"),
                        dep.get("namespace") or namespace))
    return out


def walk(kube: KubeClient | None, kind: str, name: str, namespace: str, *, api_version: str | None = None,
         max_depth: int = 20, resolver: Resolver | None = None) -> Node:
    """The tree of ``kind/name`` and everything it depends on. Raises NotFound for an unknown root kind.

    ``resolver`` replaces ``Resolver(kube)`` (``kube`` may then be None): a subclass overriding
    :meth:`Resolver.get` (and :meth:`Resolver.resource`, for kinds beyond the kinds table) reads a cache
    instead of the apiserver."""
    resolver = resolver if resolver is not None else Resolver(kube)
    root_rt = resolver.resource(kind, api_version)
    if root_rt is None:
        raise NotFound(404, "NotFound", f"unknown kind {kind!r}" + (f" in {api_version}" if api_version else ""))
    return _visit(resolver, root_rt, name, namespace, "", [], max_depth)


def _visit(resolver: Resolver, rt: ResourceType, name: str, namespace: str, relation: str, path: list[str],
           depth: int) -> Node:
    node = Node(rt.kind, namespace if rt.namespaced else "", name, relation)
    if node.ref in path:
        node.cycle = path[path.index(node.ref):] + [node.ref]
        return node
    node.obj = resolver.get(rt, name, namespace)
    if node.obj is None or depth <= 0:
        return node
    for rel, child_kind, child_name, child_api, child_ns in links(rt, node.obj):
        child_rt = resolver.resource(child_kind, child_api)
        if child_rt is None:
            node.children.append(Node(child_kind, child_ns, child_name, rel))
            continue
        node.children.append(_visit(resolver, child_rt, child_name, child_ns, rel, path + [node.ref], depth - 1))
    return node


def is_broken(node: Node) -> bool:
    return node.ready not in ("True",)


def failing_path(node: Node) -> list[Node]:
    """From the root to the first broken link: follow not-Ready links down while one exists."""
    if not is_broken(node):
        return []
    path = [node]
    while True:
        broken = [c for c in path[-1].children if is_broken(c)]
        # a cycle is the most specific explanation there is; then dependencies/sources in spec order
        nxt = next((c for c in broken if c.cycle is not None), broken[0] if broken else None)
        if nxt is None:
            return path
        path.append(nxt)
        if nxt.cycle is not None:
            return path


def root_cause(node: Node) -> Node | None:
    """The first broken link (None when the root is Ready)."""
    path = failing_path(node)
    return path[-1] if path else None


#: the owner labels an applier puts on what it applies: (manager kind, name label, namespace label).
MANAGERS = (
    ("Kustomization", "kustomize.toolkit.fluxcd.io/name", "kustomize.toolkit.fluxcd.io/namespace"),
    ("HelmRelease", "helm.toolkit.fluxcd.io/name", "helm.toolkit.fluxcd.io/namespace"),
)


def manager_of(obj: dict) -> tuple[str, str, str] | None:
    """(kind, name, namespace) of the Kustomization/HelmRelease whose labels the object carries."""
    labels = obj["metadata"].get("labels") or {}
    for kind, name_label, ns_label in MANAGERS:
        if labels.get(name_label):
            return kind, labels[name_label], labels.get(ns_label, "")
    return None
