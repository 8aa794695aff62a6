"""Write what a reconciliation changed, and only that (like Flux's patch helper).

:class:`Patcher` remembers the object as read; :meth:`Patcher.patch_status` sends a JSON merge patch of the
status fields that changed to the ``status`` subresource, :meth:`Patcher.patch_finalizers` the finalizer list to
the object. Both carry ``metadata.resourceVersion`` (optimistic lock): on a conflict the latest object is
read and our changes are re-applied onto it — for conditions only the types we changed are taken from ours,
so conditions other writers own are kept — then the patch is sent again. Given the condition types the
reconciler owns (``owned``, as Flux's ``WithOwnedConditions``), only those are written: every other type is
kept as the server has it, whatever the reconciler did to its copy.
"""
from __future__ import annotations

import copy
import time
from typing import Any

from controllers.api.types import ResourceType
from controllers.runtime import conditions as cond
from controllers.runtime.kube import Conflict, KubeClient, NotFound

CONFLICT_RETRIES = 5


def merge_patch(before: Any, after: Any) -> Any:
    """The RFC 7386 JSON merge patch turning ``before`` into ``after`` (``{}`` when equal)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return copy.deepcopy(after)
    patch: dict[str, Any] = {}
    for key in before.keys() - after.keys():
        patch[key] = None
    for key, value in after.items():
        if key not in before:
            patch[key] = copy.deepcopy(value)
        elif before[key] != value:
            if isinstance(before[key], dict) and isinstance(value, dict):
                patch[key] = merge_patch(before[key], value)
            else:
                patch[key] = copy.deepcopy(value)
    return patch


def apply_merge_patch(target: Any, patch: Any) -> Any:
    """``target`` with the RFC 7386 merge ``patch`` applied (a new value; inputs untouched)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = apply_merge_patch(result.get(key), value)
    return result


def _conditions_by_type(status: dict) -> dict[str, dict]:
    return {c.get("type"): c for c in (status or {}).get("conditions") or []}


def rebase_status(before: dict, after: dict, latest: dict) -> dict:
    """Our status changes (``before`` -> ``after``) re-applied onto ``latest``, condition by condition."""
    before, after, latest = before or {}, after or {}, latest or {}
    diff = merge_patch({k: v for k, v in before.items() if k != "conditions"},
                       {k: v for k, v in after.items() if k != "conditions"})
    rebased = apply_merge_patch(latest, diff)
    ours_before, ours_after = _conditions_by_type(before), _conditions_by_type(after)
    changed = {t for t in ours_before.keys() | ours_after.keys() if ours_before.get(t) != ours_after.get(t)}
    if changed:
        kept = [c for c in latest.get("conditions") or [] if c.get("type") not in changed]
        taken = [ours_after[t] for t in ours_after if t in changed]
        holder = {"status": {"conditions": []}}
        cond._store(holder, kept + taken)
        rebased["conditions"] = holder["status"]["conditions"]
        if not rebased["conditions"]:
            rebased.pop("conditions")
    return rebased


def owned_view(ours: dict, theirs: dict, owned: tuple[str, ...] | frozenset) -> dict:
    """The status ``ours`` with its conditions of types not in ``owned`` as in ``theirs`` (the server's
    status): ours kept, changed or dropped only for owned types. ``ours`` itself when ``owned`` is empty."""
    if not owned:
        return ours
    theirs_by_type = _conditions_by_type(theirs)
    conds = [c if c.get("type") in owned else theirs_by_type[c.get("type")]
             for c in ours.get("conditions") or [] if c.get("type") in owned or c.get("type") in theirs_by_type]
    seen = {c.get("type") for c in conds}
    conds += [c for t, c in theirs_by_type.items() if t not in owned and t not in seen]
    view = dict(ours)
    if conds or "conditions" in ours:
        view["conditions"] = conds
    return view


def _replace(status: dict, new: dict) -> None:
    """Make ``status`` equal to ``new`` in place (a reconciler may hold a reference to it)."""
    if status is not new:
        snapshot = dict(new)
        status.clear()
        status.update(snapshot)


