"""``spec.dependsOn`` of a Kustomization: Flux's readiness rules, ``readyExpr``, dependencies across kinds and
dependency cycles.

Flux's rules for a dependency (a Kustomization): it exists; with a ``readyExpr`` the CEL expression (variables
``self``, the dependent, and ``dep``) decides alone — or before the rules below with the
AdditiveCELDependencyCheck feature gate; its ``observedGeneration`` equals its generation and its ``Ready``
condition is True; and when it uses the same source, its ``lastAppliedRevision`` is the source's current
revision. Messages are Flux's: ``dependency 'ns/name' is not ready``, ``... revision is not up to date``,
``... not found: <apiserver message>``, ``... is not ready according to readyExpr eval``.

Beyond Flux:

- an entry with ``apiVersion``/``kind`` names an object of another kind (a HelmRelease, or any custom resource):
  it must exist, have a ``Ready`` condition that is True, and be observed at its generation (the top-level
  ``status.observedGeneration``, else the condition's own); it is named ``Kind/ns/name`` in messages;
- :func:`find_cycle` follows ``dependsOn`` links across kinds (read with
  :func:`controllers.runtime.chain.links`, the chain walker ``fluxpy why`` uses); a cycle through the
  Kustomization is reported as :class:`DependencyCycle` (Stalled, reason ``DependencyCycle``) naming it:
  ``dependency cycle: Kustomization/ns/a → Kustomization/ns/b → HelmRelease/ns/c → Kustomization/ns/a``.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

from controllers.api import meta
from controllers.api.objects import dig, find_condition
from controllers.api.types import ResourceType
from controllers.runtime.chain import Resolver, links
from controllers.runtime.kube import KubeClient
from controllers.runtime.outcomes import StalledError, Waiting

DEPENDENCY_CYCLE_REASON = "DependencyCycle"
#: Flux's prefix of a configuration error that stops reconciliation until the spec changes.
TERMINAL_ERROR_MESSAGE = "Reconciliation failed terminally due to configuration error"
#: how far a cycle is looked for (dependencies of dependencies ...)
MAX_DEPTH = 50


class DependencyCycle(StalledError):
    """The object depends on itself through its dependencies; nothing can progress until one changes."""

    default_reason = DEPENDENCY_CYCLE_REASON

    def __init__(self, cycle: list[str]):
        super().__init__("dependency cycle: " + " → ".join(cycle))
        self.cycle = cycle


@dataclasses.dataclass(frozen=True)
class Dependency:
    """One ``dependsOn`` entry, resolved against its owner: kind (the owner's when not given), namespace."""

    kind: str
    name: str
    namespace: str
    api_version: str | None = None
    ready_expr: str = ""
    same_kind: bool = True

    @property
    def ref(self) -> str:
        """``Kind/namespace/name``, as the chain walker names objects."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def label(self) -> str:
        """How messages name it: ``namespace/name`` for the owner's kind (Flux), ``Kind/namespace/name`` else."""
        return f"{self.namespace}/{self.name}" if self.same_kind else self.ref


def dependencies_of(kind: ResourceType, obj: Mapping) -> list[Dependency]:
    """The ``dependsOn`` entries of ``obj`` (an object of ``kind``), as :func:`links` reads them."""
    entries = [d for d in dig(obj, "spec.dependsOn", []) or [] if d.get("name")]
    found = [link for link in links(kind, obj) if link[0] == "dependsOn"]
    deps = []
    for entry, (_, dep_kind, name, api_version, namespace) in zip(entries, found):
        same = dep_kind == kind.kind and (not api_version or api_version.rpartition("/")[0] == kind.group)
        deps.append(Dependency(dep_kind, name, namespace, api_version, entry.get("readyExpr") or "", same))
    return deps


def _node(rt: ResourceType, namespace: str, name: str) -> str:
    return f"{rt.kind}/{namespace}/{name}" if rt.namespaced else f"{rt.kind}/{name}"


def find_cycle(resolver: Resolver, kind: ResourceType, obj: Mapping, *, max_depth: int = MAX_DEPTH
               ) -> list[str] | None:
    """The shortest-found dependency cycle through ``obj`` (its refs, ``obj`` first and last), or None.

    Follows ``dependsOn`` only (sources cannot make a cycle), across kinds; cycles that do not pass through
    ``obj`` are left to their own members to report. Each object is read at most once.
    """
    root = _node(kind, dig(obj, "metadata.namespace", ""), dig(obj, "metadata.name", ""))
    dead_ends: set[str] = set()

    def visit(rt: ResourceType, current: Mapping, path: list[str], depth: int) -> list[str] | None:
        for dep in dependencies_of(rt, current):
            dep_rt = resolver.resource(dep.kind, dep.api_version)
            if dep_rt is None:
                continue
            ref = _node(dep_rt, dep.namespace, dep.name)
            if ref == root:
                return path + [root]
            if ref in path or ref in dead_ends or depth <= 0:
                continue
            child = resolver.get(dep_rt, dep.name, dep.namespace)
            if child is not None:
                cycle = visit(dep_rt, child, path + [ref], depth - 1)
                if cycle:
                    return cycle
            dead_ends.add(ref)
        return None

    return visit(kind, obj, [root], max_depth)


class CachingResolver(Resolver):
    """A :class:`Resolver` that reads each object once (one dependency check sees one state of the world)."""

    def __init__(self, kube: KubeClient):
        super().__init__(kube)
        self._objects: dict[tuple, dict | None] = {}

    def get(self, rt: ResourceType, name: str, namespace: str) -> dict | None:
        key = (rt.group, rt.kind, namespace if rt.namespaced else "", name)
        if key not in self._objects:
            self._objects[key] = super().get(rt, name, namespace)
        return self._objects[key]


def check_dependencies(kube: KubeClient, kind: ResourceType, obj: Mapping, *, source_revision: str | None = None,
                       additive_cel: bool = False, resolver: "CachingResolver | None" = None) -> None:
    """Return when every dependency of ``obj`` is ready; raise :class:`~controllers.runtime.outcomes.Waiting`
    (DependencyNotReady) naming the first one that is not, :class:`DependencyCycle` for a cycle through
    ``obj``, or a StalledError (InvalidCELExpression) for a ``readyExpr`` that does not compile.

    ``source_revision`` is the revision of ``obj``'s source artifact (the same-source rule, which applies to
    dependencies of the same kind; None skips it, e.g. for a kind without ``spec.sourceRef``).
    """
    resolver = resolver or CachingResolver(kube)
    cycle = find_cycle(resolver, kind, obj)
    if cycle:
        raise DependencyCycle(cycle)
    for dep in dependencies_of(kind, obj):
        rt = resolver.resource(dep.kind, dep.api_version)
        if rt is None:
            raise Waiting(f"dependency '{dep.label}' not found: the server has no resource for kind "
                          f"'{dep.kind}'" + (f" in '{dep.api_version}'" if dep.api_version else ""))
        dependency = resolver.get(rt, dep.name, dep.namespace)
        if dependency is None:
            resource = f"{rt.plural}.{rt.group}" if rt.group else rt.plural
            raise Waiting(f"dependency '{dep.label}' not found: {resource} \"{dep.name}\" not found")
        if dep.ready_expr:
            if not _ready_by_expression(dep, obj, dependency):
                raise Waiting(f"dependency '{dep.label}' is not ready according to readyExpr eval")
            if not additive_cel:
                continue
        if not is_ready(dependency):
            raise Waiting(f"dependency '{dep.label}' is not ready")
        if dep.same_kind and source_revision is not None and same_source(obj, dependency) \
                and dig(dependency, "status.lastAppliedRevision") != source_revision:
            raise Waiting(f"dependency '{dep.label}' revision is not up to date")


def _ready_by_expression(dep: Dependency, obj: Mapping, dependency: Mapping) -> bool:
    from controllers.lib.health import CELEvaluationError, CelExpression, InvalidCELExpression

    try:
        expression = CelExpression(dep.ready_expr, variables=("self", "dep"))
    except InvalidCELExpression as exc:
        raise StalledError(f"{TERMINAL_ERROR_MESSAGE}: failed to evaluate dependency {dep.name}: {exc.message}",
                           reason=meta.INVALID_CEL_EXPRESSION_REASON) from None
    try:
        return expression.evaluate_bool({"self": dict(obj), "dep": dict(dependency)})
    except CELEvaluationError as exc:
        raise Waiting(str(exc)) from None


def is_ready(obj: Mapping) -> bool:
    """Flux's test of a dependency: conditions present, observed at its generation, Ready True (for objects
    without a top-level ``observedGeneration``, the Ready condition's own is used)."""
    ready = find_condition(obj, meta.READY)
    if not ready or ready.get("status") != "True":
        return False
    generation = dig(obj, "metadata.generation")
    observed = dig(obj, "status.observedGeneration")
    if observed is None:
        observed = ready.get("observedGeneration", generation)
    return observed == generation


def same_source(obj: Mapping, dependency: Mapping) -> bool:
    """Whether two Kustomizations take their artifact from the same source object."""
    def source(o: Mapping) -> tuple:
        ref = dig(o, "spec.sourceRef") or {}
        return ref.get("kind"), ref.get("namespace") or dig(o, "metadata.namespace"), ref.get("name")

    return source(obj) == source(dependency)
