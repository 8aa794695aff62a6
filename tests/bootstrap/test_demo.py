"""The README's story (bootstrap.demo) end to end on a control plane of its own, with the real controllers:
a local Git server and example repository (infrastructure and apps layers with dependsOn, a postBuild
substitution, a SOPS-encrypted Secret), ``fluxpy bootstrap git``, everything Ready, a change pushed and applied,
a direct edit reverted, a HelmRelease from the demo's chart repository installed and read by the real ``helm list``,
a push reaching the cluster through a Receiver's webhook with the Alert's notifications in the Git server's sink
— and a second run that reuses it all."""
from __future__ import annotations

import sys

import pytest

from tests.bootstrap.support import E2E_COMPONENTS

pytestmark = pytest.mark.integration
#: the demo also installs a HelmRelease, and a push reaches a Receiver
DEMO_COMPONENTS = (*E2E_COMPONENTS, "helm-controller", "notification-controller")


@pytest.fixture(scope="module")
def demo_cluster(tmp_path_factory):
    from controllers.components import COMPONENTS
    from controllers.localcluster import dev
    from controllers.localcluster.plane import ControlPlane

    for component in DEMO_COMPONENTS:
        if not COMPONENTS[component].reconcilers:
            pytest.skip(f"{component} has no reconcilers registered in controllers/components.py yet")
    plane = ControlPlane(tmp_path_factory.mktemp("demo-plane"), log=lambda m: print(m, file=sys.stderr))
    plane.start(timeout=90)
    state = tmp_path_factory.mktemp("demo-state")

    def command(component, kubeconfig):
        argv = dev.controller_command(component, kubeconfig)
        return argv + (["--storage-addr=127.0.0.1:0"] if component == "source-controller" else [])

    dev.start_controllers(state, DEMO_COMPONENTS, kubeconfig=plane.kubeconfig, command=command,
                          env={"FLUXPY_STATE_DIR": str(state)})
    try:
        yield plane, state
    finally:
        from bootstrap.demo import stop_git_server

        stop_git_server(state / "demo", lambda m: None)
        dev.stop_controllers(state)
        plane.stop()


def test_the_whole_story(demo_cluster):
    import subprocess

    if subprocess.run([sys.executable, "-m", "flux_cli", "bootstrap", "--help"], capture_output=True,
                      timeout=60).returncode != 0:
        pytest.skip("flux_cli/main.py does not register the bootstrap commands yet")
    from bootstrap.demo import Story, story
    from controllers.api.builtin import CONFIGMAP, SECRET
    from controllers.runtime.kube import KubeClient

    plane, state = demo_cluster
    lines: list[str] = []
    story(Story(state / "demo", plane.kubeconfig, DEMO_COMPONENTS, log=lines.append, timeout="3m"))
    text = "\n".join(lines)
    for expected in ("$ fluxpy bootstrap git --url http://127.0.0.1:", "✔ bootstrap finished",
                     "✔ Kustomization apps is Ready",
                     "greeting='hello from fluxpy' (postBuild substitution)",
                     "Secret demo/podinfo-credentials decrypted (password, username)",
                     "✔ ConfigMap demo/podinfo greeting='hello again, from Git'",
                     "greeting='hello again, from Git' again, as in Git", "$ fluxpy get all -A",
                     "✔ HelmRelease greeter is Ready", "$ helm list -A", "demo-greeter",
                     "✔ Receiver fleet-push is Ready", "ConfigMap demo/platform-settings last-push=",
                     "✔ the Alert's notifications reached the sink", "$ fluxpy get receivers -n flux-system"):
        assert expected in text, text
    kube = KubeClient.from_kubeconfig(plane.kubeconfig)
    assert kube.get(CONFIGMAP, "podinfo", "demo")["data"]["greeting"] == "hello again, from Git"
    assert kube.get(SECRET, "podinfo-credentials", "demo")["data"]["username"] == "cG9kaW5mbw=="  # podinfo
    assert kube.get(CONFIGMAP, "demo-greeter", "demo")["data"]["greeting"] == "hello from a HelmRelease"
    assert "deployed" in text.split("$ helm list -A", 1)[1]

    # again: the server and repository are reused, bootstrap commits nothing, the change goes back
    lines.clear()
    story(Story(state / "demo", plane.kubeconfig, DEMO_COMPONENTS, log=lines.append, timeout="3m"))
    text = "\n".join(lines)
    assert "Git server already running" in text and "exists" in text
    assert "✔ component manifests are up to date" in text
    assert kube.get(CONFIGMAP, "podinfo", "demo")["data"]["greeting"] == "hello from fluxpy"


