"""CLI test helpers: run fluxpy in-process (Typer's CliRunner) against the session control plane."""
from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from typer.testing import CliRunner

from flux_cli.main import app, prepare_args  # main registers every command on the root app
from servers import leaks


@dataclasses.dataclass
class Result:
    exit_code: int
    stdout: str
    stderr: str


@pytest.fixture
def fluxpy(monkeypatch):
    """Run ``fluxpy ARGS...`` in-process; returns exit code, stdout and stderr separately."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("FLUX_SYSTEM_NAMESPACE", raising=False)

    def run(*args: str, input: str | None = None) -> Result:
        result = CliRunner().invoke(app, prepare_args(list(args)), input=input, catch_exceptions=False)
        leaks.record_output(args, result.stdout + result.stderr)
        return Result(result.exit_code, result.stdout, result.stderr)

    return run


class StandInReconciler:
    """A tiny reconciler inside the test: answers reconcile requests on one object by writing status.

    It plays the controller's half of the reconcile protocol so the CLI's waiting can be exercised:
    when ``reconcile.fluxcd.io/requestedAt`` changes it sets ``status.lastHandledReconcileAt``, the Ready
    condition (``ready`` True or False with ``message``), ``observedGeneration`` and ``revision`` fields.
    """

    def __init__(self, kube, kind, name, namespace, *, ready=True, message="ok", status_extra=None):
        self.kube, self.kind, self.name, self.namespace = kube, kind, name, namespace
        self.ready, self.message, self.status_extra = ready, message, status_extra or {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.handled = []

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        handled = None
        while not self._stop.is_set():
            obj = self.kube.get(self.kind, self.name, self.namespace)
            requested = (obj["metadata"].get("annotations") or {}).get("reconcile.fluxcd.io/requestedAt")
            if requested and requested != handled:
                time.sleep(0.3)  # the CLI must really wait
                self.kube.patch(self.kind, self.name, {"status": self.status(obj, requested)}, self.namespace,
                                subresource="status")
                handled = requested
                self.handled.append(requested)
            time.sleep(0.1)

    def status(self, obj: dict, requested: str) -> dict:
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        return {
            "observedGeneration": obj["metadata"]["generation"],
            "lastHandledReconcileAt": requested,
            "conditions": [{"type": "Ready", "status": "True" if self.ready else "False",
                            "reason": "Succeeded" if self.ready else "Failed", "message": self.message,
                            "lastTransitionTime": now, "observedGeneration": obj["metadata"]["generation"]}],
            **self.status_extra,
        }
