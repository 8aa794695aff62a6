"""``why``'s data without the CLI: :func:`controllers.runtime.inspect.walk` over a cache-backed Resolver (no API
call), :func:`~controllers.runtime.inspect.explain` on a failing chain read with a KubeClient (events, the logs
note), the statusless fallback (an Alert reporting by Warning events), NotFound for a missing root; the pure
helpers moved down from the CLI (``as_json``, ``manager_of``, ``event_time``, ``flux_event_filter``)."""
from __future__ import annotations

import pytest

from controllers.api.builtin import EVENT
from controllers.api.kinds import kind_by_name
from controllers.runtime import inspect
from controllers.runtime.kube import NotFound

GIT, KS, HR = kind_by_name("source git"), kind_by_name("ks"), kind_by_name("hr")
NOW = "2026-01-01T00:00:00Z"


def _ready(status: str, reason: str = "", message: str = "") -> dict:
    return {"conditions": [{"type": "Ready", "status": status, "reason": reason or "Succeeded",
                            "message": message or "ok", "lastTransitionTime": NOW}]}


def _obj(kind, name: str, namespace: str, spec: dict, status: dict | None = None) -> dict:
    obj = {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": {"name": name, "namespace": namespace},
           "spec": spec}
    if status is not None:
        obj["status"] = status
    return obj


def _ks_spec(source: str, depends_on=()) -> dict:
    spec = {"interval": "10m", "path": "./", "prune": True, "sourceRef": {"kind": "GitRepository", "name": source}}
    if depends_on:
        spec["dependsOn"] = list(depends_on)
    return spec


class NoApi:
    """A stand-in client: any use of it fails the test."""

    def __getattr__(self, name):
        raise AssertionError(f"API call: kube.{name}")


class CacheResolver(inspect.Resolver):
    """Reads objects from a dict keyed (kind, namespace, name); counts reads."""

    def __init__(self, objects: list[dict]):
        super().__init__(NoApi())
        self.objects = {(o["kind"], o["metadata"].get("namespace", ""), o["metadata"]["name"]): o for o in objects}
        self.reads: list[tuple[str, str, str]] = []

    def get(self, rt, name, namespace):
        key = (rt.kind, namespace if rt.namespaced else "", name)
        self.reads.append(key)
        return self.objects.get(key)


def test_walk_reads_a_cache_resolver_and_makes_no_api_call():
    ns = "apps"
    cache = CacheResolver([
        _obj(GIT, "infra-repo", ns, {"url": "https://example.com/infra"},
             _ready("False", "AuthenticationFailed", "authentication required")),
        _obj(GIT, "apps-repo", ns, {"url": "https://example.com/apps"}, _ready("True")),
        _obj(KS, "infra", ns, _ks_spec("infra-repo"), _ready("False", "ArtifactFailed", "no artifact")),
        # a dependsOn naming its apiVersion (resolved from the kinds table, not discovery), a missing one
        _obj(KS, "apps", ns, _ks_spec("apps-repo", [{"name": "infra"},
                                                    {"apiVersion": HR.api_version, "kind": "HelmRelease",
                                                     "name": "db"}]),
             _ready("False", "DependencyNotReady", "dependency not ready")),
    ])
    root = inspect.walk(None, "Kustomization", "apps", ns, resolver=cache)
    assert [(c.relation, c.ref, c.ready) for c in root.children] == [
        ("source", f"GitRepository/{ns}/apps-repo", "True"),
        ("dependsOn", f"Kustomization/{ns}/infra", "False"),
        ("dependsOn", f"HelmRelease/{ns}/db", "Missing")]
    assert [n.ref for n in inspect.failing_path(root)] == [f"Kustomization/{ns}/apps", f"Kustomization/{ns}/infra",
                                                           f"GitRepository/{ns}/infra-repo"]
    assert inspect.root_cause(root).reason == "AuthenticationFailed"
    assert ("Kustomization", ns, "apps") in cache.reads and ("HelmRelease", ns, "db") in cache.reads

    doc = inspect.as_json(root)
    assert doc["ready"] == "False" and doc["dependencies"][1]["dependencies"][0]["reason"] == "AuthenticationFailed"
    assert doc["dependencies"][2]["message"] == f"HelmRelease/{ns}/db not found"


def test_walk_over_a_cache_reports_a_cycle_and_an_unknown_root_kind():
    cache = CacheResolver([_obj(KS, n, "x", _ks_spec("repo", [{"name": d}]), _ready("False"))
                           for n, d in (("a", "b"), ("b", "a"))] + [_obj(GIT, "repo", "x", {}, _ready("True"))])
    cause = inspect.root_cause(inspect.walk(None, "ks", "a", "x", resolver=cache))
    assert cause.cycle == ["Kustomization/x/a", "Kustomization/x/b", "Kustomization/x/a"]
    with pytest.raises(NotFound, match="unknown kind 'nosuchkind'"):
        inspect.walk(None, "nosuchkind", "a", "x", resolver=cache)


