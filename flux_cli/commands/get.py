"""``fluxpy get <kind> [name]``, ``get all``, ``get sources all``: status tables for any kind."""
from __future__ import annotations

from typing import TYPE_CHECKING, List, Optional

import typer

from flux_cli import targets
from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app

if TYPE_CHECKING:
    from controllers.api.types import Kind


def shown_columns(kind: "Kind", options: frozenset[str] = frozenset()) -> list:
    """The kind's ``get`` columns, those of a flag (e.g. --show-source) only when ``options`` has it."""
    return [c for c in kind.columns if not c.option or c.option in options]


def summary_headers(kind: "Kind", *, namespaced_view: bool, options: frozenset[str] = frozenset()) -> list[str]:
    """The columns flux's ``get`` shows for the kind: [NAMESPACE] NAME, the kind's own, READY, MESSAGE."""
    headers = ["NAMESPACE"] if namespaced_view else []
    return headers + ["NAME", *(c.header for c in shown_columns(kind, options)), "READY", "MESSAGE"]


def summary_row(kind: "Kind", obj: dict, *, namespaced_view: bool, prefix: str = "",
                options: frozenset[str] = frozenset()) -> list[str]:
    from controllers.api.kinds import ready_of

    row = [obj["metadata"].get("namespace", "")] if namespaced_view else []
    row.append(prefix + obj["metadata"]["name"])
    row += [c.value(obj) for c in shown_columns(kind, options)]
    return row + list(ready_of(kind, obj))


def matches_status(obj: dict, selector: str | None) -> bool:
    """``--status-selector ready=false``: keep objects whose condition of that type has that status."""
    if not selector:
        return True
    type_, _, status = selector.lower().partition("=")
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type", "").lower() == type_:
            return cond.get("status", "").lower() == status
    return False


def parse_status_selector(selector: str | None) -> str | None:
    if selector and ("=" not in selector or not all(selector.partition("=")[::2])):
        raise CLIError(f"invalid --status-selector {selector!r}: expected <condition type>=<status>, e.g. ready=false")
    return selector


@app.command("get", context_settings={"allow_interspersed_args": True})
@handle_errors
def get(
    ctx: typer.Context,
    target: List[str] = typer.Argument(..., metavar="KIND [NAME]", autocompletion=targets.complete,
                                       help="A kind (e.g. 'kustomizations', 'source git', 'hr'), 'all' or "
                                            "'sources all', and optionally an object name."),
    all_namespaces: bool = typer.Option(False, "-A", "--all-namespaces", help="List across all namespaces."),
    watch: bool = typer.Option(False, "-w", "--watch", help="After listing, watch for changes."),
    status_selector: Optional[str] = typer.Option(None, "--status-selector",
                                                  help="Filter by a condition, e.g. ready=false."),
    label_selector: Optional[str] = typer.Option(None, "-l", "--label-selector", help="Filter by labels."),
    output: str = typer.Option("table", "-o", "--output", help="table, json or yaml."),
    no_header: bool = typer.Option(False, "--no-header", help="Omit the table header."),
    show_source: bool = typer.Option(False, "--show-source", help="Show the source of Kustomizations and "
                                                                  "HelmReleases (Kind/namespace/name)."),
) -> None:
    """Show the status of fluxpy objects."""
    a: App = ctx.obj
    if output not in ("table", "json", "yaml"):
        raise CLIError(f"invalid --output {output!r}: expected table, json or yaml")
    parse_status_selector(status_selector)
    tgt = targets.resolve(target, allow_all=True)
    options = frozenset({"show-source"} if show_source else ())
    if show_source and not any(c.option == "show-source" for kind in tgt.kinds for c in kind.columns):
        raise CLIError(f"--show-source applies to Kustomizations and HelmReleases, not {tgt.kinds[0].kind}")
    namespace = None if all_namespaces else a.namespace
    if watch:
        if tgt.many:
            raise CLIError("--watch needs a single kind, not 'all'")
        return _watch(a, tgt, namespace, label_selector, status_selector, no_header, options)

    from controllers.runtime.kube import NotFound

    found: list[tuple["Kind", list[dict]]] = []
    for kind in tgt.kinds:
        ns = namespace if kind.namespaced else None
        try:
            if tgt.name:
                objs = [a.kube.get(kind, tgt.name, ns)]
                objs[0].setdefault("apiVersion", kind.api_version)
            else:
                objs = a.kube.list(kind, ns, label_selector=label_selector).get("items") or []
        except NotFound as exc:
            if tgt.name and not _is_missing_api(exc):
                raise CLIError(f"{kind.kind} '{_where(ns, tgt.name)}' not found") from None
            if tgt.many:
                continue  # that API is not installed (e.g. an extra component); 'get all' skips it
            raise CLIError(f"the cluster does not serve {kind.kind} ({kind.crd_name}): is fluxpy installed? "
                           "Run 'fluxpy install'") from None
        objs = [o for o in objs if matches_status(o, status_selector)]
        if objs:
            found.append((kind, objs))

    if output != "table":
        objects = [_without_managed_fields(o) for _, objs in found for o in objs]
        if tgt.name and not tgt.many:
            value = objects[0] if objects else {}
        else:
            value = {"apiVersion": "v1", "kind": "List", "items": objects}
        a.terminal.json(value) if output == "json" else a.terminal.yaml([value])
        return
    if not found:
        where = "all namespaces" if namespace is None else f"{namespace} namespace"
        a.terminal.warning(f"no {'objects' if tgt.many else tgt.kind.kind + ' objects'} found in {where}")
        return
    for i, (kind, objs) in enumerate(found):
        if i:
            a.terminal.line()
        prefix = f"{kind.kind.lower()}/" if tgt.many else ""
        rows = [summary_row(kind, o, namespaced_view=namespace is None, prefix=prefix, options=options) for o in objs]
        a.terminal.table(summary_headers(kind, namespaced_view=namespace is None, options=options), rows,
                         no_header=no_header)


