"""Notifiers: one per Provider ``spec.type``, each posting an :class:`~controllers.notification.event.Event` in
that service's wire format, byte for byte as Flux's notification-controller does.

A notifier is built by :func:`new_notifier` from :class:`NotifierOptions` (the Provider's fields and Secret
merged by the caller) and has one method, ``post(event)``, raising :class:`NotifierError`. The modules are
imported lazily, one per family (:data:`FACTORIES`), so a process pays only for what its Providers use.
HTTP goes through :func:`controllers.notification.notifiers.http.post_message` (Flux's retries).
"""
from __future__ import annotations

import dataclasses
import importlib
import ssl
import unicodedata
from typing import Callable, Mapping, Protocol

from controllers.notification.event import Event


class NotifierError(Exception):
    """A notification could not be built or delivered (the message says why; never a secret)."""


class UnsupportedProvider(NotifierError):
    """A Provider type Flux has and fluxpy does not implement."""


@dataclasses.dataclass(frozen=True)
class NotifierOptions:
    """What a notifier is built from (Flux's ``notifierOptions``): the Provider's spec and its Secret's keys."""

    url: str = ""
    """``spec.address``, or the Secret's ``address``."""
    proxy_url: str = ""
    channel: str = ""
    username: str = ""
    password: str = ""
    token: str = ""
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    """The Secret's ``headers`` (YAML map), set on every request."""
    commit_status: str = ""
    """The commit status identifier (commit-status providers): ``commitStatusExpr`` or Flux's default."""
    provider_uid: str = ""
    provider_name: str = ""
    provider_namespace: str = ""
    secret_data: Mapping[str, bytes] = dataclasses.field(default_factory=dict)
    tls: ssl.SSLContext | None = None
    """From ``certSecretRef`` (CA, client certificate); None: the system's trust store."""
    timeout: float = 15.0
    """Seconds the whole delivery may take, retries included (``spec.timeout``, Flux's default 15s)."""


class Notifier(Protocol):
    def post(self, event: Event) -> None:
        """Deliver ``event``; raise :class:`NotifierError` when it cannot be delivered."""


_WEBHOOKS, _CHAT, _GIT = ("controllers.notification.notifiers.webhooks", "controllers.notification.notifiers.chat",
                          "controllers.notification.notifiers.commitstatus")
#: Provider type -> ``"module:factory"``; the factory takes :class:`NotifierOptions` and returns a Notifier
#: (raising :class:`NotifierError` for bad options, e.g. an invalid address). Flux's other types are
#: :class:`UnsupportedProvider`.
FACTORIES: dict[str, str] = {
    **{t: f"{_WEBHOOKS}:{f}" for t, f in (
        ("generic", "generic"), ("generic-hmac", "generic_hmac"), ("alertmanager", "alertmanager"),
        ("opsgenie", "opsgenie"), ("pagerduty", "pagerduty"), ("datadog", "datadog"), ("grafana", "grafana"))},
    **{t: f"{_CHAT}:{f}" for t, f in (
        ("slack", "slack"), ("discord", "discord"), ("msteams", "msteams"), ("googlechat", "googlechat"),
        ("telegram", "telegram"), ("matrix", "matrix"), ("rocket", "rocket"), ("webex", "webex"),
        ("lark", "lark"))},
    **{t: f"{_GIT}:{f}" for t, f in (
        ("github", "github"), ("gitlab", "gitlab"), ("gitea", "gitea"), ("bitbucket", "bitbucket"),
        ("bitbucketserver", "bitbucketserver"), ("azuredevops", "azuredevops"))},
}


def is_commit_status_update(event: Event) -> bool:
    """Flux's ``HasMetadata(commit_status, update)`` on a notification (metadata already combined): an
    event only commit-status providers act on; the others skip it."""
    return event.metadata.get("commit_status") == "update"


def split_camelcase(text: str) -> list[str]:
    """Words of a CamelCase string as Flux splits them (``PDFLoader`` → PDF Loader; digits apart)."""
    def char_class(char: str) -> int:
        category = unicodedata.category(char)
        return {"Ll": 1, "Lu": 2, "Nd": 3}.get(category, 4)

    runs: list[list[str]] = []
    last = 0
    for char in text:
        cls = char_class(char)
        if cls == last:
            runs[-1].append(char)
        else:
            runs.append([char])
        last = cls
    for i in range(len(runs) - 1):
        if char_class(runs[i][0]) == 2 and char_class(runs[i + 1][0]) == 1:
            runs[i + 1].insert(0, runs[i].pop())
    return ["".join(run) for run in runs if run]


def name_and_description(event: Event) -> tuple[str, str]:
    """Flux's ``formatNameAndDescription``: ``kind/name`` and the reason in words, both lower case."""
    return f"{event.kind}/{event.name}".lower(), " ".join(split_camelcase(event.reason)).lower()


def new_notifier(provider_type: str, options: NotifierOptions) -> Notifier:
    """The notifier of ``provider_type``; :class:`UnsupportedProvider` for a type fluxpy does not implement."""
    path = FACTORIES.get(provider_type)
    if path is None:
        raise UnsupportedProvider(f"provider type '{provider_type}' is not supported by fluxpy")
    module, _, attr = path.partition(":")
    factory: Callable[[NotifierOptions], Notifier] = getattr(importlib.import_module(module), attr)
    return factory(options)
