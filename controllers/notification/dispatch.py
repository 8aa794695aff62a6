"""From an accepted event to notifications: the Alerts it matches, their Providers, the notifiers' posts.

As Flux's event handler: the Alerts (read from a watch cache) are matched (:mod:`.alerts`); for each, with
``--no-cross-namespace-refs`` an event from another namespace is refused; the Provider is read (not found:
an error), a suspended Provider sends nothing; the notification's metadata is combined, the commit status
identifier computed (commit-status providers: ``commitStatusExpr`` or Flux's default), the Provider's Secrets
read into :class:`~.notifiers.NotifierOptions`, and the notifier posts in the background. A failure before
the post is a Warning ``NotificationDispatchFailed`` "failed to dispatch notification for …" on the Alert, a
failed post "failed to send notification for …" — with every secret value of the Provider masked.

Beyond Flux, :class:`~.grouping.RootCauseGrouper` may hold an Alert's notifications to send one per root cause
(see that module); :meth:`Dispatcher.send` is the one way any notification leaves.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import threading
from typing import Callable, Mapping

import yaml

from controllers.api.objects import dig
from controllers.api.notification import ALERT, COMMIT_STATUS_PROVIDER_TYPES, PROVIDER
from controllers.api.kinds import kind_for
from controllers.lib import credentials
from controllers.lib.credentials import SecretError, TLSMaterial
from controllers.notification import alerts as matching
from controllers.notification.event import Event
from controllers.notification.notifiers import NotifierError, NotifierOptions, new_notifier
from controllers.runtime.events import WARNING, EventRecorder
from controllers.runtime.kube import KubeClient
from controllers.runtime.logs import Logger, get_logger
from controllers.runtime.watch import Informer

NOTIFICATION_DISPATCH_FAILED = "NotificationDispatchFailed"
DEFAULT_TIMEOUT = 15.0
_MAX_ADDRESS = 2048


class DispatchError(Exception):
    """A notification could not be prepared (the message is the event's, after Flux's prefix)."""


@dataclasses.dataclass
class Notification:
    """One notification ready to post: the event as the Provider sees it, and how to reach the Provider."""

    alert: dict
    provider: dict
    event: Event
    options: NotifierOptions
    secrets: tuple[str, ...] = ()
    """Values to mask in any error (the Provider's Secret and proxy values)."""


def _noop(*_args) -> None:
    return None


def mask(text: str, secrets: tuple[str, ...]) -> str:
    """``text`` with every secret value replaced by ``*****`` (longest first, so none leaks in part)."""
    for value in sorted((s for s in secrets if s and len(s) >= 3), key=len, reverse=True):
        text = text.replace(value, "*****")
    return text


class Dispatcher:
    """Matches events to Alerts and sends the notifications (see the module docstring)."""

    def __init__(self, kube: KubeClient, recorder: EventRecorder, *, namespace: str | None = None,
                 no_cross_namespace_refs: bool = False, workers: int = 8, log: Logger | None = None,
                 labels: Callable[[str, str, str, str], Mapping[str, str]] | None = None):
        self.kube, self.recorder = kube, recorder
        self.no_cross_namespace_refs = no_cross_namespace_refs
        self.log = log or get_logger("event-server")
        self.alerts = Informer(kube, ALERT, _noop, namespace=namespace)
        self.providers = Informer(kube, PROVIDER, _noop, namespace=namespace)
        self._labels = labels or self._read_labels
        self._pool = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="notify")
        self._lock = threading.Lock()
        self.grouper = None
        """A :class:`~controllers.notification.grouping.RootCauseGrouper`, or None (every event sent as is)."""
        self.sent = 0
        self.failed = 0

    def start(self) -> "Dispatcher":
        self.alerts.start()
        self.providers.start()
        self.alerts.wait_synced(30)
        self.providers.wait_synced(30)
        if self.grouper is not None:
            self.grouper.start()
        return self

    def stop(self) -> None:
        if self.grouper is not None:
            self.grouper.stop()
        self.alerts.stop()
        self.providers.stop()
        self._pool.shutdown(wait=True, cancel_futures=False)

    # ------------------------------------------------------------------ events in

    def dispatch(self, event: Event) -> int:
        """Handle one accepted event: returns how many Alerts matched (notifications are posted in the
        background)."""
        matching.exclude_internal_metadata(event)
        matched = []
        for alert in self.alerts.items():
            warnings: list[matching.Warning_] = []
            if matching.alert_matches(event, alert, self._labels, warnings):
                matched.append(alert)
            for warning in warnings:
                self.recorder.event(alert, WARNING, warning.reason, warning.message, dict(warning.annotations))
        if not matched:
            self.log.info("discarding event, no alerts found for the involved object",
                          eventInvolvedObject=event.object_string())
            return 0
        self.log.info("dispatching event", message=event.message, eventInvolvedObject=event.object_string())
        for alert in matched:
            try:
                if self.grouper is not None and self.grouper.takes(alert, event):
                    self.grouper.add(alert, event)
                    continue
                notification = self.prepare(event, alert)
            except DispatchError as exc:
                self._warn(alert, f"failed to dispatch notification for {event.object_string()}: {exc}")
                continue
            if notification is not None:
                self.send(notification)
        return len(matched)

    def _read_labels(self, kind: str, api_version: str, namespace: str, name: str) -> Mapping[str, str]:
        rt = kind_for(api_version, kind) or self.kube.resource_for(api_version, kind)
        return dig(self.kube.get(rt, name, namespace), "metadata.labels") or {}

    # ------------------------------------------------------------------ preparing

    def prepare(self, event: Event, alert: dict) -> Notification | None:
        """The notification of ``event`` for ``alert`` (None: nothing to send, e.g. a suspended Provider);
        :class:`DispatchError` when it cannot be built."""
        alert_ns, alert_name = dig(alert, "metadata.namespace"), dig(alert, "metadata.name")
        if self.no_cross_namespace_refs and event.namespace != alert_ns:
            raise DispatchError(f"discarding event, access denied to cross-namespace sources: alert "
                                f"'{alert_ns}/{alert_name}' can't process event from '{event.object_string()}', "
                                f"cross-namespace references have been blocked")
        provider_name = dig(alert, "spec.providerRef.name") or ""
        provider = self.providers.get(f"{alert_ns}/{provider_name}")
        if provider is None:
            raise DispatchError(f"failed to read provider: Provider.notification.toolkit.fluxcd.io "
                                f"\"{provider_name}\" not found")
        spec = provider.get("spec") or {}
        if spec.get("suspend") is True:
            return None
        if spec.get("serviceAccountName"):
            raise DispatchError("spec.serviceAccountName (workload identity) is not supported by fluxpy")
        notification, warning = matching.combine_metadata(event, alert)
        if warning is not None:
            self.recorder.event(alert, WARNING, warning.reason, warning.message, dict(warning.annotations))
        commit_status = ""
        if spec.get("type") in COMMIT_STATUS_PROVIDER_TYPES:
            commit_status = self._commit_status(provider, notification, alert)
        try:
            options, secrets = self.notifier_options(provider, commit_status)
        except (SecretError, DispatchError) as exc:
            raise DispatchError(f"failed to initialize notifier for provider '{dig(provider, 'metadata.name')}': "
                                f"{exc}") from None
        return Notification(alert, provider, notification, options, secrets)

    def _commit_status(self, provider: dict, notification: Event, alert: dict) -> str:
        from controllers.notification.notifiers import commitstatus

        expression = dig(provider, "spec.commitStatusExpr")
        try:
            if expression:
                return commitstatus.commit_status_from_expr(expression, notification, alert, provider)
            return commitstatus.default_commit_status(dig(provider, "metadata.uid") or "", notification)
        except NotifierError as exc:
            raise DispatchError(f"failed to create commit status: {exc}") from None

    def notifier_options(self, provider: dict, commit_status: str = "") -> tuple[NotifierOptions, tuple[str, ...]]:
        """The notifier's options from the Provider and its Secrets, and the secret values to mask."""
        spec, ns = provider.get("spec") or {}, dig(provider, "metadata.namespace")
        fields: dict = {"url": spec.get("address") or "", "channel": spec.get("channel") or "",
                        "username": spec.get("username") or "", "proxy_url": spec.get("proxy") or "",
                        "commit_status": commit_status, "provider_uid": dig(provider, "metadata.uid") or "",
                        "provider_name": dig(provider, "metadata.name") or "", "provider_namespace": ns,
                        "timeout": _timeout(spec.get("timeout"))}
        secrets: list[str] = []
        tls_data = None
        if name := dig(spec, "secretRef.name"):
            data = credentials.get_secret(self.kube, ns, name)
            secrets.extend(v.decode("utf-8", "replace").strip() for v in data.values())
            address = data.get("address")
            if address is not None:
                if len(address) > _MAX_ADDRESS:
                    raise DispatchError(f"invalid address in secret: address exceeds maximum length of "
                                        f"{_MAX_ADDRESS} bytes")
                fields["url"] = address.decode().strip()
            if "proxy" in data:
                fields["proxy_url"] = data["proxy"].decode().strip()
            if "headers" in data:
                try:
                    headers = yaml.safe_load(data["headers"]) or {}
                    if not isinstance(headers, dict):
                        raise ValueError("not a map")
                except (yaml.YAMLError, ValueError) as exc:
                    raise DispatchError(f"failed to read headers from secret: {exc}") from None
                fields["headers"] = {str(k): str(v) for k, v in headers.items()}
            if "token" in data:
                fields["token"] = data["token"].decode().strip()
            auth = credentials.basic_auth(data)
            if auth is not None and auth[0] and auth[1]:
                fields["username"], fields["password"] = auth
            fields["secret_data"] = data
            if spec.get("type") in COMMIT_STATUS_PROVIDER_TYPES:
                tls_data = data
        if name := dig(spec, "proxySecretRef.name"):
            data = credentials.get_secret(self.kube, ns, name)
            secrets.extend(v.decode("utf-8", "replace") for v in data.values())
            fields["proxy_url"] = credentials.proxy_url(data, f"{ns}/{name}")
        if name := dig(spec, "certSecretRef.name"):
            tls_data = credentials.get_secret(self.kube, ns, name)
        if tls_data is not None:
            material = TLSMaterial.from_secret(tls_data)
            if material is not None:
                try:
                    fields["tls"] = material.ssl_context()
                except SecretError as exc:
                    raise DispatchError(f"failed to get TLS config: {exc}") from None
        return NotifierOptions(**fields), tuple(secrets)

    # ------------------------------------------------------------------ sending

    def send(self, notification: Notification) -> concurrent.futures.Future:
        """Post ``notification`` in the background; a failure becomes a Warning event on its Alert."""
        return self._pool.submit(self._post, notification)

    def _post(self, notification: Notification) -> bool:
        event, alert = notification.event, notification.alert
        try:
            new_notifier(dig(notification.provider, "spec.type") or "", notification.options).post(event)
        except Exception as exc:  # noqa: BLE001 - any failure is reported on the Alert, masked
            with self._lock:
                self.failed += 1
            message = mask(str(exc), notification.secrets)
            self.log.error("failed to send notification", error=message, eventInvolvedObject=event.object_string(),
                           alert=f"{dig(alert, 'metadata.namespace')}/{dig(alert, 'metadata.name')}")
            self._warn(alert, f"failed to send notification for {event.object_string()}: {message}")
            return False
        with self._lock:
            self.sent += 1
        return True

    def _warn(self, alert: dict, message: str) -> None:
        self.log.error("failed to dispatch notification", error=message,
                       alert=f"{dig(alert, 'metadata.namespace')}/{dig(alert, 'metadata.name')}")
        self.recorder.event(alert, WARNING, NOTIFICATION_DISPATCH_FAILED, message)


def _timeout(value: str | None) -> float:
    from controllers.api.duration import parse_duration

    try:
        return parse_duration(value) if value else DEFAULT_TIMEOUT
    except ValueError:
        return DEFAULT_TIMEOUT

