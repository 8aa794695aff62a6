"""Beyond Flux: one notification per root cause, and one when it is resolved.

When a GitRepository fails and twenty Kustomizations and HelmReleases that depend on it fail after it,
Flux's notification-controller sends twenty-one messages. For an Alert with grouping on (the default; the
annotation ``fluxpy.io/root-cause-grouping: disabled`` turns it off), fluxpy sends one per Provider:

- an **error** event is filed under its root cause: the chain ``fluxpy why`` follows
  (:func:`controllers.runtime.chain.failing_path`, read when the event arrives); the first error of a root
  cause opens an *incident* and starts a window (``--root-cause-group-window``, 5 s); the errors that
  arrive within it add their objects to the incident. When the window closes one notification leaves: the
  root cause's own error event when it came (else one made from its Ready condition), with the affected
  objects appended to the message and in the ``affected`` metadata key. Later errors of the same incident
  send nothing more.
- an **info** event about an object of an open incident is held; once every object of the incident (the
  root cause included) is Ready again, one "Resolved" notification leaves and the incident closes. Info
  events about objects outside incidents, and every event of an Alert with grouping off, go out as Flux
  sends them.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
import time
from typing import Mapping

from controllers.api.objects import dig, find_condition
from controllers.notification.event import SEVERITY_ERROR, SEVERITY_INFO, Event, rfc3339
from controllers.runtime import chain
from controllers.runtime.logs import get_logger

GROUPING_ANNOTATION = "fluxpy.io/root-cause-grouping"
AFFECTED_KEY = "affected"
REASON_RESOLVED = "RootCauseResolved"


def grouping_enabled(alert: Mapping) -> bool:
    value = (dig(alert, "metadata.annotations") or {}).get(GROUPING_ANNOTATION, "")
    return value.strip().lower() not in ("disabled", "false", "off")


def _alert_key(alert: Mapping) -> str:
    return f"{dig(alert, 'metadata.namespace')}/{dig(alert, 'metadata.name')}"


@dataclasses.dataclass
class Incident:
    """The failures one root cause explains, for one Alert."""

    alert: dict
    root: chain.Node
    opened: float
    root_event: Event | None = None
    affected: dict[str, Event] = dataclasses.field(default_factory=dict)
    """ref -> the object's latest error event (the root cause not included)."""
    sent: bool = False
    check_resolved: bool = False

    @property
    def members(self) -> list[str]:
        return [self.root.ref, *self.affected]


