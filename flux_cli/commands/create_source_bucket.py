"""``fluxpy create source bucket NAME``: a Bucket source, with its credentials Secret.

As ``flux create source bucket``: ``--access-key``/``--secret-key`` (without ``--secret-ref``) are stored in
the Secret ``bucket-<name>`` (keys ``accesskey``/``secretkey``) that the Bucket then refers to; ``--export``
prints only the Bucket. Otherwise fluxpy waits for the Bucket to be Ready and prints the fetched revision.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (FETCH_TIMEOUT_OPTION, INTERVAL_OPTION, LABEL_OPTION, PROXY_SECRET_REF_OPTION,
                                      apply_or_export, create_source_app, export_option, go_duration,
                                      ignore_paths_option, new_object, object_meta, parse_labels, secret_ref_option,
                                      set_timeout, use_source_secret)
from flux_cli.flags import BUCKET_PROVIDER



def bucket_spec(*, bucket_name: str, endpoint: str, provider: str, region: str, insecure: bool, interval: str,
                ignore_paths: list[str], fetch_timeout: str, secret_ref: str, proxy_secret_ref: str) -> dict:
    """The Bucket's spec from the command's flags (validated as flux validates them)."""
    if not bucket_name:
        raise CLIError("bucket-name is required")
    if not endpoint:
        raise CLIError("endpoint is required")
    BUCKET_PROVIDER.check(provider, "--provider")
    spec: dict = {"bucketName": bucket_name, "endpoint": endpoint, "interval": go_duration(interval),
                  "provider": provider}
    if insecure:
        spec["insecure"] = True
    if region:
        spec["region"] = region
    if ignore_paths:
        spec["ignore"] = "\n".join(ignore_paths)
    set_timeout(spec, fetch_timeout)
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
    provider: str = BUCKET_PROVIDER.option("generic", "--provider", "The S3 compatible storage provider name."),
    access_key: str = typer.Option("", "--access-key", help="The bucket access key."),
    secret_key: str = typer.Option("", "--secret-key", help="The bucket secret key."),
    region: str = typer.Option("", "--region", help="The bucket region."),
    insecure: bool = typer.Option(False, "--insecure", help="For when connecting to a non-TLS S3 HTTP endpoint."),
    secret_ref: str = secret_ref_option("The name of an existing secret containing credentials."),
    proxy_secret_ref: str = PROXY_SECRET_REF_OPTION,
    ignore_paths: Optional[list[str]] = ignore_paths_option("the bucket"),
    interval: str = INTERVAL_OPTION,
    fetch_timeout: str = FETCH_TIMEOUT_OPTION,
    export: bool = export_option("Bucket"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Bucket source and wait for its artifact."""
    from controllers.api.source import BUCKET
    from flux_cli.flags import split_list

    a: App = ctx.obj
    labels = parse_labels(label)
    spec = bucket_spec(bucket_name=bucket_name, endpoint=endpoint, provider=provider, region=region,
                       insecure=insecure, interval=interval, ignore_paths=split_list(ignore_paths),
                       fetch_timeout=fetch_timeout, secret_ref=secret_ref, proxy_secret_ref=proxy_secret_ref)
    bucket = new_object(BUCKET, name, a.namespace, spec, labels)
    if not export and not secret_ref and access_key and secret_key:
        secret = {"apiVersion": "v1", "kind": "Secret", "metadata": object_meta(f"bucket-{name}", a.namespace, labels),
                  "stringData": {"accesskey": access_key, "secretkey": secret_key}}
        use_source_secret(a, spec, secret, "applying secret with the bucket credentials")
    apply_or_export(a, BUCKET, bucket, export=export)
