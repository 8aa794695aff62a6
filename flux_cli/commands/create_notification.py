"""``fluxpy create alert-provider | alert | receiver NAME``: the notification objects, as flux creates them.

Flags and messages are flux's: ``alert-provider --type --channel --username --address --secret-ref``
(Provider ``v1beta3``), ``alert --provider-ref --event-severity --event-source <kind>/<name>[.<namespace>]``
(Alert ``v1beta3``), ``receiver --type --secret-ref --event --resource <kind>/<name>`` (Receiver ``v1``).
``--export`` prints the object; otherwise it is applied, and for a Receiver fluxpy waits for Ready and prints
the generated webhook path. (flux 2.7 has no ``create secret receiver``; a Receiver's token is a plain
Secret with a ``token`` key: ``kubectl create secret generic webhook-token --from-literal=token=…``.)
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import LABEL_OPTION, apply_or_export, create_app, export_option, new_object, \
    parse_labels, sorted_keys
from flux_cli.commands.create_kustomization import kind_name_namespace
from flux_cli.flags import split_list

SEVERITIES = ("info", "error")


def object_references(values: list[str], what: str, *, with_namespace: bool) -> list[dict]:
    """``<kind>/<name>[.<namespace>]`` entries as CrossNamespaceObjectReferences (flux's parsing: the
    namespace only where the flag takes one)."""
    refs = []
    for value in values:
        if with_namespace:
            kind, name, namespace = kind_name_namespace(value)
        else:
            kind, _, name = value.partition("/") if "/" in value else ("", "", value)
            namespace = ""
        if not kind:
            raise CLIError(f"invalid {what} '{value}', must be in format <kind>/<name>")
        ref = {"kind": kind, "name": name}
        if namespace:
            ref["namespace"] = namespace
        refs.append(ref)
    return refs


def _create_alert_provider(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Provider."),
    provider_type: str = typer.Option("", "--type", help="type of provider"),
    channel: str = typer.Option("", "--channel", help="channel to send messages to in the case of a chat provider"),
    username: str = typer.Option("", "--username", help="bot username used by the provider"),
    address: str = typer.Option("", "--address", help="path to either the git repository, chat provider or webhook"),
    secret_ref: str = typer.Option("", "--secret-ref", help="name of secret containing authentication token"),
    export: bool = export_option("Provider"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Provider resource."""
    from controllers.api.notification import PROVIDER, PROVIDER_TYPES

    a: App = ctx.obj
    if not provider_type:
        raise CLIError("Provider type is required")
    if provider_type not in PROVIDER_TYPES:
        raise CLIError(f"invalid --type '{provider_type}': expected one of {', '.join(PROVIDER_TYPES)}")
    labels = parse_labels(label)
    spec = {"type": provider_type, "channel": channel, "username": username, "address": address}
    spec = {k: v for k, v in spec.items() if v}
    if secret_ref:
        spec["secretRef"] = {"name": secret_ref}
    apply_or_export(a, PROVIDER, new_object(PROVIDER, name, a.namespace, sorted_keys(spec), labels), export=export)


def _create_alert(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Alert."),
    provider_ref: str = typer.Option("", "--provider-ref", help="reference to provider"),
    event_severity: str = typer.Option("", "--event-severity", help="severity of events to send alerts for"),
    event_source: Optional[list[str]] = typer.Option(
        None, "--event-source", help="sources that should generate alerts (<kind>/<name>), also accepts "
                                     "comma-separated values"),
    export: bool = export_option("Alert"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Alert resource."""
    from controllers.api.notification import ALERT

    a: App = ctx.obj
    if not provider_ref:
        raise CLIError("provider ref is required")
    sources = object_references(split_list(event_source), "event source", with_namespace=True)
    if not sources:
        raise CLIError("at least one event source is required")
    if event_severity and event_severity not in SEVERITIES:
        raise CLIError(f"invalid --event-severity '{event_severity}': expected info or error")
    labels = parse_labels(label)
    spec: dict = {"providerRef": {"name": provider_ref}, "eventSources": sources}
    if event_severity:
        spec["eventSeverity"] = event_severity
    apply_or_export(a, ALERT, new_object(ALERT, name, a.namespace, sorted_keys(spec), labels), export=export)


def _create_receiver(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Receiver."),
    receiver_type: str = typer.Option("", "--type", help="The webhook sender (github, gitlab, generic, ...)."),
    secret_ref: str = typer.Option("", "--secret-ref", help="The Secret holding the token (key 'token')."),
    event: Optional[list[str]] = typer.Option(None, "--event", help="also accepts comma-separated values"),
    resource: Optional[list[str]] = typer.Option(None, "--resource", help="also accepts comma-separated values"),
    export: bool = export_option("Receiver"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Receiver resource."""
    from controllers.api.notification import RECEIVER, RECEIVER_TYPES

    a: App = ctx.obj
    if not receiver_type:
        raise CLIError("Receiver type is required")
    if receiver_type not in RECEIVER_TYPES:
        raise CLIError(f"invalid --type '{receiver_type}': expected one of {', '.join(RECEIVER_TYPES)}")
    if not secret_ref:
        raise CLIError("secret ref is required")
    resources = object_references(split_list(resource), "event source", with_namespace=False)
    if not resources:
        raise CLIError("atleast one resource is required")
    labels = parse_labels(label)
    spec: dict = {"type": receiver_type, "resources": resources, "secretRef": {"name": secret_ref}}
    if events := split_list(event):
        spec["events"] = events
    ready = apply_or_export(a, RECEIVER, new_object(RECEIVER, name, a.namespace, sorted_keys(spec), labels),
                            export=export)
    if ready is not None:
        a.terminal.success(f"generated webhook URL {(ready.get('status') or {}).get('webhookPath', '')}")


create_app.command("alert-provider")(handle_errors(_create_alert_provider))
create_app.command("alert")(handle_errors(_create_alert))
create_app.command("receiver")(handle_errors(_create_receiver))
