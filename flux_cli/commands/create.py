"""``fluxpy create ...``: the command groups and the one flow every create command follows.

Each ``create`` sub-command lives in its own module (``create_source_git.py``, ``create_secret_git.py``,
...), builds the object from its flags and hands it to :func:`apply_or_export`: with ``--export`` the YAML
is printed; otherwise the object is created or updated (server-side apply, field manager ``flux``), and —
for kinds a controller reconciles — fluxpy waits until it is Ready at the new generation and prints
``✔ fetched revision …`` / ``✔ applied revision …``, or the failure.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Optional

import typer

from flux_cli.app import App, CLIError
from flux_cli.main import app

if TYPE_CHECKING:
    from controllers.api.types import Kind

create_app = typer.Typer(help="Create or update fluxpy objects.", no_args_is_help=True)
create_source_app = typer.Typer(help="Create or update sources.", no_args_is_help=True)
create_secret_app = typer.Typer(help="Create or update Secrets for sources and providers.", no_args_is_help=True)
create_app.add_typer(create_source_app, name="source")
create_app.add_typer(create_secret_app, name="secret")
app.add_typer(create_app, name="create")

#: the label that marks objects created by the CLI (as flux's ``--label`` adds its own).
LABEL_HELP = "Labels to set, as key=value (repeatable or comma-separated)."


def parse_labels(values: Optional[list[str]]) -> dict[str, str]:
    """``--label a=b,c=d`` → ``{"a": "b", "c": "d"}``; a malformed pair is a CLI error."""
    from flux_cli.flags import split_list

    labels = {}
    for item in split_list(values):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"invalid --label {item!r}: expected key=value")
        labels[key] = value
    return labels


def new_object(kind: "Kind", name: str, namespace: str, spec: dict, labels: dict[str, str] | None = None) -> dict:
    """A fluxpy object with only the fields a user would write."""
    meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": meta, "spec": spec}


def apply_or_export(a: App, kind: "Kind", obj: dict, *, export: bool, wait: bool = True) -> dict | None:
    """Print ``obj`` as YAML (``--export``), or apply it and wait for its controller's verdict."""
    from controllers.runtime import protocol
    from controllers.runtime.apply import CLI_FIELD_MANAGER
    from flux_cli.commands.lifecycle import report_ready

    if export:
        a.terminal.yaml([obj])
        return None
    name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
    label = f"{kind.kind} '{ns}/{name}'" if ns else f"{kind.kind} '{name}'"
    a.terminal.generate(f"generating {kind.kind}")
    a.terminal.action(f"applying {label}")
    applied = a.kube.apply(obj, field_manager=CLI_FIELD_MANAGER)
    a.terminal.success(f"{kind.kind} {'created' if applied['metadata'].get('generation') == 1 else 'updated'}")
    if not (wait and kind.reconcilable):
        return applied
    a.terminal.waiting(f"waiting for {kind.kind} reconciliation")
    try:
        ready = protocol.wait_ready(a.kube, kind, name, ns, timeout=a.timeout)
    except protocol.ReconcileFailed as exc:
        raise CLIError(f"{label} reconciliation failed: {exc}") from None
    a.terminal.success(f"{kind.kind} reconciliation completed")
    report_ready(a, kind, ready)
    return ready
