"""Reading Flux objects (plain dicts): dotted-path access and status conditions."""
from __future__ import annotations

from typing import Any


def dig(obj: dict, path: str, default: Any = None) -> Any:
    """Return the value at a dotted path (``"status.artifact.revision"``), or ``default``.

    A list element is addressed as ``history[0]`` or ``history.0``.
    """
    cur: Any = obj
    for part in path.replace("[", ".").replace("]", "").split("."):
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return default
        if cur is None:
            return default
    return cur


def find_condition(obj: dict, type_: str) -> dict | None:
    """The status condition of the given type, or None."""
    for cond in dig(obj, "status.conditions", []) or []:
        if cond.get("type") == type_:
            return cond
    return None


def ref(obj: dict) -> str:
    """``namespace/name`` of an object (just ``name`` when cluster-scoped)."""
    meta = obj.get("metadata") or {}
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta.get("name", "")
