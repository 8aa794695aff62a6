"""``fluxpy install`` and ``fluxpy uninstall``."""
from __future__ import annotations

import time
from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.flags import split_list
from flux_cli.root import app

PART_OF = "app.kubernetes.io/part-of=fluxpy"


def install_options(a: App, components, components_extra, registry, image_pull_secret, network_policy,
                    watch_all_namespaces, log_level, cluster_domain, toleration_keys, ui_actions: bool = False):
    """Build and validate the manifestgen options from CLI flags (shared with bootstrap's flags)."""
    from manifestgen.options import InstallOptions

    kwargs = dict(namespace=a.namespace, registry=registry, image_pull_secret=image_pull_secret or "",
                  network_policy=network_policy, watch_all_namespaces=watch_all_namespaces, log_level=log_level,
                  cluster_domain=cluster_domain, toleration_keys=split_list(toleration_keys),
                  components_extra=split_list(components_extra), ui_actions=ui_actions)
    if components:
        kwargs["components"] = split_list(components)
    options = InstallOptions(**kwargs)
    options.validate()
    return options


def wait_components_healthy(a: App, components: list[str], timeout: float) -> None:
    """Wait until every controller is alive (Deployment Available or a live leader Lease).

    Callers pass ``InstallOptions.all_components``, the controllers only: the ui add-on holds no leader Lease,
    and on the embedded control plane (no kubelet) no Deployment ever becomes Available, so waiting on it
    would always time out there; in a real cluster it also needs Secrets that the user creates after the
    install. Its health is ``fluxpy check --components-extra=ui``'s to report, not install's to wait for.
    """
    from controllers.runtime.protocol import component_health

    deadline = time.monotonic() + timeout
    pending = list(components)
    details: dict[str, str] = {}
    while pending:
        for name in list(pending):
            ok, details[name] = component_health(a.kube, a.namespace, name)
            if ok:
                a.terminal.success(f"{name}: {details[name]}")
                pending.remove(name)
        if pending:
            if time.monotonic() > deadline:
                raise CLIError("timed out waiting for controllers: " +
                               "; ".join(f"{n}: {details[n]}" for n in pending) +
                               " (with the embedded control plane, start them with 'fluxpy dev up')")
            time.sleep(1)


@app.command("install")
@handle_errors
def install(
    ctx: typer.Context,
    export: bool = typer.Option(False, "--export", help="Print the manifests instead of applying them."),
    components: Optional[list[str]] = typer.Option(None, "--components", help="Controllers to install (comma-separated)."),
    components_extra: Optional[list[str]] = typer.Option(None, "--components-extra",
                                                         help="Extra controllers: image-reflector-controller, ..."),
    registry: str = typer.Option("ghcr.io/fluxpy", "--registry", help="Container registry of the controller image."),
    image_pull_secret: Optional[str] = typer.Option(None, "--image-pull-secret", help="Secret to pull images with."),
    network_policy: bool = typer.Option(True, "--network-policy/--no-network-policy",
                                        help="Deny ingress to the controllers from other namespaces."),
    watch_all_namespaces: bool = typer.Option(True, "--watch-all-namespaces/--no-watch-all-namespaces",
                                              help="Watch objects in all namespaces."),
    log_level: str = typer.Option("info", "--log-level", help="Controllers' log level: debug, info or error."),
    cluster_domain: str = typer.Option("cluster.local", "--cluster-domain", help="The cluster's DNS domain."),
    toleration_keys: Optional[list[str]] = typer.Option(None, "--toleration-keys",
                                                        help="Taint keys the controllers tolerate."),
    ui_actions: bool = typer.Option(False, "--ui-actions", help=(
        "Let the ui component (--components-extra=ui) reconcile, suspend and resume; read-only otherwise.")),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the controllers to be alive."),
) -> None:
    """Install or upgrade fluxpy's CRDs and controllers."""
    from controllers.runtime.apply import apply_staged
    from manifestgen.install import generate

    a: App = ctx.obj
    options = install_options(a, components, components_extra, registry, image_pull_secret, network_policy,
                              watch_all_namespaces, log_level, cluster_domain, toleration_keys, ui_actions)
    manifest = generate(options)
    if export:
        a.terminal.line(manifest.yaml.rstrip("\n"))
        return
    a.terminal.success("manifests build completed")
    a.terminal.action(f"installing components in {a.namespace} namespace")

    def show(change) -> None:
        if change.action != "unchanged" or a.verbose:
            a.terminal.line(str(change))

    apply_staged(a.kube, manifest.objects, timeout=a.timeout, on_change=show)
    if wait:
        a.terminal.waiting("verifying installation")
        wait_components_healthy(a, options.all_components, a.timeout)
        for name in options.addons:
            a.terminal.line(f"{name}: not waited for (not a controller); "
                            f"'fluxpy check --components-extra={name}' reports its health and Secrets")
    a.terminal.success("install finished")


