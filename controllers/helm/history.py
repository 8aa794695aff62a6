"""A HelmRelease's ``status.history`` and the remediation settings, as Flux's helm-controller keeps them.

A snapshot is what the controller observed of one release revision it made (Flux's Snapshot): name,
namespace, version, status, chart name/version, appVersion, ``configDigest`` (the values' digest, Flux's
``chartutil.DigestValues``), ``digest`` (of the release as stored: name, version, info, chart metadata,
config, manifest, hooks without the test hooks, namespace), deployment times, test hooks.

fluxpy writes no ``apiVersion`` in its snapshots: Flux's helm-controller then trusts them without checking the
digest (it cannot reproduce a digest of Go's encoding made in Python), so a cluster moves from fluxpy to
Flux without a needless upgrade; a snapshot Flux wrote (``apiVersion: v2``) is trusted by fluxpy likewise.
"""
from __future__ import annotations

import datetime
import hashlib
import json
from typing import Mapping

from controllers.api.objects import dig

#: Flux's defaultMaxHistory (snapshots kept in status, and Helm revisions kept in storage).
DEFAULT_MAX_HISTORY = 5
INSTALL, UPGRADE = "install", "upgrade"
ROLLBACK_STRATEGY, UNINSTALL_STRATEGY = "rollback", "uninstall"
RETRY_ON_FAILURE = "RetryOnFailure"
DEFAULT_RETRY_INTERVAL = 300.0


