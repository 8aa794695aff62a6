"""``fluxpy logs``: every controller's log, merged in time order, filtered by object and level.

Where the lines come from: see :func:`controllers.runtime.logread.open_logs`.
"""
from __future__ import annotations

import json
import threading
from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app


def format_line(line) -> str:
    """flux's text form: ``<ts> <level> <Kind>/<name>.<namespace> - <message>`` (or the controller's name)."""
    who = f"{line.kind}/{line.name}.{line.namespace}" if line.kind and line.name else line.component
    return f"{line.ts} {line.level} {who} - {line.message}"


@app.command("logs")
@handle_errors
def logs(
    ctx: typer.Context,
    kind: str = typer.Option("", "--kind", help="Only lines about objects of this kind, e.g. Kustomization."),
    name: str = typer.Option("", "--name", help="Only lines about objects with this name."),
    all_namespaces: bool = typer.Option(False, "-A", "--all-namespaces", help="Objects in every namespace."),
    level: str = typer.Option("", "--level", help="Minimum level: debug, info or error."),
    follow: bool = typer.Option(False, "-f", "--follow", help="Keep printing new lines."),
    tail: int = typer.Option(-1, "--tail", help="Only the last N lines (-1: all)."),
    since: Optional[str] = typer.Option(None, "--since", help="Only lines newer than this duration, e.g. 10m."),
    output: str = typer.Option("text", "-o", "--output", help="text or json."),
    flux_namespace: str = typer.Option("flux-system", "--flux-namespace", help="Where the controllers run."),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", hidden=True, help="fluxpy dev's state directory."),
) -> None:
    """Show the controllers' logs, merged across controllers in time order."""
    from controllers.api.duration import parse_duration
    from controllers.api.kinds import UnknownKind, kind_by_name
    from controllers.runtime import logread

    a: App = ctx.obj
    if output not in ("text", "json"):
        raise CLIError(f"invalid --output {output!r}: expected text or json")
    if level and level not in logread.LEVEL_ORDER:
        raise CLIError(f"invalid --level {level!r}: expected debug, info or error")
    if kind:
        try:
            kind = kind_by_name(kind).kind
        except UnknownKind as exc:
            raise CLIError(str(exc)) from None
    since_time = logread.since_duration(parse_duration(since)) if since else None
    selector = logread.LogFilter(kind=kind, name=name, namespace=None if all_namespaces else a.namespace,
                                 level=level, since=since_time)

    def emit(line) -> None:
        a.terminal.line(json.dumps(line.record) if output == "json" else format_line(line))

    try:
        lines, stream = logread.open_logs(a.kube, flux_namespace=flux_namespace, state_dir=state_dir, since=since_time)
    except logread.NoLogs as exc:
        raise CLIError(str(exc)) from None
    selected = [line for line in logread.merge(lines) if selector.matches(line)]
    for line in selected[max(0, len(selected) - tail):] if tail >= 0 else selected:
        emit(line)
    if follow:
        stop = threading.Event()
        try:
            for line in stream(stop):
                if selector.matches(line):
                    emit(line)
        finally:
            stop.set()
