"""``fluxpy create source bucket NAME``: a Bucket source, with its credentials Secret.

As ``flux create source bucket``: ``--access-key``/``--secret-key`` (without ``--secret-ref``) are stored in
the Secret ``bucket-<name>`` (keys ``accesskey``/``secretkey``) that the Bucket then refers to; ``--export``
prints only the Bucket. Otherwise fluxpy waits for the Bucket to be Ready and prints the fetched revision.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import LABEL_HELP, apply_or_export, create_source_app, new_object, parse_labels

PROVIDERS = ("generic", "aws", "azure", "gcp")


def bucket_spec(*, bucket_name: str, endpoint: str, provider: str, region: str, insecure: bool, interval: str,
                ignore_paths: list[str], fetch_timeout: str, secret_ref: str, proxy_secret_ref: str) -> dict:
    """The Bucket's spec from the command's flags (validated as flux validates them)."""
    from controllers.api.duration import format_duration, parse_duration

    if not bucket_name:
        raise CLIError("bucket-name is required")
    if not endpoint:
        raise CLIError("endpoint is required")
    if provider not in PROVIDERS:
        raise CLIError(f"source bucket provider '{provider}' is not supported, must be one of: "
                       f"{', '.join(PROVIDERS)}")
    spec: dict = {"bucketName": bucket_name, "endpoint": endpoint, "interval": format_duration(parse_duration(interval)),
                  "provider": provider}
    if insecure:
        spec["insecure"] = True
    if region:
        spec["region"] = region
    if ignore_paths:
        spec["ignore"] = "\n".join(ignore_paths)
    if fetch_timeout and parse_duration(fetch_timeout) > 0:
        spec["timeout"] = format_duration(parse_duration(fetch_timeout))
    if secret_ref:
        spec["secretRef"] = {"name": secret_ref}
    if proxy_secret_ref:
        spec["proxySecretRef"] = {"name": proxy_secret_ref}
    return spec


@create_source_app.command("bucket")
@handle_errors
def create_source_bucket(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Bucket."),
    bucket_name: str = typer.Option("", "--bucket-name", help="The bucket name."),
    endpoint: str = typer.Option("", "--endpoint", help="The bucket endpoint address."),
    provider: str = typer.Option("generic", "--provider", help="The S3 compatible storage provider name: "
                                                               + "|".join(PROVIDERS) + "."),
    access_key: str = typer.Option("", "--access-key", help="The bucket access key."),
    secret_key: str = typer.Option("", "--secret-key", help="The bucket secret key."),
    region: str = typer.Option("", "--region", help="The bucket region."),
    insecure: bool = typer.Option(False, "--insecure", help="For when connecting to a non-TLS S3 HTTP endpoint."),
    secret_ref: str = typer.Option("", "--secret-ref", help="The name of an existing secret containing credentials."),
    proxy_secret_ref: str = typer.Option("", "--proxy-secret-ref",
                                         help="The name of an existing secret containing the proxy address and "
                                              "credentials."),
    ignore_paths: Optional[list[str]] = typer.Option(None, "--ignore-paths",
                                                     help="Paths to ignore in the bucket (comma-separated or "
                                                          "repeated)."),
    interval: str = typer.Option("1m", "--interval", help="Source sync interval."),
    fetch_timeout: str = typer.Option("0s", "--fetch-timeout", help="Set a timeout for fetching from the source."),
    export: bool = typer.Option(False, "--export", help="Print the Bucket as YAML instead of applying it."),
    label: Optional[list[str]] = typer.Option(None, "--label", help=LABEL_HELP),
) -> None:
    """Create or update a Bucket source and wait for its artifact."""
    from controllers.api.source import BUCKET
    from flux_cli.commands.create_secret_tls import upsert_secret
    from flux_cli.flags import split_list

    a: App = ctx.obj
    labels = parse_labels(label)
    spec = bucket_spec(bucket_name=bucket_name, endpoint=endpoint, provider=provider, region=region,
                       insecure=insecure, interval=interval, ignore_paths=split_list(ignore_paths),
                       fetch_timeout=fetch_timeout, secret_ref=secret_ref, proxy_secret_ref=proxy_secret_ref)
    bucket = new_object(BUCKET, name, a.namespace, spec, labels)
    if not export and not secret_ref and access_key and secret_key:
        secret_name = f"bucket-{name}"
        a.terminal.action("applying secret with the bucket credentials")
        meta: dict = {"name": secret_name, "namespace": a.namespace}
        if labels:
            meta["labels"] = labels
        upsert_secret(a, {"apiVersion": "v1", "kind": "Secret", "metadata": meta,
                          "stringData": {"accesskey": access_key, "secretkey": secret_key}})
        spec["secretRef"] = {"name": secret_name}
        a.terminal.success("authentication configured")
    apply_or_export(a, BUCKET, bucket, export=export)
