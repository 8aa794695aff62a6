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
        explained = inspect.explain(a.kube, kind, name, a.namespace, flux_namespace=flux_namespace,
                                    state_dir=state_dir, api_version=api_version)
        root, path, cause, note = explained.root, explained.path, explained.cause, explained.note
    except Exception as exc:  # noqa: BLE001 - classified by describe_error; bugs re-raise
        described = describe_error(exc)
        if described is None:
            raise
        a.terminal.failure(described[0])
        raise typer.Exit(EXIT_ERROR) from None

    if output == "json":
        a.terminal.json({"object": root.ref, "ready": cause is None, "chain": inspect.as_json(root),
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

