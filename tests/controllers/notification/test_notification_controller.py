"""The notification-controller against a real API server: events in (Flux's endpoint answers), Alerts and
Providers out to a recording webhook, failures as Warning events, Receivers and their webhook calls, and
fluxpy's one message per root cause."""
from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from controllers.api.notification import ALERT, PROVIDER, RECEIVER
from controllers.api.objects import dig, find_condition
from controllers.api.source import GIT_REPOSITORY
from controllers.api.kustomize import KUSTOMIZATION
from controllers.notification.notifiers import http
from servers.capture import capture_server, event_body, post  # noqa: F401
from servers.git import artifact_storage  # noqa: F401
from servers.githost import github_host  # noqa: F401
from servers.objects import MANAGER, apply_secret, apply_source
from servers.waiting import events, until, wait, wait_event

pytestmark = pytest.mark.timeout(120)
SHA = "5394cb7f48332b2de7c17dd8b8384bbc84b7e738"
KS_API = "kustomize.toolkit.fluxcd.io/v1"


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    monkeypatch.setattr(http, "RETRY_WAIT_MIN", 0.01)
    monkeypatch.setattr(http, "RETRY_WAIT_MAX", 0.02)


def events_url(controller) -> str:
    return f"http://127.0.0.1:{controller.event_server.port}/"


def provider(kube, namespace, name="hook", **spec):
    spec.setdefault("type", "generic")
    return apply_source(kube, PROVIDER, namespace, name, spec)


def alert(kube, namespace, name="all", *, grouping=True, **spec):
    spec.setdefault("providerRef", {"name": "hook"})
    spec.setdefault("eventSources", [{"kind": "Kustomization", "name": "*"}])
    body = {"apiVersion": ALERT.api_version, "kind": "Alert",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {} if grouping else {"fluxpy.io/root-cause-grouping": "disabled"}},
            "spec": spec}
    return kube.apply(body, field_manager=MANAGER)


def watched(controller, count: int = 1) -> None:
    """Until the dispatcher's informers hold ``count`` Alerts (objects are read from its cache)."""
    until(lambda: len(controller.dispatcher.alerts.items()) >= count and controller.dispatcher.providers.items(),
          "the dispatcher to see the Alerts and Providers", 15)


def ks_event(namespace, name="app", **kw) -> bytes:
    kw.setdefault("metadata", {"kustomize.toolkit.fluxcd.io/revision": f"main@sha1:{SHA}"})
    return event_body("Kustomization", name, namespace, api_version=KS_API, **kw)


# ---------------------------------------------------------------------------------------------- events in

def test_event_endpoint_answers_as_flux(notification_controller, namespace):
    url = events_url(notification_controller)
    assert post(url, b"{not json") == 400
    assert post(url, b'{"severity": 3}') == 400
    assert post(url, b"x" * (3 * 1024 * 1024 + 10)) == 413
    body = ks_event(namespace, message="first")
    assert post(url, body) == 202
    assert post(url, body) == 429, "a duplicate within --rate-limit-interval is rate limited"
    assert post(url, ks_event(namespace, message="second")) == 202


def test_generic_provider_receives_the_event_with_the_alerts_metadata(notification_controller, kube, namespace,
                                                                     capture_server):
    provider(kube, namespace, address=capture_server.url + "/flux")
    alert(kube, namespace, summary="Cluster prod", eventMetadata={"env": "prod"})
    watched(notification_controller)
    assert post(events_url(notification_controller), ks_event(namespace, message="Applied <rev>")) == 202
    (request,) = until(capture_server.received, "the notification")
    assert request.path == "/flux"
    assert request.headers["gotk-component"] == "source-controller"
    assert request.body == (
        b'{"involvedObject":{"kind":"Kustomization","namespace":"' + namespace.encode() + b'","name":"app",'
        b'"apiVersion":"kustomize.toolkit.fluxcd.io/v1"},"severity":"info","timestamp":"2026-12-05T00:00:00Z",'
        b'"message":"Applied \\u003crev\\u003e","reason":"Succeeded","metadata":{"env":"prod","revision":'
        b'"main@sha1:' + SHA.encode() + b'","summary":"Cluster prod"},"reportingController":"source-controller",'
        b'"reportingInstance":"source-controller-1"}')


