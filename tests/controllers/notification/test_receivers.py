"""The verification of webhook calls per Receiver type, as Flux's notification-controller verifies them."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from controllers.notification.receivers import ReceiverValidationError, WebhookRequest, unsupported_reason, \
    validate, webhook_path

TOKEN = "s3cret"
BODY = b'{"ref":"refs/heads/main"}'


def signed(algorithm: str, body: bytes = BODY, key: str = TOKEN) -> str:
    return f"{algorithm}=" + hmac.new(key.encode(), body, getattr(hashlib, algorithm)).hexdigest()


def check(receiver_type, headers, body=BODY, events=()):
    validate(receiver_type, WebhookRequest("POST", headers, body), token=TOKEN, events=list(events))


def refused(receiver_type, headers, body=BODY, events=()) -> str:
    with pytest.raises(ReceiverValidationError) as info:
        check(receiver_type, headers, body, events)
    return str(info.value)


def test_webhook_path_is_sha256_of_token_name_namespace():
    assert webhook_path("tok", "app", "flux-system") == \
        "/hook/" + hashlib.sha256(b"tokappflux-system").hexdigest()


def test_generic_hmac_accepts_each_hash_and_refuses_a_wrong_signature():
    for algorithm in ("sha1", "sha256", "sha512"):
        check("generic-hmac", {"X-Signature": signed(algorithm)})
    assert refused("generic-hmac", {"X-Signature": signed("sha256", key="other")}) == \
        "unable to validate HMAC signature: payload signature check failed"
    assert refused("generic-hmac", {}) == "unable to validate HMAC signature: missing signature"
    assert refused("generic-hmac", {"X-Signature": "md5=00"}) == \
        'unable to validate HMAC signature: unknown hash type prefix: "md5"'


def test_github_signature_and_event_filter():
    headers = {"Content-Type": "application/json", "x-hub-signature-256": signed("sha256"),
               "X-GitHub-Event": "push"}
    check("github", headers, events=["Push"])
    check("github", {**headers, "x-hub-signature-256": "", "X-Hub-Signature": signed("sha1")})
    assert refused("github", headers, events=["ping"]) == 'the GitHub event "push" is not authorised'
    assert refused("github", {**headers, "x-hub-signature-256": signed("sha256", key="x")}) == \
        "the GitHub signature header is invalid, err: payload signature check failed"
    assert "unsupported Content-Type" in refused("github", {**headers, "Content-Type": "text/plain"})


def test_gitlab_token_and_event():
    check("gitlab", {"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Push Hook"}, events=["push hook"])
    assert refused("gitlab", {"X-Gitlab-Token": "no"}) == \
        "the X-Gitlab-Token header value does not match the receiver token"
    assert refused("gitlab", {"X-Gitlab-Token": TOKEN, "X-Gitlab-Event": "Tag Push Hook"},
                   events=["Push Hook"]) == 'the GitLab event "Tag Push Hook" is not authorised'


def test_bitbucket_harbor_nexus():
    check("bitbucket", {"Content-Type": "application/json", "X-Hub-Signature": signed("sha256"),
                        "X-Event-Key": "repo:refs_changed"}, events=["repo:refs_changed"])
    assert refused("bitbucket", {"Content-Type": "application/json", "X-Hub-Signature": signed("sha256"),
                                 "X-Event-Key": "pr:opened"}, events=["repo:refs_changed"]) == \
        'the Bitbucket server event "pr:opened" is not authorised'
    check("harbor", {"Authorization": TOKEN})
    assert "Harbor Authorization header" in refused("harbor", {"Authorization": "Bearer x"})
    nexus = hmac.new(TOKEN.encode(), BODY, hashlib.sha1).hexdigest()
    check("nexus", {"X-Nexus-Webhook-Signature": nexus})
    assert refused("nexus", {}) == "the Nexus signature is missing from header"
    assert refused("nexus", {"X-Nexus-Webhook-Signature": "00"}) == "invalid Nexus signature"


def test_registry_payloads_must_decode():
    check("dockerhub", {}, json.dumps({"push_data": {"tag": "1.0"}, "repository": {"repo_url": "x"}}).encode())
    assert refused("dockerhub", {}, b"not json") == "cannot decode DockerHub webhook payload"
    check("quay", {}, b'{"docker_url":"quay.io/x","updated_tags":["1"]}')
    assert refused("quay", {}, b"[").startswith("cannot decode Quay webhook payload")
    check("acr", {}, b'{"action":"push","target":{"repository":"x","tag":"1"}}')
    assert refused("acr", {}, b"{").startswith("cannot decode ACR webhook payload")


def test_cdevents_envelope_and_type_filter():
    event = {"context": {"id": "1", "source": "ci", "type": "dev.cdevents.artifact.published.0.1.1",
                         "timestamp": "2026-12-05T00:00:00Z", "version": "0.4.1"},
             "subject": {"id": "pkg", "content": {}}}
    body = json.dumps(event).encode()
    check("cdevents", {"Ce-Type": "dev.cdevents.artifact.published.0.1.1"}, body,
          events=["dev.cdevents.artifact.published.0.1.1"])
    assert refused("cdevents", {"Ce-Type": "dev.cdevents.build.started"}, body,
                   events=["dev.cdevents.artifact.published.0.1.1"]) == \
        'the CDEvent "dev.cdevents.build.started" is not authorised'
    del event["context"]["id"]
    assert refused("cdevents", {}, json.dumps(event).encode()) == \
        "unable to validate CDEvent event: context.id is required"


def test_unsupported_types_have_a_reason():
    assert unsupported_reason("github") is None
    assert unsupported_reason("gcr") == "receiver type 'gcr' is not supported by fluxpy"
    assert "not supported by fluxpy" in unsupported_reason("bogus")