class Patcher:
    """Patches one object's status and finalizers with only what changed since it was read."""

    def __init__(self, kube: KubeClient, rt: ResourceType, obj: dict, *, field_manager: str | None = None,
                 owned: tuple[str, ...] = ()):
        self.kube, self.rt, self.field_manager = kube, rt, field_manager
        self.owned = frozenset(owned)
        """The condition types written from our copy (empty: all of them)."""
        self._before = copy.deepcopy(obj)
        self.requests = 0

    @property
    def _ns(self) -> str | None:
        return (self._before.get("metadata") or {}).get("namespace") if self.rt.namespaced else None

    @property
    def _name(self) -> str:
        return self._before["metadata"]["name"]

    def reset(self, obj: dict) -> None:
        """Take ``obj`` as the new base (what the server now has)."""
        self._before = copy.deepcopy(obj)

    def status_changed(self, obj: dict) -> bool:
        return (self._before.get("status") or {}) != (obj.get("status") or {})

    def patch_status(self, obj: dict) -> bool:
        """Send the status changes of ``obj``; return False when there were none (or the object is gone).

        On success ``obj``'s resourceVersion is updated and ``obj`` becomes the new base.
        """
        before = self._before.get("status") or {}
        after = owned_view(obj.get("status") or {}, before, self.owned)
        if after is not obj.get("status") and "status" in obj:
            _replace(obj["status"], after)  # the conditions we do not own are the server's
            after = obj["status"]
        if before == after:
            return False
        base_status, rv = before, (self._before.get("metadata") or {}).get("resourceVersion")
        target = after
        for attempt in range(CONFLICT_RETRIES):
            body: dict[str, Any] = {"status": merge_patch(base_status, target)}
            if rv:
                body["metadata"] = {"resourceVersion": rv}
            try:
                self.requests += 1
                result = self.kube.patch(self.rt, self._name, body, self._ns, subresource="status",
                                         field_manager=self.field_manager)
            except NotFound:
                return False
            except Conflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.05 * (2 ** attempt))
                self.requests += 1
                try:
                    latest = self.kube.get(self.rt, self._name, self._ns)
                except NotFound:
                    return False
                base_status = latest.get("status") or {}
                rv = latest["metadata"].get("resourceVersion")
                target = owned_view(rebase_status(before, after, base_status), base_status, self.owned)
                continue
            obj.setdefault("metadata", {})["resourceVersion"] = result["metadata"].get("resourceVersion")
            if target is not after:
                _replace(obj["status"], target)
            self._before = copy.deepcopy(obj)
            self._before["metadata"] = copy.deepcopy(result.get("metadata") or obj["metadata"])
            return True
        return False

    def patch_finalizers(self, obj: dict) -> dict | None:
        """Send ``obj['metadata']['finalizers']`` (conflict-safe); return the server's object (None if gone)."""
        wanted_add = set(obj["metadata"].get("finalizers") or []) - set(self._before["metadata"].get("finalizers") or [])
        wanted_del = set(self._before["metadata"].get("finalizers") or []) - set(obj["metadata"].get("finalizers") or [])
        current = self._before
        for attempt in range(CONFLICT_RETRIES):
            have = list(current["metadata"].get("finalizers") or [])
            new = [f for f in have if f not in wanted_del] + sorted(f for f in wanted_add if f not in have)
            if new == have:
                return current
            body = {"metadata": {"finalizers": new or None,
                                 "resourceVersion": current["metadata"].get("resourceVersion")}}
            try:
                self.requests += 1
                result = self.kube.patch(self.rt, self._name, body, self._ns, field_manager=self.field_manager)
            except NotFound:
                return None
            except Conflict:
                if attempt == CONFLICT_RETRIES - 1:
                    raise
                time.sleep(0.05 * (2 ** attempt))
                try:
                    self.requests += 1
                    current = self.kube.get(self.rt, self._name, self._ns)
                except NotFound:
                    return None
                continue
            status = obj.get("status")
            obj.clear()
            obj.update(result)
            if status is not None:
                obj["status"] = status  # keep the status being worked on (and its unsent changes)
            self._before = copy.deepcopy(result)
            return obj
        return None
