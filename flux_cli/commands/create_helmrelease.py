"""``fluxpy create helmrelease NAME``: a HelmRelease, as ``flux create helmrelease`` (Flux 2.7) makes it.

Either ``--source <kind>/<name>[.<namespace>]`` (HelmRepository, GitRepository or Bucket) with ``--chart``
(and ``--chart-version``, ``--chart-interval``, ``--reconcile-strategy``): a chart template the
helm-controller turns into a HelmChart; or ``--chart-ref <kind>/<name>[.<namespace>]`` (OCIRepository or
HelmChart). ``--values`` files are merged in order (Helm's MergeMaps); ``--values-from Secret|ConfigMap/<name>``;
``--storage-namespace`` defaults to ``--target-namespace``; ``--crds`` sets ``install.crds: Create`` and
``upgrade.crds: <policy>``. ``--export`` prints the object with its keys sorted, as flux prints it.
"""
from __future__ import annotations

from typing import Optional

import typer

from controllers.api.enums import CHART_SOURCE_KINDS
from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (INTERVAL_OPTION, LABEL_OPTION, apply_or_export, create_app, export_option,
                                      go_duration, new_object, parse_labels, sorted_keys)
from flux_cli.commands.create_kustomization import kind_name_namespace, parse_depends_on
from flux_cli.flags import CHART_RECONCILE_STRATEGY, CRDS_POLICY, canonical_kind

CHART_REF_KINDS = ("OCIRepository", "HelmChart")
VALUES_FROM_KINDS = ("Secret", "ConfigMap")


def _reference(value: str, kinds: tuple[str, ...], *, invalid: str, unsupported: str) -> dict:
    """``<kind>/<name>[.<namespace>]`` → ``{kind, name[, namespace]}`` (kind matched case-insensitively)."""
    kind, name, namespace = kind_name_namespace(value)
    if not kind or not name:
        raise CLIError(invalid)
    canonical = canonical_kind(kind, kinds)
    if canonical is None:
        raise CLIError(f"{unsupported} '{kind}' is not supported, must be one of: {', '.join(kinds)}")
    return {"kind": canonical, "name": name, **({"namespace": namespace} if namespace else {})}


