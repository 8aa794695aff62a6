"""Reading Flux objects (plain dicts): dotted-path access and status conditions."""
from __future__ import annotations

from typing import Any


def dig(obj: dict, path: str, default: Any = None) -> Any:
    """Return the value at a dotted path (``"status.artifact.revision"``), or ``default``.

    A list element is addressed as ``history[0]`` or ``history.0``; a key holding dots or slashes as
    ``metadata.annotations["fluxcd.io/x"]``.
    """
    cur: Any = obj
    parts = _path_parts(path) if '["' in path else path.replace("[", ".").replace("]", "").split(".")
    for part in parts:
        if isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return default
        if cur is None:
            return default
    return cur


def _path_parts(path: str) -> list[str]:
    import re

    return [quoted or plain for quoted, plain in re.findall(r'\["([^"]*)"\]|([^.\[\]]+)', path)]


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
