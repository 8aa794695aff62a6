"""Settings of the controller runtime, as dataclasses (one docstring per field), and Go-style durations.

The defaults are Flux's (fluxcd/pkg/runtime flag defaults); ``controllers.__main__`` maps the flags onto these.
"""
from __future__ import annotations

import dataclasses
import os
from pathlib import Path


def default_state_dir() -> Path:
    """Where a process outside a Pod keeps its state (the dev cluster's files, a controller's artifact
    storage): ``$FLUXPY_STATE_DIR``, else ``$XDG_STATE_HOME/fluxpy/dev``, else ``~/.local/state/fluxpy/dev``."""
    if os.environ.get("FLUXPY_STATE_DIR"):
        return Path(os.environ["FLUXPY_STATE_DIR"]).absolute()
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(Path.home(), ".local", "state")
    return Path(base, "fluxpy", "dev").absolute()


def in_pod() -> bool:
    """Whether this process runs in a Kubernetes Pod (a mounted service-account token and the service env)."""
    from controllers.runtime.kube import SERVICE_ACCOUNT_DIR

    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and os.path.exists(f"{SERVICE_ACCOUNT_DIR}/token")


def state_path(component: str, pod_path: str = "/data") -> Path:
    """Where a component keeps its files by default: ``pod_path`` in a Pod, else
    ``<state dir>/storage/<component>``."""
    return Path(pod_path) if in_pod() else default_state_dir() / "storage" / component


@dataclasses.dataclass
class ControllerSettings:
    """How each controller queues and paces its reconciliations."""

    concurrent: int = 4
    """Reconciliations running at once, per controller (``--concurrent``); one object never runs twice at once."""
    min_retry_delay: float = 0.75
    """First delay (seconds) of the per-object exponential backoff after a failure (``--min-retry-delay``)."""
    max_retry_delay: float = 15 * 60.0
    """Cap (seconds) of the per-object exponential backoff (``--max-retry-delay``)."""
    interval_jitter_percentage: float = 5.0
    """Jitter (+/- percent) applied to interval requeues (``--interval-jitter-percentage``); 0 disables it."""
    requeue_dependency: float = 30.0
    """Delay (seconds) before a reconciliation waiting on a dependency runs again (``--requeue-dependency``)."""


@dataclasses.dataclass
class WatchSettings:
    """Which objects the controllers watch."""

    all_namespaces: bool = True
    """Watch every namespace (``--watch-all-namespaces``); when False only :attr:`namespace`."""
    namespace: str = ""
    """The runtime namespace (``RUNTIME_NAMESPACE``, else the Pod's or the kubeconfig context's namespace)."""
    label_selector: str = ""
    """Only objects matching this label selector (``--watch-label-selector``, used for sharding)."""
    timeout_seconds: int = 300
    """Server-side timeout of one watch request; the watch is re-opened from the last resourceVersion."""

    @property
    def watch_namespace(self) -> str | None:
        """The namespace to list/watch, or None for all namespaces."""
        return None if self.all_namespaces else (self.namespace or None)


@dataclasses.dataclass
class LeaderElectionSettings:
    """Leader election on a ``coordination.k8s.io/v1`` Lease (only the leader runs reconcilers)."""

    enabled: bool = False
    """Elect a leader before reconciling (``--enable-leader-election``)."""
    lease_duration: float = 35.0
    """Seconds a non-leader waits after the last observed renewal before taking the lease over."""
    renew_deadline: float = 30.0
    """Seconds the leader keeps retrying to renew before it gives leadership up."""
    retry_period: float = 5.0
    """Seconds between two attempts to acquire or renew."""
    release_on_cancel: bool = True
    """Release the lease on a clean shutdown, so a successor takes over at once."""
    namespace: str = ""
    """Namespace of the Lease (defaults to the runtime namespace)."""
    lease_name: str = ""
    """Name of the Lease (defaults to ``<component>-leader-election``, hashed with the label selector when sharded)."""
    identity: str = ""
    """This candidate's identity (defaults to ``<hostname>_<uuid>``)."""


@dataclasses.dataclass
class LogSettings:
    """Structured logs."""

    level: str = "info"
    """One of trace, debug, info, error (``--log-level``)."""
    encoding: str = "json"
    """``json`` (one object per line) or ``console`` (``--log-encoding``)."""
    file: str = ""
    """Also append the records to this file (``--log-file``; the local dev runner reads it)."""


@dataclasses.dataclass
class ManagerSettings:
    """Everything a controller process needs to run its controllers."""

    component: str = "controller"
    """The component name, e.g. ``kustomize-controller`` (events' source, lease name, field manager)."""
    metrics_addr: str = ":8080"
    """Address of the Prometheus ``/metrics`` endpoint (``--metrics-addr``); empty or ``0`` disables it."""
    health_addr: str = ":9440"
    """Address of the ``/healthz`` and ``/readyz`` endpoints (``--health-addr``); empty or ``0`` disables it."""
    events_addr: str = ""
    """URL of an event webhook (notification-controller) that receives every event too (``--events-addr``)."""
    shutdown_timeout: float = 30.0
    """Seconds to wait for running reconciliations to finish on shutdown."""
    controller: ControllerSettings = dataclasses.field(default_factory=ControllerSettings)
    watch: WatchSettings = dataclasses.field(default_factory=WatchSettings)
    leader_election: LeaderElectionSettings = dataclasses.field(default_factory=LeaderElectionSettings)
    log: LogSettings = dataclasses.field(default_factory=LogSettings)

    @property
    def field_manager(self) -> str:
        """The field manager of the runtime's writes (Flux: ``gotk-<component>``)."""
        return f"gotk-{self.component}"
