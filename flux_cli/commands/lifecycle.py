"""The generic verbs over any kind: ``suspend``, ``resume``, ``reconcile``, ``delete`` and ``export``."""
from __future__ import annotations

from typing import TYPE_CHECKING, List

import typer

from flux_cli import targets
from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app

if TYPE_CHECKING:
    from controllers.api.types import Kind

TARGET_HELP = "A kind (e.g. 'kustomization', 'source git', 'hr') and an object name."


def _target_arg(help_text: str = TARGET_HELP):
    return typer.Argument(..., metavar="KIND NAME", autocompletion=targets.complete, help=help_text)


def _selected(a: App, kind: "Kind", name: str | None, all_objects: bool) -> list[str]:
    """The names a verb acts on: the one named, or with --all every object of the kind in the namespace."""
    if all_objects:
        if name:
            raise CLIError("give either a name or --all, not both")
        items = a.kube.list(kind, _ns(a, kind)).get("items") or []
        return [i["metadata"]["name"] for i in items]
    if not name:
        raise CLIError(f"{kind.display} name is required (or --all)")
    return [name]


def _ns(a: App, kind: "Kind") -> str | None:
    return a.namespace if kind.namespaced else None


def _label(kind: "Kind", ns: str | None, name: str) -> str:
    return f"{kind.kind} '{ns}/{name}'" if ns else f"{kind.kind} '{name}'"


def _require(kind: "Kind", capability: str, verb: str) -> None:
    if not getattr(kind, capability):
        raise CLIError(f"{kind.kind} does not support {verb}")


def _existing(a: App, kind: "Kind", name: str, ns: str | None) -> dict:
    from controllers.runtime.kube import NotFound

    try:
        obj = a.kube.get(kind, name, ns)
    except NotFound:
        raise CLIError(f"{_label(kind, ns, name)} not found") from None
    obj.setdefault("apiVersion", kind.api_version)
    obj.setdefault("kind", kind.kind)
    return obj


def report_ready(a: App, kind: "Kind", obj: dict) -> None:
    """Print flux's closing line for a Ready object (the kind's :attr:`~controllers.api.types.Kind.reconciled`:
    '✔ applied revision …', '✔ fetched revision …', '✔ selected ref …'); nothing when there is nothing to say."""
    from controllers.api.kinds import ready_of, revision_of

    revision = revision_of(kind, obj)
    message = ready_of(kind, obj)[1] if "{message}" in kind.reconciled else ""
    if revision or message:
        a.terminal.success(kind.reconciled.format(revision=revision, message=message))


def reconcile_and_wait(a: App, kind: "Kind", name: str, ns: str | None, also: tuple[str, ...] = ()) -> dict:
    """Request a reconcile of one object (``also``: further request annotations, e.g. forceAt) and wait for
    its outcome (the flux reconcile flow)."""
    from controllers.runtime import protocol

    obj = _existing(a, kind, name, ns)
    if obj.get("spec", {}).get("suspend"):
        raise CLIError(f"{_label(kind, ns, name)} is suspended: run 'fluxpy resume {kind.display} {name}' first")
    a.terminal.action(f"annotating {_label(kind, ns, name)} for reconciliation")
    token = protocol.request_reconcile(a.kube, kind, name, ns, also)
    a.terminal.waiting(f"waiting for {kind.kind} reconciliation")
    return _wait(a, kind, name, ns, token)


def _wait(a: App, kind: "Kind", name: str, ns: str | None, token: str | None) -> dict:
    from controllers.runtime import protocol

    try:
        obj = protocol.wait_ready(a.kube, kind, name, ns, timeout=a.timeout, token=token)
    except protocol.ReconcileFailed as exc:
        raise reconcile_failed(_label(kind, ns, name), exc) from None
    a.terminal.success(f"{kind.kind} reconciliation completed")
    return obj


def reconcile_failed(label: str, exc) -> CLIError:
    """The one line for a failed reconciliation (a ``protocol.ReconcileFailed``): the Ready message, then
    when the controller tries again."""
    retry = f"; {exc.retry}" if exc.retry else ""
    return CLIError(f"{label} reconciliation failed: {exc}{retry}")


def sources_of(a: App, kind: "Kind", obj: dict) -> list[tuple["Kind", str, str | None]]:
    """The object's source, that source's source, …: what ``reconcile --with-source`` reconciles first."""
    from controllers.runtime import protocol
    from controllers.runtime.kube import NotFound

    try:
        return protocol.sources_of(a.kube, kind, obj)
    except NotFound as exc:
        source_kind, name, namespace = exc.source
        raise CLIError(f"{_label(source_kind, namespace, name)} not found") from None


@app.command("reconcile")
@handle_errors
def reconcile(
    ctx: typer.Context,
    target: List[str] = _target_arg(),
    with_source: bool = typer.Option(False, "--with-source", help="Reconcile the object's source first."),
    force: bool = typer.Option(False, "--force", help="HelmRelease: force a one-off install or upgrade "
                               "(sets reconcile.fluxcd.io/forceAt)."),
    reset: bool = typer.Option(False, "--reset", help="HelmRelease: reset the failure count "
                               "(sets reconcile.fluxcd.io/resetAt)."),
) -> None:
    """Trigger a reconciliation now and wait for its result.

    The per-kind flags (``--force``, ``--reset``) are declared here once and mapped to annotations by the
    kind's ``reconcile_options``; a test keeps the two in step."""
    from controllers.runtime import protocol

    a: App = ctx.obj
    tgt = targets.resolve(target, name="required")
    kind, ns = tgt.kind, _ns(a, tgt.kind)
    _require(kind, "reconcilable", "reconcile")
    also = protocol.request_annotations(kind, {"force": force, "reset": reset})
    if with_source:
        chain = sources_of(a, kind, _existing(a, kind, tgt.name, ns))
        if not chain:
            raise CLIError(f"{kind.kind} has no source to reconcile (--with-source)")
        for source_kind, source_name, source_ns in reversed(chain):  # the deepest source first
            report_ready(a, source_kind, reconcile_and_wait(a, source_kind, source_name, source_ns))
    report_ready(a, kind, reconcile_and_wait(a, kind, tgt.name, ns, also))


