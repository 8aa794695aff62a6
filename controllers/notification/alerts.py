"""Which Alerts an event matches, and the metadata the notification carries (Flux's event handler rules).

An event as posted keeps only the metadata keys of its own API group (``<group>/…``) and of the event group
(``event.toolkit.fluxcd.io/…``, from the object's annotations), minus ``<group>/checksum`` and
``<group>/digest`` (:func:`cleanup_metadata`); ``<group>/token`` serves rate limiting and is then dropped
(:func:`exclude_internal_metadata`). An Alert matches when it is not suspended, one ``eventSources`` entry
names the object (kind, namespace — the Alert's when empty —, name or ``*``, and ``matchLabels`` read from the
object), the severity passes (``eventSeverity: error`` takes only errors), an ``inclusionList`` expression
matches the message (when any) and no ``exclusionList`` one does. Expressions are Go RE2: ``google-re2``
(Python's ``re`` accepts lookarounds and backreferences Go refuses; without the package fluxpy refuses
those too). :func:`combine_metadata` then merges, in Flux's order, the event-group keys, the Alert's
``eventMetadata``, its deprecated ``summary``, and the object group's keys, reporting keys set twice.
"""
from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable, Iterable, Mapping

from controllers.api.objects import dig
from controllers.lib.goregex import InvalidExpression, compile_go
from controllers.notification.event import (EVENT_GROUP, META_CHECKSUM_KEY, META_COMMIT_KEY, META_DIGEST_KEY,
                                            META_ORIGIN_REVISION_KEY, META_REVISION_KEY, META_TOKEN_KEY,
                                            SEVERITY_INFO, Event)

INVALID_CONFIG = "InvalidConfig"
SOURCE_FETCH_FAILED = "SourceFetchFailed"
METADATA_APPEND_FAILED = "MetadataAppendFailed"
_EVENT_PREFIX = EVENT_GROUP + "/"


@dataclasses.dataclass(frozen=True)
class Warning_:
    """A Warning event to record on an Alert (its configuration is wrong), with optional annotations."""

    reason: str
    message: str
    annotations: Mapping[str, str] = dataclasses.field(default_factory=dict)


def cleanup_metadata(event: Event) -> None:
    """Keep only the event group's and the object group's metadata (not the object's checksum or digest)."""
    group_prefix = event.group + "/"
    excluded = {f"{group_prefix}{META_CHECKSUM_KEY}".lower(), f"{group_prefix}{META_DIGEST_KEY}".lower()}
    event.metadata = {k: v for k, v in event.metadata.items()
                      if k.lower() not in excluded and (k.startswith(_EVENT_PREFIX) or k.startswith(group_prefix))}


def exclude_internal_metadata(event: Event) -> None:
    """Drop ``<group>/token`` (it distinguishes events for rate limiting only)."""
    event.metadata.pop(f"{event.group}/{META_TOKEN_KEY}", None)


def rate_limit_key(event: Event) -> str:
    """The identity of an event for duplicate suppression: object, message, and the origin revision,
    revision and token metadata when present."""
    parts = ["event", f"name={event.name}", f"namespace={event.namespace}", f"kind={event.kind}",
             f"message={event.message}"]
    for key, label in ((META_ORIGIN_REVISION_KEY, "originRevision"), (META_REVISION_KEY, "revision"),
                       (META_TOKEN_KEY, "token")):
        value = event.group_metadata(key)
        if value is not None:
            parts.append(f"{label}={value}")
    return "/".join(parts)


# --- regular expressions (Go RE2) ------------------------------------------------------------------------

@functools.lru_cache(maxsize=1024)
def compile_re2(expression: str) -> Callable[[str], bool]:
    """A search function for a Go RE2 expression; :class:`InvalidExpression` when Go would refuse it."""
    compiled = compile_go(expression)
    return lambda text: compiled.search(text) is not None


def _any_matches(expressions: Iterable[str], message: str, which: str, warnings: list[Warning_]) -> bool:
    matched = False
    for expression in expressions:
        try:
            if compile_re2(expression)(message):
                matched = True
                break
        except InvalidExpression:
            warnings.append(Warning_(INVALID_CONFIG, f"failed to compile {which} regex: {expression}"))
    return matched