def test_alert_matching_rules(notification_controller, kube, namespace, capture_server):
    provider(kube, namespace, address=capture_server.url)
    alert(kube, namespace, "errors-only", grouping=False, eventSeverity="error",
          eventSources=[{"kind": "Kustomization", "name": "*", "matchLabels": {"team": "a"}}])
    alert(kube, namespace, "filtered", grouping=False, eventSources=[{"kind": "Kustomization", "name": "web"}],
          inclusionList=[".*upgrade.*"], exclusionList=["^skip"])
    watched(notification_controller, 2)
    for name, labels in (("app-1", {"team": "a"}), ("app-2", {"team": "b"})):
        kube.apply({"apiVersion": KS_API, "kind": "Kustomization", "metadata": {"name": name, "namespace": namespace,
                    "labels": labels}, "spec": {"interval": "1m", "path": "./", "prune": True,
                    "sourceRef": {"kind": "GitRepository", "name": "none"}}}, field_manager=MANAGER)
    url = events_url(notification_controller)
    post(url, ks_event(namespace, "app-1", severity="error", message="app-1 failed"))
    post(url, ks_event(namespace, "app-2", severity="error", message="app-2 failed"))   # labels do not match
    post(url, ks_event(namespace, "app-1", message="app-1 info"))                       # severity too low
    post(url, ks_event(namespace, "web", message="an upgrade happened"))
    post(url, ks_event(namespace, "web", message="skip this upgrade"))                  # excluded
    post(url, ks_event(namespace, "web", message="nothing to see"))                     # not included
    until(lambda: len(capture_server.received()) >= 2, "two notifications")
    assert sorted(r.json()["message"] for r in capture_server.received()) == ["an upgrade happened",
                                                                               "app-1 failed"]
    assert notification_controller.dispatcher.sent == 2


def test_invalid_regex_and_suspended_alert(notification_controller, kube, namespace, capture_server):
    provider(kube, namespace, address=capture_server.url)
    alert(kube, namespace, "bad-regex", inclusionList=["(unclosed"])
    alert(kube, namespace, "paused", suspend=True)
    watched(notification_controller, 2)
    post(events_url(notification_controller), ks_event(namespace))
    warning = wait_event(kube, namespace, "bad-regex", "InvalidConfig", kind="Alert")
    assert "(unclosed" in warning["message"] and warning["type"] == "Warning"
    assert capture_server.received() == []


def test_cross_namespace_events_are_refused_with_the_flag(start_controller, kube, namespace, capture_server,
                                                          flux_crds):
    from controllers.notification.reconciler import Options, ReceiverReconciler
    from controllers.runtime.events import EventRecorder

    reconciler = ReceiverReconciler(Options(events_addr="127.0.0.1:0", receiver_addr="127.0.0.1:0",
                                            no_cross_namespace_refs=True))
    recorder = EventRecorder(kube, "notification-controller").start()
    servers = reconciler.servers(kube, recorder, None)
    for server in servers:
        server.start()
    try:
        provider(kube, namespace, address=capture_server.url)
        alert(kube, namespace, grouping=False, eventSources=[{"kind": "Kustomization", "name": "*",
                                                              "namespace": "elsewhere"}])
        until(lambda: any(dig(a, "metadata.namespace") == namespace for a in reconciler.dispatcher.alerts.items()),
              "the Alert in the cache", 15)
        post(events_url(reconciler), ks_event("elsewhere"))
        warning = wait_event(kube, namespace, "all", "NotificationDispatchFailed", kind="Alert")
        assert "cross-namespace references have been blocked" in warning["message"]
        assert capture_server.received() == []
    finally:
        for server in reversed(servers):
            server.stop()
        recorder.stop(2)


