"""The chat notifiers: Slack, Discord, Microsoft Teams, Google Chat, Telegram, Matrix, Rocket.Chat, Webex and
Lark, each sending the JSON that Flux's notification-controller (v1.7.5) sends to that service.

What Flux does, and so this module does:

* an address is checked as Go's ``url.ParseRequestURI`` checks it, with the notifier's own message
  (Telegram takes no address: it always talks to :data:`TELEGRAM_API_URL`);
* events that only exist to update commit statuses (``commit_status: update``) are dropped, except by Matrix;
* metadata becomes one field per key. Go iterates over the map in random order; fluxpy sorts the keys (one
  of the orders Flux may send). The Teams Adaptive Card puts ``summary`` first, as Flux does;
* the Provider secret's ``headers`` are *not* sent: Flux applies them only to its generic providers;
* proxy and TLS settings are used only where Flux uses them (Discord, Google Chat and Telegram ignore
  ``certSecretRef``; Matrix and Lark ignore the proxy; Lark ignores both).
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import posixpath
import re
import string
import urllib.parse
from typing import Any, Callable, Mapping

from controllers.notification.event import SEVERITY_ERROR, Event, go_json
from controllers.notification.notifiers import NotifierError, NotifierOptions, is_commit_status_update
from controllers.notification.notifiers import http

#: Telegram's Bot API (a module attribute so tests can point it at a local server)
TELEGRAM_API_URL = "https://api.telegram.org"
#: Slack's Web API method; a Slack provider posting to exactly this URL checks the ``ok`` of the answer
SLACK_POST_MESSAGE_URL = "https://slack.com/api/chat.postMessage"
_TELEGRAM_SPECIAL = re.compile(r"([\\.\-_\[\]()~>`#+=|{}!*])")


# ---------------------------------------------------------------------- shared message pieces

def object_title(event: Event, separator: str = ".") -> str:
    """``kind/name.namespace`` with the kind lower-cased (Telegram separates the namespace with ``/``)."""
    return f"{event.kind.lower()}/{event.name}{separator}{event.namespace}"


def by_severity(event: Event, info: str, error: str) -> str:
    """``error`` for an error event, else ``info`` (colours, emojis)."""
    return error if event.severity == SEVERITY_ERROR else info


def metadata_items(event: Event) -> list[tuple[str, str]]:
    """The metadata as (key, value) pairs in the order fluxpy sends them: sorted by key."""
    return sorted(event.metadata.items())


def metadata_lines(event: Event, template: str, escape: Callable[[str], str] = str) -> str:
    """One ``template % (key, value)`` per metadata entry, concatenated (values passed through ``escape``)."""
    return "".join(template % (escape(k), escape(v)) for k, v in metadata_items(event))


def telegram_escape(text: str) -> str:
    """A backslash before every character MarkdownV2 reserves (Flux's ``escapeString``)."""
    return _TELEGRAM_SPECIAL.sub(r"\\\1", text)


def slack_payload(event: Event, *, channel: str, username: str, colors: tuple[str, str]) -> dict[str, Any]:
    """Flux's ``SlackPayload`` with one attachment (Slack, Discord and Rocket.Chat): ``colors`` = (info, error)."""
    attachment = {"color": by_severity(event, *colors), "author_name": object_title(event), "text": event.message,
                  "mrkdwn_in": ["text"],
                  "fields": [{"title": k, "value": v, "short": False} for k, v in metadata_items(event)]}
    return {"channel": channel, "username": username, "icon_url": "", "icon_emoji": "", "attachments": [attachment]}


# ---------------------------------------------------------------------- URLs as Go's net/url sees them

_USERINFO_OK = set(string.ascii_letters + string.digits + "-._:~!$&'()*+,;=%@")
_HOST_OK = set(string.ascii_letters + string.digits + "-._~!$&'()*+,;=:[]<>\"%")
_WIRE_SAFE = "!#$%&'()*+,-./:;=?@[]_~"


def _go_quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def parse_request_uri(raw: str) -> str | None:
    """Why Go's ``url.ParseRequestURI(raw)`` fails (its ``parse "raw": ...`` text), or None if it succeeds."""
    def fail(reason: str) -> str:
        return f"parse {_go_quote(raw)}: {reason}"

    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in raw):
        return fail("net/url: invalid control character in URL")
    if raw == "":
        return fail("empty url")
    if raw == "*":
        return None
    scheme, rest = "", raw
    match = re.match(r"[A-Za-z][A-Za-z0-9+.\-]*:", raw)
    if raw.startswith(":"):
        return fail("missing protocol scheme")
    if match:
        scheme, rest = match.group()[:-1], raw[match.end():]
    rest = rest.partition("?")[0]
    if not rest.startswith("/"):
        return None if scheme else fail("invalid URI for request")
    if scheme and rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        rest = slash + path
        userinfo, at, host = authority.rpartition("@")
        if at and not set(userinfo) <= _USERINFO_OK:
            return fail("net/url: invalid userinfo")
        if host.startswith("[") and "]" not in host:
            return fail("missing ']' in host")
        if host.startswith("["):
            colon_port = host[host.index("]") + 1:]
        else:
            colon_port = host[host.rindex(":"):] if ":" in host else ""
        if colon_port and not re.fullmatch(r":[0-9]*", colon_port):
            return fail(f"invalid port {_go_quote(colon_port)} after host")
        for char in host:
            if ord(char) < 0x80 and char not in _HOST_OK:
                return fail(f"invalid character {_go_quote(char)} in host name")
        rest = host + rest
    bad = re.search(r"%(?![0-9A-Fa-f]{2})", rest)
    if bad:
        return fail(f"invalid URL escape {_go_quote(rest[bad.start():bad.start() + 3])}")
    return None


