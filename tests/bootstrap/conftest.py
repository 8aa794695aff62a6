"""Bootstrap end to end: a control plane of this package's own (bootstrap installs cluster-wide objects), the
real source-controller and kustomize-controller as local processes per installation namespace, Git servers.

Each installation lives in its own namespace, with controllers that watch only it (``--watch-all-namespaces
=false``, as the bootstrapped Deployments are told with ``--no-watch-all-namespaces``) and hold their leader
Leases there, so several bootstraps share one control plane without seeing each other.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest

from servers import leaks
from tests.bootstrap.support import E2E_COMPONENTS


@pytest.fixture(scope="package")
def bplane(tmp_path_factory):
    """A started ControlPlane for the bootstrap tests."""
    from controllers.localcluster.plane import ControlPlane, ControlPlaneError

    plane = ControlPlane(tmp_path_factory.mktemp("bootstrap-plane"), log=lambda m: print(m, file=sys.stderr))
    try:
        plane.start(timeout=90)
    except ControlPlaneError as exc:
        pytest.fail(f"local control plane did not start: {exc}", pytrace=False)
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="package")
def bkube(bplane):
    from controllers.runtime.kube import KubeClient

    return KubeClient.from_kubeconfig(bplane.kubeconfig)


def _registered(component: str) -> bool:
    from controllers.components import COMPONENTS

    return bool(COMPONENTS[component].reconcilers)


@pytest.fixture(scope="package")
def controllers_for(bplane, tmp_path_factory):
    """``controllers_for(namespace)``: the real controllers as local processes for the installation in
    ``namespace`` (started once per namespace; their logs under ``.logs``)."""
    from controllers.localcluster import dev

    started: dict[str, Path] = {}

    def command(component: str, kubeconfig: Path) -> list[str]:
        argv = dev.controller_command(component, kubeconfig) + ["--watch-all-namespaces=false",
                                                                 "--log-encoding=console"]
        if component == "source-controller":
            argv.append("--storage-addr=127.0.0.1:0")
        return argv

    def start(namespace: str) -> Path:
        for component in E2E_COMPONENTS:
            if not _registered(component):
                pytest.skip(f"{component} has no reconcilers registered in controllers/components.py yet")
        if namespace not in started:
            state = tmp_path_factory.mktemp(f"controllers-{namespace}")
            dev.start_controllers(state, E2E_COMPONENTS, kubeconfig=bplane.kubeconfig, namespace=namespace,
                                  command=command, env={"FLUXPY_STATE_DIR": str(state)})
            started[namespace] = state
        return started[namespace] / "logs"

    yield start
    for state in started.values():
        dev.stop_controllers(state)


@pytest.fixture
def fluxpy(monkeypatch):
    """Run ``fluxpy ARGS...`` in-process (exit code, stdout, stderr), as tests/flux_cli does."""
    from typer.testing import CliRunner

    from flux_cli.main import app, prepare_args  # it registers every command on the root app
    from tests.bootstrap.support import Result

    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("FLUX_SYSTEM_NAMESPACE", raising=False)
    for var in ("GITHUB_TOKEN", "GITLAB_TOKEN", "GIT_PASSWORD"):
        monkeypatch.delenv(var, raising=False)

    def run(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
        result = CliRunner().invoke(app, prepare_args(list(args)), input=input, env=env,
                                    catch_exceptions=False)
        leaks.record_output(args, result.stdout + result.stderr)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run