def test_explain_a_failing_chain_with_a_kube_client(kube, flux_crds, namespace, tmp_path):
    kube.create(GIT, _obj(GIT, "infra-repo", namespace, {"interval": "1m", "url": "https://example.com/infra"}))
    kube.patch(GIT, "infra-repo", {"status": _ready("False", "AuthenticationFailed", "invalid credentials")},
               namespace, subresource="status")
    kube.create(KS, _obj(KS, "apps", namespace, _ks_spec("infra-repo")))
    kube.patch(KS, "apps", {"status": _ready("False", "ArtifactFailed", "source not ready")}, namespace,
               subresource="status")
    for i, when in enumerate(("2026-01-01T00:00:03Z", "2026-01-01T00:00:01Z", "2026-01-01T00:00:02Z",
                              "2026-01-01T00:00:04Z")):
        kube.create(EVENT, {"apiVersion": "v1", "kind": "Event",
                            "metadata": {"name": f"infra-repo.{i}", "namespace": namespace},
                            "involvedObject": {"kind": "GitRepository", "name": "infra-repo", "namespace": namespace},
                            "type": "Warning" if i < 3 else "Normal", "reason": "AuthenticationFailed",
                            "message": f"failure {i}", "lastTimestamp": when, "firstTimestamp": when,
                            "source": {"component": "source-controller"}}, namespace)

    explained = inspect.explain(kube, "kustomization", "apps", namespace, flux_namespace=namespace,
                                state_dir=str(tmp_path))
    assert isinstance(explained, inspect.Explanation) and not explained.ready
    assert [n.ref for n in explained.path] == [f"Kustomization/{namespace}/apps", f"GitRepository/{namespace}/infra-repo"]
    assert explained.cause is explained.path[-1]
    assert (explained.cause.reason, explained.cause.message) == ("AuthenticationFailed", "invalid credentials")
    # the Warning events only, oldest first (event_time), at most 3
    assert [e["message"] for e in explained.cause.events] == ["failure 1", "failure 2", "failure 0"]
    # no controllers run here: the note says so, as `fluxpy why` prints it
    assert explained.note.startswith("logs unavailable: no fluxpy controller Pods found in " + namespace)
    assert explained.cause.log_lines == []
    assert [e["message"] for e in inspect.recent_warnings(kube, explained.cause, limit=1)] == ["failure 0"]


def test_explain_a_ready_object_and_a_missing_one(kube, flux_crds, namespace, tmp_path):
    kube.create(GIT, _obj(GIT, "repo", namespace, {"interval": "1m", "url": "https://example.com/r"}))
    kube.patch(GIT, "repo", {"status": _ready("True")}, namespace, subresource="status")
    explained = inspect.explain(kube, "GitRepository", "repo", namespace, state_dir=str(tmp_path))
    assert explained.ready and explained.cause is None and explained.path == [] and explained.note == ""
    with pytest.raises(NotFound) as missing:
        inspect.explain(kube, "GitRepository", "ghost", namespace, state_dir=str(tmp_path))
    assert missing.value.message == f"GitRepository/{namespace}/ghost not found"


def test_explain_an_alert_that_reports_failures_by_events(kube, flux_crds, namespace, tmp_path):
    provider, alert = kind_by_name("alert-provider"), kind_by_name("alert")
    kube.create(provider, _obj(provider, "hook", namespace, {"type": "generic", "address": "http://127.0.0.1:1/"}))
    kube.create(alert, _obj(alert, "ops", namespace, {"providerRef": {"name": "hook"},
                                                      "eventSources": [{"kind": "Kustomization", "name": "*"}]}))
    assert inspect.explain(kube, "alert", "ops", namespace, state_dir=str(tmp_path)).ready
    kube.create(EVENT, {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "ops.1", "namespace": namespace},
                        "involvedObject": {"kind": "Alert", "name": "ops", "namespace": namespace},
                        "type": "Warning", "reason": "NotificationFailed", "message": "failed to send: refused\n",
                        "lastTimestamp": NOW, "firstTimestamp": NOW})
    explained = inspect.explain(kube, "alert", "ops", namespace, state_dir=str(tmp_path))
    assert explained.cause is explained.root and explained.path == [explained.root]
    assert (explained.cause.ready, explained.cause.reason, explained.cause.message) == (
        "False", "NotificationFailed", "failed to send: refused")


def test_manager_of_and_the_event_helpers():
    assert inspect.manager_of({"metadata": {"labels": {"kustomize.toolkit.fluxcd.io/name": "apps",
                                                       "kustomize.toolkit.fluxcd.io/namespace": "flux-system"}}}) \
        == ("Kustomization", "apps", "flux-system")
    assert inspect.manager_of({"metadata": {"labels": {"helm.toolkit.fluxcd.io/name": "web"}}}) == ("HelmRelease", "web", "")
    assert inspect.manager_of({"metadata": {}}) is None
    assert [m[0] for m in inspect.MANAGERS] == ["Kustomization", "HelmRelease"]

    event = {"metadata": {"creationTimestamp": "2026-01-01T00:00:00Z"}}
    assert inspect.event_time(event) == "2026-01-01T00:00:00Z"
    assert inspect.event_time({**event, "eventTime": "2026-01-02T00:00:00Z"}) == "2026-01-02T00:00:00Z"
    assert inspect.event_time({**event, "eventTime": "x", "lastTimestamp": "2026-01-03T00:00:00Z"}) == "2026-01-03T00:00:00Z"

    about_ks = {"type": "Warning", "involvedObject": {"kind": "Kustomization", "name": "apps"}}
    about_pod = {"type": "Warning", "involvedObject": {"kind": "Pod", "name": "web"}}
    assert [inspect.flux_event_filter(None, None, set())(e) for e in (about_ks, about_pod)] == [True, False]
    assert not inspect.flux_event_filter(None, None, {"normal"})(about_ks)
    assert inspect.flux_event_filter("Kustomization", "apps", set())(about_ks)
    assert not inspect.flux_event_filter("Kustomization", "other", set())(about_ks)
