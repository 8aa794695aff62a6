"""Validation of incoming webhook requests for Flux Receivers (notification.toolkit.fluxcd.io/v1).

Pure functions, no Kubernetes: the receiver server looks the Receiver up by its webhook path, reads
the token from its Secret and calls :func:`validate`; a :class:`ReceiverValidationError` means Flux
answers 400 and logs "unable to validate payload" with the error's message.

Flux v1.7.5 (internal/server/receiver_handlers.go) is matched type by type, including the error texts
of the Go libraries it relies on (go-github's ValidatePayload, ``mime.ParseMediaType``,
``url.ParseQuery``, ``encoding/hex`` and ``encoding/json``), which are reimplemented here.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Callable, Mapping

MAX_REQUEST_SIZE = 3 * 1024 * 1024
WEBHOOK_PATH_PREFIX = "/hook/"

SUPPORTED_TYPES = frozenset({
    "generic", "generic-hmac", "github", "gitlab", "bitbucket", "harbor", "dockerhub", "quay",
    "nexus", "acr", "cdevents",
})


class ReceiverValidationError(Exception):
    """Why a webhook request is refused (the message Flux logs)."""


class _GoError(Exception):
    """An error as a Go library would return it; wrapped into ReceiverValidationError."""


@dataclass
class WebhookRequest:
    """An incoming webhook request; header names are looked up case-insensitively."""

    method: str
    headers: Mapping[str, str]
    body: bytes = b""

    def header(self, name: str) -> str:
        """The first value of header ``name`` or "" (Go's ``http.Header.Get``)."""
        wanted = name.lower()
        for key, value in self.headers.items():
            if key.lower() == wanted:
                return value
        return ""


def unsupported_reason(receiver_type: str) -> str | None:
    """None when fluxpy validates ``receiver_type``, else why not (gcr needs Google's token service)."""
    if receiver_type in SUPPORTED_TYPES:
        return None
    return f"receiver type '{receiver_type}' is not supported by fluxpy"


def webhook_path(token: str, name: str, namespace: str) -> str:
    """The Receiver's webhook path: /hook/ + sha256 hex of token+name+namespace (GetWebhookPath)."""
    return WEBHOOK_PATH_PREFIX + hashlib.sha256((token + name + namespace).encode()).hexdigest()


# ---------------------------------------------------------------------------------------------
# Go string helpers


def _go_bytes(text: str) -> bytes:
    """The bytes a Go server sees for a header value decoded as latin-1 (utf-8 beyond it)."""
    try:
        return text.encode("latin-1")
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape")


def _go_quote(value: str | bytes) -> str:
    """Go's ``strconv.Quote`` (``%q``) of a string's bytes."""
    data = _go_bytes(value) if isinstance(value, str) else value
    out = ['"']
    for ch in data.decode("utf-8", "surrogateescape"):
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # an invalid UTF-8 byte
            out.append(f"\\x{code - 0xDC00:02x}")
        elif ch in '"\\':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif code < 0x10000:
            out.append(f"\\u{code:04x}")
        else:
            out.append(f"\\U{code:08x}")
    return "".join(out) + '"'


def _equal_fold(a: str, b: str) -> bool:
    """Go's ``strings.EqualFold`` (simple Unicode case folding, rune by rune)."""
    return len(a) == len(b) and all(
        x == y or x.lower() == y.lower() or x.upper() == y.upper() for x, y in zip(a, b))


def _go_space(ch: str) -> bool:
    """Go's ``unicode.IsSpace``."""
    return ch in "\t\n\v\f\r \x85\xa0" or (ord(ch) > 0xFF and ch.isspace())


def _check_event(event: str, events: list[str], what: str) -> None:
    if events and not any(_equal_fold(event, allowed) for allowed in events):
        raise ReceiverValidationError(f"the {what} {_go_quote(event)} is not authorised")


# ---------------------------------------------------------------------------------------------
# go-github's ValidatePayload / ValidateSignature

_HASHES = {"sha1": hashlib.sha1, "sha256": hashlib.sha256, "sha512": hashlib.sha512}


def _hex_decode(text: bytes) -> bytes:
    """Go's ``hex.DecodeString`` with its error texts."""
    def invalid(byte: int) -> _GoError:
        shown = f" '{chr(byte)}'" if chr(byte).isprintable() else ""
        return _GoError(f"encoding/hex: invalid byte: U+{byte:04X}{shown}")

    for byte in text[: len(text) - len(text) % 2]:
        if chr(byte) not in "0123456789abcdefABCDEF":
            raise invalid(byte)
    if len(text) % 2:
        if chr(text[-1]) not in "0123456789abcdefABCDEF":
            raise invalid(text[-1])
        raise _GoError("encoding/hex: odd length hex string")
    return bytes.fromhex(text.decode("ascii"))


def _validate_signature(signature: str, payload: bytes, key: str) -> None:
    """go-github's ValidateSignature: ``<sha1|sha256|sha512>=<hex HMAC of payload>``."""
    if signature == "":
        raise _GoError("missing signature")
    prefix, sep, digest = signature.partition("=")
    if not sep:
        raise _GoError(f"error parsing signature {_go_quote(signature)}")
    if prefix not in _HASHES:
        raise _GoError(f"unknown hash type prefix: {_go_quote(prefix)}")
    try:
        mac = _hex_decode(_go_bytes(digest))
    except _GoError as err:
        raise _GoError(f"error decoding signature {_go_quote(signature)}: {err}") from None
    expected = hmac.new(_go_bytes(key), payload, _HASHES[prefix]).digest()
    if not hmac.compare_digest(mac, expected):
        raise _GoError("payload signature check failed")


def _is_token_char(ch: str) -> bool:
    return " " < ch < "\x7f" and ch not in '()<>@,;:\\"/[]?='


def _consume_token(text: str) -> tuple[str, str]:
    end = 0
    while end < len(text) and _is_token_char(text[end]):
        end += 1
    return text[:end], text[end:]


def _consume_value(text: str) -> tuple[str, str]:
    if not text.startswith('"'):
        return _consume_token(text)
    value, i = [], 1
    while i < len(text):
        ch = text[i]
        if ch == '"':
            return "".join(value), text[i + 1:]
        if ch == "\\" and i + 1 < len(text) and text[i + 1] in '()<>@,;:\\"/[]?=':
            ch, i = text[i + 1], i + 1
        elif ch in "\r\n":
            return "", text
        value.append(ch)
        i += 1
    return "", text


def _media_param(text: str) -> tuple[str, str, str]:
    """Go's ``consumeMediaParam``: (name, value, rest) or ("", "", text) when none parses."""
    rest = _trim_space(text)
    if not rest.startswith(";"):
        return "", "", text
    name, rest = _consume_token(_trim_space(rest[1:]))
    rest = _trim_space(rest)
    if not name or not rest.startswith("="):
        return "", "", text
    rest = _trim_space(rest[1:])
    value, after = _consume_value(rest)
    if value == "" and after == rest:
        return "", "", text
    return name.lower(), value, after


def _trim_space(text: str, *, both: bool = False) -> str:
    """Go's ``strings.TrimLeftFunc(text, unicode.IsSpace)`` (``strings.TrimSpace`` when both)."""
    start, end = 0, len(text)
    while start < end and _go_space(text[start]):
        start += 1
    while both and end > start and _go_space(text[end - 1]):
        end -= 1
    return text[start:end]


def _parse_media_type(header: str) -> str:
    """Go's ``mime.ParseMediaType``, returning the lower-cased media type (errors as Go's)."""
    header = _go_bytes(header).decode("utf-8", "surrogateescape")  # Go sees the raw bytes
    base = header.split(";", 1)[0]
    media = _trim_space(base.lower(), both=True)
    kind, rest = _consume_token(media)
    if not kind:
        raise _GoError("mime: no media type")
    if rest:
        if not rest.startswith("/"):
            raise _GoError("mime: expected slash after first token")
        subtype, rest = _consume_token(rest[1:])
        if not subtype:
            raise _GoError("mime: expected token after slash")
        if rest:
            raise _GoError("mime: unexpected content after media subtype")
    params: dict[str | None, dict[str, str]] = {}  # RFC 2231 "name*..." parameters apart
    text = header[len(base):]
    while text:
        text = _trim_space(text)
        if not text:
            break
        name, value, rest = _media_param(text)
        if not name:
            if _trim_space(rest, both=True) == ";":
                break
            raise _GoError("mime: invalid media parameter")
        group = params.setdefault(name.split("*", 1)[0] if "*" in name else None, {})
        if group.get(name, value) != value:
            raise _GoError("mime: duplicate parameter name")
        group[name] = value
        text = rest
    return media


def _query_unescape(text: str) -> str:
    """Go's ``url.QueryUnescape``."""
    for match in re.finditer("%", text):
        i = match.start()
        if not re.fullmatch("[0-9a-fA-F]{2}", text[i + 1:i + 3]):
            raise _GoError(f"invalid URL escape {_go_quote(text[i:i + 3])}")
    data = _go_bytes(text.replace("+", " "))
    return re.sub(rb"%([0-9a-fA-F]{2})", lambda m: bytes([int(m[1], 16)]), data).decode(
        "utf-8", "surrogateescape")


def _form_value(body: bytes, field: str) -> bytes:
    """``url.ParseQuery(body).Get(field)`` with Go's error precedence."""
    query = body.decode("latin-1")
    if query.count("&") + 1 > 10000:
        raise _GoError("number of URL query parameters exceeded limit")
    error, found = None, None
    for pair in query.split("&") if query else []:
        if ";" in pair:
            error = _GoError("invalid semicolon separator in query")
            continue
        if not pair:
            continue
        key, _, value = pair.partition("=")
        try:
            key, value = _query_unescape(key), _query_unescape(value)
        except _GoError as err:
            error = error or err
            continue
        if key == field and found is None:
            found = value
    if error:
        raise error
    return b"" if found is None else found.encode("utf-8", "surrogateescape")


def _validate_payload(request: WebhookRequest, token: str) -> bytes:
    """go-github's ValidatePayload: the JSON payload once the X-Hub-Signature(-256) is checked."""
    signature = request.header("X-Hub-Signature-256") or request.header("X-Hub-Signature")
    content_type = _parse_media_type(request.header("Content-Type"))
    if content_type == "application/json":
        payload = request.body
    elif content_type == "application/x-www-form-urlencoded":
        payload = _form_value(request.body, "payload")
    else:
        raise _GoError(f"webhook request has unsupported Content-Type {_go_quote(content_type)}")
    if token or signature:
        _validate_signature(signature, request.body, token)
    return payload


# ---------------------------------------------------------------------------------------------
# encoding/json: a syntax check with Go's messages, then decoding into a struct shape
#
# A parsed node is (kind, value, raw): kind is object/array/string/number/bool/null, an object's
# value is its list of (key, node) pairs (duplicates kept), raw the value's bytes.

_WS = b" \t\r\n"
_LITERALS = {ord("t"): (b"true", "bool"), ord("f"): (b"false", "bool"), ord("n"): (b"null", "null")}


def _quote_char(byte: int) -> str:
    if byte == ord("'"):
        return "'\\''"
    if byte == ord('"'):
        return "'\"'"
    return "'" + _go_quote(chr(byte).encode())[1:-1] + "'"


def _parse_json(data: bytes, stream: bool):
    """Parse like ``json.Unmarshal`` (stream=False) or ``json.Decoder.Decode`` (stream=True).

    Iterative, so deep nesting can't exhaust Python's stack (Go stops at depth 10000).
    """
    n, i = len(data), 0

    def bad(context: str) -> _GoError:
        if i >= n:
            return _GoError("unexpected EOF" if stream else "unexpected end of JSON input")
        return _GoError(f"invalid character {_quote_char(data[i])} {context}")

    def skip_ws() -> None:
        nonlocal i
        while i < n and data[i] in _WS:
            i += 1

    def string() -> str:
        nonlocal i
        start = i
        i += 1
        while True:
            if i >= n:
                raise bad("")
            c = data[i]
            if c == ord('"'):
                i += 1
                return _json_unquote(data[start + 1:i - 1])
            if c < 0x20:
                raise bad("in string literal")
            if c == ord("\\"):
                i += 1
                if i < n and data[i] == ord("u"):
                    for _ in range(4):
                        i += 1
                        if i >= n or data[i] not in b"0123456789abcdefABCDEF":
                            raise bad("in \\u hexadecimal character escape")
                elif i >= n or data[i] not in b'"\\/bfnrt':
                    raise bad("in string escape code")
            i += 1

    def digits(context: str) -> None:
        nonlocal i
        if i >= n or not 0x30 <= data[i] <= 0x39:
            raise bad(context)
        while i < n and 0x30 <= data[i] <= 0x39:
            i += 1

    def number() -> None:
        nonlocal i
        if data[i] == ord("-"):
            i += 1
        if i < n and data[i] == ord("0"):
            i += 1
        else:
            digits("in numeric literal")
        if i < n and data[i] == ord("."):
            i += 1
            digits("after decimal point in numeric literal")
        if i < n and data[i] in b"eE":
            i += 1
            if i < n and data[i] in b"+-":
                i += 1
            digits("in exponent of numeric literal")

    def object_key() -> str:
        """A key and its colon; ``i`` is at the key's opening quote."""
        nonlocal i
        if i >= n or data[i] != ord('"'):
            raise bad("looking for beginning of object key string")
        key = string()
        skip_ws()
        if i >= n or data[i] != ord(":"):
            raise bad("after object key")
        i += 1
        return key

    skip_ws()
    if stream and i >= n:
        raise _GoError("EOF")
    stack: list[list] = []  # open containers: [kind, items, start offset, pending key]
    while True:
        # A value starts here.
        skip_ws()
        if i >= n:
            raise bad("")
        c, start = data[i], i
        node = None
        if c in b"{[":
            if len(stack) >= 10000:
                raise bad("exceeded max depth")
            i += 1
            skip_ws()
            closing = b"}" if c == ord("{") else b"]"
            if i < n and data[i] == closing[0]:
                i += 1
                node = ("object" if c == ord("{") else "array", [], data[start:i])
            else:
                stack.append(["object" if c == ord("{") else "array", [], start, None])
                if c == ord("{"):
                    stack[-1][3] = object_key()
                continue
        elif c == ord('"'):
            node = ("string", string(), None)
        elif c == ord("-") or 0x30 <= c <= 0x39:
            number()
            node = ("number", None, None)
        elif c in _LITERALS:
            word, kind = _LITERALS[c]
            for expected in word[1:]:
                i += 1
                if i >= n or data[i] != expected:
                    raise bad(f"in literal {word.decode()} (expecting {chr(expected)!r})")
            i += 1
            node = (kind, word == b"true", None)
        else:
            raise bad("looking for beginning of value")
        if node[2] is None:
            node = (node[0], node[1], data[start:i])
        # The value ended: attach it, closing every container that ends too.
        while True:
            if not stack:
                if not stream:
                    skip_ws()
                    if i < n:
                        raise bad("after top-level value")
                return node
            kind, items, begin, key = stack[-1]
            items.append((key, node) if kind == "object" else node)
            skip_ws()
            if i >= n:
                raise bad("")
            if data[i] == ord(","):
                i += 1
                if kind == "object":
                    skip_ws()
                    stack[-1][3] = object_key()
                break
            if data[i] == (ord("}") if kind == "object" else ord("]")):
                i += 1
                stack.pop()
                node = (kind, items, data[begin:i])
                continue
            raise bad("after object key:value pair" if kind == "object" else "after array element")


def _json_unquote(raw: bytes) -> str:
    """A JSON string's text (escapes resolved; invalid UTF-8 and lone surrogates become U+FFFD)."""
    text = raw.decode("utf-8", "replace")
    simple = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

    def escape(match: re.Match) -> str:
        body = match[1]
        if body[0] != "u":
            return simple.get(body, body)
        units = [int(body[k:k + 4], 16) for k in range(1, len(body), 6)]
        if len(units) == 2 and 0xD800 <= units[0] < 0xDC00 <= units[1] < 0xE000:
            return chr(0x10000 + ((units[0] - 0xD800) << 10) + units[1] - 0xDC00)
        return "".join("\ufffd" if 0xD800 <= u < 0xE000 else chr(u) for u in units)

    return re.sub(r"\\(u[0-9a-fA-F]{4}(?:\\u[dD][c-fC-F][0-9a-fA-F]{2})?|.)", escape, text)


# Shapes: "string"; ("slice", elem); ("struct", name, type string, {json name: shape});
# ("unmarshaler", callable(raw bytes)) for types with their own UnmarshalJSON; "any".
_VALUE_NAMES = {"object": "object", "array": "array", "string": "string", "number": "number",
                "bool": "bool"}


def _type_string(shape) -> str:
    if shape == "string":
        return "string"
    if shape[0] == "slice":
        return "[]" + _type_string(shape[1])
    return shape[2]


def _decode(node, shape) -> None:
    """Decode ``node`` into ``shape`` as Go's decoder: raise the first type error (or the first
    UnmarshalJSON error, which stops decoding at once)."""
    saved: list[str] = []

    def walk(node, shape, struct: str | None, path: list[str]) -> None:
        kind, value, raw = node
        if shape == "any":
            return
        if shape[0] == "unmarshaler":
            shape[1](raw)
            return
        if kind == "null":
            return
        wanted = {"string": "string", "slice": "array", "struct": "object"}[
            "string" if shape == "string" else shape[0]]
        if kind != wanted:
            if not saved:
                where = (f"Go struct field {struct}.{'.'.join(path)}" if struct is not None
                         else "Go value")
                saved.append(f"json: cannot unmarshal {_VALUE_NAMES[kind]} into {where} "
                             f"of type {_type_string(shape)}")
            return
        if kind == "array":
            for item in value:
                walk(item, shape[1], struct, path)
        elif kind == "object":
            fields = shape[3]
            for key, item in value:
                name = key if key in fields else next(
                    (f for f in fields if f.casefold() == key.casefold()), None)
                if name is not None:
                    walk(item, fields[name], shape[1], path + [name])

    walk(node, shape, None, [])
    if saved:
        raise _GoError(saved[0])


def _decode_json(body: bytes, shape, *, stream: bool):
    """Parse ``body`` and decode it into ``shape``, raising Go's error; returns the parsed node."""
    node = _parse_json(body, stream)
    _decode(node, shape)
    return node


def _struct(name: str, fields: dict, type_string: str = "") -> tuple:
    return ("struct", name, type_string or f"server.{name}", fields)


_QUAY = _struct("payload", {"docker_url": "string", "updated_tags": ("slice", "string")})
_DOCKERHUB = _struct("payload", {
    "push_data": _struct("", {"tag": "string"}, 'struct { Tag string "json:\\"tag\\"" }'),
    "repository": _struct("", {"repo_url": "string"}, 'struct { URL string "json:\\"repo_url\\"" }'),
})
_NEXUS = _struct("payload", {"action": "string", "repositoryName": "string"})
_ACR = _struct("payload", {"action": "string", "target": _struct(
    "target", {"repository": "string", "tag": "string"})})


# ---------------------------------------------------------------------------------------------
# CDEvents (cdevents/sdk-go v0.4.1: NewFromJsonBytes + Validate)

_CDEVENT_TYPES = {}
for _spec in (
    "Artifact Deleted 0.1.0, Artifact Downloaded 0.1.0, Artifact Packaged 0.2.0, "
    "Artifact Published 0.2.0, Artifact Signed 0.2.0, Branch Created 0.2.0, Branch Deleted 0.2.0, "
    "Build Finished 0.2.0, Build Queued 0.2.0, Build Started 0.2.0, Change Abandoned 0.2.0, "
    "Change Created 0.3.0, Change Merged 0.2.0, Change Reviewed 0.2.0, Change Updated 0.2.0, "
    "Environment Created 0.2.0, Environment Deleted 0.2.0, Environment Modified 0.2.0, "
    "Incident Detected 0.2.0, Incident Reported 0.2.0, Incident Resolved 0.2.0, "
    "PipelineRun Finished 0.2.0, PipelineRun Queued 0.2.0, PipelineRun Started 0.2.0, "
    "Repository Created 0.2.0, Repository Deleted 0.2.0, Repository Modified 0.2.0, "
    "Service Deployed 0.2.0, Service Published 0.2.0, Service Removed 0.2.0, "
    "Service Rolledback 0.2.0, Service Upgraded 0.2.0, TaskRun Finished 0.2.0, "
    "TaskRun Started 0.2.0, TestCaseRun Finished 0.2.0, TestCaseRun Queued 0.2.0, "
    "TestCaseRun Skipped 0.1.0, TestCaseRun Started 0.2.0, TestOutput Published 0.2.0, "
    "TestSuiteRun Finished 0.2.0, TestSuiteRun Queued 0.2.0, TestSuiteRun Started 0.2.0, "
    "Ticket Closed 0.1.0, Ticket Created 0.1.0, Ticket Updated 0.1.0"
).split(", "):
    _subject, _predicate, _version = _spec.split()
    _CDEVENT_TYPES[(_subject.lower(), _predicate.lower())] = (_subject + _predicate, _version)

_CDEVENT_TYPE_RE = re.compile(r"dev\.cdevents\.([a-z]+)\.([a-z]+)\.(.*)", re.S)
_CDEVENT_CUSTOM_RE = re.compile(r"dev\.cdeventsx\.([a-z]+)-([a-z]+)\.([a-z]+)\.(.*)", re.S)
_SEMVER_NUM = r"(?:0|[1-9][0-9]*)"
_SEMVER_ID = r"(?:[0-9A-Za-z-]+)"
_SEMVER_RE = re.compile(
    rf"v({_SEMVER_NUM})(?:\.{_SEMVER_NUM}(?:\.{_SEMVER_NUM}(?:-{_SEMVER_ID}(?:\.{_SEMVER_ID})*)?"
    rf"(?:\+{_SEMVER_ID}(?:\.{_SEMVER_ID})*)?)?)?")
_RFC3339_RE = re.compile(
    r'"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})"')


@dataclass
class _CDEventType:
    subject: str = ""
    predicate: str = ""
    version: str = ""
    custom: str = ""

    def unversioned(self) -> str:
        root = "dev.cdeventsx" if self.custom else "dev.cdevents"
        subject = self.subject or "<undefined-subject>"
        if self.custom:
            subject = f"{self.custom}-{subject}"
        return f"{root}.{subject}.{self.predicate or '<undefined-predicate>'}"

    def __str__(self) -> str:
        return f"{self.unversioned()}.{self.version or '<undefined-version>'}"


def _semver_major(version: str) -> str:
    match = _SEMVER_RE.fullmatch("v" + version)
    return "v" + match[1] if match else ""


def _parse_cdevent_type(raw: bytes, into: list) -> None:
    """CDEventType.UnmarshalJSON: the raw JSON value with its quotes trimmed must be a type."""
    if raw in (b"null", b'""'):
        return
    text = raw.strip(b'"').decode("utf-8", "surrogateescape")
    if match := _CDEVENT_TYPE_RE.fullmatch(text):
        into.append(_CDEventType(match[1], match[2], match[3]))
    elif match := _CDEVENT_CUSTOM_RE.fullmatch(text):
        into.append(_CDEventType(match[2], match[3], match[4], match[1]))
    else:
        raise _GoError(f"cannot parse event type {text}")


def _parse_timestamp(raw: bytes) -> None:
    """time.Time.UnmarshalJSON (RFC 3339); Go's detailed layout message is approximated."""
    if raw == b"null":
        return
    if len(raw) < 2 or raw[:1] != b'"' or raw[-1:] != b'"':
        raise _GoError("Time.UnmarshalJSON: input is not a JSON string")
    if not _RFC3339_RE.fullmatch(raw.decode("utf-8", "replace")):
        raise _GoError(f'parsing time {_go_quote(raw[1:-1])} as "2006-01-02T15:04:05Z07:00": '
                       "not an RFC 3339 timestamp")


def _uri_reference_ok(text: str) -> bool:
    """Whether Go's ``url.Parse`` accepts ``text`` (control characters, escapes, scheme, colon)."""
    if any(ch < " " or ch == "\x7f" for ch in text):
        return False
    if re.search(r"%(?![0-9a-fA-F]{2})", text.split("#", 1)[0].split("?", 1)[0]):
        return False
    if text.startswith(":"):
        return False
    scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*:", text)
    first = text.split("?", 1)[0].split("#", 1)[0]
    return bool(scheme) or first.startswith("/") or ":" not in first.split("/", 1)[0]


def _validate_cdevent(body: bytes) -> None:
    """NewFromJsonBytes then Validate, as the CDEvents SDK v0.4.1 does (see the module notes)."""
    parsed: list[_CDEventType] = []
    context = _struct("Context", {
        "version": "string", "id": "string", "source": "string",
        "type": ("unmarshaler", lambda raw: _parse_cdevent_type(raw, parsed)),
        "timestamp": ("unmarshaler", _parse_timestamp),
    }, "api.Context")
    node = _decode_json(body, _struct(
        "", {"context": context}, 'struct { Context api.Context "json:\\"context\\"" }'),
        stream=False)
    etype = parsed[-1] if parsed else _CDEventType()
    if etype.custom:
        go_name, sdk_version, schema = "CustomType", "0.4.1", "custom"
    else:
        if (etype.subject, etype.predicate) not in _CDEVENT_TYPES:
            raise _GoError(f"unknown event type {etype}")
        go_name, sdk_version = _CDEVENT_TYPES[(etype.subject, etype.predicate)]
        schema = f"{etype.subject}-{etype.predicate}-event"
        if _semver_major(etype.version) != _semver_major(sdk_version):
            raise _GoError(f"sdk event version {sdk_version} not compatible with {etype.version}")
    suffix = "V" + sdk_version.replace(".", "_")
    event_name = f"{go_name}Event{suffix}"
    content = "any" if etype.custom else _struct(
        "", {}, f"api.{go_name}SubjectContent{suffix}")
    subject = _struct(f"{go_name}Subject{suffix}", {
        "id": "string", "source": "string", "type": "string", "content": content},
        f"api.{go_name}Subject{suffix}")
    context_v04 = _struct("ContextV04", {**context[3], "chainId": "string", "links": "any",
                                         "schemaUri": "string"}, "api.ContextV04")
    _decode(node, _struct(event_name, {"context": context_v04, "subject": subject,
                                       "customData": "any", "customDataContentType": "string"},
                          f"api.{event_name}"))
    # The event as the typed struct holds it (the last duplicate of a key wins).
    strings = {}
    for section in ("context", "subject"):
        fields = {}
        for key, value in (_object_items(node, section)):
            if value[0] == "string":
                fields[key] = value[1]
        strings[section] = fields
    ctx, subj = strings["context"], strings["subject"]
    for where, text in (("Context.Context.Source", ctx.get("source", "")),
                        ("Subject.SubjectBase.Reference.Source", subj.get("source", ""))):
        if not _uri_reference_ok(text):
            field = where.rsplit(".", 1)[1]
            raise _GoError(f"Key: '{event_name}.{where}' Error:Field validation for '{field}' "
                           "failed on the 'uri-reference' tag")
    location = f"https://cdevents.dev/0.4.1/schema/{schema}#"

    def schema_error(pointer: str, message: str) -> _GoError:
        return _GoError(f"jsonschema validation failed with '{location}'\n- at '{pointer}': {message}")

    for pointer, text in (("/context/version", ctx.get("version", "")),
                          ("/context/id", ctx.get("id", "")),
                          ("/context/source", ctx.get("source", ""))):
        if text == "":
            raise schema_error(pointer, "minLength: got 0, want 1")
    if not etype.custom and (etype.version != sdk_version):
        wanted = f"dev.cdevents.{etype.subject}.{etype.predicate}.{sdk_version}"
        raise schema_error("/context/type", f"value must be '{wanted}'")
    if subj.get("id", "") == "":
        raise schema_error("/subject/id", "minLength: got 0, want 1")
    if not etype.custom and subj.get("type", "") != etype.subject:
        raise schema_error("/subject/type", f"value must be '{etype.subject}'")
    if ctx.get("schemaUri"):
        raise _GoError(f"schema with id {ctx['schemaUri']} could not be found in the local registry")


def _object_items(node, section: str):
    """The (key, node) pairs of ``node[section]`` folded like Go's case-insensitive field match,
    the last occurrence winning."""
    items: dict[str, tuple] = {}
    for key, value in node[1] if node[0] == "object" else []:
        if key.casefold() == section and value[0] == "object":
            for inner_key, inner in value[1]:
                items[inner_key.casefold()] = inner
    mapping = {"schemauri": "schemaUri", "chainid": "chainId"}
    return [(mapping.get(k, k), v) for k, v in items.items()]


# ---------------------------------------------------------------------------------------------
# Per-type validation


def _signed(request: WebhookRequest, token: str, what: str) -> None:
    try:
        _validate_payload(request, token)
    except _GoError as err:
        raise ReceiverValidationError(f"the {what} signature header is invalid, err: {err}") from None


def _decoded(body: bytes, shape, message: str, *, stream: bool = True, detail: bool = True) -> None:
    try:
        _decode_json(body, shape, stream=stream)
    except _GoError as err:
        raise ReceiverValidationError(f"{message}: {err}" if detail else message) from None


def _generic_hmac(request, token, events):
    try:
        _validate_signature(request.header("X-Signature"), request.body, token)
    except _GoError as err:
        raise ReceiverValidationError(f"unable to validate HMAC signature: {err}") from None


def _github(request, token, events):
    _signed(request, token, "GitHub")
    _check_event(request.header("X-GitHub-Event"), events, "GitHub event")


def _gitlab(request, token, events):
    if request.header("X-Gitlab-Token") != token:
        raise ReceiverValidationError("the X-Gitlab-Token header value does not match the receiver token")
    _check_event(request.header("X-Gitlab-Event"), events, "GitLab event")


def _bitbucket(request, token, events):
    _signed(request, token, "Bitbucket server")
    _check_event(request.header("X-Event-Key"), events, "Bitbucket server event")


def _cdevents(request, token, events):
    try:
        _validate_cdevent(request.body)
    except _GoError as err:
        raise ReceiverValidationError(f"unable to validate CDEvent event: {err}") from None
    _check_event(request.header("Ce-Type"), events, "CDEvent")


def _harbor(request, token, events):
    if request.header("Authorization") != token:
        raise ReceiverValidationError(
            "the Harbor Authorization header value does not match the receiver token")


def _nexus(request, token, events):
    signature = request.header("X-Nexus-Webhook-Signature")
    if not signature:
        raise ReceiverValidationError("the Nexus signature is missing from header")
    expected = hmac.new(_go_bytes(token), request.body, hashlib.sha1).hexdigest()
    if not hmac.compare_digest(_go_bytes(signature), expected.encode()):
        raise ReceiverValidationError("invalid Nexus signature")
    _decoded(request.body, _NEXUS, "cannot decode Nexus webhook payload", stream=False)


_VALIDATORS: dict[str, Callable[[WebhookRequest, str, list[str]], None]] = {
    "generic": lambda request, token, events: None,
    "generic-hmac": _generic_hmac,
    "github": _github,
    "gitlab": _gitlab,
    "bitbucket": _bitbucket,
    "cdevents": _cdevents,
    "quay": lambda r, t, e: _decoded(r.body, _QUAY, "cannot decode Quay webhook payload"),
    "harbor": _harbor,
    "dockerhub": lambda r, t, e: _decoded(r.body, _DOCKERHUB, "cannot decode DockerHub webhook payload",
                                          detail=False),
    "nexus": _nexus,
    "acr": lambda r, t, e: _decoded(r.body, _ACR, "cannot decode ACR webhook payload"),
}


def validate(receiver_type: str, request: WebhookRequest, *, token: str, events: list[str]) -> None:
    """Accept the webhook request for a Receiver of ``receiver_type`` or raise
    :class:`ReceiverValidationError`, as Flux's ``ReceiverServer.validate`` does.

    ``token`` is the Receiver Secret's ``token``; ``events`` is ``spec.events`` (empty: all
    events accepted; Flux has no special case for GitHub's ``ping``).
    """
    if len(request.body) > MAX_REQUEST_SIZE:
        raise ReceiverValidationError(
            f"request body exceeds the maximum size of {MAX_REQUEST_SIZE} bytes")
    reason = unsupported_reason(receiver_type)
    if reason:
        raise ReceiverValidationError(reason)
    _VALIDATORS[receiver_type](request, token, events or [])
