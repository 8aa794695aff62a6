"""``fluxpy events``: the Kubernetes Events of fluxpy objects, in time order; ``fluxpy stats``: counts."""
from __future__ import annotations

import time
from typing import Optional

import typer

from flux_cli import targets
from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app

EVENT_HEADERS = ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"]


def _age(timestamp: str) -> str:
    import datetime as dt

    from controllers.api.duration import format_duration

    try:
        then = dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00"))
    except ValueError:
        return "<unknown>"
    seconds = max(0, int((dt.datetime.now(dt.timezone.utc) - then).total_seconds()))
    return format_duration(seconds)


def event_row(event: dict, all_namespaces: bool) -> list[str]:
    from controllers.runtime.inspect import event_time

    ref = event.get("involvedObject") or {}
    row = [event["metadata"].get("namespace", "")] if all_namespaces else []
    return row + [_age(event_time(event)), event.get("type", ""), event.get("reason", ""),
                  f"{ref.get('kind', '')}/{ref.get('name', '')}", (event.get("message") or "").strip()]


def parse_for(value: Optional[str]) -> tuple[Optional[str], Optional[str]]:
    """``--for Kustomization/apps`` → (Kind, name); the kind may be any name the CLI accepts."""
    if not value:
        return None, None
    kind_word, sep, name = value.partition("/")
    if not sep or not name:
        raise CLIError(f"invalid --for {value!r}: expected <kind>/<name>, e.g. Kustomization/apps")
    return targets.resolve([kind_word]).kind.kind, name


@app.command("events")
@handle_errors
def events(
    ctx: typer.Context,
    for_object: Optional[str] = typer.Option(None, "--for", help="Only events about this object, e.g. Kustomization/apps."),
    all_namespaces: bool = typer.Option(False, "-A", "--all-namespaces", help="Events in every namespace."),
    watch: bool = typer.Option(False, "-w", "--watch", help="After listing, print new events until --timeout."),
    types: Optional[str] = typer.Option(None, "--types", help="Comma-separated event types: Normal, Warning."),
) -> None:
    """Show the Kubernetes Events of fluxpy objects in time order."""
    from controllers.api.builtin import EVENT
    from controllers.runtime.inspect import event_time, flux_event_filter
    from flux_cli.flags import split_list

    a: App = ctx.obj
    kind, name = parse_for(for_object)
    wanted_types = {t.lower() for t in split_list([types] if types else None)}
    unknown = wanted_types - {"normal", "warning"}
    if unknown:
        raise CLIError(f"invalid --types {', '.join(sorted(unknown))}: expected Normal or Warning")
    keep = flux_event_filter(kind, name, wanted_types)
    namespace = None if all_namespaces else a.namespace
    headers = (["NAMESPACE"] if all_namespaces else []) + EVENT_HEADERS
    listed = a.kube.list(EVENT, namespace)
    shown = sorted((e for e in listed["items"] if keep(e)), key=event_time)
    if shown or watch:
        a.terminal.table(headers, [event_row(e, all_namespaces) for e in shown], status_columns=("TYPE",))
    else:
        a.terminal.warning(f"no events found in {'all namespaces' if namespace is None else namespace + ' namespace'}")
    if not watch:
        return
    deadline = time.monotonic() + a.timeout
    rv = listed["metadata"].get("resourceVersion")
    from controllers.runtime.kube import Gone

    while time.monotonic() < deadline:
        try:
            for event_type, event in a.kube.watch(EVENT, namespace, resource_version=rv,
                                                  timeout_seconds=int(max(1, deadline - time.monotonic()))):
                rv = event["metadata"].get("resourceVersion", rv)
                if event_type in ("ADDED", "MODIFIED") and keep(event):
                    a.terminal.table(headers, [event_row(event, all_namespaces)], no_header=True,
                                     status_columns=("TYPE",))
        except Gone:
            rv = a.kube.list(EVENT, namespace)["metadata"].get("resourceVersion")


@app.command("stats")
@handle_errors
def stats(
    ctx: typer.Context,
    all_namespaces: bool = typer.Option(False, "-A", "--all-namespaces", help="Count objects in every namespace."),
    output: str = typer.Option("table", "-o", "--output", help="table or json."),
) -> None:
    """Count, per kind, the objects that are reconciling, failing and suspended, and the artifact storage used."""
    from controllers.api.kinds import KINDS
    from controllers.api.objects import dig, find_condition
    from controllers.runtime.kube import NotFound

    a: App = ctx.obj
    if output not in ("table", "json"):
        raise CLIError(f"invalid --output {output!r}: expected table or json")
    namespace = None if all_namespaces else a.namespace
    counts = []
    for kind in KINDS:
        try:
            items = a.kube.list(kind, namespace).get("items") or []
        except NotFound:
            continue
        failing = sum(1 for o in items if (find_condition(o, "Ready") or {}).get("status") == "False")
        suspended = sum(1 for o in items if dig(o, "spec.suspend"))
        storage = sum(int(dig(o, "status.artifact.size", 0) or 0) for o in items)
        counts.append({"kind": kind.kind, "reconcilers": len(items), "running": len(items) - suspended,
                       "failing": failing, "suspended": suspended, "storage": storage})
    if output == "json":
        a.terminal.json(counts)
        return
    a.terminal.table(["RECONCILERS", "RUNNING", "FAILING", "SUSPENDED", "STORAGE"],
                     [[c["kind"], c["running"], c["failing"], c["suspended"], _size(c["storage"])] for c in counts],
                     status_columns=())


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"