def merged_values(paths: list[str]) -> dict:
    """The ``--values`` files merged in order (later files win, maps merged recursively)."""
    from pathlib import Path

    import yaml

    from controllers.lib.values import merge_maps

    merged: dict = {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CLIError(f"reading values from {path} failed: open {path}: "
                           f"{(exc.strerror or str(exc)).lower()}") from None
        try:
            values = yaml.safe_load(data) or {}
        except yaml.YAMLError as exc:
            raise CLIError(f"converting values to JSON from {path} failed: {exc}") from None
        if not isinstance(values, dict):
            raise CLIError(f"unmarshaling values from {path} failed: the document is not a map")
        merged = merge_maps(merged, values)
    return merged


def helm_release_spec(*, source: str = "", chart: str = "", chart_ref: str = "", chart_version: str = "",
                      chart_interval: str = "", reconcile_strategy: str = "ChartVersion", release_name: str = "",
                      interval: str = "1m", target_namespace: str = "", storage_namespace: str = "",
                      create_target_namespace: bool = False, depends_on: list[str] | None = None,
                      service_account: str = "", crds: str = "", kubeconfig_secret_ref: str = "",
                      values: list[str] | None = None, values_from: list[str] | None = None) -> dict:
    """The HelmRelease's spec from the command's flags, validated as flux validates them."""
    from controllers.api.duration import parse_duration

    if not chart and not chart_ref:
        raise CLIError("chart or chart-ref is required")
    if chart and chart_ref:
        raise CLIError("cannot use --chart in combination with --chart-ref")
    CHART_RECONCILE_STRATEGY.check(reconcile_strategy, "--reconcile-strategy")
    spec: dict = {"interval": go_duration(interval)}
    if release_name:
        spec["releaseName"] = release_name
    if target_namespace:
        spec["targetNamespace"] = target_namespace
    if storage_namespace or target_namespace:
        spec["storageNamespace"] = storage_namespace or target_namespace
    if depends_on:
        spec["dependsOn"] = parse_depends_on(depends_on)
    if chart:
        if not source:
            raise CLIError("no helm chart source given, please specify source that contains the chart in the "
                           "format '<kind>/<name>.<namespace>', where kind must be one of: "
                           f"({', '.join(CHART_SOURCE_KINDS)})")
        source_ref = _reference(source, CHART_SOURCE_KINDS, unsupported="source kind",
                                invalid=f"invalid helm chart source '{source}', must be in format <kind>/<name>")
        template = {"chart": chart, "reconcileStrategy": reconcile_strategy, "sourceRef": source_ref}
        if chart_version:
            template["version"] = chart_version
        if chart_interval and parse_duration(chart_interval) > 0:
            template["interval"] = go_duration(chart_interval)
        spec["chart"] = {"spec": template}
    else:
        spec["chartRef"] = _reference(chart_ref, CHART_REF_KINDS, unsupported="chart reference kind",
                                      invalid=f"invalid chart reference '{chart_ref}', must be in format "
                                              "<kind>/<name>")
    if kubeconfig_secret_ref:
        spec["kubeConfig"] = {"secretRef": {"name": kubeconfig_secret_ref}}
    if create_target_namespace:
        spec.setdefault("install", {})["createNamespace"] = True
    if service_account:
        spec["serviceAccountName"] = service_account
    if crds:
        spec.setdefault("install", {})["crds"] = "Create"
        spec["upgrade"] = {"crds": CRDS_POLICY.check(crds, "--crds")}
    if values:
        spec["values"] = merged_values(values)
    if values_from:
        refs = []
        for value in values_from:
            kind, _, name = value.partition("/")
            if not kind or not name:
                raise CLIError(f"invalid Kubernetes object reference '{value}', must be in format <kind>/<name>")
            canonical = canonical_kind(kind, VALUES_FROM_KINDS)
            if canonical is None:
                raise CLIError(f"reference kind '{kind}' is not supported, must be one of: "
                               f"{', '.join(VALUES_FROM_KINDS)}")
            refs.append({"kind": canonical, "name": name})
        spec["valuesFrom"] = refs
    return sorted_keys(spec)


def _create_helmrelease(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the HelmRelease."),
    release_name: str = typer.Option("", "--release-name", help="Name used for the Helm release, defaults to a "
                                     "composition of '[<target-namespace>-]<HelmRelease-name>'."),
    source: str = typer.Option("", "--source", help="Source that contains the chart in the format "
                               "'<kind>/<name>.<namespace>', where kind must be one of: (HelmRepository, "
                               "GitRepository, Bucket)."),
    chart: str = typer.Option("", "--chart", help="Helm chart name or path."),
    chart_version: str = typer.Option("", "--chart-version", help="Helm chart version, accepts a semver range "
                                      "(ignored for charts from GitRepository sources)."),
    chart_ref: str = typer.Option("", "--chart-ref", help="The chart artifact to release, in the format "
                                  "'<kind>/<name>.<namespace>', where kind must be one of: (OCIRepository, "
                                  "HelmChart)."),
    depends_on: Optional[list[str]] = typer.Option(
        None, "--depends-on", help="HelmReleases that must be ready before this release can be installed, "
                                   "supported formats '<name>' and '<namespace>/<name>'."),
    target_namespace: str = typer.Option("", "--target-namespace", help="Namespace to install this release, "
                                         "defaults to the HelmRelease namespace."),
    storage_namespace: str = typer.Option("", "--storage-namespace", help="Namespace to store the Helm release, "
                                          "defaults to the target namespace."),
    create_target_namespace: bool = typer.Option(False, "--create-target-namespace",
                                                 help="Create the target namespace if it does not exist."),
    service_account: str = typer.Option("", "--service-account", help="The name of the service account to "
                                        "impersonate when reconciling this HelmRelease."),
    reconcile_strategy: str = CHART_RECONCILE_STRATEGY.option("ChartVersion", "--reconcile-strategy",
                                                              "The reconcile strategy of the HelmChart."),
    chart_interval: str = typer.Option("0s", "--chart-interval",
                                       help="The interval of which to check for new chart versions."),
    values: Optional[list[str]] = typer.Option(None, "--values", help="Local path to values.yaml files, also "
                                               "accepts comma-separated values."),
    values_from: Optional[list[str]] = typer.Option(
        None, "--values-from", help="A Kubernetes object reference that contains the values.yaml data key in the "
                                    "format '<kind>/<name>', where kind must be one of: (Secret,ConfigMap)."),
    crds: str = CRDS_POLICY.option("", "--crds", "The upgrade CRDs policy."),
    kubeconfig_secret_ref: str = typer.Option("", "--kubeconfig-secret-ref", help="The name of the Kubernetes "
                                              "Secret that contains a key with the kubeconfig file for connecting "
                                              "to a remote cluster."),
    interval: str = INTERVAL_OPTION,
    export: bool = export_option("HelmRelease"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a HelmRelease and wait for it to be released."""
    from controllers.api.helm import HELM_RELEASE
    from flux_cli.flags import split_list

    a: App = ctx.obj
    labels = parse_labels(label)
    spec = helm_release_spec(
        source=source, chart=chart, chart_ref=chart_ref, chart_version=chart_version, chart_interval=chart_interval,
        reconcile_strategy=reconcile_strategy, release_name=release_name, interval=interval,
        target_namespace=target_namespace, storage_namespace=storage_namespace,
        create_target_namespace=create_target_namespace, depends_on=split_list(depends_on),
        service_account=service_account, crds=crds, kubeconfig_secret_ref=kubeconfig_secret_ref,
        values=split_list(values), values_from=split_list(values_from))
    apply_or_export(a, HELM_RELEASE, new_object(HELM_RELEASE, name, a.namespace, spec, labels), export=export)


create_helmrelease = create_app.command("helmrelease")(handle_errors(_create_helmrelease))
create_app.command("hr", hidden=True)(handle_errors(_create_helmrelease))
