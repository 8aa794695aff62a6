"""The manager of a controller process: endpoints, events, leader election and one controller per reconciler.

Start order: ``/metrics`` and ``/healthz``/``/readyz`` servers, the event recorder, the reconcilers'
:meth:`~controllers.runtime.controller.Reconciler.servers` (every replica), then — directly, or once
this process leads the Lease — the leader runnables (objects with ``start()``/``stop()`` that reconcilers
return from ``Reconciler.leader_runnables()``, e.g. the source-controller's artifact server) and the
controllers. Stop order: controllers (running reconciliations finish), leader runnables, then the Lease is
released (so the successor starts only when we no longer reconcile), then the reconcilers' servers stop,
events are flushed and the endpoints closed. Losing the lease stops the process with exit code 1, as controller-runtime.
"""
from __future__ import annotations

import threading

from controllers.runtime.controller import Controller, Reconciler
from controllers.runtime.endpoints import EndpointServer, parse_addr, text
from controllers.runtime.events import EventRecorder
from controllers.runtime.kube import KubeClient
from controllers.runtime.leader import LeaderElector, default_identity, lease_name
from controllers.runtime.logs import Logger, get_logger
from controllers.runtime.metrics import Metrics
from controllers.runtime.settings import ManagerSettings


class Manager:
    """Runs the reconcilers of one component (see the module docstring)."""

    def __init__(self, kube: KubeClient, settings: ManagerSettings, reconcilers: list[Reconciler], *,
                 metrics: Metrics | None = None, log: Logger | None = None):
        self.kube, self.settings = kube, settings
        self.metrics = metrics or Metrics()
        self.log = log or get_logger("setup")
        self.events = EventRecorder(kube, settings.component, webhook=settings.events_addr,
                                    log=get_logger("events"))
        self.controllers = [Controller(r, kube, settings, events=self.events, metrics=self.metrics)
                            for r in reconcilers]
        self.servers: list = [server for r in reconcilers
                              for server in r.servers(kube, self.events, settings.watch.watch_namespace)]
        self.leader_runnables: list = []
        for r in reconcilers:
            for runnable in r.leader_runnables():
                if all(runnable is not known for known in self.leader_runnables):
                    self.leader_runnables.append(runnable)
        self.stopped = threading.Event()
        self.lost_leadership = False
        self.elector: LeaderElector | None = None
        self._elector_stop = threading.Event()
        self._elector_thread: threading.Thread | None = None
        self._servers: list[EndpointServer] = []
        self._controllers_started = False
        self._lock = threading.Lock()
        le = settings.leader_election
        if le.enabled:
            self.elector = LeaderElector(
                kube, le.lease_name or lease_name(settings.component, settings.watch.label_selector),
                le.namespace or settings.watch.namespace or kube.namespace,
                identity=le.identity or default_identity(), lease_duration=le.lease_duration,
                renew_deadline=le.renew_deadline, retry_period=le.retry_period,
                release_on_cancel=le.release_on_cancel, log=get_logger("leader-election"),
                on_change=lambda leading: self.metrics.leader.set(self.elector.name, value=int(leading)))
        self.metrics_server: EndpointServer | None = None
        self.health_server: EndpointServer | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "Manager":
        """Start everything and return (reconcilers run in background threads)."""
        if parse_addr(self.settings.metrics_addr):
            self.metrics_server = EndpointServer(self.settings.metrics_addr, {
                "/metrics": lambda: (200, "text/plain; version=0.0.4; charset=utf-8", self.metrics.render())}).start()
            self._servers.append(self.metrics_server)
            self.log.info("starting metrics server", addr=self.settings.metrics_addr, port=self.metrics_server.port)
        if parse_addr(self.settings.health_addr):
            self.health_server = EndpointServer(self.settings.health_addr, {
                "/healthz": self._healthz, "/readyz": self._readyz}).start()
            self._servers.append(self.health_server)
            self.log.info("starting health probes server", addr=self.settings.health_addr,
                          port=self.health_server.port)
        self.events.start()
        for server in self.servers:
            server.start()
        if self.elector:
            self._elector_thread = threading.Thread(target=self._campaign, name="leader-election", daemon=True)
            self._elector_thread.start()
        else:
            self._start_controllers()
        return self

    def _campaign(self) -> None:
        lost = self.elector.run(self._elector_stop, self._start_controllers, None)
        if lost:
            self.lost_leadership = True
            self._stop_controllers()
            self.stopped.set()

    def _start_controllers(self) -> None:
        with self._lock:
            if self._controllers_started or self.stopped.is_set():
                return
            self._controllers_started = True
            for runnable in self.leader_runnables:
                runnable.start()
            for controller in self.controllers:
                controller.start()

    def _stop_controllers(self) -> None:
        with self._lock:
            if not self._controllers_started:
                return
            self._controllers_started = False
        for controller in self.controllers:
            controller.stop(self.settings.shutdown_timeout)
        for runnable in reversed(self.leader_runnables):
            runnable.stop()

    def stop(self) -> None:
        """Stop controllers, then release the lease, flush events and close the endpoints."""
        self.log.info("stopping manager")
        self.stopped.set()
        self._stop_controllers()
        self._elector_stop.set()
        if self._elector_thread:
            self._elector_thread.join(self.settings.leader_election.retry_period + 10)
        for server in reversed(self.servers):
            server.stop()
        self.events.stop()
        for server in self._servers:
            server.stop()
        self._servers.clear()
        self.log.info("manager stopped")

    def run(self, stop: threading.Event | None = None) -> int:
        """Start, wait for ``stop`` (or lost leadership), stop; return the process exit code."""
        self.start()
        stop = stop or threading.Event()
        while not stop.wait(0.2):
            if self.stopped.is_set():
                break
        self.stop()
        return 1 if self.lost_leadership else 0

    @property
    def leading(self) -> bool:
        return self._controllers_started

    # ------------------------------------------------------------------ probes

    def _healthz(self) -> tuple[int, str, str]:
        return text("ok")

    def _readyz(self) -> tuple[int, str, str]:
        return text("ok")
