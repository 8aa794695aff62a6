"""``fluxpy create kustomization NAME``: a Kustomization for a source path, as ``flux create kustomization``.

Flags and validation are flux's: ``--source [<kind>/]<name>[.<namespace>]`` (kind OCIRepository,
GitRepository — the default — or Bucket), ``--path`` (a safe relative path, written ``./...``), ``--prune``,
``--wait`` or ``--health-check <kind>/<name>.<namespace>`` with ``--health-check-timeout``, ``--depends-on
[<namespace>/]<name>``, ``--service-account``, ``--decryption-provider sops`` / ``--decryption-secret``,
``--target-namespace``, ``--kubeconfig-secret-ref``, ``--retry-interval``. ``--export`` prints the object;
otherwise it is applied and fluxpy waits for ``✔ applied revision …``.
"""
from __future__ import annotations

import posixpath
from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (INTERVAL_OPTION, LABEL_OPTION, apply_or_export, create_app, export_option,
                                      go_duration, new_object, parse_labels, sorted_keys)
from flux_cli.flags import DECRYPTION_PROVIDER, canonical_kind

SOURCE_KINDS = ("OCIRepository", "GitRepository", "Bucket")
HEALTH_CHECK_KINDS = ("Deployment", "DaemonSet", "StatefulSet", "HelmRelease")


def parse_source(value: str) -> dict:
    """``[<kind>/]<name>[.<namespace>]`` → a sourceRef (flux's KustomizationSource flag)."""
    if not value.strip():
        raise CLIError("no Kustomization source given, please specify source that contains the Kubernetes manifests "
                       "in the format '[<kind>/]<name>.<namespace>', where kind must be one of: "
                       f"({', '.join(SOURCE_KINDS)}), if kind is not specified it defaults to GitRepository")
    kind, name, namespace = kind_name_namespace(value)
    if not name:
        raise CLIError(f"no name given for source of kind '{kind}'")
    if not kind:
        if name in SOURCE_KINDS:
            raise CLIError(f"no kind specified for source '{name}'")
        kind = "GitRepository"
    canonical = canonical_kind(kind, SOURCE_KINDS)
    if canonical is None:
        raise CLIError(f"source kind '{kind}' is not supported, must be one of: {', '.join(SOURCE_KINDS)}")
    ref = {"kind": canonical, "name": name}
    if namespace:
        ref["namespace"] = namespace
    return ref


def kind_name_namespace(value: str) -> tuple[str, str, str]:
    """flux's ParseObjectKindNameNamespace: ``kind/name.namespace`` (kind and namespace optional)."""
    kind, name = "", value
    parts = value.split("/")
    if len(parts) == 2:
        kind, name = parts
    name, _, namespace = name.partition(".")
    return kind, name, namespace


def safe_relative_path(value: str) -> str:
    """flux's SafeRelativePath: the path cleaned and confined to the root (``..`` stops there), as ``./<path>``."""
    return "./" + posixpath.normpath("/" + value.strip().replace("\\", "/")).lstrip("/")


def parse_health_check(value: str) -> dict:
    """``<kind>/<name>.<namespace>`` → a healthChecks entry, with flux's messages."""
    kind_obj = value.split("/")
    if len(kind_obj) != 2:
        raise CLIError(f"invalid health check '{value}' must be in the format 'kind/name.namespace' "
                       f"[{' '.join(kind_obj)}]")
    kind = kind_obj[0]
    if kind not in HEALTH_CHECK_KINDS:
        raise CLIError(f"invalid health check kind '{kind}' can be HelmRelease, Deployment, DaemonSet or StatefulSet")
    name_ns = kind_obj[1].split(".")
    if len(name_ns) != 2:
        raise CLIError(f"invalid health check '{value}' must be in the format 'kind/name.namespace'")
    check = {"kind": kind, "name": name_ns[0], "namespace": name_ns[1]}
    if kind == "HelmRelease":
        from controllers.api.helm import HELM_RELEASE

        check = {"apiVersion": HELM_RELEASE.api_version, **check}
    return check


def parse_depends_on(values: list[str]) -> list[dict]:
    """``[<namespace>/]<name>`` entries (flux's MakeDependsOn, without the readyExpr part ``create`` drops)."""
    deps = []
    for value in values:
        ref = value.partition("@")[0]
        namespace, sep, name = ref.partition("/")
        deps.append({"name": name, "namespace": namespace} if sep else {"name": ref})
    return deps