def test_delivery_failure_is_a_masked_warning_on_the_alert(notification_controller, kube, namespace,
                                                           capture_server, control_plane):
    apply_secret(kube, namespace, "hook-secret", {"address": capture_server.url + "/t0ps3cret-path",
                                                   "token": "t0ps3cret"})
    apply_secret(kube, namespace, "dead-secret", {"address": "http://127.0.0.1:9/t0ps3cret-path"})
    provider(kube, namespace, "dead", secretRef={"name": "dead-secret"})
    alert(kube, namespace, "to-dead", grouping=False, providerRef={"name": "dead"})
    provider(kube, namespace, secretRef={"name": "hook-secret"})
    provider(kube, namespace, "missing-secret", secretRef={"name": "nope"})
    provider(kube, namespace, "telemetry", type="sentry", address="https://sentry.example.com")
    alert(kube, namespace, grouping=False)
    alert(kube, namespace, "to-missing", grouping=False, providerRef={"name": "missing-secret"})
    alert(kube, namespace, "to-unsupported", grouping=False, providerRef={"name": "telemetry"})
    alert(kube, namespace, "no-provider", grouping=False, providerRef={"name": "absent"})
    watched(notification_controller, 5)
    capture_server.answers = [403]
    post(events_url(notification_controller), ks_event(namespace))
    failed = wait_event(kube, namespace, "all", "NotificationDispatchFailed", kind="Alert")
    assert failed["message"].startswith(f"failed to send notification for Kustomization/{namespace}/app: ")
    assert failed["message"].endswith("request failed with status code 403: failure 403")
    dead = wait_event(kube, namespace, "to-dead", "NotificationDispatchFailed", kind="Alert", timeout=30)
    assert "t0ps3cret" not in dead["message"] and "*****" in dead["message"], dead["message"]
    missing = wait_event(kube, namespace, "to-missing", "NotificationDispatchFailed", kind="Alert")
    assert "failed to initialize notifier for provider 'missing-secret'" in missing["message"]
    unsupported = wait_event(kube, namespace, "to-unsupported", "NotificationDispatchFailed", kind="Alert")
    assert "provider type 'sentry' is not supported by fluxpy" in unsupported["message"]
    absent = wait_event(kube, namespace, "no-provider", "NotificationDispatchFailed", kind="Alert")
    assert 'failed to read provider: Provider.notification.toolkit.fluxcd.io "absent" not found' in absent["message"]

    # the CLI shows them: fluxpy events, and why
    events_out = cli(control_plane, "events", "-n", namespace, "--for", "Alert/no-provider")
    assert "NotificationDispatchFailed" in events_out and '"absent" not found' in events_out
    why_out = cli(control_plane, "why", "alert/all", "-n", namespace, exit_code=1)
    assert f"root cause: Alert/{namespace}/all: NotificationDispatchFailed: failed to send notification" in why_out
    assert "status code 403" in why_out and "✗ False" in why_out, why_out


def cli(control_plane, *args: str, exit_code: int = 0) -> str:
    """``fluxpy ARGS`` in-process against the test cluster; its output (it must exit with ``exit_code``)."""
    from typer.testing import CliRunner

    from flux_cli.main import app, prepare_args

    result = CliRunner().invoke(app, prepare_args([*args, "--kubeconfig", str(control_plane.kubeconfig)]),
                                env={"NO_COLOR": "1", "COLUMNS": "250"}, catch_exceptions=False)
    assert result.exit_code == exit_code, result.output
    return result.output


def test_controllers_post_their_events_to_the_endpoint(notification_controller, kube, namespace, capture_server,
                                                       start_controller, artifact_storage):
    """A real controller (the source-controller's GitRepository reconciler) with ``--events-addr`` pointing
    at the endpoint: its failure reaches the webhook as Flux's event JSON."""
    from controllers.source.git import GitRepositoryReconciler

    provider(kube, namespace, address=capture_server.url)
    alert(kube, namespace, grouping=False, eventSources=[{"kind": "GitRepository", "name": "*"}])
    watched(notification_controller)
    start_controller(GitRepositoryReconciler(artifact_storage), namespace)
    apply_source(kube, GIT_REPOSITORY, namespace, "unreachable",
                 {"interval": "1h", "url": "http://127.0.0.1:9/none.git", "timeout": "5s"})
    request = until(lambda: next((r for r in capture_server.received() if r.json()["severity"] == "error"), None),
                    "the GitRepository's failure notification", 60)
    event = request.json()
    assert event["involvedObject"]["kind"] == "GitRepository"
    assert event["involvedObject"]["apiVersion"] == GIT_REPOSITORY.api_version
    assert event["reason"] and event["reportingController"]
    assert request.headers["gotk-component"] == event["reportingController"]


# ---------------------------------------------------------------------------------------------- root cause

def _set_ready(kube, kind, namespace, name, status, reason, message, spec=None):
    kube.apply({"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name, "namespace": namespace},
                "spec": spec}, field_manager=MANAGER) if spec is not None else None
    kube.apply({"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name, "namespace": namespace},
                "status": {"observedGeneration": 1, "conditions": [
                    {"type": "Ready", "status": status, "reason": reason, "message": message,
                     "lastTransitionTime": "2026-12-05T00:00:00Z", "observedGeneration": 1}]}},
               field_manager=MANAGER, subresource="status")


