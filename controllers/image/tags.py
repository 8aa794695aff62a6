"""The image-reflector-controller's tag database: the tags of every scanned image, kept outside etcd in one
file per controller (SQLite, standard library), as Flux keeps them in its own Badger database.

Keys are canonical image names (``index.docker.io/library/alpine``); a value is the JSON list of tags. The
checksum of a list — ``status.lastScanResult.revision`` — is Flux's: the Adler-32 of the JSON encoding, in
decimal, so the same tags give the same revision in fluxpy and Flux.
"""
from __future__ import annotations

import json
import os
import sqlite3
import threading
import zlib
from pathlib import Path


def go_json_list(tags: list[str]) -> bytes:
    """``json.Marshal([]string)``: compact, non-ASCII kept, ``<``, ``>`` and ``&`` escaped as Go does."""
    text = json.dumps(tags, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026").encode()


def checksum(tags: list[str]) -> str:
    """The revision of a tag list (Adler-32 of its Go JSON encoding, decimal)."""
    return str(zlib.adler32(go_json_list(tags)))


class TagDatabase:
    """Tags by canonical image name in a SQLite file; safe to share between threads of one process."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS tags (image TEXT PRIMARY KEY, tags TEXT NOT NULL)")

    def tags(self, image: str) -> list[str]:
        """The stored tags of ``image`` (empty when never scanned)."""
        with self._lock:
            row = self._db.execute("SELECT tags FROM tags WHERE image = ?", (image,)).fetchone()
        return json.loads(row[0]) if row else []

    def set_tags(self, image: str, tags: list[str]) -> str:
        """Store the tags of ``image``; returns their checksum."""
        encoded = go_json_list(tags)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO tags (image, tags) VALUES (?, ?)", (image, encoded.decode()))
        return str(zlib.adler32(encoded))

    def close(self) -> None:
        with self._lock:
            self._db.close()


_OPEN: dict[Path, TagDatabase] = {}
_OPEN_LOCK = threading.Lock()


def open_database(path: str | os.PathLike) -> TagDatabase:
    """The process's one TagDatabase for ``path`` (the ImageRepository and ImagePolicy reconcilers share it)."""
    key = Path(path).resolve()
    with _OPEN_LOCK:
        if key not in _OPEN:
            _OPEN[key] = TagDatabase(key)
        return _OPEN[key]