@app.command("uninstall")
@handle_errors
def uninstall(
    ctx: typer.Context,
    dry_run: bool = typer.Option(False, "--dry-run", help="Only print what would be deleted."),
    keep_namespace: bool = typer.Option(False, "--keep-namespace", help="Do not delete the namespace."),
    silent: bool = typer.Option(False, "-s", "--silent", help="Do not ask for confirmation."),
) -> None:
    """Remove fluxpy's objects, controllers, CRDs and namespace from the cluster."""
    a: App = ctx.obj
    if not (silent or dry_run) and not a.terminal.confirm(
            f"Are you sure you want to delete fluxpy and its custom resources from the {a.namespace} namespace"):
        raise CLIError("uninstall cancelled" if a.terminal.interactive else
                       "not uninstalling without confirmation: pass --silent to uninstall non-interactively")
    for line in uninstall_plan(a, dry_run=dry_run, keep_namespace=keep_namespace):
        a.terminal.line(line) if dry_run else a.terminal.success(line)
    a.terminal.success("uninstall finished" if not dry_run else "uninstall dry run finished")


def uninstall_plan(a: App, *, dry_run: bool, keep_namespace: bool):
    """Delete (or, on a dry run, list) in an order that never hangs; yields one line per object.

    1. every Flux custom resource in every namespace, with its finalizers removed first so no controller
       (running or not) is needed to let it go, and nothing it applied is pruned;
    2. the components' objects (labelled ``app.kubernetes.io/part-of=fluxpy``), the CRDs last;
    3. the namespace, unless kept.
    """
    from controllers.api.builtin import NAMESPACE
    from controllers.api.kinds import ALL_COMPONENTS, KINDS
    from controllers.runtime.kube import NotFound
    from manifestgen.install import generate
    from manifestgen.options import InstallOptions

    suffix = " (dry run)" if dry_run else ""
    for kind in KINDS:
        try:
            items = a.kube.list(kind, None).get("items") or []
        except NotFound:
            continue
        for obj in items:
            meta = obj["metadata"]
            if not dry_run:
                if meta.get("finalizers"):
                    a.kube.patch(kind, meta["name"], {"metadata": {"finalizers": None}}, meta.get("namespace"))
                a.kube.delete(kind, meta["name"], meta.get("namespace"))
            yield f"{kind.kind}/{meta.get('namespace')}/{meta['name']} deleted{suffix}"

    everything = generate(InstallOptions(namespace=a.namespace, components=list(ALL_COMPONENTS))).objects
    types = []
    for obj in everything:
        key = (obj["apiVersion"], obj["kind"])
        if obj["kind"] != "Namespace" and key not in types:
            types.append(key)
    types.sort(key=lambda t: t[1] == "CustomResourceDefinition")  # CRDs last
    for api_version, kind_name in types:
        try:
            rt = a.kube.resource_for(api_version, kind_name)
            found = a.kube.list(rt, a.namespace if rt.namespaced else None, label_selector=PART_OF).get("items") or []
        except NotFound:
            continue
        for obj in found:
            meta = obj["metadata"]
            if not dry_run:
                a.kube.delete(rt, meta["name"], meta.get("namespace"))
            where = f"{meta['namespace']}/" if meta.get("namespace") else ""
            yield f"{kind_name}/{where}{meta['name']} deleted{suffix}"
    if not keep_namespace:
        if not dry_run:
            a.kube.delete(NAMESPACE, a.namespace)
        yield f"Namespace/{a.namespace} deleted{suffix}"
