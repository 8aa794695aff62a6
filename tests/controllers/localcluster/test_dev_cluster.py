"""fluxpy dev up / env / status / down: a detached control plane in a state directory, and controllers."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from controllers.localcluster import dev
from controllers.runtime.kube import KubeClient

ROOT = Path(__file__).resolve().parents[3]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "Z"


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.integration
def test_up_env_status_down_round_trip(tmp_path):
    sd = tmp_path / "dev"
    # `up` from a separate process that exits: the cluster must outlive it.
    cli = subprocess.run([sys.executable, "-m", "controllers.localcluster.dev", "up", str(sd)], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0, cli.stderr
    try:
        st = dev.status(sd)
        assert st.running and st.ready, st.problem
        cluster = st.cluster
        assert Path(cli.stdout.strip()) == cluster.kubeconfig
        assert os.getsid(cluster.supervisor_pid) == cluster.supervisor_pid  # its own session
        assert KubeClient.from_kubeconfig(cluster.kubeconfig).version()["gitVersion"].startswith("v1.36.")

        again = dev.up(sd)  # idempotent
        assert again.supervisor_pid == cluster.supervisor_pid and again.server == cluster.server

        env = dev.env(sd)
        assert env.variables == {"KUBECONFIG": str(cluster.kubeconfig)}
        assert env.script() == f"export KUBECONFIG={cluster.kubeconfig}\n"
        assert env.script("fish").startswith("set -gx KUBECONFIG ")

        [proc] = dev.start_controllers(
            sd, ["echo-controller"],
            command=lambda c, kc: [sys.executable, "-c",
                                   "import sys, time; print('up', sys.argv[1:], flush=True); time.sleep(60)",
                                   c, str(kc)],
        )
        assert proc.log == sd / "logs" / "echo-controller.log"
        assert _wait(lambda: "up ['echo-controller'" in proc.log.read_text())
        assert [c.component for c in dev.status(sd).controllers if c.running] == ["echo-controller"]
        [same] = dev.start_controllers(sd, ["echo-controller"], command=lambda c, kc: ["false"])
        assert same.pid == proc.pid  # already running: kept
    finally:
        pids = [cluster.supervisor_pid, *cluster.pids.values(), proc.pid] if "proc" in locals() else []
        assert dev.down(sd) is True
    assert all(_gone(pid) for pid in pids)
    assert not sd.exists()
    assert dev.status(sd).running is False
    assert dev.down(sd) is False
    with pytest.raises(dev.DevNotRunning):
        dev.env(sd)


def test_start_and_stop_controllers_with_a_given_kubeconfig(tmp_path):
    sd = tmp_path / "dev"
    kc = tmp_path / "kubeconfig"
    kc.write_text("{}")
    procs = dev.start_controllers(
        sd, ["a", "b"], kubeconfig=kc,
        command=lambda c, k: [sys.executable, "-c", "import time; print('hi', flush=True); time.sleep(60)"],
    )
    assert {p.component for p in procs} == {"a", "b"}
    assert all(p.running for p in dev.list_controllers(sd))
    assert dev.stop_controllers(sd, ["a"]) == ["a"]
    assert [p.component for p in dev.list_controllers(sd)] == ["b"]
    assert _gone(procs[0].pid)
    assert dev.stop_controllers(sd) == ["b"]
    assert not (sd / "controllers.json").exists()


def test_default_controller_command_is_the_pod_entrypoint_on_loopback_ports(tmp_path):
    argv = dev.controller_command("source-controller", tmp_path / "kc")
    assert argv[1:6] == ["-m", "controllers", "source-controller", "--kubeconfig", str(tmp_path / "kc")]
    assert "--enable-leader-election" in argv[6:]  # the Lease is how install/check see it alive
    addrs = {a.split("=")[0]: a.split("=")[1] for a in argv[6:] if "=" in a}
    assert set(addrs) == {"--metrics-addr", "--health-addr"}
    assert all(a.startswith("127.0.0.1:") for a in addrs.values())
    assert addrs["--metrics-addr"] != addrs["--health-addr"]


def test_stale_state_is_reported_and_cleared(tmp_path):
    sd = tmp_path / "dev"
    sd.mkdir()
    dead = subprocess.Popen(["true"])
    dead.wait()
    (sd / "state.json").write_text(json.dumps({
        "phase": "running", "supervisor_pid": dead.pid, "server": "https://127.0.0.1:1",
        "kubeconfig": str(sd / "plane" / "kubeconfig"), "pids": {"etcd": dead.pid}}))
    st = dev.status(sd)
    assert not st.running and "stale" in st.problem
    with pytest.raises(dev.DevNotRunning):
        dev.env(sd)
    assert dev.down(sd) is False
    assert not sd.exists()


@pytest.mark.integration
def test_up_reports_a_taken_port(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(dev.DevError, match=f"port {port} \\(kube-apiserver\\).*in use"):
            dev.up(tmp_path / "dev", apiserver_port=port, timeout=30)
    assert not dev.status(tmp_path / "dev").running
    dev.down(tmp_path / "dev")
