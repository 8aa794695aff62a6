"""Leader election on a ``coordination.k8s.io/v1`` Lease, as client-go's leader elector does it.

A candidate tries every ``retry_period`` to take the Lease: it may when nobody holds it (no holder, e.g. a
released lease) or when the holder has not renewed it for ``lease_duration`` — measured on this
candidate's clock from when it *observed* the last change, so clock skew between machines does not
matter. The leader renews every ``retry_period``; if it cannot renew for ``renew_deadline`` it stops
leading. On a clean shutdown it releases the lease (empty holder) so a successor takes over at once.
Every write carries the Lease's resourceVersion, so two candidates never both win.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import random
import socket
import threading
import time
import uuid
from typing import Callable

from controllers.api.builtin import LEASE
from controllers.runtime.kube import Conflict, KubeClient, KubeError, NotFound
from controllers.runtime.logs import Logger, get_logger

JITTER_FACTOR = 1.2


def lease_name(component: str, label_selector: str = "") -> str:
    """Flux's lease name: ``<component>-leader-election``, suffixed with a hash of the shard's selector."""
    base = f"{component}-leader-election"
    if label_selector:
        base += "-" + hashlib.sha256(label_selector.encode()).hexdigest()[:8]
    return base


def default_identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _micro_time(t: _dt.datetime | None = None) -> str:
    t = t or _dt.datetime.now(_dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Campaigns for one Lease; :meth:`run` blocks until ``stop`` is set or leadership is lost."""

    def __init__(self, kube: KubeClient, name: str, namespace: str, *, identity: str | None = None,
                 lease_duration: float = 35.0, renew_deadline: float = 30.0, retry_period: float = 5.0,
                 release_on_cancel: bool = True, log: Logger | None = None,
                 on_change: Callable[[bool], None] | None = None):
        if not lease_duration > renew_deadline > retry_period * JITTER_FACTOR:
            raise ValueError("leader election needs lease duration > renew deadline > retry period * 1.2")
        self.kube, self.name, self.namespace = kube, name, namespace
        self.identity = identity or default_identity()
        self.lease_duration, self.renew_deadline, self.retry_period = lease_duration, renew_deadline, retry_period
        self.release_on_cancel = release_on_cancel
        self.log = log or get_logger("leader-election").with_values(lease=f"{namespace}/{name}")
        self._on_change = on_change
        self._observed: dict | None = None  # the lease spec as last seen
        self._observed_at = 0.0  # monotonic time when it last changed
        self._lease: dict | None = None  # the last Lease object read or written
        self.is_leader = False

    # ------------------------------------------------------------------ the loop

    def run(self, stop: threading.Event, on_started_leading: Callable[[], None],
            on_stopped_leading: Callable[[], None] | None = None) -> bool:
        """Acquire, call ``on_started_leading``, renew until ``stop``; return True if leadership was lost."""
        self.log.info("attempting to acquire leader lease", identity=self.identity)
        while not stop.is_set():
            if self._try_acquire_or_renew():
                break
            stop.wait(self.retry_period * (1 + random.random() * (JITTER_FACTOR - 1)))
        if stop.is_set():
            return False
        self.log.info("successfully acquired lease", identity=self.identity)
        self._set_leader(True)
        on_started_leading()
        lost = False
        last_renew = time.monotonic()
        while not stop.wait(self.retry_period):
            if self._try_acquire_or_renew():
                last_renew = time.monotonic()
                continue
            if time.monotonic() - last_renew >= self.renew_deadline or not self._held_by_other_ok():
                lost = True
                break
        self._set_leader(False)
        if lost:
            self.log.error("leader election lost", identity=self.identity)
        elif self.release_on_cancel:
            self.release()
        if on_stopped_leading:
            on_stopped_leading()
        return lost

    def _held_by_other_ok(self) -> bool:
        """False when another candidate holds the lease now (we lost it, no point retrying)."""
        holder = (self._observed or {}).get("holderIdentity")
        return not holder or holder == self.identity

    def _set_leader(self, value: bool) -> None:
        self.is_leader = value
        if self._on_change:
            self._on_change(value)

    # ------------------------------------------------------------------ one attempt

    def _try_acquire_or_renew(self) -> bool:
        now = _micro_time()
        try:
            lease = self.kube.get(LEASE, self.name, self.namespace)
        except NotFound:
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(now, now, transitions=0)}
            try:
                self._lease = self.kube.create(LEASE, body, self.namespace)
            except KubeError as exc:
                self.log.error("failed to create lease", error=exc)
                return False
            self._observe(self._lease["spec"])
            return True
        except KubeError as exc:
            self.log.error("error retrieving lease", error=exc)
            return False

        spec = lease.get("spec") or {}
        self._observe(spec)
        holder = spec.get("holderIdentity") or ""
        mine = holder == self.identity
        valid = bool(holder) and time.monotonic() < self._observed_at + float(
            spec.get("leaseDurationSeconds") or self.lease_duration)
        if holder and not mine and valid:
            return False  # somebody else leads
        transitions = int(spec.get("leaseTransitions") or 0)
        acquire = spec.get("acquireTime") or now
        if not mine:
            transitions += 1
            acquire = now
        lease["spec"] = self._spec(acquire, now, transitions)
        try:
            self._lease = self.kube.replace(LEASE, lease)
        except Conflict:
            return False
        except KubeError as exc:
            self.log.error("failed to update lease", error=exc)
            return False
        self._observe(self._lease["spec"])
        return True

    def _spec(self, acquire: str, renew: str, transitions: int) -> dict:
        return {"holderIdentity": self.identity, "leaseDurationSeconds": max(1, int(round(self.lease_duration))),
                "acquireTime": acquire, "renewTime": renew, "leaseTransitions": transitions}

    def _observe(self, spec: dict) -> None:
        if spec != self._observed:
            self._observed = dict(spec)
            self._observed_at = time.monotonic()

    def release(self) -> bool:
        """Give the lease up (empty holder) so another candidate takes it at once."""
        if not self._lease or (self._lease.get("spec") or {}).get("holderIdentity") != self.identity:
            return False
        lease = dict(self._lease)
        now = _micro_time()
        lease["spec"] = {**lease["spec"], "holderIdentity": None, "leaseDurationSeconds": 1,
                         "renewTime": now, "acquireTime": now}
        lease["spec"] = {k: v for k, v in lease["spec"].items() if v is not None}
        try:
            self._lease = self.kube.replace(LEASE, lease)
        except KubeError as exc:
            self.log.error("failed to release lease", error=exc)
            return False
        self.log.info("released leader lease", identity=self.identity)
        return True
