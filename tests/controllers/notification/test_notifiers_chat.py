"""The chat notifiers (slack, discord, msteams, googlechat, telegram, matrix, rocket, webex, lark) against a
recording webhook: the exact bytes, method, path and headers Flux v1.7.5 sends, and what their factories
refuse."""
from __future__ import annotations

import hashlib

import pytest

from controllers.notification.event import Event
from controllers.notification.notifiers import NotifierError, NotifierOptions, chat, http, new_notifier
from servers.capture import capture_server  # noqa: F401

MESSAGE = '"Fetched \\u003crevision\\u003e \\u0026 more"'
TITLE = "gitrepository/webapp.gitops-system"
SLACK_FIELDS = ('[{"title":"kubernetes.io/somekey","value":"some.value","short":false},'
                '{"title":"test","value":"metadata","short":false}]')


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(http, "RETRY_WAIT_MIN", 0.01)
    monkeypatch.setattr(http, "RETRY_WAIT_MAX", 0.02)


def event(severity="info", metadata=None):
    return Event(involved_object={"kind": "GitRepository", "namespace": "gitops-system", "name": "webapp",
                                  "apiVersion": "source.toolkit.fluxcd.io/v1"},
                 severity=severity, timestamp="2026-12-05T10:00:00Z", message="Fetched <revision> & more",
                 reason="Succeeded", reporting_controller="source-controller",
                 metadata={"test": "metadata", "kubernetes.io/somekey": "some.value"} if metadata is None
                 else metadata)


def send(provider_type, capture, path="/hook", *, ev=None, **options):
    """Post one event; the last request received (method, path, lower-cased headers, body)."""
    options.setdefault("url", capture.url + path)
    new_notifier(provider_type, NotifierOptions(**options)).post(ev or event())
    request = capture.received()[-1]
    return request.method, request.path, {k.lower(): v for k, v in request.headers.items()}, request.body


def test_slack_posts_the_slack_payload_with_the_bot_token_and_no_secret_headers(capture_server):
    method, path, headers, body = send("slack", capture_server, "/services/T0/B0/x?a=1", ev=event("error"),
                                       channel="general", token="xoxb-1", headers={"X-Extra": "not sent"})
    assert (method, path) == ("POST", "/services/T0/B0/x?a=1")
    assert headers["content-type"] == "application/json"
    assert headers["authorization"] == "Bearer xoxb-1"
    assert "x-extra" not in headers  # Flux applies the secret's headers to generic providers only
    assert body == ('{"channel":"general","username":"source-controller","icon_url":"","icon_emoji":"",'
                    '"attachments":[{"color":"danger","author_name":"gitrepository/webapp.gitops-system",'
                    f'"text":{MESSAGE},"mrkdwn_in":["text"],"fields":{SLACK_FIELDS}}}]}}').encode()


def test_slack_web_api_answers_are_checked_for_ok(capture_server, monkeypatch):
    monkeypatch.setattr(chat, "SLACK_POST_MESSAGE_URL", capture_server.url + "/api/chat.postMessage")
    notifier = chat.slack(NotifierOptions(url=capture_server.url + "/api/chat.postMessage", username="flux"))
    with pytest.raises(NotifierError, match="^postMessage failed: request failed: unable to unmarshal response"):
        notifier.post(event())  # the capture server answers "ok", which is not Slack's JSON
    assert b'"username":"flux"' in capture_server.received()[0].body
    assert "authorization" not in {k.lower() for k in capture_server.received()[0].headers}
    chat.slack_api_response(http.Response(200, {}, b'{\n  "ok": true\n}'))
    with pytest.raises(NotifierError, match="^Slack responded with error: too_many_attachments$"):
        chat.slack_api_response(http.Response(200, {}, b'{"ok": false, "error": "too_many_attachments"}'))


def test_discord_posts_the_slack_payload_to_the_slack_endpoint_without_channel(capture_server):
    method, path, headers, body = send("discord", capture_server, "/api/webhooks/1/tok?wait=true",
                                       channel="ignored", username="flux")
    assert (method, path, headers["content-type"]) == ("POST", "/api/webhooks/1/tok/slack?wait=true",
                                                       "application/json")
    assert body == ('{"channel":"","username":"flux","icon_url":"","icon_emoji":"","attachments":[{"color":'
                    f'"good","author_name":"{TITLE}","text":{MESSAGE},"mrkdwn_in":["text"],'
                    f'"fields":{SLACK_FIELDS}}}]}}').encode()
    assert chat.discord(NotifierOptions(url="https://d.example/x/slack")).url == "https://d.example/x/slack"
    assert chat.discord(NotifierOptions(url="https://d.example")).url == "https://d.example/slack"


