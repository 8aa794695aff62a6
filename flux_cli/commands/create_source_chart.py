"""``fluxpy create source chart NAME --source Kind/name --chart``: a HelmChart, as
``flux create source chart``.

``--source`` is ``HelmRepository/<name>``, ``GitRepository/<name>`` or ``Bucket/<name>`` (same namespace);
``--chart`` a chart name (repositories) or a path in the source; ``--chart-version`` a version or semver range
(repositories only); ``--reconcile-strategy`` ChartVersion (default) or Revision; ``--verify-*`` set
``spec.verify`` as flux does. fluxpy waits for the chart artifact and prints its revision (the version).
"""
from __future__ import annotations

from typing import Optional

import typer

from controllers.api.enums import CHART_SOURCE_KINDS
from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (INTERVAL_OPTION, LABEL_OPTION, apply_or_export,
                                      create_source_app, export_option, go_duration, new_object, parse_labels,
                                      verify_spec)
from flux_cli.flags import CHART_RECONCILE_STRATEGY, VERIFY_PROVIDER, canonical_kind

SOURCE_KINDS = CHART_SOURCE_KINDS


def parse_source(value: str) -> tuple[str, str]:
    """``<kind>/<name>`` (kind case-insensitive, as flux's LocalHelmChartSource flag)."""
    kind, sep, name = value.partition("/")
    canonical = canonical_kind(kind, SOURCE_KINDS)
    if not value or not sep or not name or not canonical:
        raise CLIError(f"invalid argument \"{value}\" for \"--source\" flag: source kind '{kind}' is not "
                       f"supported, must be one of: {', '.join(SOURCE_KINDS)}" if sep and name else
                       f"invalid argument \"{value}\" for \"--source\" flag: no name separator '/' found")
    return canonical, name


def helm_chart_spec(*, source: str, chart: str, chart_version: str = "", interval: str = "1m",
                    reconcile_strategy: str = "ChartVersion", verify_provider: str = "", verify_secret_ref: str = "",
                    verify_issuer: str = "", verify_subject: str = "") -> dict:
    """The HelmChart's spec from the command's flags (validated as flux validates them)."""
    if not source:
        raise CLIError("chart source is required")
    kind, name = parse_source(source)
    if not chart:
        raise CLIError("chart name or path is required")
    spec: dict = {"chart": chart, "interval": go_duration(interval),
                  "reconcileStrategy": CHART_RECONCILE_STRATEGY.check(reconcile_strategy, "--reconcile-strategy"),
                  "sourceRef": {"kind": kind, "name": name}}
    if chart_version:
        spec["version"] = chart_version
    verify = verify_spec(verify_provider, verify_secret_ref, verify_issuer, verify_subject)
    if verify:
        spec["verify"] = verify
    return dict(sorted(spec.items()))  # flux prints the keys sorted


@create_source_app.command("chart")
@handle_errors
def create_source_chart(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the HelmChart."),
    source: str = typer.Option("", "--source", help="Source that contains the chart in the format '<kind>/<name>', "
                                                    "where kind must be one of: " + ", ".join(SOURCE_KINDS) + "."),
    chart: str = typer.Option("", "--chart", help="Helm chart name or path."),
    chart_version: str = typer.Option("", "--chart-version", help="Helm chart version, accepts a semver range "
                                                                  "(ignored for charts from GitRepository sources)."),
    reconcile_strategy: str = CHART_RECONCILE_STRATEGY.option("ChartVersion", "--reconcile-strategy",
                                                              "The reconcile strategy for helm chart."),
    verify_provider: str = VERIFY_PROVIDER.option("", "--verify-provider", "Signature verification provider."),
    verify_secret_ref: str = typer.Option("", "--verify-secret-ref",
                                          help="The name of a secret to use for signature verification."),
    verify_subject: str = typer.Option("", "--verify-subject",
                                       help="Regular expression to use for the OIDC subject during signature "
                                            "verification."),
    verify_issuer: str = typer.Option("", "--verify-issuer",
                                      help="Regular expression to use for the OIDC issuer during signature "
                                           "verification."),
    interval: str = INTERVAL_OPTION,
    export: bool = export_option("HelmChart"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a HelmChart source and wait for the chart to be available."""
    from controllers.api.source import HELM_CHART

    a: App = ctx.obj
    spec = helm_chart_spec(source=source, chart=chart, chart_version=chart_version, interval=interval,
                           reconcile_strategy=reconcile_strategy, verify_provider=verify_provider,
                           verify_secret_ref=verify_secret_ref, verify_issuer=verify_issuer,
                           verify_subject=verify_subject)
    apply_or_export(a, HELM_CHART, new_object(HELM_CHART, name, a.namespace, spec, parse_labels(label)),
                    export=export)
