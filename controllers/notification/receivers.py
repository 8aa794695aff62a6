"""The verification of a webhook call to a Receiver (``notification.toolkit.fluxcd.io/v1``), as Flux's
notification-controller does it, per ``spec.type``: a signature or token check, an event filter
(``spec.events``, case-insensitive; empty allows every event) and a payload that must decode.

Pure functions of the request and the token: the HTTP server (:mod:`.server`) finds the Receiver, reads its
token and answers 400 with the :class:`ReceiverValidationError`'s message.
"""
from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import urllib.parse
from typing import Any, Mapping

SUPPORTED_TYPES = frozenset({"generic", "generic-hmac", "github", "gitlab", "bitbucket", "harbor", "dockerhub",
                             "quay", "nexus", "acr", "cdevents"})
#: Flux types fluxpy cannot verify here: gcr needs Google's token introspection endpoint
NOT_SUPPORTED_BY_FLUXPY = frozenset({"gcr"})
_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


class ReceiverValidationError(Exception):
    """The call is refused (400); the message says why, as Flux logs it."""


@dataclasses.dataclass
class WebhookRequest:
    method: str
    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str:
        """A header's value, looked up case-insensitively ("" when absent)."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), "")


def unsupported_reason(receiver_type: str) -> str | None:
    """Why a Receiver of this type cannot work (None when fluxpy verifies its calls)."""
    if receiver_type in SUPPORTED_TYPES:
        return None
    if receiver_type in NOT_SUPPORTED_BY_FLUXPY:
        return f"receiver type '{receiver_type}' is not supported by fluxpy"
    return f"receiver type '{receiver_type}' is not supported by fluxpy (expected one of " \
           f"{', '.join(sorted(SUPPORTED_TYPES))})"


def webhook_path(token: str, name: str, namespace: str) -> str:
    """``status.webhookPath``: ``/hook/`` + sha256(token + name + namespace) in hex, as Flux."""
    return "/hook/" + hashlib.sha256(f"{token}{name}{namespace}".encode()).hexdigest()


# ---------------------------------------------------------------------------------------------- checks

def validate_signature(signature: str, payload: bytes, key: bytes) -> None:
    """A ``<hash>=<hex HMAC>`` signature (sha1, sha256, sha512) of ``payload`` keyed by ``key``."""
    if not signature:
        raise ReceiverValidationError("missing signature")
    algorithm, sep, digest = signature.partition("=")
    if not sep:
        raise ReceiverValidationError(f'error parsing signature "{signature}"')
    if algorithm not in _HASHES:
        raise ReceiverValidationError(f'unknown hash type prefix: "{algorithm}"')
    try:
        expected = bytes.fromhex(digest)
    except ValueError:
        raise ReceiverValidationError(f'error decoding signature "{signature}"') from None
    if not hmac.compare_digest(hmac.new(key, payload, _HASHES[algorithm]).digest(), expected):
        raise ReceiverValidationError("payload signature check failed")


def _hub_payload(request: WebhookRequest, token: str) -> bytes:
    """go-github's ``ValidatePayload``: a JSON or form body (``payload`` field) signed in
    ``X-Hub-Signature-256`` (else ``X-Hub-Signature``)."""
    content_type = request.header("Content-Type").split(";")[0].strip()
    if content_type == "application/json":
        payload = request.body
    elif content_type == "application/x-www-form-urlencoded":
        form = urllib.parse.parse_qs(request.body.decode("utf-8", "replace"))
        payload = (form.get("payload") or [""])[0].encode()
    else:
        raise ReceiverValidationError(f'webhook request has unsupported Content-Type "{content_type}"')
    signature = request.header("X-Hub-Signature-256") or request.header("X-Hub-Signature")
    validate_signature(signature, request.body, token.encode())
    return payload


def _allowed(event: str, events: list[str], what: str) -> None:
    if events and not any(event.lower() == e.lower() for e in events):
        raise ReceiverValidationError(f'the {what} "{event}" is not authorised')


def _decode(body: bytes, failure: str) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ReceiverValidationError(f"{failure}: {exc}") from None


def _decode_object(body: bytes, failure: str) -> dict:
    payload = _decode(body, failure)
    if not isinstance(payload, dict):
        raise ReceiverValidationError(f"{failure}: expected a JSON object")
    return payload


def _cdevent(body: bytes) -> None:
    """A CDEvent (v0.4 envelope): ``context`` with id, source, type, timestamp and version, and a
    ``subject`` with ``content``."""
    event = _decode_object(body, "unable to validate CDEvent event")
    context, subject = event.get("context"), event.get("subject")
    if not isinstance(context, dict) or not isinstance(subject, dict):
        raise ReceiverValidationError("unable to validate CDEvent event: context and subject are required")
    missing = [f for f in ("id", "source", "type", "timestamp", "version") if not context.get(f)]
    if missing:
        raise ReceiverValidationError(f"unable to validate CDEvent event: context.{missing[0]} is required")
    if not str(context["type"]).startswith("dev.cdevents."):
        raise ReceiverValidationError(f"unable to validate CDEvent event: unknown type \"{context['type']}\"")
    if "content" not in subject:
        raise ReceiverValidationError("unable to validate CDEvent event: subject.content is required")


def validate(receiver_type: str, request: WebhookRequest, *, token: str, events: list[str]) -> None:
    """Refuse the call with :class:`ReceiverValidationError` unless it is a valid ``receiver_type`` call."""
    if receiver_type == "generic":
        return
    if receiver_type == "generic-hmac":
        try:
            validate_signature(request.header("X-Signature"), request.body, token.encode())
        except ReceiverValidationError as exc:
            raise ReceiverValidationError(f"unable to validate HMAC signature: {exc}") from None
    elif receiver_type in ("github", "bitbucket"):
        service = "GitHub" if receiver_type == "github" else "Bitbucket server"
        try:
            _hub_payload(request, token)
        except ReceiverValidationError as exc:
            raise ReceiverValidationError(f"the {service} signature header is invalid, err: {exc}") from None
        if receiver_type == "github":
            _allowed(request.header("X-GitHub-Event"), events, "GitHub event")
        else:
            _allowed(request.header("X-Event-Key"), events, "Bitbucket server event")
    elif receiver_type == "gitlab":
        if request.header("X-Gitlab-Token") != token:
            raise ReceiverValidationError("the X-Gitlab-Token header value does not match the receiver token")
        _allowed(request.header("X-Gitlab-Event"), events, "GitLab event")
    elif receiver_type == "cdevents":
        _cdevent(request.body)
        _allowed(request.header("Ce-Type"), events, "CDEvent")
    elif receiver_type == "harbor":
        if request.header("Authorization") != token:
            raise ReceiverValidationError("the Harbor Authorization header value does not match the receiver token")
    elif receiver_type == "nexus":
        signature = request.header("X-Nexus-Webhook-Signature")
        if not signature:
            raise ReceiverValidationError("the Nexus signature is missing from header")
        expected = hmac.new(token.encode(), request.body, hashlib.sha1).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise ReceiverValidationError("invalid Nexus signature")
        _decode_object(request.body, "cannot decode Nexus webhook payload")
    elif receiver_type in ("quay", "acr"):
        _decode_object(request.body, f"cannot decode {receiver_type.capitalize() if receiver_type == 'quay' else 'ACR'}"
                                     " webhook payload")
    elif receiver_type == "dockerhub":
        try:
            _decode_object(request.body, "cannot decode DockerHub webhook payload")
        except ReceiverValidationError:
            raise ReceiverValidationError("cannot decode DockerHub webhook payload") from None
    else:
        raise ReceiverValidationError(f'recevier type "{receiver_type}" not supported')