def _checked(raw: str, message: str, *, with_reason: bool = True) -> str:
    """``raw`` if Go would parse it, else :class:`NotifierError` ``message raw[: 'reason']``."""
    reason = parse_request_uri(raw)
    if reason is not None:
        raise NotifierError(f"{message} {raw}: '{reason}'" if with_reason else f"{message} {raw}")
    return raw


def _join_path(address: str, element: str) -> str:
    """``address`` with ``element`` appended to its path, cleaned as Go's ``path.Join`` cleans it."""
    parts = urllib.parse.urlsplit(address)
    path = posixpath.normpath("/" + parts.path.lstrip("/") + "/" + element)
    return urllib.parse.urlunsplit(parts._replace(path="/" + path.lstrip("/")))


def _wire(address: str) -> str:
    """The address as Go puts it on the wire: characters a URL may not hold percent-encoded."""
    parts = urllib.parse.urlsplit(address)
    return urllib.parse.urlunsplit(parts._replace(path=urllib.parse.quote(parts.path, safe=_WIRE_SAFE),
                                                  query=urllib.parse.quote(parts.query, safe=_WIRE_SAFE)))


# ---------------------------------------------------------------------- the notifier

def _flux_validator(check: Callable[[http.Response], None]) -> Callable[[http.Response], None]:
    """``check`` with Flux's ``request failed: `` in front of what it refuses."""
    def validate(response: http.Response) -> None:
        try:
            check(response)
        except NotifierError as exc:
            raise NotifierError(f"request failed: {exc}") from None
    return validate


def slack_api_response(response: http.Response) -> None:
    """Slack's ``chat.postMessage`` answers 200 and says in its JSON whether it worked (Flux's check)."""
    try:
        answer, _ = json.JSONDecoder().raw_decode(response.body.decode("utf-8", "replace").lstrip())
    except ValueError as exc:
        raise NotifierError(f"unable to unmarshal response body: {exc}") from None
    if answer is None:
        answer = {}
    if not isinstance(answer, dict):
        raise NotifierError("unable to unmarshal response body: the answer is not a JSON object")
    fields = {k.lower(): v for k, v in answer.items()}
    ok, error = fields.get("ok", False), fields.get("error", "")
    if not isinstance(ok, bool) or not isinstance(error, str):
        raise NotifierError("unable to unmarshal response body: 'ok' must be a boolean and 'error' a string")
    if not ok:
        raise NotifierError(f"Slack responded with error: {error}")


@dataclasses.dataclass
class ChatNotifier:
    """One chat service: ``build`` makes the payload of an event, ``address`` where it goes."""

    url: str
    build: Callable[[Event], Any]
    options: NotifierOptions
    address: Callable[[Event], str] | None = None
    method: str = "POST"
    headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    validate: Callable[[http.Response], None] = http.default_validator
    error_prefix: str = "postMessage failed: "
    skip_commit_status_updates: bool = True

    def post(self, event: Event) -> None:
        """Send ``event``; dropped silently when it is a commit status update (see the module doc)."""
        if self.skip_commit_status_updates and is_commit_status_update(event):
            return
        try:
            address = self.address(event) if self.address else self.url
            http.request(self.method, _wire(address), go_json(self.build(event)), options=self.options,
                         headers={"Content-Type": "application/json", **self.headers},
                         validate=_flux_validator(self.validate))
        except NotifierError as exc:
            raise NotifierError(f"{self.error_prefix}{exc}") from None


