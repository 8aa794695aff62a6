"""Controllers as real processes (``python -m controllers <component>``), so that a test can SIGKILL them.

Each process appends its JSON log to one file per controller (:attr:`ControllerProcess.log_file`); every
log file is listed in :data:`LOG_FILES` for the secrets scan.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: every controller log file the suite wrote
LOG_FILES: list[Path] = []

#: quick retries and short leases, so that a test converges in seconds
QUICK = ["--min-retry-delay=50ms", "--max-retry-delay=2s", "--interval-jitter-percentage=0",
         "--requeue-dependency=500ms"]
LEADER_ELECTION = ["--enable-leader-election", "--leader-election-lease-duration=2s",
                   "--leader-election-renew-deadline=1500ms", "--leader-election-retry-period=200ms",
                   "--leader-election-release-on-cancel=false"]


class ControllerProcess:
    """One controller component watching one namespace; :meth:`start`, :meth:`kill` (SIGKILL), :meth:`stop`."""

    def __init__(self, component: str, kubeconfig: Path, namespace: str, log_file: Path, *extra: str):
        self.component, self.kubeconfig, self.namespace, self.log_file = component, kubeconfig, namespace, log_file
        self.argv = [sys.executable, "-m", "controllers", component, f"--kubeconfig={kubeconfig}",
                     "--metrics-addr=0", "--health-addr=0", "--watch-all-namespaces=false",
                     f"--log-file={log_file}", *QUICK, *extra]
        self.popen: subprocess.Popen | None = None
        LOG_FILES.append(log_file)

    def start(self) -> "ControllerProcess":
        env = {**os.environ, "RUNTIME_NAMESPACE": self.namespace, "PYTHONPATH": str(ROOT)}
        env.pop("KUBECONFIG", None)
        self.popen = subprocess.Popen(self.argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: no shutdown, no Lease release, whatever was in flight is cut off."""
        if self.running():
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(10)

    def stop(self) -> None:
        if self.running():
            self.popen.terminate()
            try:
                self.popen.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()
