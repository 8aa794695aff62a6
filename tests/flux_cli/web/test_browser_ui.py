"""``fluxpy ui`` in a real headless Chromium (Debian's package) against the control plane: the graph's
colours, a failing source turning its dependants red within a second with the root cause named, a reconcile
clicked through its confirmation, and a user without RBAC seeing "forbidden" rather than a blank page.
Statuses are written as the controllers would (the demo's test drives the real controllers)."""
from __future__ import annotations

import json
import time

import pytest

from controllers.api.kustomize import KUSTOMIZATION
from controllers.api.source import GIT_REPOSITORY
from servers.ui import make_pipeline, screenshot, set_ready

pytestmark = pytest.mark.timeout(120)


def node_js(node_id: str) -> str:
    return f"document.querySelector({json.dumps(f'g.node[data-id={json.dumps(node_id)}]')})"


def classes(page, node_id: str) -> list[str]:
    return page.evaluate(f"[...({node_js(node_id)}?.classList ?? [])]")


def fill_of(page, node_id: str) -> tuple[int, int, int]:
    """The node's box colour as drawn (computed style), as (r, g, b)."""
    rgb = page.evaluate(f"getComputedStyle({node_js(node_id)}.querySelector('rect')).fill")
    return tuple(int(v) for v in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3])


def hue(rgb: tuple[int, int, int]) -> str:
    """"red", "green", "blue" or "grey": the channel that dominates, if one does."""
    r, g, b = rgb
    if max(rgb) - min(rgb) < 8:
        return "grey"
    return {r: "red", g: "green", b: "blue"}[max(rgb)]


def test_the_graph_colours_and_a_failing_source_turns_its_dependants_red_within_a_second(
        kube, namespace, ui_for, page):
    make_pipeline(kube, namespace)
    kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                "metadata": {"name": "paused", "namespace": namespace},
                                "spec": {"interval": "1m", "path": "./", "prune": True, "suspend": True,
                                         "sourceRef": {"kind": "GitRepository", "name": "repo"}}}, namespace)
    ui = ui_for(kube, namespaces=(namespace,))
    page.goto(ui.url)
    repo, infra, apps = (f"GitRepository/{namespace}/repo", f"Kustomization/{namespace}/infra",
                         f"Kustomization/{namespace}/apps")
    web = f"Deployment.apps/{namespace}/web"
    page.wait_for(f"{node_js(web)} && {node_js(apps)}", timeout=10)
    for node in (repo, infra, apps, web):
        assert "state-ready" in classes(page, node), (node, classes(page, node))
    assert "state-suspended" in classes(page, f"Kustomization/{namespace}/paused")
    assert hue(fill_of(page, apps)) == "green" and hue(fill_of(page, web)) == "green"
    assert hue(fill_of(page, f"Kustomization/{namespace}/paused")) == "grey"
    screenshot(page, "ui-graph.png")

    started = time.monotonic()
    set_ready(kube, GIT_REPOSITORY, namespace, "repo", "False", "GitOperationFailed",
              "failed to checkout and determine revision: unable to clone 'http://127.0.0.1:1/repo.git'")
    page.wait_for(" && ".join(f"{node_js(n)}.classList.contains('blocked')" for n in (infra, apps, web)), timeout=5)
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"dependants turned red after {elapsed:.2f}s"
    assert "state-failed" in classes(page, repo)
    for node in (repo, infra, apps, web):
        assert hue(fill_of(page, node)) == "red", (node, fill_of(page, node))

    # the object page: the root cause in one line at the top, naming the source
    page.click(f"g.node[data-id={json.dumps(apps)}]")
    line = page.wait_for("document.getElementById('root-cause')?.textContent.includes('GitRepository')"
                         " && document.getElementById('root-cause').textContent", timeout=10)
    assert f"GitRepository/{namespace}/repo" in line and "GitOperationFailed" in line
    screenshot(page, "ui-object.png")


