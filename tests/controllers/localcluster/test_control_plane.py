"""The local control plane: a real etcd + kube-apiserver, RBAC on, clear start errors, clean stop."""
from __future__ import annotations

import os
import socket
import stat

import pytest
import yaml

from controllers.api.builtin import SECRET
from controllers.localcluster.plane import CONTEXT_NAME, ControlPlane, ControlPlaneError, port_free
from controllers.runtime.kube import Forbidden, KubeClient

pytestmark = pytest.mark.integration  # every test here runs (or resolves) the real etcd + kube-apiserver


def test_serves_kubernetes_1_36(kube):
    assert kube.version()["gitVersion"].startswith("v1.36.")


def test_admin_kubeconfig_embeds_credentials(control_plane):
    config = yaml.safe_load(control_plane.kubeconfig.read_text())
    assert config["current-context"] == CONTEXT_NAME
    user = config["users"][0]["user"]
    assert user["client-certificate-data"] and user["client-key-data"]
    assert config["clusters"][0]["cluster"]["server"] == control_plane.server
    assert stat.S_IMODE(control_plane.kubeconfig.stat().st_mode) == 0o600


def test_start_time_is_recorded(control_plane):
    print(f"control plane start: {control_plane.timings}")
    assert 0 < control_plane.timings["etcd"] < control_plane.timings["total"]


def _whoami(client: KubeClient) -> dict:
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    return client.request("POST", "/apis/authentication.k8s.io/v1/selfsubjectreviews", body=review)["status"]["userInfo"]


def test_rbac_forbids_a_user_without_bindings(control_plane, kube):
    alice = KubeClient.from_kubeconfig(control_plane.kubeconfig_for("alice", groups=("developers",)))
    who = _whoami(alice)
    assert who["username"] == "alice"
    assert {"developers", "system:authenticated"} <= set(who["groups"])
    with pytest.raises(Forbidden):
        alice.list(SECRET, "default")
    assert "items" in kube.list(SECRET, "default")
    assert "system:masters" in _whoami(kube)["groups"]


def test_port_already_taken_is_reported(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        plane = ControlPlane(tmp_path, apiserver_port=port)
        with pytest.raises(ControlPlaneError) as err:
            plane.start(timeout=30)
    first_line = str(err.value).splitlines()[0]
    assert f"port {port}" in first_line and "kube-apiserver" in first_line and "in use" in first_line
    assert plane.pids == {}


def _fake_binary(path, script: str) -> str:
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(0o755)
    return str(path)


def test_early_exit_reports_the_log_tail(tmp_path, monkeypatch):
    monkeypatch.setenv("FLUXPY_KUBE_APISERVER",
                       _fake_binary(tmp_path / "kube-apiserver", "echo 'Error: unknown flag --nope' >&2; exit 3"))
    with pytest.raises(ControlPlaneError) as err:
        ControlPlane(tmp_path / "plane").start(timeout=30)
    message = str(err.value)
    assert message.splitlines()[0].startswith("kube-apiserver exited with code 3 during start")
    assert "unknown flag --nope" in message
    assert not (tmp_path / "plane" / "etcd-data").exists()


def test_readyz_timeout_is_bounded_and_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setenv("FLUXPY_KUBE_APISERVER", _fake_binary(tmp_path / "kube-apiserver", "exec sleep 120"))
    plane = ControlPlane(tmp_path / "plane")
    with pytest.raises(ControlPlaneError, match=r"kube-apiserver was not ready within 2s"):
        plane.start(timeout=2)
    assert plane.pids == {}


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def test_stop_leaves_no_processes(tmp_path):
    plane = ControlPlane(tmp_path).start(timeout=60)
    pids = plane.pids
    ports = (plane.etcd_port, plane.etcd_peer_port, plane.apiserver_port)
    assert set(pids) == {"etcd", "kube-apiserver"}
    plane.stop()
    assert all(_gone(pid) for pid in pids.values())
    assert all(port_free(p) for p in ports)
    assert not plane.data_dir.exists()
    assert (tmp_path / "logs" / "kube-apiserver.log").exists()
    plane.stop()  # idempotent


def test_a_port_taken_between_choice_and_bind_is_retried(tmp_path, monkeypatch):
    from controllers.localcluster import tools

    real_etcd = tools.ensure("etcd")
    marker = tmp_path / "failed-once"
    monkeypatch.setenv("FLUXPY_ETCD", _fake_binary(tmp_path / "etcd", (
        f'if [ ! -e {marker} ]; then touch {marker}; '
        'echo "listen tcp 127.0.0.1:1: bind: address already in use" >&2; exit 1; fi\n'
        f'exec {real_etcd} "$@"')))
    plane = ControlPlane(tmp_path / "plane").start(timeout=60)
    try:
        assert marker.exists() and plane.running()
    finally:
        plane.stop()
