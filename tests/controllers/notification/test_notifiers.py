"""Notifiers against a recording webhook on loopback: the exact bytes, headers and paths Flux's
notification-controller sends for each provider type, and its retry and error rules (commit-status
providers: test_notifiers_commitstatus.py)."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from controllers.notification.event import Event
from controllers.notification.notifiers import NotifierError, NotifierOptions, UnsupportedProvider, http, \
    new_notifier
from servers.capture import capture_server  # noqa: F401

SHA = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"
VERSION = b"1.4"  # Flux's msAdaptiveCardVersion


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(http, "RETRY_WAIT_MIN", 0.01)
    monkeypatch.setattr(http, "RETRY_WAIT_MAX", 0.02)


def event(severity="info", reason="ReconciliationSucceeded", metadata=None, message="Applied <revision> & done"):
    return Event(involved_object={"kind": "Kustomization", "namespace": "apps", "name": "podinfo",
                                  "uid": "a1b2c3", "apiVersion": "kustomize.toolkit.fluxcd.io/v1"},
                 severity=severity, timestamp="2026-12-05T10:00:00Z", message=message, reason=reason,
                 metadata=metadata if metadata is not None else {"revision": f"main@sha1:{SHA}", "env": "prod"},
                 reporting_controller="kustomize-controller", reporting_instance="kc-1")


def send(provider_type, capture, _event=None, **options):
    options.setdefault("url", capture.url + "/hook")
    new_notifier(provider_type, NotifierOptions(**options)).post(event(**(_event or {})))
    return capture.received()


# ---------------------------------------------------------------------------------------------- webhooks

def test_generic_posts_the_event_as_go_encodes_it_with_the_component_header(capture_server):
    (request,) = send("generic", capture_server, headers={"X-Team": "platform"})
    assert request.method == "POST" and request.path == "/hook"
    assert request.body == (
        b'{"involvedObject":{"kind":"Kustomization","namespace":"apps","name":"podinfo","uid":"a1b2c3",'
        b'"apiVersion":"kustomize.toolkit.fluxcd.io/v1"},"severity":"info","timestamp":"2026-12-05T10:00:00Z",'
        b'"message":"Applied \\u003crevision\\u003e \\u0026 done","reason":"ReconciliationSucceeded",'
        b'"metadata":{"env":"prod","revision":"main@sha1:' + SHA.encode() + b'"},'
        b'"reportingController":"kustomize-controller","reportingInstance":"kc-1"}')
    assert request.headers["gotk-component"] == "kustomize-controller"
    assert request.headers["X-Team"] == "platform"
    assert request.headers["Content-Type"] == "application/json"


def test_generic_hmac_signs_the_body_and_refuses_an_empty_key(capture_server):
    (request,) = send("generic-hmac", capture_server, token="s3cret")
    expected = hmac.new(b"s3cret", request.body, hashlib.sha256).hexdigest()
    assert request.headers["X-Signature"] == f"sha256={expected}"
    with pytest.raises(NotifierError, match="HMAC key is empty"):
        new_notifier("generic-hmac", NotifierOptions(url=capture_server.url))


def test_alertmanager_fires_one_alert_labelled_with_metadata_and_object(capture_server):
    (request,) = send("alertmanager", capture_server, token="t0k",
                      _event={"severity": "error", "reason": "HealthCheckFailed",
                              "metadata": {"summary": "Cluster prod", "env": "prod"}})
    assert request.body == (
        b'[{"status":"firing","labels":{"alertname":"FluxKustomizationHealthcheckfailed","env":"prod",'
        b'"kind":"Kustomization","name":"podinfo","namespace":"apps","reason":"HealthCheckFailed",'
        b'"reportingcontroller":"kustomize-controller","severity":"error"},"annotations":{"message":'
        b'"Applied \\u003crevision\\u003e \\u0026 done","summary":"Cluster prod"},'
        b'"startsAt":"2026-12-05T10:00:00Z","endsAt":"0001-01-01T00:00:00Z"}]')
    assert request.headers["Authorization"] == "Bearer t0k"


def test_opsgenie_grafana_datadog_payloads(capture_server):
    send("opsgenie", capture_server, token="key")
    send("grafana", capture_server, username="u", password="p")
    send("datadog", capture_server, token="dd-key")
    opsgenie, grafana, datadog = capture_server.received()
    assert opsgenie.headers["Authorization"] == "GenieKey key"
    assert opsgenie.json() == {"message": "Kustomization/podinfo", "description": "Applied <revision> & done",
                               "details": {"env": "prod", "revision": f"main@sha1:{SHA}", "severity": "info"}}
    assert grafana.headers["Authorization"] == "Basic dTpw"
    assert grafana.body == (b'{"when":1796464800,"text":"kustomization/podinfo.apps","tags":["flux",'
                            b'"kustomize-controller","env: prod","revision: main@sha1|' + SHA.encode() +
                            b'","kind: Kustomization","name: podinfo","namespace: apps"]}')
    assert datadog.path == "/api/v1/events" and datadog.headers["DD-API-KEY"] == "dd-key"
    assert datadog.json() == {"alert_type": "info", "date_happened": 1796464800, "source_type_name": "fluxcd",
                              "tags": ["flux_reporting_controller:kustomize-controller",
                                       "flux_reason:reconciliationsucceeded", "kube_kind:kustomization",
                                       "kube_name:podinfo", "kube_namespace:apps", "env:prod",
                                       f"revision:main@sha1:{SHA}"],
                              "text": "Applied <revision> & done",
                              "title": "Events from the Kustomization podinfo/apps"}
    with pytest.raises(NotifierError, match="empty Opsgenie apikey/token"):
        new_notifier("opsgenie", NotifierOptions(url=capture_server.url))


def test_pagerduty_triggers_on_error_and_resolves_with_a_change_event_on_info(capture_server):
    send("pagerduty", capture_server, channel="routing", _event={"severity": "error", "reason": "BuildFailed"})
    send("pagerduty", capture_server, channel="routing")
    trigger, resolve, change = capture_server.received()
    assert trigger.path == "/v2/enqueue" and change.path == "/v2/change/enqueue"
    assert trigger.body == (
        b'{"routing_key":"routing","event_action":"trigger","dedup_key":"a1b2c3","payload":{"summary":'
        b'"build failed: kustomization/podinfo","source":"Flux kustomize-controller","severity":"error",'
        b'"timestamp":"2026-12-05T10:00:00Z","component":"podinfo","group":"Kustomization","custom_details":'
        b'{"message":"Applied \\u003crevision\\u003e \\u0026 done","metadata":{"env":"prod","revision":'
        b'"main@sha1:' + SHA.encode() + b'"}}}}')
    assert resolve.json() == {"routing_key": "routing", "event_action": "resolve", "dedup_key": "a1b2c3"}
    assert change.json()["payload"]["summary"] == "reconciliation succeeded: kustomization/podinfo"


def test_commit_status_updates_are_skipped_by_alerting_notifiers(capture_server):
    for provider_type, options in (("alertmanager", {}), ("opsgenie", {"token": "k"}), ("slack", {})):
        send(provider_type, capture_server, _event={"metadata": {"commit_status": "update"}}, **options)
    assert capture_server.received() == []


def test_retries_server_errors_then_succeeds_but_not_client_errors(capture_server):
    capture_server.answers = [500, 503, 200]
    send("generic", capture_server)
    assert len(capture_server.received()) == 3
    capture_server.requests.clear()
    capture_server.answers = [400]
    with pytest.raises(NotifierError, match="request failed with status code 400: failure 400"):
        send("generic", capture_server)
    assert len(capture_server.received()) == 1


def test_retries_are_bounded_and_a_bad_address_is_refused(capture_server):
    capture_server.answers = [502] * 10
    with pytest.raises(NotifierError, match="status code 502"):
        send("generic", capture_server)
    assert len(capture_server.received()) == http.RETRY_MAX + 1
    with pytest.raises(NotifierError, match="invalid hook URL"):
        new_notifier("generic", NotifierOptions(url="not a url"))
    with pytest.raises(UnsupportedProvider, match="provider type 'sentry' is not supported by fluxpy"):
        new_notifier("sentry", NotifierOptions(url=capture_server.url))


# ---------------------------------------------------------------------------------------------- chat

def test_slack_attachment_as_flux_builds_it(capture_server):
    (request,) = send("slack", capture_server, channel="#ops", token="xoxb",
                      _event={"severity": "error", "metadata": {"env": "prod"}})
    assert request.body == (
        b'{"channel":"#ops","username":"kustomize-controller","icon_url":"","icon_emoji":"","attachments":'
        b'[{"color":"danger","author_name":"kustomization/podinfo.apps","text":"Applied \\u003crevision\\u003e'
        b' \\u0026 done","mrkdwn_in":["text"],"fields":[{"title":"env","value":"prod","short":false}]}]}')
    assert request.headers["Authorization"] == "Bearer xoxb"


@pytest.mark.parametrize("provider_type", ["discord", "msteams", "googlechat", "rocket", "webex", "lark",
                                           "matrix", "telegram"])
def test_every_chat_notifier_delivers_the_message_and_object(provider_type, capture_server, monkeypatch):
    from controllers.notification.notifiers import chat

    monkeypatch.setattr(chat, "TELEGRAM_API_URL", capture_server.url)
    options = {"channel": "room1", "token": "tok", "username": "flux"}
    send(provider_type, capture_server, **options)
    (request,) = capture_server.received()
    text = request.body.decode()
    assert "Applied" in text and "podinfo" in text, text
    assert request.method in ("POST", "PUT")


def test_discord_rocket_matrix_webex_payloads(capture_server):
    one = {"metadata": {"env": "prod"}}
    send("discord", capture_server, username="flux", _event=one)
    send("rocket", capture_server, channel="ops", username="flux", _event={**one, "severity": "error"})
    send("matrix", capture_server, url=capture_server.url, channel="!room:example.org", token="mx", _event=one)
    send("webex", capture_server, channel="room-1", token="wx", _event=one)
    discord, rocket, matrix, webex = capture_server.received()
    attachment = (b'"attachments":[{"color":"%s","author_name":"kustomization/podinfo.apps","text":"Applied '
                  b'\\u003crevision\\u003e \\u0026 done","mrkdwn_in":["text"],"fields":[{"title":"env","value":'
                  b'"prod","short":false}]}]}')
    assert discord.path == "/hook/slack"
    assert discord.body == b'{"channel":"","username":"flux","icon_url":"","icon_emoji":"",' + attachment % b"good"
    assert rocket.body == b'{"channel":"ops","username":"flux","icon_url":"","icon_emoji":"",' + \
        attachment % b"#FF0000"
    sent = event(metadata={"env": "prod"})
    assert matrix.method == "PUT" and matrix.headers["Authorization"] == "Bearer mx"
    assert matrix.path == ("/_matrix/client/r0/rooms/!room:example.org/send/m.room.message/"
                           + hashlib.sha1(sent.encode()).hexdigest())
    assert matrix.body == (b'{"body":"\xf0\x9f\x92\xab kustomization/podinfo.apps\\nApplied \\u003crevision\\u003e '
                           b'\\u0026 done\\n- env: prod\\n","msgtype":"m.text"}')
    assert webex.headers["Authorization"] == "Bearer wx"
    assert webex.json() == {"roomId": "room-1", "markdown": "✅ **kustomization/podinfo.apps**\n"
                                                           "Applied <revision> & done\n>**env**: prod\n"}


def test_msteams_adaptive_card_as_flux_builds_it(capture_server):
    send("msteams", capture_server, _event={"severity": "error", "metadata": {"env": "prod", "summary": "Cluster"}})
    (request,) = capture_server.received()
    text = (b'{"type":"TextBlock","text":"kustomization/podinfo.apps","size":"large","weight":"bolder","wrap":true},'
            b'{"type":"TextBlock","text":"Applied \\u003crevision\\u003e \\u0026 done","color":"attention",'
            b'"wrap":true}')
    facts = b'{"type":"FactSet","facts":[{"title":"summary","value":"Cluster"},{"title":"env","value":"prod"}]}'
    assert request.body == (
        b'{"type":"message","attachments":[{"contentType":"application/vnd.microsoft.card.adaptive","content":'
        b'{"$schema":"http://adaptivecards.io/schemas/adaptive-card.json","type":"AdaptiveCard","version":"'
        + VERSION + b'","body":[{"type":"Container","items":[' + text + b',' + facts + b']}],"msteams":'
        b'{"width":"Full"}}}]}')


def test_googlechat_card_as_flux_builds_it(capture_server):
    send("googlechat", capture_server, _event={"severity": "error", "metadata": {"env": "prod"}})
    (request,) = capture_server.received()
    assert request.body == (
        b'{"cards":[{"header":{"title":"kustomization/podinfo.apps","subtitle":"kustomize-controller",'
        b'"imageUrl":null,"imageStyle":null},"sections":[{"header":"","widgets":[{"textParagraph":{"text":'
        b'"\\u003cfont color=\\"#ff0000\\"\\u003eApplied \\u003crevision\\u003e \\u0026 done\\u003c/font\\u003e"},'
        b'"keyValue":null}]},{"header":"","widgets":[{"textParagraph":null,"keyValue":{"topLabel":"env",'
        b'"content":"prod","contentMultiline":false,"bottomLabel":null,"icon":null}}]}]}]}')


def test_lark_card_as_flux_builds_it(capture_server):
    send("lark", capture_server, _event={"metadata": {"env": "prod"}})
    (request,) = capture_server.received()
    assert request.body == (
        b'{"msg_type":"interactive","card":{"config":{"wide_screen_mode":true},"header":{"title":{"tag":'
        b'"plain_text","content":"\xf0\x9f\x92\xab kustomization/podinfo.apps"},"template":"turquoise"},'
        b'"elements":[{"tag":"div","text":{"tag":"lark_md","content":"**Applied \\u003crevision\\u003e \\u0026 '
        b'done**\\n\\nenv: prod\\n"}}]}}')


def test_telegram_markdown_v2_as_flux_builds_it(capture_server, monkeypatch):
    from controllers.notification.notifiers import chat

    monkeypatch.setattr(chat, "TELEGRAM_API_URL", capture_server.url)
    send("telegram", capture_server, channel="-100123:7", token="tok", _event={"metadata": {"env": "prod"}})
    (request,) = capture_server.received()
    assert request.path == "/bottok/sendMessage"
    assert request.body == (
        b'{"chat_id":"-100123","message_thread_id":"7","text":"*\xf0\x9f\x92\xab kustomization/podinfo/apps*\\n'
        b'Applied \\u003crevision\\\\\\u003e \\u0026 done\\n\\\\- *env*: prod\\n","parse_mode":"MarkdownV2"}')