# --- matching --------------------------------------------------------------------------------------------

#: reads an involved object's labels: (kind, apiVersion, namespace, name) -> labels; raises when unreadable
LabelReader = Callable[[str, str, str, str], Mapping[str, str]]


def source_matches(event: Event, alert: Mapping, source: Mapping, read_labels: LabelReader,
                   warnings: list[Warning_]) -> bool:
    """Whether one ``eventSources`` entry of ``alert`` selects the event's object and severity."""
    namespace = source.get("namespace") or dig(alert, "metadata.namespace")
    if event.namespace != namespace or event.kind != source.get("kind"):
        return False
    severity = dig(alert, "spec.eventSeverity") or SEVERITY_INFO
    if event.severity != severity and severity != SEVERITY_INFO:
        return False
    name = source.get("name")
    if name != "*" and name != event.name:
        return False
    selector = source.get("matchLabels")
    if selector is None:
        return True
    try:
        labels = read_labels(event.kind, event.involved_object.get("apiVersion", ""), event.namespace, event.name)
    except Exception:  # noqa: BLE001 - Flux reports any read failure the same way
        warnings.append(Warning_(SOURCE_FETCH_FAILED, f"error getting source object {event.object_string()}"))
        return False
    return all(labels.get(k) == v for k, v in selector.items())


def alert_matches(event: Event, alert: Mapping, read_labels: LabelReader, warnings: list[Warning_]) -> bool:
    """Whether ``alert`` forwards ``event`` (see the module docstring); bad expressions add warnings."""
    spec = alert.get("spec") or {}
    if spec.get("suspend") is True:
        return False
    if not any(source_matches(event, alert, s, read_labels, warnings) for s in spec.get("eventSources") or ()):
        return False
    inclusions = spec.get("inclusionList") or ()
    if inclusions and not _any_matches(inclusions, event.message, "inclusion", warnings):
        return False
    exclusions = spec.get("exclusionList") or ()
    return not (exclusions and _any_matches(exclusions, event.message, "exclusion", warnings))


_METADATA_SOURCES = ("involved object annotations", "Alert object .spec.eventMetadata",
                     "Alert object .spec.summary", "involved object controller metadata")


def combine_metadata(event: Event, alert: Mapping) -> tuple[Event, Warning_ | None]:
    """The notification for ``alert``: the event with its metadata combined (module docstring), and a
    MetadataAppendFailed warning when a key came from several places (the later one wins, as Flux)."""
    notification = event.copy()
    metadata: dict[str, str] = {}
    sources: dict[str, list[str]] = {}

    def put(key: str, value: str, source: str) -> None:
        metadata[key] = value
        sources.setdefault(key, []).append(source)

    for key, value in event.metadata.items():
        if key.startswith(_EVENT_PREFIX):
            put(key[len(_EVENT_PREFIX):], value, _METADATA_SOURCES[0])
    for key, value in (dig(alert, "spec.eventMetadata") or {}).items():
        put(key, value, _METADATA_SOURCES[1])
    if dig(alert, "spec.summary"):
        put("summary", dig(alert, "spec.summary"), _METADATA_SOURCES[2])
    group_prefix = event.group + "/"
    for key, value in event.metadata.items():
        if key.startswith(group_prefix):
            put(key[len(group_prefix):], value, _METADATA_SOURCES[3])
    warning = None
    conflicts = {k: ", ".join(v) for k, v in sorted(sources.items()) if len(v) > 1}
    if conflicts:
        warning = Warning_(METADATA_APPEND_FAILED, "metadata key conflicts detected (please refer to the Alert API "
                                                   "docs and Flux RFC 0008 for more information)", conflicts)
    if metadata:
        notification.metadata = metadata
    return notification, warning


def is_commit_status_update(event: Event) -> bool:
    """Events a Kustomization sends only so commit-status providers can update (``commit_status: update``)."""
    return event.metadata.get(f"{event.group}/commit_status") == "update"


def has_commit_key(event: Event) -> bool:
    """Whether the object's annotations name the commit (``event.toolkit.fluxcd.io/commit``)."""
    return bool(event.metadata.get(f"{_EVENT_PREFIX}{META_COMMIT_KEY}"))