def go_json(value) -> str:
    """JSON as Go's encoding/json writes it (map keys sorted, no spaces, ``<>&`` escaped)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def config_digest(values: Mapping | None) -> str:
    """Flux's DigestValues: ``sha256:<hex>`` of the values' JSON (a newline-terminated encoding)."""
    return "sha256:" + hashlib.sha256((go_json(dict(values or {})) + "\n").encode()).hexdigest()


def release_digest(release: Mapping) -> str:
    """The digest of a stored release as observed (test hooks left out, as Flux's observation)."""
    hooks = [h for h in release.get("hooks") or [] if "test" not in (h.get("events") or [])]
    observed = {"name": release.get("name"), "version": release.get("version"), "info": release.get("info") or {},
                "chartMetadata": dig(release, "chart.metadata") or {}, "config": release.get("config") or None,
                "manifest": release.get("manifest") or "", "hooks": hooks or None,
                "namespace": release.get("namespace")}
    return "sha256:" + hashlib.sha256(go_json(observed).encode()).hexdigest()


def meta_time(value: str | None) -> str | None:
    """A Helm time (RFC 3339 with nanoseconds, any offset) as a Kubernetes time (UTC, seconds)."""
    if not value:
        return None
    text = str(value).replace("Z", "+00:00")
    main, _, rest = text.partition(".")
    offset = ""
    for sign in ("+", "-"):
        if sign in rest:
            offset = sign + rest.split(sign, 1)[1]
    if not rest and len(main) > 19:
        main, offset = main[:19], main[19:]
    try:
        parsed = datetime.datetime.fromisoformat(main + offset)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    if parsed.year < 1970:
        return None
    return parsed.astimezone(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def snapshot_of(release: Mapping, *, oci_digest: str = "", test_hooks: dict | None = None) -> dict:
    """The snapshot of a stored release."""
    info, chart = release.get("info") or {}, dig(release, "chart.metadata") or {}
    snapshot = {"name": release.get("name"), "namespace": release.get("namespace"),
                "version": int(release.get("version") or 0), "status": info.get("status") or "unknown",
                "chartName": chart.get("name") or "", "chartVersion": chart.get("version") or "",
                "appVersion": chart.get("appVersion") or "", "configDigest": config_digest(release.get("config")),
                "digest": release_digest(release), "firstDeployed": meta_time(info.get("first_deployed")),
                "lastDeployed": meta_time(info.get("last_deployed"))}
    if meta_time(info.get("deleted")):
        snapshot["deleted"] = meta_time(info.get("deleted"))
    if oci_digest:
        snapshot["ociDigest"] = oci_digest
    if test_hooks is not None:
        snapshot["testHooks"] = test_hooks
    if not snapshot["appVersion"]:
        del snapshot["appVersion"]
    return {k: v for k, v in snapshot.items() if v is not None}


def full_name(snapshot: Mapping | None) -> str:
    """``<namespace>/<name>.v<version>``."""
    return f"{snapshot.get('namespace')}/{snapshot.get('name')}.v{snapshot.get('version')}" if snapshot else ""


def chart_label(snapshot: Mapping | None) -> str:
    """``<chart>@<version>``."""
    return f"{snapshot.get('chartName')}@{snapshot.get('chartVersion')}" if snapshot else ""


def verified(snapshot: Mapping, release: Mapping) -> bool:
    """Whether the stored ``release`` is the one ``snapshot`` observed (a snapshot written by Flux, with an
    apiVersion, is trusted)."""
    if snapshot.get("apiVersion"):
        return snapshot.get("name") == release.get("name") and int(snapshot.get("version") or 0) == int(
            release.get("version") or 0)
    return snapshot.get("digest") == release_digest(release)


# ----------------------------------------------------------------------------------------------- history

def history(status: Mapping) -> list[dict]:
    """The snapshots, newest version first."""
    return sorted((dict(s) for s in status.get("history") or []), key=lambda s: -int(s.get("version") or 0))


def latest(status: Mapping) -> dict | None:
    found = history(status)
    return found[0] if found else None


def test_phase_in(snapshot: Mapping | None, phase: str) -> bool:
    return any((h or {}).get("phase") == phase for h in ((snapshot or {}).get("testHooks") or {}).values())


def has_been_tested(snapshot: Mapping | None) -> bool:
    """Flux's HasBeenTested: test hooks recorded (none at all counts), and all of them done or one failed."""
    if not snapshot or snapshot.get("testHooks") is None:
        return False
    hooks = snapshot["testHooks"]
    if not hooks or test_phase_in(snapshot, "Failed"):
        return True
    return all((h or {}).get("phase") == "Succeeded" for h in hooks.values())


def previous(status: Mapping, ignore_tests: bool) -> dict | None:
    """The newest earlier snapshot that was deployed (or superseded) and passed its tests."""
    for snapshot in history(status)[1:]:
        if snapshot.get("status") in ("deployed", "superseded") and (ignore_tests or not test_phase_in(
                snapshot, "Failed")):
            return snapshot
    return None


def truncate(status: dict, ignore_tests: bool) -> None:
    """Flux's Truncate: keep up to the previous good snapshot (at most the default maximum)."""
    snapshots = history(status)
    for i, snapshot in enumerate(snapshots[1:], start=1):
        if snapshot.get("status") in ("deployed", "superseded") and (ignore_tests or not test_phase_in(
                snapshot, "Failed")):
            status["history"] = snapshots[:i + 1]
            return
    status["history"] = snapshots[:DEFAULT_MAX_HISTORY]


def truncate_ignoring_previous(status: dict) -> None:
    status["history"] = history(status)[:DEFAULT_MAX_HISTORY]


def record(status: dict, snapshot: dict) -> None:
    """Put ``snapshot`` into the history, replacing the one of the same release version."""
    others = [s for s in history(status) if not (s.get("name") == snapshot.get("name") and s.get("namespace") ==
                                                 snapshot.get("namespace") and s.get("version") == snapshot.get("version"))]
    status["history"] = history({"history": [snapshot, *others]})


def clear_failures(status: dict) -> None:
    for key in ("failures", "installFailures", "upgradeFailures"):
        status.pop(key, None)


# ----------------------------------------------------------------------------------------------- remediation

class Remediation:
    """The active remediation (Flux's GetActiveRemediation): of ``install`` or ``upgrade``, by the last
    attempted action."""

    def __init__(self, hr: Mapping, action: str):
        self.hr, self.action = hr, action
        self.spec = dig(hr, f"spec.{action}.remediation") or {}

    @classmethod
    def active(cls, hr: Mapping) -> "Remediation | None":
        action = dig(hr, "status.lastAttemptedReleaseAction")
        return cls(hr, action) if action in (INSTALL, UPGRADE) else None

    @property
    def retries(self) -> int:
        return int(self.spec.get("retries") or 0)

    @property
    def counter(self) -> str:
        return f"{self.action}Failures"

    def failure_count(self) -> int:
        return int(dig(self.hr, f"status.{self.counter}") or 0)

    def increment(self, status: dict) -> None:
        status[self.counter] = int(status.get(self.counter) or 0) + 1

    def exhausted(self) -> bool:
        return self.retries >= 0 and self.failure_count() > self.retries

    def ignore_test_failures(self) -> bool:
        value = self.spec.get("ignoreTestFailures")
        return bool(dig(self.hr, "spec.test.ignoreFailures")) if value is None else bool(value)

    def remediate_last_failure(self) -> bool:
        value = self.spec.get("remediateLastFailure")
        if value is None:
            return self.action == UPGRADE and self.retries > 0
        return bool(value)

    @property
    def strategy(self) -> str:
        if self.action == INSTALL:
            return UNINSTALL_STRATEGY
        return self.spec.get("strategy") or ROLLBACK_STRATEGY

    def uninstall_after_upgrade(self) -> bool:
        return self.action == UPGRADE and self.strategy == UNINSTALL_STRATEGY


def exhausted(hr: Mapping, action: str) -> bool:
    return Remediation(hr, action).exhausted()


def active_retry_interval(hr: Mapping, default_to_retry: bool = False) -> float | None:
    """Seconds between retries when the last attempted action's strategy is RetryOnFailure (Flux's
    GetActiveRetry), else None."""
    from controllers.api.duration import parse_duration

    action = dig(hr, "status.lastAttemptedReleaseAction")
    if action not in (INSTALL, UPGRADE):
        return None
    strategy = dig(hr, f"spec.{action}.strategy")
    if strategy is None:
        return DEFAULT_RETRY_INTERVAL if default_to_retry else None
    if strategy.get("name") != RETRY_ON_FAILURE:
        return None
    try:
        return parse_duration(strategy["retryInterval"]) if strategy.get("retryInterval") else DEFAULT_RETRY_INTERVAL
    except ValueError:
        return DEFAULT_RETRY_INTERVAL
