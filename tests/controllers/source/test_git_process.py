"""The source-controller as a process: its storage flags, and the artifact server run only by the leader.

``test_entrypoint_serves_artifacts`` runs ``python -m controllers source-controller`` with the component
entry this module registers in the child (the same entry ``controllers/components.py`` carries).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from controllers.api.objects import dig, find_condition
from controllers.api.source import GIT_REPOSITORY
from controllers.localcluster.plane import free_port
from controllers.runtime.manager import Manager
from controllers.runtime.settings import ControllerSettings, LeaderElectionSettings, ManagerSettings, WatchSettings
from controllers.source.common import add_arguments
from controllers.source.git import GitRepositoryReconciler, new_reconciler
from servers.git import git_server  # noqa: F401
from servers.waiting import until

ROOT = Path(__file__).resolve().parents[3]
COMPONENT_ENTRY = {"concurrent": 2, "reconcilers": ("controllers.source.git:new_reconciler",),
                   "add_arguments": "controllers.source.common:add_arguments"}


def _serving(port: int) -> bool:
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/nothing", timeout=1)
    except urllib.error.HTTPError as exc:
        return exc.code == 404
    except OSError:
        return False
    return True


def _args(tmp_path: Path, name: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    port = free_port()
    return parser.parse_args([f"--storage-path={tmp_path / name}", f"--storage-addr=127.0.0.1:{port}"])


def test_artifact_server_runs_only_while_leading(kube, namespace, flux_crds, tmp_path):
    def manager(name: str) -> tuple[Manager, int]:
        args = _args(tmp_path, name)
        reconciler = new_reconciler(args)
        assert isinstance(reconciler, GitRepositoryReconciler)
        assert reconciler.storage.advertised_address == args.storage_addr  # 127.0.0.1:<port> locally
        settings = ManagerSettings(
            component="source-controller", metrics_addr="", health_addr="",
            controller=ControllerSettings(concurrent=1),
            watch=WatchSettings(all_namespaces=False, namespace=namespace, timeout_seconds=20),
            leader_election=LeaderElectionSettings(enabled=True, namespace=namespace, lease_duration=3.0,
                                                   renew_deadline=2.0, retry_period=0.5))
        # two reconcilers sharing one server: the manager starts it once
        mgr = Manager(kube, settings, [reconciler, new_reconciler(args)])
        return mgr, int(args.storage_addr.rpartition(":")[2])

    first, first_port = manager("a")
    second, second_port = manager("b")
    assert len(first.leader_runnables) == 1
    first.start()
    try:
        until(lambda: first.leading and _serving(first_port), "the first manager to lead and serve", 20)
        second.start()
        time.sleep(1.5)
        assert not second.leading and not _serving(second_port)
        first.stop()  # releases the lease: the second takes over and starts its server
        assert not _serving(first_port)
        until(lambda: second.leading and _serving(second_port), "the second manager to take over", 20)
    finally:
        first.stop()
        second.stop()
    assert not _serving(second_port)


def test_entrypoint_serves_artifacts(kube, kubeconfig, namespace, flux_crds, git_server, tmp_path):
    repo = git_server.repo("app", {"a.yaml": "a"}, branch="master")
    port = free_port()
    child = (
        "import sys; from controllers import components as c; "
        f"c.COMPONENTS['source-controller'] = c.Component('source-controller', **{COMPONENT_ENTRY!r}); "
        "from controllers.__main__ import main; sys.exit(main(sys.argv[1:]))"
    )
    argv = [sys.executable, "-c", child, "source-controller", f"--kubeconfig={kubeconfig}",
            "--metrics-addr=0", "--health-addr=0", "--log-encoding=console", "--enable-leader-election",
            "--watch-all-namespaces=false", f"--storage-path={tmp_path / 'data'}", f"--storage-addr=127.0.0.1:{port}"]
    env = {**os.environ, "RUNTIME_NAMESPACE": namespace, "PYTHONPATH": str(ROOT)}
    env.pop("KUBERNETES_SERVICE_HOST", None)
    log = open(tmp_path / "controller.log", "wb")
    proc = subprocess.Popen(argv, env=env, stdout=log, stderr=log, cwd=ROOT)
    try:
        kube.create(GIT_REPOSITORY, {"apiVersion": GIT_REPOSITORY.api_version, "kind": "GitRepository",
                                     "metadata": {"name": "app", "namespace": namespace},
                                     "spec": {"url": git_server.url(repo), "interval": "1h"}}, namespace)
        obj = kube.wait_for(GIT_REPOSITORY, "app", namespace,
                            lambda o: (find_condition(o, "Ready") or {}).get("status") == "True",
                            timeout=60, what="GitRepository Ready from the controller process")
        url = dig(obj, "status.artifact.url")
        assert url.startswith(f"http://127.0.0.1:{port}/gitrepository/{namespace}/app/")
        with urllib.request.urlopen(url, timeout=5) as resp:
            assert resp.status == 200
        assert (tmp_path / "data" / "gitrepository" / namespace / "app").is_dir()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()
    assert proc.returncode == 0, (tmp_path / "controller.log").read_text()[-3000:]
    assert not _serving(port)

