"""The one reverse index of references, for watches that map a changed object to the objects using it.

A reconciler records, at each reconciliation of an object (its key, ``namespace/name``), the references
read from its spec (tuples such as ``("GitRepository", "flux-system", "podinfo")``) and, optionally, a note
(e.g. the source revision it last built from). A watch on the referenced kind asks :meth:`keys_for` which
objects to enqueue. Thread-safe: watches and workers use it at once.
"""
from __future__ import annotations

import threading
from typing import Any, Hashable, Iterable


class ReferenceIndex:
    """key → references (and an optional note), and reference → keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_key: dict[str, frozenset[Hashable]] = {}
        self._by_ref: dict[Hashable, set[str]] = {}
        self._notes: dict[str, Any] = {}

    def update(self, key: str, refs: Iterable[Hashable], note: Any = None) -> None:
        """Replace what ``key`` refers to (and its note)."""
        refs = frozenset(refs)
        with self._lock:
            for ref in self._by_key.get(key, frozenset()) - refs:
                users = self._by_ref.get(ref)
                if users is not None:
                    users.discard(key)
                    if not users:
                        del self._by_ref[ref]
            for ref in refs:
                self._by_ref.setdefault(ref, set()).add(key)
            self._by_key[key] = refs
            self._notes[key] = note

    def remove(self, key: str) -> None:
        """Forget ``key`` (its object was deleted)."""
        self.update(key, ())
        with self._lock:
            self._by_key.pop(key, None)
            self._notes.pop(key, None)

    def keys_for(self, ref: Hashable) -> list[str]:
        """The keys that refer to ``ref``, sorted."""
        with self._lock:
            return sorted(self._by_ref.get(ref, ()))

    def note(self, key: str) -> Any:
        """The note recorded with ``key``'s references (None when none or unknown)."""
        with self._lock:
            return self._notes.get(key)

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._by_key