def kustomization_spec(*, source: str, path: str, prune: bool, interval: str, depends_on: list[str],
                       health_checks: list[str], health_check_timeout: str, wait: bool, service_account: str,
                       decryption_provider: str, decryption_secret: str, target_namespace: str,
                       kubeconfig_secret_ref: str, retry_interval: str) -> dict:
    """The Kustomization's spec from the command's flags (validated as flux validates them)."""
    from controllers.api.duration import parse_duration

    path = safe_relative_path(path)
    source_ref = parse_source(source) if source else None
    if not source_ref:
        raise CLIError("source is required")
    if decryption_provider:
        DECRYPTION_PROVIDER.check(decryption_provider, "--decryption-provider")
    spec: dict = {"interval": go_duration(interval), "path": path, "prune": prune,
                  "sourceRef": source_ref}
    if target_namespace:
        spec["targetNamespace"] = target_namespace
    if depends_on:
        spec["dependsOn"] = parse_depends_on(depends_on)
    if kubeconfig_secret_ref:
        spec["kubeConfig"] = {"secretRef": {"name": kubeconfig_secret_ref}}
    timeout = go_duration(health_check_timeout)
    if health_checks and not wait:
        spec["healthChecks"] = [parse_health_check(h) for h in health_checks]
        spec["timeout"] = timeout
    if wait:
        spec["wait"] = True
        spec["timeout"] = timeout
    if service_account:
        spec["serviceAccountName"] = service_account
    if decryption_provider:
        spec["decryption"] = {"provider": decryption_provider}
        if decryption_secret:
            spec["decryption"]["secretRef"] = {"name": decryption_secret}
    if retry_interval and parse_duration(retry_interval) > 0:
        spec["retryInterval"] = go_duration(retry_interval)
    return sorted_keys(spec)


def _create_kustomization(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Kustomization."),
    source: str = typer.Option("", "--source", help="Source that contains the Kubernetes manifests in the format "
                               "'[<kind>/]<name>.<namespace>', where kind must be one of: (OCIRepository, "
                               "GitRepository, Bucket), if kind is not specified it defaults to GitRepository."),
    path: str = typer.Option("./", "--path", help="Path to the directory containing a kustomization.yaml file."),
    prune: bool = typer.Option(False, "--prune", help="Enable garbage collection."),
    wait: bool = typer.Option(False, "--wait", help="Enable health checking of all the applied resources."),
    health_check: Optional[list[str]] = typer.Option(
        None, "--health-check", help="Workload to be included in the health assessment, in the format "
                                     "'<kind>/<name>.<namespace>' (repeatable or comma-separated)."),
    health_check_timeout: str = typer.Option("2m", "--health-check-timeout",
                                             help="Timeout of health checking operations."),
    validation: str = typer.Option("", "--validation", hidden=True,
                                   help="Deprecated: all resources are validated using server-side apply dry-run."),
    depends_on: Optional[list[str]] = typer.Option(
        None, "--depends-on", help="Kustomization that must be ready before this Kustomization can be applied, "
                                   "supported formats '<name>' and '<namespace>/<name>', also accepts "
                                   "comma-separated values."),
    service_account: str = typer.Option("", "--service-account", help="The name of the service account to "
                                        "impersonate when reconciling this Kustomization."),
    decryption_provider: str = DECRYPTION_PROVIDER.option("", "--decryption-provider", "Decryption provider."),
    decryption_secret: str = typer.Option("", "--decryption-secret", help="Set the Kubernetes secret name that "
                                          "contains the OpenPGP private keys used for sops decryption."),
    target_namespace: str = typer.Option("", "--target-namespace", help="Overrides the namespace of all "
                                         "Kustomization objects reconciled by this Kustomization."),
    kubeconfig_secret_ref: str = typer.Option("", "--kubeconfig-secret-ref", help="The name of the Kubernetes "
                                              "Secret that contains a key with the kubeconfig file for connecting "
                                              "to a remote cluster."),
    retry_interval: str = typer.Option("0s", "--retry-interval", help="The interval at which to retry a "
                                       "previously failed reconciliation."),
    interval: str = INTERVAL_OPTION,
    export: bool = export_option("Kustomization"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Kustomization and wait for it to apply its source's revision."""
    from controllers.api.kustomize import KUSTOMIZATION
    from flux_cli.flags import split_list

    a: App = ctx.obj
    if validation:
        a.terminal.warning("--validation is deprecated: all resources are validated using server-side apply dry-run")
    labels = parse_labels(label)
    spec = kustomization_spec(
        source=source, path=path, prune=prune, interval=interval, depends_on=split_list(depends_on),
        health_checks=split_list(health_check), health_check_timeout=health_check_timeout, wait=wait,
        service_account=service_account, decryption_provider=decryption_provider,
        decryption_secret=decryption_secret, target_namespace=target_namespace,
        kubeconfig_secret_ref=kubeconfig_secret_ref, retry_interval=retry_interval)
    apply_or_export(a, KUSTOMIZATION, new_object(KUSTOMIZATION, name, a.namespace, spec, labels), export=export)


create_kustomization = create_app.command("kustomization")(handle_errors(_create_kustomization))
create_app.command("ks", hidden=True)(handle_errors(_create_kustomization))