def test_one_notification_per_root_cause_then_one_resolved(notification_controller, kube, namespace,
                                                           capture_server):
    provider(kube, namespace, address=capture_server.url)
    alert(kube, namespace, eventSources=[{"kind": "Kustomization", "name": "*"},
                                         {"kind": "GitRepository", "name": "*"}])
    watched(notification_controller)
    _set_ready(kube, GIT_REPOSITORY, namespace, "repo", "False", "GitOperationFailed", "auth failed",
               spec={"interval": "1m", "url": "https://example.com/repo.git"})
    names = ["apps", "infra", "monitoring"]
    for name in names:
        _set_ready(kube, KUSTOMIZATION, namespace, name, "False", "ArtifactFailed", "Source is not ready",
                   spec={"interval": "1m", "path": "./", "prune": True,
                         "sourceRef": {"kind": "GitRepository", "name": "repo"}})
    url = events_url(notification_controller)
    post(url, event_body("GitRepository", "repo", namespace, api_version=GIT_REPOSITORY.api_version,
                         severity="error", message="auth failed", reason="GitOperationFailed"))
    for name in names:
        post(url, ks_event(namespace, name, severity="error", message="Source is not ready",
                           reason="ArtifactFailed"))
    (failure,) = until(capture_server.received, "the root cause notification")
    event = failure.json()
    assert event["involvedObject"]["name"] == "repo"
    affected = ", ".join(f"Kustomization/{namespace}/{n}" for n in names)
    assert event["message"] == f"auth failed\n\nRoot cause of 3 failing object(s): {affected}"
    assert event["metadata"]["affected"] == affected
    post(url, ks_event(namespace, "apps", severity="error", message="Source is not ready again",
                       reason="ArtifactFailed"))
    for name in names:
        _set_ready(kube, KUSTOMIZATION, namespace, name, "True", "ReconciliationSucceeded", "Applied")
    _set_ready(kube, GIT_REPOSITORY, namespace, "repo", "True", "Succeeded", "stored artifact")
    for name in names:
        post(url, ks_event(namespace, name, message="Applied revision", reason="ReconciliationSucceeded"))
    resolved = until(lambda: capture_server.received()[1:], "the resolved notification")
    assert len(resolved) == 1 and len(capture_server.received()) == 2
    assert resolved[0].json()["reason"] == "RootCauseResolved"
    assert resolved[0].json()["message"] == (f"Resolved: GitRepository/{namespace}/repo is Ready again; 3 affected "
                                             f"object(s) recovered: {affected}")


# ---------------------------------------------------------------------------------------------- receivers

def receiver(kube, namespace, name="push", **spec):
    spec.setdefault("type", "github")
    spec.setdefault("secretRef", {"name": "webhook-token"})
    spec.setdefault("resources", [{"kind": "GitRepository", "name": "repo"}])
    return apply_source(kube, RECEIVER, namespace, name, spec)


def receiver_url(controller, path: str) -> str:
    return f"http://127.0.0.1:{controller.receiver_server.port}{path}"


def github_call(url: str, body: bytes, token: str, event: str = "push") -> int:
    signature = "sha256=" + hmac.new(token.encode(), body, hashlib.sha256).hexdigest()
    return post(url, body, {"X-Hub-Signature-256": signature, "X-GitHub-Event": event})


def test_receiver_status_and_webhook_call_request_reconciliation(notification_controller, kube, namespace):
    apply_source(kube, GIT_REPOSITORY, namespace, "repo", {"interval": "1h", "url": "https://example.com/r.git"})
    apply_source(kube, GIT_REPOSITORY, namespace, "other", {"interval": "1h", "url": "https://example.com/o.git"})
    receiver(kube, namespace, events=["push"])
    not_found = wait(kube, RECEIVER, namespace, "push",
                     lambda o: (find_condition(o, "Ready") or {}).get("reason") == "TokenNotFound", "TokenNotFound")
    assert dig(not_found, "status.webhookPath") in (None, "")
    apply_secret(kube, namespace, "webhook-token", {"token": "tok3n"})
    kube.patch(RECEIVER, "push", {"metadata": {"annotations": {"reconcile.fluxcd.io/requestedAt": "now"}}}, namespace)
    ready = wait(kube, RECEIVER, namespace, "push",
                 lambda o: (find_condition(o, "Ready") or {}).get("status") == "True", "Ready")
    path = "/hook/" + hashlib.sha256(f"tok3npush{namespace}".encode()).hexdigest()
    assert dig(ready, "status.webhookPath") == path
    assert find_condition(ready, "Ready")["message"] == f"Receiver initialized for path: {path}"
    url = receiver_url(notification_controller, path)
    until(lambda: notification_controller.receiver_server._receiver_at(path), "the receiver in the cache", 15)

    body = json.dumps({"ref": "refs/heads/main"}).encode()
    assert post(receiver_url(notification_controller, "/hook/unknown"), body) == 404
    assert github_call(url, body, "wrong") == 400
    assert github_call(url, body, "tok3n", event="issues") == 400
    assert github_call(url, body, "tok3n") == 200
    annotated = kube.get(GIT_REPOSITORY, "repo", namespace)
    assert dig(annotated, "metadata.annotations")["reconcile.fluxcd.io/requestedAt"]
    assert "reconcile.fluxcd.io/requestedAt" not in (dig(kube.get(GIT_REPOSITORY, "other", namespace),
                                                         "metadata.annotations") or {})

    kube.patch(RECEIVER, "push", {"spec": {"suspend": True}}, namespace)
    until(lambda: dig(notification_controller.receiver_server._receiver_at(path) or {}, "spec.suspend"),
          "the suspended receiver in the cache", 15)
    assert github_call(url, body, "tok3n") == 503