def test_a_click_on_reconcile_changes_last_handled_reconcile_at(kube, namespace, ui_for, page, start_controller):
    """A real reconciler (the runtime's, as the controllers run it) handles the request the button made."""
    make_pipeline(kube, namespace)
    before = kube.get(KUSTOMIZATION, "apps", namespace).get("status", {}).get("lastHandledReconcileAt")
    echo = _echo_reconciler(kube)
    start_controller(echo, namespace)
    ui = ui_for(kube, namespaces=(namespace,))
    page.goto(ui.url + f"#/object?id=Kustomization/{namespace}/apps")
    page.wait_for("document.querySelector('[data-action=\"reconcile\"]')", timeout=10)
    page.click("[data-action=\"reconcile\"]")
    page.wait_for("document.getElementById('confirm-ok') && document.querySelector('dialog[open]')", timeout=5)
    assert "Kustomization" in page.evaluate("document.querySelector('dialog[open]').textContent")
    page.click("#confirm-ok")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        status = kube.get(KUSTOMIZATION, "apps", namespace).get("status", {})
        if status.get("lastHandledReconcileAt") and status.get("lastHandledReconcileAt") != before:
            break
        time.sleep(0.1)
    else:
        raise AssertionError("lastHandledReconcileAt did not change")
    token = kube.get(KUSTOMIZATION, "apps", namespace)["metadata"]["annotations"]["reconcile.fluxcd.io/requestedAt"]
    assert status["lastHandledReconcileAt"] == token
    page.wait_for("document.body.textContent.includes('reconciliation completed')", timeout=10)


def test_a_user_without_rbac_sees_forbidden_not_a_blank_page(kube, namespace, ui_for, page):
    make_pipeline(kube, namespace)
    ui = ui_for(kube.impersonate("alice"), namespaces=(namespace,))
    page.goto(ui.url)
    text = page.wait_for("document.getElementById('banner')?.textContent.includes('forbidden')"
                         " && document.getElementById('banner').textContent", timeout=10)
    assert "kustomizations" in text.lower() and "alice" in text
    screenshot(page, "ui-forbidden.png")


def _kustomization_with(kube, namespace: str, name: str, entries: list[str]) -> None:
    kube.create(KUSTOMIZATION, {"apiVersion": KUSTOMIZATION.api_version, "kind": "Kustomization",
                                "metadata": {"name": name, "namespace": namespace},
                                "spec": {"interval": "1m", "path": "./", "prune": True,
                                         "sourceRef": {"kind": "GitRepository", "name": "repo"}}}, namespace)
    set_ready(kube, KUSTOMIZATION, namespace, name, "True", "ReconciliationSucceeded", "Applied revision",
              inventory={"entries": [{"id": e, "v": "v1"} for e in entries]})


