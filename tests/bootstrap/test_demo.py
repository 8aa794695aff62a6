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