def test_rocket_posts_the_slack_payload_with_rocket_colours_and_the_username_as_given(capture_server):
    method, path, _, body = send("rocket", capture_server, "/hooks/abc", ev=event(metadata={}), channel="#ops")
    assert (method, path) == ("POST", "/hooks/abc")
    assert body == ('{"channel":"#ops","username":"","icon_url":"","icon_emoji":"","attachments":[{"color":'
                    f'"#0076D7","author_name":"{TITLE}","text":{MESSAGE},"mrkdwn_in":["text"],'
                    '"fields":[]}]}').encode()
    assert b'"color":"#FF0000"' in chat.go_json(chat.rocket(NotifierOptions(url="http://r")).build(event("error")))


def test_msteams_adaptive_card_for_workflow_urls_and_message_card_for_office_connectors(capture_server):
    ev = event("error", metadata={"test": "metadata", "summary": "Cluster: prod", "kubernetes.io/somekey": "v"})
    method, path, headers, body = send("msteams", capture_server, "/workflows/x/triggers/manual", ev=ev)
    assert (method, path, headers["content-type"]) == ("POST", "/workflows/x/triggers/manual", "application/json")
    assert body == (
        '{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":'
        '{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json","type":"AdaptiveCard","version":"1.4",'
        '"body":[{"type":"Container","items":[{"type":"TextBlock","text":"gitrepository/webapp.gitops-system",'
        f'"size":"large","weight":"bolder","wrap":true}},{{"type":"TextBlock","text":{MESSAGE},'
        '"color":"attention","wrap":true},{"type":"FactSet","facts":[{"title":"summary","value":"Cluster: prod"},'
        '{"title":"kubernetes.io/somekey","value":"v"},{"title":"test","value":"metadata"}]}]}],'
        '"msteams":{"width":"Full"}}}]}').encode()

    legacy = chat.msteams(NotifierOptions(url="https://xxx.webhook.office.com:443/webhookb2/1"))
    assert chat.msteams(NotifierOptions(url="https://xxx-webhook.office.com/x")).build is not legacy.build
    legacy.url = capture_server.url + "/webhookb2/1"
    legacy.post(event())
    assert capture_server.received()[1].body == (
        '{"@type":"MessageCard","@context":"http://schema.org/extensions","themeColor":"0076D7",'
        f'"summary":"{TITLE}","sections":[{{"activityTitle":{MESSAGE},"activitySubtitle":"{TITLE}",'
        '"facts":[{"name":"kubernetes.io/somekey","value":"some.value"},{"name":"test","value":"metadata"}]}]}'
    ).encode()


def test_googlechat_posts_a_card_with_nulls_and_the_error_in_red(capture_server):
    method, path, _, body = send("googlechat", capture_server, "/v1/spaces/A/messages?key=k", ev=event("error"))
    assert (method, path) == ("POST", "/v1/spaces/A/messages?key=k")
    assert body == (
        f'{{"cards":[{{"header":{{"title":"{TITLE}","subtitle":"source-controller","imageUrl":null,'
        '"imageStyle":null},"sections":[{"header":"","widgets":[{"textParagraph":{"text":"\\u003cfont '
        'color=\\"#ff0000\\"\\u003eFetched \\u003crevision\\u003e \\u0026 more\\u003c/font\\u003e"},'
        '"keyValue":null}]},{"header":"","widgets":[{"textParagraph":null,"keyValue":{"topLabel":'
        '"kubernetes.io/somekey","content":"some.value","contentMultiline":false,"bottomLabel":null,'
        '"icon":null}},{"textParagraph":null,"keyValue":{"topLabel":"test","content":"metadata",'
        '"contentMultiline":false,"bottomLabel":null,"icon":null}}]}]}]}').encode()
    no_metadata = chat.go_json(chat.googlechat(NotifierOptions(url="http://g")).build(event(metadata={})))
    assert no_metadata.count(b'"header":""') == 1


def test_telegram_sends_markdown_v2_to_the_bot_api_with_the_forum_thread(capture_server, monkeypatch):
    monkeypatch.setattr(chat, "TELEGRAM_API_URL", capture_server.url)
    method, path, headers, body = send("telegram", capture_server, url="https://ignored.example",
                                       channel="-100123:42", token="123:AbC-d_e")
    assert (method, path, headers["content-type"]) == ("POST", "/bot123:AbC-d_e/sendMessage", "application/json")
    assert body == (r'{"chat_id":"-100123","message_thread_id":"42","text":"*💫 gitrepository/webapp/gitops\\-system*'
                    r'\nFetched \u003crevision\\\u003e \u0026 more\n\\- *kubernetes\\.io/somekey*: some\\.value\n'
                    r'\\- *test*: metadata\n","parse_mode":"MarkdownV2"}').encode()
    plain = chat.go_json(chat.telegram(NotifierOptions(channel="@flux", token="t")).build(event(metadata={})))
    assert plain.startswith(b'{"chat_id":"@flux","text":')
    for options, message in ((NotifierOptions(token="t"), "empty Telegram channel"),
                             (NotifierOptions(channel="c"), "empty Telegram token")):
        with pytest.raises(NotifierError, match=f"^{message}$"):
            chat.telegram(options)


