"""Notifiers that post to a webhook or an incident tool: generic (the event itself), generic-hmac (signed),
alertmanager, opsgenie, pagerduty, datadog and grafana, in the wire formats of Flux's notification-controller.

All but the generic ones skip commit status updates (``<group>/commit_status: update``), as Flux's do.
"""
from __future__ import annotations

import base64
import datetime as _dt
import hashlib
import hmac
import urllib.parse
from typing import Any, Callable

from controllers.notification.event import Event, sorted_map
from controllers.notification.notifiers import NotifierError, NotifierOptions, is_commit_status_update, \
    name_and_description
from controllers.notification.notifiers import http

#: the header naming the controller that recorded the event (Flux's ``NotificationHeader``)
COMPONENT_HEADER = "gotk-component"


def _check_url(url: str, what: str) -> str:
    """Go's ``url.ParseRequestURI`` acceptance: an absolute URL (or an absolute path)."""
    parts = urllib.parse.urlsplit(url)
    if not (parts.scheme and (parts.netloc or parts.path)) and not url.startswith("/"):
        raise NotifierError(f"invalid {what} {url}: expected an absolute URL")
    return url


class _Webhook:
    """One POST per event: ``build(event)`` gives the payload (None: nothing to send) and extra headers."""

    def __init__(self, options: NotifierOptions, url: str,
                 build: Callable[[Event], tuple[Any, dict[str, str]] | None]):
        self.options, self.url, self.build = options, url, build

    def post(self, event: Event) -> None:
        built = self.build(event.copy())
        if built is not None:
            payload, headers = built
            # bytes are the exact body (the generic event JSON, which generic-hmac signs)
            http.post_message(self.url, payload, options=self.options, headers=headers,
                              content_type="application/json" if isinstance(payload, bytes) else "")


def _skipping_commit_status(build: Callable[[Event], tuple[Any, dict[str, str]]]):
    return lambda event: None if is_commit_status_update(event) else build(event)


def _timestamp(event: Event) -> _dt.datetime:
    try:
        return _dt.datetime.strptime(event.timestamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.timezone.utc)
    except ValueError:
        return _dt.datetime(1, 1, 1, tzinfo=_dt.timezone.utc)


# ---------------------------------------------------------------------------------------------- generic

def _forwarder(options: NotifierOptions, hmac_key: bytes | None) -> _Webhook:
    _check_url(options.url, "hook URL")
    if hmac_key is not None and not hmac_key:
        raise NotifierError("HMAC key is empty")

    def build(event: Event):
        body = event.encode()
        headers = {COMPONENT_HEADER: event.reporting_controller, **options.headers}
        if hmac_key:
            headers["X-Signature"] = "sha256=" + hmac.new(hmac_key, body, hashlib.sha256).hexdigest()
        return body, headers

    return _Webhook(options, options.url, build)


def generic(options: NotifierOptions) -> _Webhook:
    """The event as JSON, with ``gotk-component`` and the Secret's headers."""
    return _forwarder(options, None)


def generic_hmac(options: NotifierOptions) -> _Webhook:
    """As :func:`generic`, signed: ``X-Signature: sha256=<HMAC of the body keyed by the token>``."""
    return _forwarder(options, options.token.encode())


# ---------------------------------------------------------------------------------------------- alerting tools

def alertmanager(options: NotifierOptions) -> _Webhook:
    """One firing alert: labels from the metadata and the object, ``summary`` as an annotation."""
    _check_url(options.url, "Alertmanager URL")

    def build(event: Event):
        metadata = dict(event.metadata)
        annotations = {"message": event.message}
        if "summary" in metadata:
            annotations["summary"] = metadata.pop("summary")
        labels = {**metadata, "alertname": "Flux" + event.kind + _title(event.reason), "severity": event.severity,
                  "reason": event.reason, "kind": event.kind, "name": event.name, "namespace": event.namespace,
                  "reportingcontroller": event.reporting_controller}
        alert = {"status": "firing", "labels": sorted_map(labels), "annotations": sorted_map(annotations),
                 "startsAt": _timestamp(event).strftime("%Y-%m-%dT%H:%M:%SZ"), "endsAt": "0001-01-01T00:00:00Z"}
        headers: dict[str, str] = {}
        if options.token:
            headers["Authorization"] = "Bearer " + options.token
        if options.username and options.password:
            headers["Authorization"] = _basic(options.username, options.password)
        return [alert], headers

    return _Webhook(options, options.url, _skipping_commit_status(build))


def opsgenie(options: NotifierOptions) -> _Webhook:
    """An Opsgenie alert (``GenieKey`` auth): message ``Kind/name``, the metadata and severity as details."""
    _check_url(options.url, "Opsgenie hook URL")
    if not options.token:
        raise NotifierError("empty Opsgenie apikey/token")

    def build(event: Event):
        details = {**event.metadata, "severity": event.severity}
        return ({"message": f"{event.kind}/{event.name}", "description": event.message,
                 "details": sorted_map(details)}, {"Authorization": "GenieKey " + options.token})

    return _Webhook(options, options.url, _skipping_commit_status(build))


