"""Controller entrypoint: ``python -m controllers <component> [flags]`` — the same in a Pod and locally.

The flags are Flux's (same names and defaults), e.g.::

    python -m controllers kustomize-controller --kubeconfig ~/.kube/config --metrics-addr 127.0.0.1:8080 \
        --enable-leader-election --log-encoding console

In a Pod (no ``--kubeconfig`` and no ``$KUBECONFIG``) the service account is used. SIGTERM/SIGINT stop the
process gracefully (a second signal exits at once).
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from controllers.components import COMPONENTS, Component, add_component_arguments, load_reconcilers
from controllers.runtime.flags import parse_bool, parse_duration_flag
from controllers.runtime.settings import (ControllerSettings, LeaderElectionSettings, LogSettings, ManagerSettings,
                                          WatchSettings)


def _percentage(value: str) -> float:
    p = float(value)
    if not 0 <= p < 100:
        raise argparse.ArgumentTypeError("the interval jitter percentage must be a non-negative value and less than 100")
    return p


def build_parser(component: Component) -> argparse.ArgumentParser:
    """The command line of ``component`` (Flux's flags, plus the component's own)."""
    p = argparse.ArgumentParser(prog=f"python -m controllers {component.name}",
                                description=f"Run the fluxpy {component.name}.")
    flag = p.add_argument

    def bool_flag(name: str, default: bool, help_: str) -> None:
        flag(name, type=parse_bool, nargs="?", const=True, default=default, metavar="BOOL", help=help_)

    flag("--kubeconfig", default=None, help="Path to a kubeconfig (default: in-cluster, else $KUBECONFIG or ~/.kube/config).")
    flag("--metrics-addr", default=os.environ.get("METRICS_ADDR", ":8080"),
         help="The address the metric endpoint binds to.")
    flag("--health-addr", default=":9440", help="The address the health endpoint binds to.")
    if component.receives_events:
        flag("--events-addr", default=":9090", help="The address the event endpoint binds to.")
    else:
        flag("--events-addr", default=os.environ.get("EVENTS_ADDR", ""), help="The address of the events receiver.")
    flag("--concurrent", type=int, default=component.concurrent, help="The number of concurrent reconciles per controller.")
    flag("--requeue-dependency", type=parse_duration_flag, default=30.0,
         help="The interval at which failing dependencies are reevaluated.")
    flag("--min-retry-delay", type=parse_duration_flag, default=0.75,
         help="The minimum amount of time for which an object being reconciled will have to wait before a retry.")
    flag("--max-retry-delay", type=parse_duration_flag, default=900.0,
         help="The maximum amount of time for which an object being reconciled will have to wait before a retry.")
    flag("--interval-jitter-percentage", type=_percentage, default=5.0,
         help="Percentage of jitter to apply to interval durations (+/-).")
    bool_flag("--watch-all-namespaces", True,
              "Watch for resources in all namespaces, if set to false it will only watch the runtime namespace.")
    flag("--watch-label-selector", default="",
         help="Watch for resources with matching labels e.g. 'sharding.fluxcd.io/shard=shard1'.")
    bool_flag("--enable-leader-election", False,
              "Enable leader election for controller manager. Enabling this will ensure there is only one active "
              "controller manager.")
    bool_flag("--leader-election-release-on-cancel", True,
              "Defines if the leader should step down voluntarily on controller manager shutdown.")
    flag("--leader-election-lease-duration", type=parse_duration_flag, default=35.0,
         help="Interval at which non-leader candidates will wait to force acquire leadership (duration string).")
    flag("--leader-election-renew-deadline", type=parse_duration_flag, default=30.0,
         help="Duration that the leading controller manager will retry refreshing leadership before giving up.")
    flag("--leader-election-retry-period", type=parse_duration_flag, default=5.0,
         help="Duration the LeaderElector clients should wait between tries of actions (duration string).")
    flag("--leader-election-namespace", default="",
         help="Namespace of the leader election Lease (default: the runtime namespace).")
    flag("--log-level", default="info", choices=["trace", "debug", "info", "error"], help="Log verbosity level.")
    flag("--log-encoding", default="json", choices=["json", "console"], help="Log encoding format.")
    flag("--log-file", default="", help="Also append log records to this file.")
    add_component_arguments(component, p)
    return p


def settings_from_args(component: Component, args: argparse.Namespace, runtime_namespace: str) -> ManagerSettings:
    """Map parsed flags onto :class:`ManagerSettings`."""
    return ManagerSettings(
        component=component.name, metrics_addr=args.metrics_addr, health_addr=args.health_addr,
        events_addr="" if component.receives_events else args.events_addr,
        controller=ControllerSettings(
            concurrent=args.concurrent, min_retry_delay=args.min_retry_delay, max_retry_delay=args.max_retry_delay,
            interval_jitter_percentage=args.interval_jitter_percentage, requeue_dependency=args.requeue_dependency),
        watch=WatchSettings(all_namespaces=args.watch_all_namespaces, namespace=runtime_namespace,
                            label_selector=args.watch_label_selector),
        leader_election=LeaderElectionSettings(
            enabled=args.enable_leader_election, lease_duration=args.leader_election_lease_duration,
            renew_deadline=args.leader_election_renew_deadline, retry_period=args.leader_election_retry_period,
            release_on_cancel=args.leader_election_release_on_cancel,
            namespace=args.leader_election_namespace or runtime_namespace),
        log=LogSettings(level=args.log_level, encoding=args.log_encoding, file=args.log_file),
    )


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    names = ", ".join(COMPONENTS)
    if not argv or argv[0] in ("-h", "--help"):
        print(f"usage: python -m controllers <component> [flags]\n\ncomponents: {names}", file=sys.stderr)
        return 0 if argv else 2
    component = COMPONENTS.get(argv[0])
    if component is None:
        print(f"unknown component {argv[0]!r}: expected one of {names}", file=sys.stderr)
        return 2
    args = build_parser(component).parse_args(argv[1:])

    from controllers.runtime import logs
    from controllers.runtime.kube import KubeClient, KubeConfigError
    from controllers.runtime.manager import Manager

    logs.configure(args.log_level, args.log_encoding, args.log_file or None)
    log = logs.get_logger("setup")
    try:
        kube = KubeClient.auto(args.kubeconfig)
    except KubeConfigError as exc:
        log.error("unable to load the Kubernetes client configuration", error=str(exc))
        return 1
    settings = settings_from_args(component, args, os.environ.get("RUNTIME_NAMESPACE") or kube.namespace)
    try:
        reconcilers = load_reconcilers(component, args)
    except Exception as exc:  # noqa: BLE001 - report and exit
        log.error("unable to create controller", error=exc, stacktrace=True)
        return 1
    if not settings.watch.all_namespaces:
        log.info("watching only the runtime namespace", namespace=settings.watch.namespace)

    stop = threading.Event()
    signals = {"n": 0}

    def on_signal(signum: int, _frame: object) -> None:
        signals["n"] += 1
        if signals["n"] > 1:
            os._exit(1)
        log.info("received signal, shutting down", signal=signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    log.info("starting manager", component=component.name, server=kube.server,
             controllers=[r.name for r in reconcilers])
    return Manager(kube, settings, reconcilers).run(stop)


if __name__ == "__main__":
    sys.exit(main())
