"""Flux's event (``github.com/fluxcd/pkg/apis/event/v1beta1.Event``) and Go's ``encoding/json`` output.

Every Flux controller posts its events to the notification-controller as this JSON; the generic providers
forward it unchanged, so fluxpy encodes it the way Go does: struct fields in declaration order, map keys
sorted, no spaces, and ``<``, ``>``, ``&``, U+2028 and U+2029 escaped (:func:`go_json`).
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import json
from typing import Any, Mapping

#: the event metadata group (annotations ``event.toolkit.fluxcd.io/*`` of an object are copied into events)
EVENT_GROUP = "event.toolkit.fluxcd.io"
SEVERITY_INFO, SEVERITY_ERROR, SEVERITY_TRACE = "info", "error", "trace"
#: metadata keys (prefixed with the involved object's API group in a posted event)
META_REVISION_KEY, META_TOKEN_KEY, META_ORIGIN_REVISION_KEY = "revision", "token", "originRevision"
META_COMMIT_KEY, META_CHECKSUM_KEY, META_DIGEST_KEY = "commit", "checksum", "digest"
#: the fields of a ``corev1.ObjectReference`` in Go's declaration order (all ``omitempty``)
OBJECT_REFERENCE_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")


class InvalidEvent(ValueError):
    """The body is not an event (what is wrong is the message)."""


def go_json(value: Any) -> bytes:
    """``value`` encoded as Go's ``json.Marshal`` encodes the equivalent Go value (dicts keep their order:
    build struct-like dicts in the Go field order; a map is :class:`GoMap` or sorted by the caller)."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                          ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
        text = text.replace(char, escaped)
    return text.encode()


def sorted_map(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    """A Go ``map[string]T`` as ``encoding/json`` writes it: keys sorted."""
    return {k: mapping[k] for k in sorted(mapping or {})}


def rfc3339(t: _dt.datetime) -> str:
    """``metav1.Time`` in JSON: RFC 3339 in UTC, whole seconds."""
    return t.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclasses.dataclass
class Event:
    """One event about a Flux object (``eventv1beta1.Event``)."""

    involved_object: dict[str, str]
    """``corev1.ObjectReference``: kind, namespace, name, uid, apiVersion, resourceVersion, fieldPath."""
    severity: str
    timestamp: str
    """RFC 3339 (``metav1.Time``)."""
    message: str
    reason: str
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    reporting_controller: str = ""
    reporting_instance: str = ""

    # ------------------------------------------------------------------ the involved object

    @property
    def kind(self) -> str:
        return self.involved_object.get("kind", "")

    @property
    def name(self) -> str:
        return self.involved_object.get("name", "")

    @property
    def namespace(self) -> str:
        return self.involved_object.get("namespace", "")

    @property
    def group(self) -> str:
        """The API group of the involved object (``apiVersion`` without the version)."""
        api_version = self.involved_object.get("apiVersion", "")
        return api_version.rpartition("/")[0] if "/" in api_version else ""

    def object_string(self) -> str:
        """``Kind/namespace/name``, as Flux names the involved object in messages."""
        return f"{self.kind}/{self.namespace}/{self.name}"

    def group_metadata(self, key: str) -> str | None:
        """The metadata value ``<group>/<key>`` (as posted, before the alert's metadata is combined)."""
        return self.metadata.get(f"{self.group}/{key}")

    def revision(self) -> str | None:
        """The revision a notification is about (Flux's ``GetRevision`` on combined metadata: ``commit``,
        else ``originRevision``, else ``revision``)."""
        for key in (META_COMMIT_KEY, META_ORIGIN_REVISION_KEY, META_REVISION_KEY):
            if key in self.metadata:
                return self.metadata[key]
        return None

    # ------------------------------------------------------------------ JSON

    def to_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict in Go's field order (``metadata`` and ``reportingInstance`` omitted
        when empty)."""
        ref = {k: self.involved_object[k] for k in OBJECT_REFERENCE_FIELDS if self.involved_object.get(k)}
        out: dict[str, Any] = {"involvedObject": ref, "severity": self.severity, "timestamp": self.timestamp,
                               "message": self.message, "reason": self.reason}
        if self.metadata:
            out["metadata"] = sorted_map(self.metadata)
        out["reportingController"] = self.reporting_controller
        if self.reporting_instance:
            out["reportingInstance"] = self.reporting_instance
        return out

    def encode(self) -> bytes:
        """The event as Go's ``json.Marshal`` writes it (what the generic providers post and sign)."""
        return go_json(self.to_json())

    @classmethod
    def from_json(cls, data: Any) -> "Event":
        """Parse a decoded JSON body; :class:`InvalidEvent` when it is not an event object (Go's decoder
        accepts missing fields, and so does this; wrong types are refused as Go refuses them)."""
        if not isinstance(data, dict):
            raise InvalidEvent("the event must be a JSON object")
        ref = data.get("involvedObject") or {}
        metadata = data.get("metadata") or {}
        if not isinstance(ref, dict) or not all(isinstance(v, str) for v in ref.values()):
            raise InvalidEvent("involvedObject must be an object reference")
        if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
            raise InvalidEvent("metadata must be a map of strings")
        fields = {}
        for key in ("severity", "timestamp", "message", "reason", "reportingController", "reportingInstance"):
            value = data.get(key)
            if value is not None and not isinstance(value, str):
                raise InvalidEvent(f"{key} must be a string")
            fields[key] = value or ""
        return cls(involved_object={k: v for k, v in ref.items() if k in OBJECT_REFERENCE_FIELDS},
                   severity=fields["severity"], timestamp=fields["timestamp"], message=fields["message"],
                   reason=fields["reason"], metadata=dict(metadata),
                   reporting_controller=fields["reportingController"],
                   reporting_instance=fields["reportingInstance"])

    @classmethod
    def decode(cls, body: bytes) -> "Event":
        """Parse a request body (:class:`InvalidEvent` when it is not JSON or not an event)."""
        try:
            return cls.from_json(json.loads(body))
        except (ValueError, UnicodeDecodeError) as exc:
            if isinstance(exc, InvalidEvent):
                raise
            raise InvalidEvent(f"invalid JSON: {exc}") from None

    def copy(self) -> "Event":
        return dataclasses.replace(self, involved_object=dict(self.involved_object), metadata=dict(self.metadata))