def _without_managed_fields(obj: dict) -> dict:
    """The object as ``kubectl get -o yaml`` shows it: without ``metadata.managedFields``."""
    return {**obj, "metadata": {k: v for k, v in obj["metadata"].items() if k != "managedFields"}}


def _is_missing_api(exc) -> bool:
    """A 404 for a whole resource type (no CRD) rather than for one object."""
    details = (exc.body or {}).get("details") or {}
    return not details.get("name")


def _where(namespace: str | None, name: str) -> str:
    return f"{namespace}/{name}" if namespace else name


def _watch(a: App, tgt, namespace, label_selector, status_selector, no_header, options: frozenset[str]) -> None:
    """Print the table, then a row for each change until interrupted or --timeout."""
    import time

    from controllers.runtime.kube import Gone

    kind = tgt.kind
    field = f"metadata.name={tgt.name}" if tgt.name else None
    ns = namespace if kind.namespaced else None
    headers = summary_headers(kind, namespaced_view=namespace is None, options=options)
    listed = a.kube.list(kind, ns, label_selector=label_selector, field_selector=field)
    rows = [summary_row(kind, o, namespaced_view=namespace is None, options=options) for o in listed["items"]
            if matches_status(o, status_selector)]
    a.terminal.table(headers, rows, no_header=no_header)
    rv = listed["metadata"].get("resourceVersion")
    deadline = time.monotonic() + a.timeout
    while time.monotonic() < deadline:
        try:
            for event, obj in a.kube.watch(kind, ns, resource_version=rv, label_selector=label_selector,
                                           field_selector=field, timeout_seconds=int(max(1, deadline - time.monotonic()))):
                rv = obj["metadata"].get("resourceVersion", rv)
                if event in ("ADDED", "MODIFIED") and matches_status(obj, status_selector):
                    a.terminal.table(headers, [summary_row(kind, obj, namespaced_view=namespace is None,
                                                           options=options)],
                                     no_header=True)
        except Gone:
            rv = a.kube.list(kind, ns, label_selector=label_selector, field_selector=field)["metadata"]["resourceVersion"]
