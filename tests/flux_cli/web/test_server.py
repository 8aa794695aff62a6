"""``fluxpy ui``'s server against the control plane: the graph, the live stream, the object page, the
actions, RBAC, and who may talk to it."""
from __future__ import annotations

import time

from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.source import GIT_REPOSITORY
from servers.git import artifact_storage  # noqa: F401 - fixture
from servers.sources import artifact_sources  # noqa: F401 - fixture
from servers.ui import Client, Events, make_pipeline, set_ready


def test_graph_and_a_status_change_on_the_stream_within_a_second(kube, namespace, ui_for):
    make_pipeline(kube, namespace)
    ui = ui_for(kube, namespaces=(namespace,))
    client = Client(ui.url)
    graph = client.get("/api/graph")
    nodes = {n["id"]: n for n in graph["nodes"]}
    repo, apps = f"GitRepository/{namespace}/repo", f"Kustomization/{namespace}/apps"
    assert nodes[repo]["state"] == "ready"
    assert nodes[repo]["revision"].startswith("main@sha1:")
    assert {"id": f"Kustomization/{namespace}/infra", "relation": "dependsOn"} in nodes[apps]["deps"]
    assert nodes[f"Deployment.apps/{namespace}/web"]["deps"] == [
        {"id": f"Kustomization/{namespace}/infra", "relation": "applies"}]
    assert graph["forbidden"] == [] and namespace in graph["namespaces"]
    filtered = client.get(f"/api/graph?kind=GitRepository")
    assert [n["id"] for n in filtered["nodes"]] == [repo]

    events = Events(client)
    first = events.next()
    assert first[0] == "graph" and repo in {n["id"] for n in first[1]["nodes"]}
    started = time.monotonic()
    set_ready(kube, GIT_REPOSITORY, namespace, "repo", "False", "GitOperationFailed", "failed to checkout")
    _, change = events.until(lambda e, d: e == "change" and any(
        n["id"] == apps and n["blocked"] for n in d["nodes"]))
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, elapsed
    changed = {n["id"]: n for n in change["nodes"]}
    assert changed[repo]["state"] == "failed"
    assert changed[apps]["cause"] == {"id": repo, "reason": "GitOperationFailed", "message": "failed to checkout"}
    events.close()


def test_object_page_has_why_conditions_and_events(kube, namespace, ui_for):
    make_pipeline(kube, namespace, source_ready="False")
    ui = ui_for(kube, namespaces=(namespace,))
    client = Client(ui.url)
    page = client.get(f"/api/object?id=Kustomization/{namespace}/apps")
    assert page["node"]["blocked"]
    assert page["why"]["line"].startswith(f"root cause: GitRepository/{namespace}/repo: Succeeded")
    assert page["conditions"][0]["type"] == "Ready"
    assert "managedFields" not in page["object"]["metadata"]
    infra = client.get(f"/api/object?id=Kustomization/{namespace}/infra")
    assert set(infra["objects"]) == {f"ConfigMap/{namespace}/settings", f"Deployment.apps/{namespace}/web"}
    status, _, missing = client.request("GET", f"/api/object?id=Kustomization/{namespace}/nope")
    assert status == 404 and missing["error"] == "not found"
    status, _, bad = client.request("GET", "/api/object?id=nonsense")
    assert status == 400 and "Kind/namespace/name" in bad["message"]