def _set_suspend(a: App, kind: "Kind", names: list[str], suspend: bool) -> None:
    from controllers.runtime import protocol
    from controllers.runtime.kube import NotFound

    verb, ns = ("suspending" if suspend else "resuming"), _ns(a, kind)
    for name in names:
        a.terminal.action(f"{verb} {_label(kind, ns, name)}")
        try:
            protocol.set_suspend(a.kube, kind, name, ns, suspend)
        except NotFound:
            raise CLIError(f"{_label(kind, ns, name)} not found") from None
        a.terminal.success(f"{kind.kind} {'suspended' if suspend else 'resumed'}")


@app.command("suspend")
@handle_errors
def suspend(
    ctx: typer.Context,
    target: List[str] = _target_arg(),
    all_objects: bool = typer.Option(False, "--all", help="Suspend every object of the kind in the namespace."),
) -> None:
    """Suspend reconciliation of objects."""
    a: App = ctx.obj
    tgt = targets.resolve(target)
    _require(tgt.kind, "suspendable", "suspend")
    _set_suspend(a, tgt.kind, _selected(a, tgt.kind, tgt.name, all_objects), True)


@app.command("resume")
@handle_errors
def resume(
    ctx: typer.Context,
    target: List[str] = _target_arg(),
    all_objects: bool = typer.Option(False, "--all", help="Resume every object of the kind in the namespace."),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the resumed objects to become Ready."),
) -> None:
    """Resume suspended objects (and wait for them to become Ready)."""
    a: App = ctx.obj
    tgt = targets.resolve(target)
    _require(tgt.kind, "suspendable", "resume")
    names = _selected(a, tgt.kind, tgt.name, all_objects)
    _set_suspend(a, tgt.kind, names, False)
    if wait and tgt.kind.reconcilable:
        ns = _ns(a, tgt.kind)
        for name in names:
            a.terminal.waiting(f"waiting for {_label(tgt.kind, ns, name)} reconciliation")
            report_ready(a, tgt.kind, _wait(a, tgt.kind, name, ns, None))


@app.command("delete")
@handle_errors
def delete(
    ctx: typer.Context,
    target: List[str] = _target_arg(),
    silent: bool = typer.Option(False, "-s", "--silent", help="Delete without asking for confirmation."),
) -> None:
    """Delete an object (its controller finalizes it)."""
    a: App = ctx.obj
    tgt = targets.resolve(target, name="required")
    ns = _ns(a, tgt.kind)
    label = _label(tgt.kind, ns, tgt.name)
    _existing(a, tgt.kind, tgt.name, ns)
    if not silent and not a.terminal.confirm(f"Are you sure you want to delete {label}"):
        raise CLIError("deletion cancelled" if a.terminal.interactive else
                       f"not deleting {label} without confirmation: pass --silent to delete non-interactively")
    a.terminal.action(f"deleting {label}")
    a.kube.delete(tgt.kind, tgt.name, ns)
    a.terminal.success(f"{tgt.kind.kind} deleted")


#: metadata fields that describe an object's identity and intent (kept by export).
EXPORTED_METADATA = ("name", "namespace", "labels", "annotations")
#: annotations that belong to a live object, not to its declaration.
LIVE_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration", "reconcile.fluxcd.io/requestedAt",
                    "reconcile.fluxcd.io/forceAt", "reconcile.fluxcd.io/resetAt")


def exportable(obj: dict) -> dict:
    """The object as it would be written in Git: apiVersion, kind, identifying metadata and spec."""
    meta = {k: obj["metadata"][k] for k in EXPORTED_METADATA if obj["metadata"].get(k)}
    annotations = {k: v for k, v in (meta.get("annotations") or {}).items() if k not in LIVE_ANNOTATIONS}
    if annotations:
        meta["annotations"] = annotations
    else:
        meta.pop("annotations", None)
    out = {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "metadata": meta}
    if "spec" in obj:
        out["spec"] = obj["spec"]
    return out


@app.command("export")
@handle_errors
def export(
    ctx: typer.Context,
    target: List[str] = typer.Argument(..., metavar="KIND [NAME]", autocompletion=targets.complete,
                                       help="A kind and an object name, or a kind with --all."),
    all_objects: bool = typer.Option(False, "--all", help="Export every object of the kind in the namespace."),
) -> None:
    """Print objects as YAML, ready to commit to Git."""
    a: App = ctx.obj
    tgt = targets.resolve(target, allow_all=True)
    from controllers.runtime.kube import NotFound

    objects = []
    for kind in tgt.kinds:
        ns = _ns(a, kind)
        if tgt.name:
            objects.append(exportable(_existing(a, kind, tgt.name, ns)))
            continue
        if not (all_objects or tgt.many):
            raise CLIError(f"{kind.display} name is required (or --all)")
        try:
            objects += [exportable(i) for i in a.kube.list(kind, ns).get("items") or []]
        except NotFound:
            if not tgt.many:
                raise
    a.terminal.yaml(objects)