def test_receiver_wildcard_match_labels_and_resource_filter(notification_controller, kube, namespace):
    for name, team in (("a", "web"), ("b", "web"), ("c", "db")):
        kube.apply({"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                    "metadata": {"name": name, "namespace": namespace, "labels": {"team": team}},
                    "spec": {"interval": "1h", "url": f"https://example.com/{name}.git"}}, field_manager=MANAGER)
    apply_secret(kube, namespace, "webhook-token", {"token": "t"})
    receiver(kube, namespace, type="generic",
             resources=[{"kind": "GitRepository", "name": "*", "matchLabels": {"team": "web"}}],
             resourceFilter="res.metadata.name != req.skip")
    ready = wait(kube, RECEIVER, namespace, "push", lambda o: dig(o, "status.webhookPath"), "a webhook path")
    path = dig(ready, "status.webhookPath")
    until(lambda: notification_controller.receiver_server._receiver_at(path), "the receiver in the cache", 15)
    assert post(receiver_url(notification_controller, path), b'{"skip": "b"}') == 200
    annotations = {n: dig(kube.get(GIT_REPOSITORY, n, namespace), "metadata.annotations") or {} for n in "abc"}
    assert "reconcile.fluxcd.io/requestedAt" in annotations["a"]
    assert "reconcile.fluxcd.io/requestedAt" not in annotations["b"], "filtered out by resourceFilter"
    assert "reconcile.fluxcd.io/requestedAt" not in annotations["c"], "labels do not match"


def test_receiver_bad_filter_and_unsupported_type_stall(notification_controller, kube, namespace):
    apply_secret(kube, namespace, "webhook-token", {"token": "t"})
    receiver(kube, namespace, "bad-filter", type="generic", resourceFilter="res.metadata.name ==")
    receiver(kube, namespace, "gcr", type="gcr")
    for name, reason, text in (("bad-filter", "InvalidCELExpression", "invalid resourceFilter expression"),
                               ("gcr", "UnsupportedType", "receiver type 'gcr' is not supported by fluxpy")):
        obj = wait(kube, RECEIVER, namespace, name,
                   lambda o: (find_condition(o, "Stalled") or {}).get("status") == "True", "Stalled")
        stalled = find_condition(obj, "Stalled")
        assert stalled["reason"] == reason and text in stalled["message"]
        assert stalled["message"].startswith("Reconciliation failed terminally due to configuration error")
    assert wait_event(kube, namespace, "gcr", "UnsupportedType", kind="Receiver")["type"] == "Warning"


def test_bad_tls_is_a_clear_warning_and_cert_secret_ref_trusts_a_ca(notification_controller, kube, namespace,
                                                                      github_host):
    """An HTTPS address whose certificate the system does not trust fails with the TLS error; with
    ``certSecretRef`` naming the CA the handshake succeeds (the server then answers 404)."""
    address = f"{github_host.base_url}/hooks/flux"
    apply_secret(kube, namespace, "hook-ca", {"ca.crt": github_host.ca_pem.decode()})
    provider(kube, namespace, "untrusted", address=address)
    provider(kube, namespace, "trusted", address=address, certSecretRef={"name": "hook-ca"})
    alert(kube, namespace, "to-untrusted", grouping=False, providerRef={"name": "untrusted"})
    alert(kube, namespace, "to-trusted", grouping=False, providerRef={"name": "trusted"})
    watched(notification_controller, 2)
    post(events_url(notification_controller), ks_event(namespace))
    untrusted = wait_event(kube, namespace, "to-untrusted", "NotificationDispatchFailed", kind="Alert")
    assert "certificate verify failed" in untrusted["message"], untrusted["message"]
    trusted = wait_event(kube, namespace, "to-trusted", "NotificationDispatchFailed", kind="Alert")
    assert "request failed with status code 404" in trusted["message"], trusted["message"]