def test_actions_reconcile_suspend_resume_with_the_users_credentials(kube, namespace, ui_for):
    make_pipeline(kube, namespace)
    ui = ui_for(kube, namespaces=(namespace,))
    client = Client(ui.url)
    events = Events(client)
    events.next()
    status, _, answer = client.action({"id": f"Kustomization/{namespace}/apps", "action": "reconcile",
                                       "withSource": True})
    assert status == 202, answer
    assert answer["steps"] == [f"GitRepository/{namespace}/repo", f"Kustomization/{namespace}/apps"]
    _, requested = events.until(lambda e, d: e == "action" and d["phase"] == "requested")
    assert requested["step"] == f"GitRepository/{namespace}/repo"
    annotations = kube.get(GIT_REPOSITORY, "repo", namespace)["metadata"]["annotations"]
    assert annotations["reconcile.fluxcd.io/requestedAt"] == requested["token"]

    status, _, _ = client.action({"id": f"Kustomization/{namespace}/apps", "action": "suspend"})
    assert status == 202
    assert kube.get(KUSTOMIZATION, "apps", namespace)["spec"]["suspend"] is True
    status, _, refused = client.action({"id": f"Kustomization/{namespace}/apps", "action": "reconcile"})
    assert status == 409 and "suspended" in refused["message"]
    status, _, _ = client.action({"id": f"Kustomization/{namespace}/apps", "action": "resume"})
    assert status == 202 and kube.get(KUSTOMIZATION, "apps", namespace)["spec"]["suspend"] is False
    status, _, bad = client.action({"id": f"Kustomization/{namespace}/apps", "action": "reconcile", "force": True})
    assert status == 400 and "--force does not apply to Kustomization" in bad["message"]
    events.close()


def test_a_user_without_rbac_gets_forbidden_not_an_empty_graph(kube, namespace, ui_for):
    make_pipeline(kube, namespace)
    alice = kube.impersonate("alice")
    ui = ui_for(alice, namespaces=(namespace,))
    client = Client(ui.url)
    graph = client.get("/api/graph")
    assert graph["nodes"] == [] and graph["identity"] == "alice"
    forbidden = {f["kind"]: f["message"] for f in graph["forbidden"]}
    assert 'User "alice" cannot list resource "kustomizations"' in forbidden["Kustomization"]
    status, _, page = client.request("GET", f"/api/object?id=Kustomization/{namespace}/apps")
    assert status == 403 and page["error"] == "forbidden" and "alice" in page["message"]
    status, _, answer = client.action({"id": f"Kustomization/{namespace}/apps", "action": "suspend"})
    assert status == 403 and answer["error"] == "forbidden"


def test_who_may_talk_to_it(kube, namespace, ui_for):
    make_pipeline(kube, namespace)
    ui = ui_for(kube, namespaces=(namespace,))
    client = Client(ui.url)
    target = {"id": f"Kustomization/{namespace}/apps", "action": "suspend"}
    # no cookie
    status, _, answer = client.request("GET", "/api/graph", cookie=False)
    assert status == 401 and "token" in answer["message"]
    # a wrong token in the URL
    status, _, _ = client.request("GET", "/?token=wrong", cookie=False)
    assert status == 401
    # DNS rebinding: another Host
    status, _, answer = client.request("GET", "/api/graph", headers={"Host": f"evil.example:{client.port}"})
    assert status == 403 and "Host" in answer["message"]
    # CSRF: no token header, a foreign Origin, a cross-site fetch, a form body
    status, _, _ = client.request("POST", "/api/action", target)
    assert status == 403
    status, _, answer = client.action(target, headers={"Origin": "http://evil.example"})
    assert status == 403 and "cross-origin" in answer["message"]
    status, _, _ = client.action(target, headers={"Sec-Fetch-Site": "cross-site"})
    assert status == 403
    status, _, _ = client.action(target, headers={"Content-Type": "text/plain"})
    assert status == 415
    assert not kube.get(KUSTOMIZATION, "apps", namespace)["spec"].get("suspend")
    # the page itself: the token in its meta tag, CSP, no-store
    status, headers, page = client.request("GET", "/")
    assert status == 200 and client.token.encode() in page
    assert headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert headers["Cache-Control"] == "no-store"


