"""``fluxpy check [--pre]``: is the cluster fit for fluxpy, and is fluxpy healthy in it."""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app

#: the oldest Kubernetes minor Flux 2.7 supports.
MIN_KUBERNETES = (1, 32)


def kubernetes_version(a: App) -> tuple[str, tuple[int, int]]:
    info = a.kube.version()
    git_version = info.get("gitVersion", "")
    try:
        minor = int("".join(ch for ch in info.get("minor", "") if ch.isdigit()))
        return git_version, (int(info.get("major", "0")), minor)
    except ValueError:
        raise CLIError(f"cannot read the Kubernetes version from {info!r}") from None


def ui_health(a: App) -> list[tuple[bool, str]]:
    """The ui add-on: its Deployment is Available (it has no leader Lease), and the Secrets it mounts, which
    manifestgen does not generate, exist with their keys."""
    from controllers.api.builtin import DEPLOYMENT, SECRET
    from controllers.runtime.kube import NotFound
    from manifestgen.install import UI_SECRET_KEYS, UI_SPEC

    results = []
    try:
        deploy = a.kube.get(DEPLOYMENT, UI_SPEC.name, a.namespace)
        available = next((c for c in (deploy.get("status") or {}).get("conditions") or []
                          if c.get("type") == "Available"), {})
        ok = available.get("status") == "True"
        results.append((ok, f"{UI_SPEC.name}: deployment {'ready' if ok else 'not ready'}"))
    except NotFound:
        results.append((False, f"{UI_SPEC.name}: no deployment found (install it with --components-extra=ui)"))
    for secret, keys in UI_SECRET_KEYS.items():
        try:
            data = a.kube.get(SECRET, secret, a.namespace).get("data") or {}
        except NotFound:
            results.append((False, f"secret {a.namespace}/{secret}: not found (the ui mounts it: create it with "
                                   f"the keys {', '.join(keys)})"))
            continue
        missing = [k for k in keys if not data.get(k)]
        results.append((not missing, f"secret {a.namespace}/{secret}: " +
                        (f"no {', '.join(missing)}" if missing else ", ".join(keys))))
    return results


@app.command("check")
@handle_errors
def check(
    ctx: typer.Context,
    pre: bool = typer.Option(False, "--pre", help="Only check the prerequisites (before install)."),
    components: Optional[list[str]] = typer.Option(None, "--components", help="Controllers to check."),
    components_extra: Optional[list[str]] = typer.Option(None, "--components-extra",
                                                         help="Extra components to check (controllers, ui)."),
) -> None:
    """Check the prerequisites and the health of fluxpy's controllers and CRDs."""
    from controllers.api.builtin import CRD
    from controllers.api.kinds import KINDS
    from controllers.api.objects import find_condition
    from controllers.runtime.kube import NotFound
    from controllers.runtime.protocol import component_health
    from flux_cli.flags import selected_components
    from manifestgen.options import ADDONS

    a: App = ctx.obj
    t = a.terminal
    t.action("checking prerequisites")
    git_version, (major, minor) = kubernetes_version(a)
    floor = f"{MIN_KUBERNETES[0]}.{MIN_KUBERNETES[1]}.0"
    if (major, minor) < MIN_KUBERNETES:
        raise CLIError(f"Kubernetes {git_version} is too old: fluxpy needs >={floor}")
    t.success(f"Kubernetes {git_version.lstrip('v')} >={floor}")
    if pre:
        t.success("prerequisites checks passed")
        return

    failed = 0
    t.action("checking version in cluster")
    try:
        from controllers.api.builtin import NAMESPACE

        ns = a.kube.get(NAMESPACE, a.namespace)
        version = ns["metadata"].get("labels", {}).get("app.kubernetes.io/version", "unknown")
        t.success(f"distribution: fluxpy-{version}")
    except NotFound:
        raise CLIError(f"namespace {a.namespace} not found: is fluxpy installed? Run 'fluxpy install'") from None

    t.action("checking controllers")
    names = selected_components(components, components_extra, addons=True)
    for name in names:
        if name in ADDONS:
            continue
        ok, detail = component_health(a.kube, a.namespace, name)
        (t.success if ok else t.failure)(f"{name}: {detail}")
        failed += not ok

    if "ui" in names:
        t.action("checking ui")
        for ok, line in ui_health(a):
            (t.success if ok else t.failure)(line)
            failed += not ok

    t.action("checking crds")
    for kind in KINDS:
        if kind.controller not in names:
            continue
        try:
            crd = a.kube.get(CRD, kind.crd_name)
        except NotFound:
            t.failure(f"{kind.crd_name}: not found")
            failed += 1
            continue
        established = (find_condition(crd, "Established") or {}).get("status") == "True"
        (t.success if established else t.failure)(f"{kind.crd_name}/{kind.version}" + ("" if established else " not established"))
        failed += not established
    if failed:
        raise CLIError(f"check failed: {failed} problem(s) found")
    t.success("all checks passed")
