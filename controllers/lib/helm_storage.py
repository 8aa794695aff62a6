"""Helm's own release storage, read and written as Helm's Secrets driver does, so the real ``helm list /
history / status / get values / rollback`` see the releases a controller makes, and a release made by
``helm install`` can be taken over.

A release revision is a Secret ``sh.helm.release.v1.<name>.v<version>`` of type ``helm.sh/release.v1`` in
the storage namespace; its ``data.release`` is the base64 of the gzipped JSON of the release (so base64
twice, once by Helm and once by the Secret's ``data``); its labels are the release's own labels plus
``name``, ``owner: helm``, ``status``, ``version`` and ``createdAt`` (on create) / ``modifiedAt`` (on
update), in Unix seconds. Helm strips those system labels from the release's labels when reading.
"""
from __future__ import annotations

import base64
import gzip
import json
import time
from typing import Any

from controllers.api.builtin import SECRET
from controllers.runtime.kube import KubeClient, NotFound

RELEASE_SECRET_TYPE = "helm.sh/release.v1"
OWNER = "helm"
_SYSTEM_LABELS = ("name", "owner", "status", "version", "createdAt", "modifiedAt")
_GZIP_MAGIC = b"\x1f\x8b\x08"

#: Helm's release statuses (pkg/release/common/status.go).
STATUS_UNKNOWN, STATUS_DEPLOYED, STATUS_UNINSTALLED = "unknown", "deployed", "uninstalled"
STATUS_SUPERSEDED, STATUS_FAILED, STATUS_UNINSTALLING = "superseded", "failed", "uninstalling"
STATUS_PENDING_INSTALL, STATUS_PENDING_UPGRADE = "pending-install", "pending-upgrade"
STATUS_PENDING_ROLLBACK = "pending-rollback"
PENDING_STATUSES = (STATUS_PENDING_INSTALL, STATUS_PENDING_UPGRADE, STATUS_PENDING_ROLLBACK)


class StorageError(Exception):
    """A release Secret cannot be read (not Helm's format)."""


def secret_name(name: str, version: int) -> str:
    """The Secret of revision ``version`` of release ``name`` (Helm's storage key)."""
    return f"sh.helm.release.v1.{name}.v{version}"


def encode_release(release: dict[str, Any]) -> str:
    """Helm's encoding of a release: JSON, gzipped, base64 (what goes into the Secret's ``release`` key)."""
    payload = json.dumps(release, separators=(",", ":")).encode()
    return base64.b64encode(gzip.compress(payload, mtime=0)).decode()


def decode_release(encoded: str | bytes) -> dict[str, Any]:
    """A release from Helm's encoding (gzip optional, as Helm reads it)."""
    try:
        data = base64.b64decode(encoded, validate=True)
        if data[:3] == _GZIP_MAGIC:
            data = gzip.decompress(data)
        release = json.loads(data)
    except (ValueError, OSError, EOFError) as exc:
        raise StorageError(f"not a Helm release: {exc}") from None
    if not isinstance(release, dict):
        raise StorageError("not a Helm release: the JSON is not an object")
    return release


def status_of(release: dict[str, Any]) -> str:
    return (release.get("info") or {}).get("status") or STATUS_UNKNOWN


class ReleaseStorage:
    """The releases of one storage namespace, in Helm's Secrets."""

    def __init__(self, kube: KubeClient, namespace: str):
        self.kube = kube
        self.namespace = namespace

    def history(self, name: str) -> list[dict[str, Any]]:
        """Every stored revision of release ``name``, oldest first."""
        secrets = self.kube.list(SECRET, self.namespace, label_selector=f"name={name},owner={OWNER}")
        releases = [self._release_of(s) for s in secrets.get("items") or []
                    if s.get("type") == RELEASE_SECRET_TYPE]
        return sorted(releases, key=lambda r: int(r.get("version") or 0))

    def get(self, name: str, version: int) -> dict[str, Any] | None:
        """Revision ``version`` of release ``name``, or None."""
        try:
            return self._release_of(self.kube.get(SECRET, secret_name(name, version), self.namespace))
        except NotFound:
            return None

    def latest(self, name: str) -> dict[str, Any] | None:
        """The newest revision (whatever its status), or None when the release does not exist."""
        history = self.history(name)
        return history[-1] if history else None

    def deployed(self, name: str) -> dict[str, Any] | None:
        """The newest revision with status ``deployed``, or None."""
        return next((r for r in reversed(self.history(name)) if status_of(r) == STATUS_DEPLOYED), None)

    def create(self, release: dict[str, Any]) -> None:
        """Store a new revision (``createdAt`` label)."""
        self.kube.create(SECRET, self._secret_of(release, {"createdAt": str(int(time.time()))}), self.namespace)

    def update(self, release: dict[str, Any]) -> None:
        """Rewrite a stored revision, e.g. its status (``modifiedAt`` label)."""
        self.kube.replace(SECRET, self._secret_of(release, {"modifiedAt": str(int(time.time()))}))

    def delete(self, name: str, version: int) -> None:
        try:
            self.kube.delete(SECRET, secret_name(name, version), self.namespace)
        except NotFound:
            pass

    def _secret_of(self, release: dict[str, Any], stamp: dict[str, str]) -> dict[str, Any]:
        labels = {**(release.get("labels") or {}), **stamp, "name": release["name"], "owner": OWNER,
                  "status": status_of(release), "version": str(release["version"])}
        return {"apiVersion": "v1", "kind": "Secret", "type": RELEASE_SECRET_TYPE,
                "metadata": {"name": secret_name(release["name"], release["version"]), "namespace": self.namespace,
                             "labels": labels},
                "data": {"release": base64.b64encode(encode_release(release).encode()).decode()}}

    @staticmethod
    def _release_of(secret: dict[str, Any]) -> dict[str, Any]:
        encoded = (secret.get("data") or {}).get("release")
        if not encoded:
            raise StorageError(f"Secret {secret['metadata']['name']} holds no release")
        release = decode_release(base64.b64decode(encoded))
        labels = {k: v for k, v in (secret["metadata"].get("labels") or {}).items() if k not in _SYSTEM_LABELS}
        if labels:
            release["labels"] = labels
        return release