def grafana(options: NotifierOptions) -> _Webhook:
    """A Grafana annotation (Graphite format) tagged with the metadata and the object."""
    _check_url(options.url, "Grafana URL")

    def build(event: Event):
        tags = ["flux", event.reporting_controller]
        tags += [f"{k.replace(':', '|')}: {v.replace(':', '|')}" for k, v in sorted(event.metadata.items())]
        tags += [f"kind: {event.kind}", f"name: {event.name}", f"namespace: {event.namespace}"]
        headers: dict[str, str] = {}
        if options.username and options.password and not options.token:
            headers["Authorization"] = _basic(options.username, options.password)
        if options.token:
            headers["Authorization"] = "Bearer " + options.token
        payload = {"when": int(_timestamp(event).timestamp()),
                   "text": f"{event.kind.lower()}/{event.name}.{event.namespace}", "tags": tags}
        return payload, headers

    return _Webhook(options, options.url, _skipping_commit_status(build))


class _PagerDuty:
    """An alert event (trigger on error, resolve otherwise, keyed by the object's UID) and, for info
    events, a change event; Progressing events and commit status updates are skipped."""

    def __init__(self, options: NotifierOptions):
        parts = urllib.parse.urlsplit(options.url)
        if not parts.scheme or not parts.netloc:
            raise NotifierError(f'invalid PagerDuty endpoint URL "{options.url}": expected an absolute URL')
        self.options, self.endpoint = options, f"{parts.scheme}://{parts.netloc}"

    def post(self, event: Event) -> None:
        if is_commit_status_update(event) or event.reason == "Progressing":
            return
        name, description = name_and_description(event)
        summary, source = f"{description}: {name}", "Flux " + event.reporting_controller
        details = {"message": event.message, "metadata": sorted_map(event.metadata) or None}
        alert: dict[str, Any] = {"routing_key": self.options.channel, "event_action": "resolve"}
        if event.involved_object.get("uid"):
            alert["dedup_key"] = event.involved_object["uid"]
        if event.severity == "error":
            alert["event_action"] = "trigger"
            alert["payload"] = {"summary": summary, "source": source, "severity": "error",
                                "timestamp": event.timestamp, "component": event.name, "group": event.kind,
                                "custom_details": details}
            if not event.name:
                del alert["payload"]["component"]
            if not event.kind:
                del alert["payload"]["group"]
        self._send("/v2/enqueue", alert, "failed sending event")
        if event.severity == "info":
            change = {"routing_key": self.options.channel,
                      "payload": {"source": source, "summary": summary, "timestamp": event.timestamp,
                                  "custom_details": details}}
            self._send("/v2/change/enqueue", change, "failed sending change event")

    def _send(self, path: str, payload: dict, failure: str) -> None:
        try:
            http.post_message(self.endpoint + path, payload, options=self.options)
        except NotifierError as exc:
            raise NotifierError(f"{failure}: {exc}") from None


def pagerduty(options: NotifierOptions) -> _PagerDuty:
    """PagerDuty Events API v2 at the address's host (``/v2/enqueue``, ``/v2/change/enqueue``); the
    routing key is the Provider's channel."""
    return _PagerDuty(options)


def datadog(options: NotifierOptions) -> _Webhook:
    """A Datadog event (``POST /api/v1/events`` on the address's host, ``DD-API-KEY``)."""
    if not options.token:
        raise NotifierError("token cannot be empty")
    parts = urllib.parse.urlsplit(options.url)
    if not parts.scheme or not parts.netloc:
        raise NotifierError(f'failed to parse address "{options.url}": expected an absolute URL')

    def build(event: Event):
        tags = [f"flux_reporting_controller:{event.reporting_controller}", f"flux_reason:{event.reason}",
                f"kube_kind:{event.kind}", f"kube_name:{event.name}", f"kube_namespace:{event.namespace}"]
        tags += [f"{k}:{v}" for k, v in sorted(event.metadata.items())]
        # the Datadog client serialises its request through a map: keys sorted
        payload = {"alert_type": "error" if event.severity == "error" else "info",
                   "date_happened": int(_timestamp(event).timestamp()), "source_type_name": "fluxcd",
                   "tags": [t.lower() for t in tags], "text": event.message,
                   "title": f"Events from the {event.kind} {event.name}/{event.namespace}"}
        return payload, {"DD-API-KEY": options.token, "Accept": "application/json"}

    return _Webhook(options, f"{parts.scheme}://{parts.netloc}/api/v1/events", build)


# ---------------------------------------------------------------------------------------------- helpers

def _basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


def _title(text: str) -> str:
    """``cases.Title(language.Und)``: each word's first letter upper, the rest lower."""
    out, start = [], True
    for char in text:
        out.append(char.upper() if start else char.lower())
        start = not char.isalnum() and char != "'"
    return "".join(out)