def _transport(options: NotifierOptions, *, proxy: bool, tls: bool) -> NotifierOptions:
    """``options`` without the proxy and/or TLS settings Flux does not give this notifier."""
    return dataclasses.replace(options, proxy_url=options.proxy_url if proxy else "",
                               tls=options.tls if tls else None)


# ---------------------------------------------------------------------- the factories

def slack(options: NotifierOptions) -> ChatNotifier:
    """Slack (incoming webhook, or ``chat.postMessage`` with a bot token); the username defaults to the
    reporting controller."""
    url = _checked(options.url, "invalid Slack hook URL")
    return ChatNotifier(
        url, lambda e: slack_payload(e, channel=options.channel, username=options.username or e.reporting_controller,
                                     colors=("good", "danger")),
        _transport(options, proxy=True, tls=True),
        headers={"Authorization": f"Bearer {options.token}"} if options.token else {},
        validate=slack_api_response if url == SLACK_POST_MESSAGE_URL else http.default_validator)


def discord(options: NotifierOptions) -> ChatNotifier:
    """Discord through its Slack-compatible endpoint (``/slack`` appended); the channel is not sent."""
    url = _checked(options.url, "invalid Discord hook URL")
    if not url.endswith("/slack"):
        url = _join_path(url, "slack")
    return ChatNotifier(
        url, lambda e: slack_payload(e, channel="", username=options.username or e.reporting_controller,
                                     colors=("good", "danger")),
        _transport(options, proxy=True, tls=False))


def rocket(options: NotifierOptions) -> ChatNotifier:
    """Rocket.Chat (Slack payload; the username is sent as given, even empty)."""
    url = _checked(options.url, "invalid Rocket hook URL")
    return ChatNotifier(
        url, lambda e: slack_payload(e, channel=options.channel, username=options.username,
                                     colors=("#0076D7", "#FF0000")),
        _transport(options, proxy=True, tls=True))


def _teams_message_card(event: Event) -> dict[str, Any]:
    title = object_title(event)
    return {"@type": "MessageCard", "@context": "http://schema.org/extensions",
            "themeColor": by_severity(event, "0076D7", "FF0000"), "summary": title,
            "sections": [{"activityTitle": event.message, "activitySubtitle": title,
                          "facts": [{"name": k, "value": v} for k, v in metadata_items(event)]}]}


def _teams_adaptive_card(event: Event) -> dict[str, Any]:
    def text_block(text: str, **style: Any) -> dict[str, Any]:
        fields = {"text": text, "size": style.get("size"), "weight": style.get("weight"),
                  "color": style.get("color"), "wrap": True}
        return {"type": "TextBlock", **{k: v for k, v in fields.items() if v}}

    items = sorted((k, v) for k, v in event.metadata.items() if k != "summary")
    if "summary" in event.metadata:
        items.insert(0, ("summary", event.metadata["summary"]))
    fact_set: dict[str, Any] = {"type": "FactSet"}
    if items:
        fact_set["facts"] = [{"title": k, "value": v} for k, v in items]
    body = [{"type": "Container", "items": [
        text_block(object_title(event), size="large", weight="bolder"),
        text_block(event.message, color=by_severity(event, "", "attention")),
        fact_set]}]
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive",
        "content": {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                    "version": "1.4", "body": body, "msteams": {"width": "Full"}}}]}


def msteams(options: NotifierOptions) -> ChatNotifier:
    """Microsoft Teams: the legacy MessageCard for Office 365 connector URLs (``*.webhook.office.com``),
    an Adaptive Card for every other URL (Workflows / Power Automate)."""
    url = _checked(options.url, "invalid MS Teams webhook URL")
    host = urllib.parse.urlsplit(url).netloc.rpartition("@")[2].split(":")[0]
    build = _teams_message_card if host.endswith(".webhook.office.com") else _teams_adaptive_card
    return ChatNotifier(url, build, _transport(options, proxy=True, tls=True))


def _google_chat_card(event: Event) -> dict[str, Any]:
    text = event.message
    if event.severity == SEVERITY_ERROR:
        text = f'<font color="#ff0000">{event.message}</font>'
    sections = [{"header": "", "widgets": [{"textParagraph": {"text": text}, "keyValue": None}]}]
    if event.metadata:
        sections.append({"header": "", "widgets": [
            {"textParagraph": None, "keyValue": {"topLabel": k, "content": v, "contentMultiline": False,
                                                 "bottomLabel": None, "icon": None}}
            for k, v in metadata_items(event)]})
    header = {"title": object_title(event), "subtitle": event.reporting_controller, "imageUrl": None,
              "imageStyle": None}
    return {"cards": [{"header": header, "sections": sections}]}