def test_many_applied_objects_are_one_group_node_until_clicked(kube, namespace, ui_for, page):
    """More than 8 applied objects of one manager are drawn as one node, which a click expands (and which
    stays expanded through live updates); 3 are drawn as they are; a search never groups."""
    make_pipeline(kube, namespace)
    _kustomization_with(kube, namespace, "many", [f"{namespace}_cm-{i}__ConfigMap" for i in range(12)])
    _kustomization_with(kube, namespace, "few", [f"{namespace}_few-{i}__ConfigMap" for i in range(3)])
    ui = ui_for(kube, namespaces=(namespace,))
    page.goto(ui.url)
    group = f"group:Kustomization/{namespace}/many"
    maps = f"document.querySelectorAll('g.node[data-id^=\"ConfigMap/{namespace}/cm-\"]').length"
    page.wait_for(f"{node_js(group)} && {node_js(f'ConfigMap/{namespace}/few-2')}", timeout=10)
    assert page.evaluate(maps) == 0
    assert page.evaluate("document.querySelectorAll('g.node.group').length") == 1
    assert {"group", "state-ready"} <= set(classes(page, group))
    text = page.evaluate(f"{node_js(group)}.textContent")
    assert "12 objects" in text and "ConfigMap ×12" in text, text
    for i in range(3):   # 3 applied objects: drawn one by one
        assert "state-ready" in classes(page, f"ConfigMap/{namespace}/few-{i}")
    assert page.evaluate(f"document.querySelector('g.node[data-id=\"group:Kustomization/{namespace}/few\"]')") is None
    # the counter counts objects, not boxes: repo, 4 Kustomizations, 2 + 12 + 3 applied
    assert page.evaluate("document.getElementById('count-objects').textContent") == "22"
    screenshot(page, "ui-group.png")

    # a live update while grouped: the group takes its members' (the manager's) state
    set_ready(kube, KUSTOMIZATION, namespace, "many", "False", "BuildFailed", "kustomize build failed")
    page.wait_for(f"{node_js(group)}.classList.contains('state-failed')", timeout=5)

    page.click(f"g.node[data-id={json.dumps(group)}]")
    page.wait_for(f"{maps} === 12 && !{node_js(group)}", timeout=5)
    assert "state-failed" in classes(page, f"ConfigMap/{namespace}/cm-11")
    assert page.evaluate("location.hash") in ("", "#/")          # a group opens no object page
    collapse = f"#groups [data-collapse={json.dumps(f'Kustomization/{namespace}/many')}]"
    assert "collapse many (12)" in page.evaluate(f"document.querySelector({json.dumps(collapse)}).textContent")

    # expanded survives live updates
    seq = int(page.evaluate("document.body.dataset.seq"))
    set_ready(kube, KUSTOMIZATION, namespace, "many", "True", "ReconciliationSucceeded", "Applied revision",
              inventory={"entries": [{"id": f"{namespace}_cm-{i}__ConfigMap", "v": "v1"} for i in range(12)]})
    page.wait_for(f"+document.body.dataset.seq > {seq} && "
                  f"{node_js(f'ConfigMap/{namespace}/cm-0')}.classList.contains('state-ready')", timeout=5)
    assert page.evaluate(maps) == 12 and page.evaluate("document.querySelectorAll('g.node.group').length") == 0

    # "−" in the corner collapses it again; a search shows every match, never a group
    page.click(collapse)
    page.wait_for(f"{node_js(group)} && {maps} === 0", timeout=5)
    assert page.evaluate("document.getElementById('groups').hidden")
    page.type("#filter-text", "cm-")
    page.wait_for(f"{maps} === 12 && !document.querySelector('g.node.group')", timeout=5)
    assert page.evaluate("document.getElementById('count-objects').textContent") == "12"


def _echo_reconciler(kube):
    """A reconciler for Kustomizations that only acknowledges requests (Ready=True): enough to show the
    request made by the page reaches a controller and is handled."""
    from controllers.runtime.controller import Reconciler
    from controllers.runtime.outcomes import Success

    class Echo(Reconciler):
        kind = KUSTOMIZATION

        def reconcile(self, ctx, obj):
            return Success("Applied revision: echo", reason="ReconciliationSucceeded")

    return Echo()


def test_an_unreachable_apiserver_says_not_live(ui_for, page):
    from controllers.runtime.kube import KubeClient

    ui = ui_for(KubeClient("http://127.0.0.1:1"))
    page.goto(ui.url)
    text = page.wait_for("document.getElementById('banner')?.textContent.includes('not live')"
                         " && document.getElementById('banner').textContent", timeout=10)
    assert "127.0.0.1:1" in text and "retrying" in text


def test_eight_tabs_share_one_stream_and_all_follow_a_change(kube, namespace, ui_for, browser):
    """Browsers open about 6 connections per host: a stream per tab would leave the 7th tab waiting (its page
    would not even load). One SharedWorker holds the stream for every tab."""
    make_pipeline(kube, namespace)
    ui = ui_for(kube, namespaces=(namespace,))
    repo = f"GitRepository/{namespace}/repo"
    tabs = [browser.new_page(800, 600) for _ in range(8)]
    try:
        for tab in tabs:  # a hidden tab paints no frames: each is looked at in turn, as a user would
            tab.send("Page.bringToFront")
            tab.goto(ui.url, timeout=15)
            tab.wait_for(f"{node_js(repo)}?.classList.contains('state-ready')", timeout=10)
        set_ready(kube, GIT_REPOSITORY, namespace, "repo", "False", "GitOperationFailed", "refused")
        for tab in tabs:
            tab.send("Page.bringToFront")
            tab.wait_for(f"{node_js(repo)}?.classList.contains('state-failed')", timeout=5)
        # a tab opened later gets the current graph from the worker at once
        late = browser.new_page(800, 600)
        tabs.append(late)
        late.goto(ui.url, timeout=15)
        late.wait_for(f"{node_js(repo)}?.classList.contains('state-failed')", timeout=5)
    finally:
        for tab in tabs:
            tab.close()