def test_matrix_puts_the_message_as_a_transaction_named_by_the_event_hash(capture_server):
    ev = event("error", metadata={"commit_status": "update"})  # Matrix does not skip commit status updates
    method, path, headers, body = send("matrix", capture_server, "/base", ev=ev, channel="!room:example.org",
                                       token="syt_secret")
    txn = hashlib.sha1(ev.encode()).hexdigest()
    assert (method, path) == ("PUT", f"/base/_matrix/client/r0/rooms/!room:example.org/send/m.room.message/{txn}")
    assert (headers["authorization"], headers["content-type"]) == ("Bearer syt_secret", "application/json")
    assert body == ('{"body":"🚨 gitrepository/webapp.gitops-system\\nFetched \\u003crevision\\u003e \\u0026 '
                    'more\\n- commit_status: update\\n","msgtype":"m.text"}').encode()
    # Flux's own test vector for the transaction id (sha1 of the Go-encoded event)
    flux = Event(involved_object={}, severity="info", timestamp="2021-08-24T16:18:00Z",
                 message="update successful", reason="update sucesful")
    assert chat.matrix_transaction_id(flux) == "37d91b4f6a1e44c6a38273b0a0fd408fade7b0f5"


def test_webex_posts_markdown_to_the_room_with_the_bot_token(capture_server):
    method, path, headers, body = send("webex", capture_server, "/v1/messages", channel="room-1", token="bot")
    assert (method, path, headers["authorization"]) == ("POST", "/v1/messages", "Bearer bot")
    assert body == ('{"roomId":"room-1","markdown":"✅ **gitrepository/webapp.gitops-system**\\nFetched '
                    '\\u003crevision\\u003e \\u0026 more\\n\\u003e**kubernetes.io/somekey**: some.value\\n'
                    '\\u003e**test**: metadata\\n"}').encode()
    no_room = chat.go_json(chat.webex(NotifierOptions(url="http://w")).build(event("error", metadata={})))
    assert no_room.startswith('{"markdown":"💣 **'.encode())


def test_lark_posts_an_interactive_card_and_ignores_the_proxy(capture_server):
    method, path, _, body = send("lark", capture_server, "/open-apis/bot/v2/hook/x", proxy_url="http://127.0.0.1:9")
    assert (method, path) == ("POST", "/open-apis/bot/v2/hook/x")
    assert body == ('{"msg_type":"interactive","card":{"config":{"wide_screen_mode":true},"header":{"title":'
                    '{"tag":"plain_text","content":"💫 gitrepository/webapp.gitops-system"},"template":"turquoise"},'
                    '"elements":[{"tag":"div","text":{"tag":"lark_md","content":"**Fetched \\u003crevision\\u003e '
                    '\\u0026 more**\\n\\nkubernetes.io/somekey: some.value\\ntest: metadata\\n"}}]}}').encode()
    assert b'"template":"red"' in chat.go_json(chat.lark(NotifierOptions(url="http://l")).build(event("error")))


@pytest.mark.parametrize("provider_type", ["slack", "discord", "msteams", "googlechat", "telegram", "rocket",
                                           "webex", "lark"])
def test_commit_status_updates_are_not_sent(capture_server, monkeypatch, provider_type):
    monkeypatch.setattr(chat, "TELEGRAM_API_URL", capture_server.url)
    notifier = new_notifier(provider_type, NotifierOptions(url=capture_server.url, channel="c", token="t"))
    notifier.post(event(metadata={"commit_status": "update"}))
    assert capture_server.received() == []


@pytest.mark.parametrize("provider_type, url, message", [
    ("slack", "", """invalid Slack hook URL : 'parse "": empty url'"""),
    ("discord", "hooks/x", """invalid Discord hook URL hooks/x: 'parse "hooks/x": invalid URI for request'"""),
    ("rocket", "http://h:8x/", """invalid Rocket hook URL http://h:8x/: 'parse "http://h:8x/": invalid port """
                               """":8x" after host'"""),
    ("msteams", "://x", """invalid MS Teams webhook URL ://x: 'parse "://x": missing protocol scheme'"""),
    ("webex", "http://a b/", """invalid Webex hook URL http://a b/: 'parse "http://a b/": invalid character " " """
                             """in host name'"""),
    ("matrix", "http://h/%zz", """invalid Matrix homeserver URL http://h/%zz: 'parse "http://h/%zz": invalid URL """
                               """escape "%zz"'"""),
    ("googlechat", "x", "invalid Google Chat hook URL x"),
    ("lark", "x", "invalid Slack hook URL x"),
])
def test_factories_refuse_what_go_cannot_parse(provider_type, url, message):
    with pytest.raises(NotifierError) as info:
        new_notifier(provider_type, NotifierOptions(url=url))
    assert str(info.value) == message


def test_failures_carry_flux_error_prefixes(capture_server):
    capture_server.answers = [400, 400]
    with pytest.raises(NotifierError) as info:
        send("slack", capture_server)
    assert str(info.value) == "postMessage failed: request failed: request failed with status code 400: failure 400"
    with pytest.raises(NotifierError) as info:
        send("lark", capture_server)
    assert str(info.value) == "request failed: request failed with status code 400: failure 400"