def googlechat(options: NotifierOptions) -> ChatNotifier:
    """Google Chat (a card: the message, then the metadata as key/value widgets)."""
    url = _checked(options.url, "invalid Google Chat hook URL", with_reason=False)
    return ChatNotifier(url, _google_chat_card, _transport(options, proxy=True, tls=False))


def telegram(options: NotifierOptions) -> ChatNotifier:
    """Telegram's ``sendMessage`` (MarkdownV2) to the chat ``channel`` (``chat:thread`` for a forum topic),
    as the bot ``token``; the Provider's address is not used."""
    if not options.channel:
        raise NotifierError("empty Telegram channel")
    if not options.token:
        raise NotifierError("empty Telegram token")
    base = f"{TELEGRAM_API_URL}/bot{options.token}"
    chat_id, has_thread, thread = options.channel.partition(":")

    def address(_event: Event) -> str:
        reason = parse_request_uri(base)
        if reason is not None:
            raise NotifierError(f"failed to construct API URL: {reason}")
        return _join_path(base, "sendMessage")

    def build(event: Event) -> dict[str, Any]:
        heading = f"{by_severity(event, '💫', '🚨')} {object_title(event, '/')}"
        text = (f"*{telegram_escape(heading)}*\n{telegram_escape(event.message)}\n"
                + metadata_lines(event, "\\- *%s*: %s\n", telegram_escape))
        payload = {"chat_id": chat_id}
        if has_thread and thread:
            payload["message_thread_id"] = thread
        return {**payload, "text": text, "parse_mode": "MarkdownV2"}

    return ChatNotifier(base, build, _transport(options, proxy=True, tls=False), address=address, error_prefix="")


def matrix_transaction_id(event: Event) -> str:
    """The SHA-1 of the event's JSON: the same event is one Matrix transaction (sent once)."""
    return hashlib.sha1(event.encode()).hexdigest()


def matrix(options: NotifierOptions) -> ChatNotifier:
    """Matrix: ``PUT <homeserver>/_matrix/client/r0/rooms/<channel>/send/m.room.message/<txn>`` with the
    access ``token``. Commit status updates are sent too, as Flux sends them."""
    url = _checked(options.url, "invalid Matrix homeserver URL")

    def build(event: Event) -> dict[str, Any]:
        heading = f"{by_severity(event, '💫', '🚨')} {object_title(event)}"
        return {"body": f"{heading}\n{event.message}\n" + metadata_lines(event, "- %s: %s\n"), "msgtype": "m.text"}

    return ChatNotifier(
        url, build, _transport(options, proxy=False, tls=True), method="PUT",
        address=lambda e: (f"{url}/_matrix/client/r0/rooms/{options.channel}/send/m.room.message/"
                           f"{matrix_transaction_id(e)}"),
        headers={"Authorization": f"Bearer {options.token}"}, skip_commit_status_updates=False)


def webex(options: NotifierOptions) -> ChatNotifier:
    """Webex messages API (``https://webexapis.com/v1/messages``): markdown to the room ``channel``."""
    url = _checked(options.url, "invalid Webex hook URL")

    def build(event: Event) -> dict[str, Any]:
        markdown = (f"{by_severity(event, '✅', '💣')} **{object_title(event)}**\n{event.message}\n"
                    + metadata_lines(event, ">**%s**: %s\n"))
        return {"roomId": options.channel, "markdown": markdown} if options.channel else {"markdown": markdown}

    return ChatNotifier(url, build, _transport(options, proxy=True, tls=True),
                        headers={"Authorization": f"Bearer {options.token}"})


def lark(options: NotifierOptions) -> ChatNotifier:
    """Lark / Feishu interactive card (Flux's refusal names Slack: kept)."""
    url = _checked(options.url, "invalid Slack hook URL", with_reason=False)

    def build(event: Event) -> dict[str, Any]:
        title = {"tag": "plain_text", "content": f"{by_severity(event, '💫', '🚨')} {object_title(event)}"}
        content = f"**{event.message}**\n\n" + metadata_lines(event, "%s: %s\n")
        return {"msg_type": "interactive", "card": {
            "config": {"wide_screen_mode": True},
            "header": {"title": title, "template": by_severity(event, "turquoise", "red")},
            "elements": [{"tag": "div", "text": {"tag": "lark_md", "content": content}}]}}

    return ChatNotifier(url, build, _transport(options, proxy=False, tls=False), error_prefix="")