class RootCauseGrouper:
    """Holds a grouping Alert's events and sends one notification per root cause (module docstring)."""

    def __init__(self, dispatcher, *, window: float = 5.0, tick: float = 0.2):
        self.dispatcher, self.window, self.tick = dispatcher, window, tick
        self.kube = dispatcher.kube
        self.log = get_logger("root-cause")
        self._incidents: dict[tuple[str, str], Incident] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="root-cause-grouper", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._flush(force=True)

    # ------------------------------------------------------------------ events in

    def takes(self, alert: Mapping, event: Event) -> bool:
        """Whether ``event`` for ``alert`` is grouped rather than sent as is."""
        if not grouping_enabled(alert):
            return False
        if event.severity == SEVERITY_ERROR:
            return True
        return self._incident_of(_alert_key(alert), self._ref(event)) is not None

    def add(self, alert: dict, event: Event) -> None:
        ref = self._ref(event)
        if event.severity != SEVERITY_ERROR:
            with self._lock:
                incident = self._incident_of(_alert_key(alert), ref)
                if incident is not None:
                    incident.check_resolved = True
            return
        root = self._root_cause(event)
        key = (_alert_key(alert), root.ref)
        with self._lock:
            incident = self._incidents.get(key) or self._incident_of(key[0], ref)
            if incident is None:
                incident = self._incidents[key] = Incident(alert, root, time.monotonic())
                self.log.info("root cause incident opened", rootCause=root.ref, alert=key[0])
            incident.alert = alert
            if ref == incident.root.ref:
                incident.root_event = event
            else:
                incident.affected[ref] = event

    @staticmethod
    def _ref(event: Event) -> str:
        return f"{event.kind}/{event.namespace}/{event.name}"

    def _incident_of(self, alert_key: str, ref: str) -> Incident | None:
        return next((i for (a, _), i in self._incidents.items() if a == alert_key and ref in i.members), None)

    def _root_cause(self, event: Event) -> chain.Node:
        try:
            tree = chain.walk(self.kube, event.kind, event.name, event.namespace,
                                api_version=event.involved_object.get("apiVersion") or None)
            path = chain.failing_path(tree)
            return path[-1] if path else tree
        except Exception as exc:  # noqa: BLE001 - no chain: the object is its own root cause
            self.log.debug("unable to follow the chain", error=exc, object=event.object_string())
            return chain.Node(event.kind, event.namespace, event.name)

    # ------------------------------------------------------------------ notifications out

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            try:
                self._flush()
            except Exception as exc:  # noqa: BLE001 - keep grouping
                self.log.error("root cause grouping failed", error=exc)

    def _flush(self, force: bool = False) -> None:
        now = time.monotonic()
        with self._lock:
            due = [i for i in self._incidents.values() if not i.sent and (force or now - i.opened >= self.window)]
            checks = [(k, i) for k, i in self._incidents.items() if i.sent and i.check_resolved]
            for incident in due:
                incident.sent = True
        for incident in due:
            self._deliver(incident.alert, self._failure(incident))
        for key, incident in checks:
            incident.check_resolved = False
            if all(self._ready(ref) for ref in incident.members):
                with self._lock:
                    self._incidents.pop(key, None)
                self.log.info("root cause incident resolved", rootCause=incident.root.ref, alert=key[0])
                self._deliver(incident.alert, self._resolved(incident))

    def _deliver(self, alert: dict, event: Event) -> None:
        from controllers.notification.dispatch import DispatchError

        try:
            notification = self.dispatcher.prepare(event, alert)
        except DispatchError as exc:
            self.dispatcher._warn(alert, f"failed to dispatch notification for {event.object_string()}: {exc}")
            return
        if notification is not None:
            self.dispatcher.send(notification)

    def _ready(self, ref: str) -> bool:
        kind, namespace, name = ref.split("/", 2)
        try:
            node = chain.walk(self.kube, kind, name, namespace, max_depth=0)
        except Exception:  # noqa: BLE001
            return False
        return node.ready == "True"

    def _root_event(self, incident: Incident, severity: str, reason: str, message: str) -> Event:
        """An event about the root cause object (when it sent none this Alert saw)."""
        root, obj = incident.root, incident.root.obj or {}
        ref = {"kind": root.kind, "namespace": root.namespace, "name": root.name,
               "uid": dig(obj, "metadata.uid") or "", "apiVersion": obj.get("apiVersion", "")}
        return Event({k: v for k, v in ref.items() if v}, severity, rfc3339(_dt.datetime.now(_dt.timezone.utc)),
                     message, reason, {}, "notification-controller")

    def _failure(self, incident: Incident) -> Event:
        if incident.root_event is not None:
            event = incident.root_event.copy()
        else:
            ready = find_condition(incident.root.obj or {}, "Ready") or {}
            event = self._root_event(incident, SEVERITY_ERROR, ready.get("reason") or "NotReady",
                                     ready.get("message") or f"{incident.root.ref} is {incident.root.ready}")
        if incident.affected:
            affected = sorted(incident.affected)
            event.message += (f"\n\nRoot cause of {len(affected)} failing object(s): " + ", ".join(affected))
            event.metadata[f"{event.group}/{AFFECTED_KEY}" if event.group else AFFECTED_KEY] = ", ".join(affected)
        return event

    def _resolved(self, incident: Incident) -> Event:
        message = f"Resolved: {incident.root.ref} is Ready again"
        if incident.affected:
            message += f"; {len(incident.affected)} affected object(s) recovered: " + ", ".join(sorted(incident.affected))
        return self._root_event(incident, SEVERITY_INFO, REASON_RESOLVED, message)