def test_the_command_prints_its_url_serves_and_stops_on_ctrl_c(kube, kubeconfig, namespace, flux_crds):
    import signal
    import socket
    import subprocess
    import sys

    make_pipeline(kube, namespace)
    proc = subprocess.Popen([sys.executable, "-m", "flux_cli", "ui", "--port", "0", f"--kubeconfig={kubeconfig}",
                             f"--namespaces={namespace}"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:") and "/?token=" in url, (url, proc.stderr.read())
        graph = Client(url).get("/api/graph")
        assert f"Kustomization/{namespace}/apps" in {n["id"] for n in graph["nodes"]}
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
        assert "Traceback" not in proc.stderr.read()
    finally:
        proc.kill()
    # the port taken: one line, exit 1
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "flux_cli", "ui", "--port", str(port),
                                 f"--kubeconfig={kubeconfig}", f"--namespaces={namespace}"],
                                capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_the_diff_of_what_the_next_apply_would_change(kube, namespace, ui_for, artifact_sources):
    from controllers.api.builtin import CONFIGMAP

    artifact_sources.publish(namespace, "app", {"deploy/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n"
                                                                 "  name: a\ndata:\n  size: small\n"})
    kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                "metadata": {"name": "app", "namespace": namespace},
                                "spec": {"interval": "1h", "path": "./deploy", "prune": True,
                                         "targetNamespace": namespace,
                                         "sourceRef": {"kind": "GitRepository", "name": "app"}}}, namespace)
    kube.create(CONFIGMAP, {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"},
                            "data": {"size": "large"}}, namespace)  # drifted from what Git says
    ui = ui_for(kube, namespaces=(namespace,))
    client = Client(ui.url)
    diff = client.get(f"/api/diff?id=Kustomization/{namespace}/app")
    assert diff["changed"] and diff["drift"] == [f"ConfigMap/{namespace}/a"]
    assert diff["actions"] == {f"ConfigMap/{namespace}/a": "drifted"}
    assert "-  size: large" in diff["diff"] and "+  size: small" in diff["diff"]
    assert kube.get(CONFIGMAP, "a", namespace)["data"] == {"size": "large"}  # a dry run
    status, _, refused = client.request("GET", f"/api/diff?id=GitRepository/{namespace}/app")
    assert status == 400 and "only Kustomizations and HelmReleases" in refused["message"]


def test_a_helmrelease_force_and_reset_set_flux_annotations(kube, namespace, ui_for):
    from controllers.api.helm import HELM_RELEASE

    kube.create(HELM_RELEASE, {"apiVersion": HELM_RELEASE.api_version, "kind": "HelmRelease",
                               "metadata": {"name": "web", "namespace": namespace},
                               "spec": {"interval": "1h", "chart": {"spec": {"chart": "web", "sourceRef": {
                                   "kind": "HelmRepository", "name": "charts"}}}}}, namespace)
    ui = ui_for(kube, namespaces=(namespace,))
    client = Client(ui.url)
    node = next(n for n in client.get("/api/graph")["nodes"] if n["id"] == f"HelmRelease/{namespace}/web")
    assert node["actions"] == ["reconcile", "withSource", "force", "reset", "suspend", "resume"]
    events = Events(client)
    events.next()
    status, _, _ = client.action({"id": node["id"], "action": "reconcile", "force": True, "reset": True})
    assert status == 202
    _, requested = events.until(lambda e, d: e == "action" and d["phase"] == "requested")
    annotations = kube.get(HELM_RELEASE, "web", namespace)["metadata"]["annotations"]
    assert annotations["reconcile.fluxcd.io/forceAt"] == annotations["reconcile.fluxcd.io/resetAt"] == \
        annotations["reconcile.fluxcd.io/requestedAt"] == requested["token"]
    events.close()


def test_an_unreachable_apiserver_is_a_banner_and_json_errors_not_a_traceback(flux_crds, ui_for, capfd):
    from controllers.runtime.kube import KubeClient

    dead = KubeClient("http://127.0.0.1:1")  # nothing listens there
    ui = ui_for(dead)
    client = Client(ui.url)
    graph = client.get("/api/graph")
    assert graph["nodes"] == [] and graph["forbidden"] == []
    failing = {e["kind"]: e["message"] for e in graph["errors"]}
    assert "Kustomization" in failing and "127.0.0.1:1" in failing["Kustomization"]
    status, _, page = client.request("GET", "/api/object?id=Kustomization/flux-system/apps")
    assert status == 502 and page["error"] == "apiserver" and "127.0.0.1:1" in page["message"]
    status, _, answer = client.action({"id": "Kustomization/flux-system/apps", "action": "suspend"})
    assert status == 502
    assert "Traceback" not in capfd.readouterr().err
