"""The notification-controller component: the Receiver reconciler and the two HTTP endpoints.

Receivers (``notification.toolkit.fluxcd.io/v1``), as Flux's: an invalid ``resourceFilter`` (CEL) stalls
(InvalidCELExpression, "Reconciliation failed terminally due to configuration error: …"), as does a type
fluxpy cannot verify (beyond Flux, which would answer every call 400); the token is read from
``spec.secretRef`` (missing Secret or key: Ready=False TokenNotFound and no webhook path); then
``status.webhookPath`` is ``/hook/`` + sha256(token + name + namespace) and Ready says "Receiver initialized
for path: …". A Secret labelled ``reconcile.fluxcd.io/watch: Enabled`` re-reconciles its Receivers when it
changes. Provider and Alert (v1beta3) are not reconciled: they are read by the event endpoint when an event
arrives.

The endpoints run in every replica, leader or not (the Services route to any pod): the events endpoint
(:class:`~.server.EventServer` → :class:`~.dispatch.Dispatcher`) and the webhook receiver
(:class:`~.server.ReceiverServer`).
"""
from __future__ import annotations

import argparse
import dataclasses

from controllers.api import meta
from controllers.api.builtin import SECRET
from controllers.api.notification import RECEIVER
from controllers.api.objects import dig
from controllers.lib import credentials
from controllers.lib.credentials import SecretError
from controllers.lib.index import ReferenceIndex
from controllers.runtime.controller import ReconcileContext, Reconciler, Watch
from controllers.runtime.events import EventRecorder
from controllers.runtime.flags import NO_CROSS_NAMESPACE_REFS, OptionFlag, add_option_flags, options_from_args, \
    parse_duration_flag
from controllers.runtime.kube import KubeClient
from controllers.runtime.outcomes import RetryableError, StalledError, Success

TOKEN_NOT_FOUND, INVALID_CEL_EXPRESSION, UNSUPPORTED_TYPE = "TokenNotFound", "InvalidCELExpression", "UnsupportedType"
TERMINAL_PREFIX = "Reconciliation failed terminally due to configuration error"


@dataclasses.dataclass(frozen=True)
class Options:
    """The notification-controller's own settings (its flags)."""

    events_addr: str = ":9090"
    """Where the events endpoint listens (Flux's ``--events-addr`` of this component: a bind address)."""
    receiver_addr: str = ":9292"
    rate_limit_interval: float = 300.0
    no_cross_namespace_refs: bool = False
    watch_configs_label_selector: str = f"{meta.WATCH_LABEL}={meta.WATCH_LABEL_ENABLED}"
    group_window: float = 5.0
    """Seconds a root-cause group collects the failures that follow the first (fluxpy)."""


FLAGS = (
    OptionFlag("receiver_addr", "--receiverAddr", "The address the webhook receiver endpoint binds to."),
    OptionFlag("rate_limit_interval", "--rate-limit-interval", "Interval in which rate limit has effect.",
               parse=parse_duration_flag),
    NO_CROSS_NAMESPACE_REFS,
    OptionFlag("watch_configs_label_selector", "--watch-configs-label-selector", "Watch for ConfigMaps and Secrets "
               "with matching labels."),
    OptionFlag("group_window", "--root-cause-group-window", "How long fluxpy collects the failures that follow a "
               "root cause into one notification.", parse=parse_duration_flag),
)


class ReceiverReconciler(Reconciler):
    """Reconciles Receivers (see the module docstring) and hosts the component's endpoints."""

    kind = RECEIVER

    def __init__(self, options: Options | None = None, *, namespace: str | None = None):
        self.options = options or Options()
        self.index = ReferenceIndex()
        self._namespace = namespace
        self.event_server = self.receiver_server = self.dispatcher = None

    def watches(self) -> list[Watch]:
        """Secrets carrying the watch label, mapped to the Receivers that use them."""
        if not self.options.watch_configs_label_selector:
            return []
        return [Watch(SECRET, lambda obj: self.index.keys_for((dig(obj, "metadata.namespace"),
                                                              dig(obj, "metadata.name"))),
                      label_selector=self.options.watch_configs_label_selector)]

    def servers(self, kube: KubeClient, events: EventRecorder, namespace: str | None) -> list:
        """The events endpoint (with its dispatcher) and the webhook receiver, in every replica."""
        from controllers.notification.dispatch import Dispatcher
        from controllers.notification.grouping import RootCauseGrouper
        from controllers.notification.server import EventServer, ReceiverServer

        self.dispatcher = Dispatcher(kube, events, namespace=namespace,
                                     no_cross_namespace_refs=self.options.no_cross_namespace_refs)
        self.dispatcher.grouper = RootCauseGrouper(self.dispatcher, window=self.options.group_window)
        self.event_server = EventServer(self.options.events_addr, self.dispatcher.dispatch,
                                        rate_limit_interval=self.options.rate_limit_interval)
        self.receiver_server = ReceiverServer(self.options.receiver_addr, kube, namespace=namespace,
                                              no_cross_namespace_refs=self.options.no_cross_namespace_refs)
        return [self.dispatcher, self.event_server, self.receiver_server]

    def reconcile(self, ctx: ReconcileContext, obj: dict) -> Success:
        from controllers.notification import receivers

        spec, ns, name = obj.get("spec") or {}, dig(obj, "metadata.namespace"), dig(obj, "metadata.name")
        secret_name = dig(spec, "secretRef.name") or ""
        self.index.update(ctx.key, [(ns, secret_name)] if secret_name else [])
        if spec.get("resourceFilter"):
            from controllers.lib.health import CelExpression, InvalidCELExpression

            try:
                CelExpression(spec["resourceFilter"], variables=("res", "req"))
            except InvalidCELExpression as exc:
                raise StalledError(f"{TERMINAL_PREFIX}: invalid resourceFilter expression: {exc}",
                                   reason=INVALID_CEL_EXPRESSION) from None
        unsupported = receivers.unsupported_reason(spec.get("type") or "")
        if unsupported:
            raise StalledError(f"{TERMINAL_PREFIX}: {unsupported}", reason=UNSUPPORTED_TYPE)
        ctx.progress("Reconciliation in progress", write=False)
        try:
            data = credentials.get_secret(ctx.kube, ns, secret_name)
        except SecretError as exc:
            obj.setdefault("status", {})["webhookPath"] = ""
            raise RetryableError(f"unable to read token from secret '{ns}/{secret_name}' error: "
                                 f"{str(exc).rpartition(': ')[2]}", reason=TOKEN_NOT_FOUND) from None
        if "token" not in data:
            obj.setdefault("status", {})["webhookPath"] = ""
            raise RetryableError(f"invalid '{ns}/{secret_name}' secret data: required fields 'token'",
                                 reason=TOKEN_NOT_FOUND)
        path = receivers.webhook_path(data["token"].decode(), name, ns)
        if dig(obj, "status.webhookPath") != path:
            obj.setdefault("status", {})["webhookPath"] = path
            ctx.log.info(f"Receiver initialized for path: {path}")
        return Success(f"Receiver initialized for path: {path}")

    def finalize(self, ctx: ReconcileContext, obj: dict) -> None:
        self.index.remove(ctx.key)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The notification-controller's own flags (``--events-addr`` is the runtime's, read as a bind address)."""
    add_option_flags(parser, Options, FLAGS)


def new_reconciler(args: argparse.Namespace) -> ReceiverReconciler:
    """Factory for ``controllers.components`` (notification-controller)."""
    return ReceiverReconciler(options_from_args(Options, args, FLAGS, events_addr=args.events_addr or ":9090"))

