"""``fluxpy why <kind>/<name>``: why an object is not Ready, in one command.

Walks everything the object depends on (sources, dependencies across kinds, chart sources), reads each
step's Ready condition, and for the first broken link its recent Warning events and the log lines of its last
reconciliation. Prints the chain as a tree with the failing path marked and one ``root cause:`` line.
Exit 0 when the object is Ready, 1 when it is not, 2 on error.
"""
from __future__ import annotations

from typing import List, Optional

import typer

from flux_cli import targets
from flux_cli.app import App, CLIError, describe_error
from flux_cli.root import app

SYMBOL = {"True": "✔", "False": "✗", "Unknown": "…", "Missing": "?", "Suspended": "⏸"}
EXIT_ERROR = 2


def node_label(node) -> str:
    relation = f"{node.relation} " if node.relation else ""
    detail = ": ".join(p for p in (node.reason, node.message) if p)
    return f"{relation}{node.ref}  {SYMBOL.get(node.ready, '?')} {node.ready}" + (f"  {detail}" if detail else "")


def recent_warnings(a: App, node, limit: int = 3) -> list[dict]:
    from controllers.api.builtin import EVENT
    from flux_cli.commands.events import event_time

    selector = f"involvedObject.kind={node.kind},involvedObject.name={node.name}"
    items = a.kube.list(EVENT, node.namespace or None, field_selector=selector).get("items") or []
    warnings = [e for e in items if e.get("type") == "Warning"]
    return sorted(warnings, key=event_time)[-limit:]


def attach_evidence(a: App, cause, flux_namespace: str, state_dir: str | None = None) -> str:
    """Add the root cause's events and last-reconciliation log lines; return a note when logs are unavailable."""
    from controllers.runtime import logread
    from controllers.runtime.kube import Forbidden

    if cause.obj is None or cause.cycle is not None:
        return ""
    cause.events = recent_warnings(a, cause)
    try:
        lines, _ = logread.open_logs(a.kube, flux_namespace=flux_namespace, state_dir=state_dir)
    except logread.NoLogs as exc:
        return f"logs unavailable: {exc}"
    except Forbidden as exc:
        return f"logs unavailable: not allowed to read the controllers' logs ({exc.message})"
    cause.log_lines = logread.last_reconciliation(lines, cause.kind, cause.namespace, cause.name)
    return ""


def statusless_failure(a: App, node) -> dict | None:
    """For an object without status (an Alert or Provider, v1beta3): its latest Warning event, which is
    how its failures are reported (a notification that could not be delivered); None when it has none."""
    from controllers.api.objects import find_condition

    if (node.obj.get("status") or {}).get("conditions") is not None or find_condition(node.obj, "Ready"):
        return None
    node.events = recent_warnings(a, node)
    if not node.events:
        return None
    latest = node.events[-1]
    node.failure = (latest.get("reason") or "", (latest.get("message") or "").strip())
    return latest


def as_json(node) -> dict:
    return {"kind": node.kind, "namespace": node.namespace, "name": node.name, "relation": node.relation,
            "ready": node.ready, "reason": node.reason, "message": node.message, "cycle": node.cycle,
            "dependencies": [as_json(c) for c in node.children]}


@app.command("why")
def why(
    ctx: typer.Context,
    target: List[str] = typer.Argument(..., metavar="KIND/NAME", help="e.g. kustomization/apps or 'hr web'."),
    output: str = typer.Option("text", "-o", "--output", help="text or json."),
    flux_namespace: str = typer.Option("flux-system", "--flux-namespace", help="Where the controllers run."),
    api_version: Optional[str] = typer.Option(None, "--api-version", help="For a non-Flux kind, its apiVersion."),
    state_dir: Optional[str] = typer.Option(None, "--state-dir", hidden=True, help="fluxpy dev's state directory."),
) -> None:
    """Explain why an object is not Ready: its dependency chain and the root cause."""
    from controllers.runtime import inspect

    a: App = ctx.obj
    try:
        if output not in ("text", "json"):
            raise CLIError(f"invalid --output {output!r}: expected text or json", EXIT_ERROR)
        kind, name = targets.split_kind_name(target, error_code=EXIT_ERROR)
        root = inspect.walk(a.kube, kind, name, a.namespace, api_version=api_version)
        if root.obj is None:
            raise CLIError(f"{root.ref} not found", EXIT_ERROR)
        path = inspect.failing_path(root)
        cause = path[-1] if path else None
        note = attach_evidence(a, cause, flux_namespace, state_dir) if cause else ""
        failure = statusless_failure(a, root) if cause is None else None
        if failure is not None:
            cause, path = root, [root]
    except Exception as exc:  # noqa: BLE001 - classified by describe_error; bugs re-raise
        described = describe_error(exc)
        if described is None:
            raise
        a.terminal.failure(described[0])
        raise typer.Exit(EXIT_ERROR) from None

    if output == "json":
        a.terminal.json({"object": root.ref, "ready": cause is None, "chain": as_json(root),
                         "rootCause": None if cause is None else {
                             "object": cause.ref, "reason": cause.reason, "message": cause.message,
                             "cycle": cause.cycle, "events": [e.get("message") for e in cause.events],
                             "logs": [line.record for line in cause.log_lines]}})
    else:
        a.terminal.tree(root, node_label, lambda n: n.children, highlighted=path)
        if cause is None:
            a.terminal.success(f"{root.ref} is Ready")
        else:
            for event in cause.events:
                a.terminal.line(f"  event: {event.get('type')} {event.get('reason')}: {(event.get('message') or '').strip()}")
            for line in cause.log_lines:
                a.terminal.line(f"  log: {line.ts} {line.level} {line.message}")
            if note:
                a.terminal.warning(note)
            what = f"{cause.reason}: {cause.message}" if cause.reason else cause.message
            a.terminal.line(f"root cause: {cause.ref}: {what}")
    if cause is not None:
        raise typer.Exit(1)