def test_the_ui_shows_the_demo_and_drives_its_controllers(demo_cluster):
    """``fluxpy ui`` on the demo, in a real headless Chromium, with the real controllers: every Flux object
    green; its Git server stopped, the GitRepository turns what depends on it red within a second of its Ready=False,
    with the root cause named; a click on reconcile is handled by the kustomize-controller. The screenshots
    are the README's (``make screenshots``)."""
    import json
    import threading
    import time

    from controllers.api.kustomize import KUSTOMIZATION
    from controllers.api.objects import find_condition
    from controllers.api.source import GIT_REPOSITORY
    from controllers.runtime.kube import KubeClient
    from flux_cli.web import launch
    from servers.browser import Browser
    from servers.ui import screenshot

    plane, state = demo_cluster
    kube = KubeClient.from_kubeconfig(plane.kubeconfig)
    ui = launch.workstation(kube, port=0, state_dir=str(state))

    def node(node_id: str) -> str:
        return f"document.querySelector({json.dumps(f'g.node[data-id={json.dumps(node_id)}]')})"

    source, apps = "GitRepository/flux-system/flux-system", "Kustomization/flux-system/apps"
    flux_objects = (source, "Kustomization/flux-system/flux-system", "Kustomization/flux-system/infrastructure",
                    apps, "HelmRelease/flux-system/greeter", "HelmRepository/flux-system/demo-charts")
    try:
        with Browser.launch() as browser:
            page = browser.new_page(1280, 800)
            page.goto(ui.url)
            page.wait_for(" && ".join(f"{node(n)}?.classList.contains('state-ready')" for n in flux_objects),
                          timeout=20)
            drawn = page.evaluate("[...document.querySelectorAll('g.node')].map(g => [g.dataset.id, g.getAttribute('class')])")
            assert not [(i, c) for i, c in drawn if "failed" in c or "blocked" in c or "missing" in c], drawn
            assert "ConfigMap/demo/podinfo" in dict(drawn) and "Deployment.apps/demo/podinfo" in dict(drawn)
            assert "Service/demo/demo-greeter" in dict(drawn)  # from the HelmRelease's release, in Helm's storage
            screenshot(page, "ui-demo-graph.png")

            # break the source for real: its controller reports Ready=False; the page follows within a second
            broken_at: list[float] = []

            def watch_source() -> None:
                def failed(obj):
                    return (find_condition(obj, "Ready") or {}).get("status") == "False"
                kube.wait_for(GIT_REPOSITORY, "flux-system", "flux-system", failed, timeout=60, what="source failing")
                broken_at.append(time.monotonic())

            watcher = threading.Thread(target=watch_source, daemon=True)
            watcher.start()
            from bootstrap.demo import stop_git_server
            from controllers.runtime import protocol

            stop_git_server(state / "demo", lambda m: None)  # the outage: the Git server is gone
            protocol.request_reconcile(kube, GIT_REPOSITORY, "flux-system", "flux-system")
            try:
                page.wait_for(f"({node(apps)}?.classList.contains('blocked') || {node(apps)}?.classList.contains("
                              f"'state-failed')) && {node(source)}.classList.contains('state-failed')", timeout=60)
            except Exception:
                conditions = kube.get(GIT_REPOSITORY, "flux-system", "flux-system")["status"]["conditions"]
                raise AssertionError((conditions, page.evaluate(
                    f"[{node(apps)}?.getAttribute('class'), {node(source)}?.getAttribute('class')]")))
            shown_at = time.monotonic()
            watcher.join(30)
            assert broken_at and shown_at - broken_at[0] < 1.0, (broken_at, shown_at)
            page.click(f"g.node[data-id={json.dumps(apps)}]")
            line = page.wait_for("document.getElementById('root-cause')?.textContent.includes('GitOperationFailed')"
                                 " && document.getElementById('root-cause').textContent", timeout=15)
            assert line.startswith(f"root cause: {source}: GitOperationFailed"), line

            # a reconcile clicked on the object page, handled by the real kustomize-controller
            before = kube.get(KUSTOMIZATION, "apps", "flux-system")["status"].get("lastHandledReconcileAt")
            page.goto(ui.url + "#/object?id=" + apps)
            page.wait_for("document.querySelector('[data-action=\"reconcile\"]')", timeout=10)
            page.click("[data-action=\"reconcile\"]")
            page.wait_for("document.querySelector('dialog[open]')", timeout=5)
            page.click("#confirm-ok")
            status = kube.wait_for(KUSTOMIZATION, "apps", "flux-system",
                                   lambda o: (o.get("status") or {}).get("lastHandledReconcileAt") not in (None, before),
                                   timeout=60, what="the reconcile requested from the page").get("status")
            annotations = kube.get(KUSTOMIZATION, "apps", "flux-system")["metadata"]["annotations"]
            assert status["lastHandledReconcileAt"] == annotations["reconcile.fluxcd.io/requestedAt"]
            page.wait_for("document.body.textContent.includes('reconciliation completed')", timeout=60)
            screenshot(page, "ui-demo-object.png")
    finally:
        ui.stop()
