"""``fluxpy create source helm NAME --url``: a HelmRepository, as ``flux create source helm``.

The type follows the URL: ``oci://`` makes a ``type: oci`` repository (with ``--oci-provider``), http(s) an
index repository. Without ``--secret-ref``, ``--username``/``--password`` and ``--cert-file``/``--key-file``/
``--ca-file`` are stored in the Secret ``helm-<name>`` the repository then refers to (``--export`` prints only
the repository). fluxpy waits for the index to be fetched and prints its revision; an OCI repository has no
artifact and no conditions, so it is done once applied.
"""
from __future__ import annotations

import urllib.parse
from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (INTERVAL_OPTION, LABEL_OPTION, PASSWORD_OPTION, USERNAME_OPTION, apply_or_export,
                                      create_source_app, export_option, go_duration, new_object, parse_labels,
                                      read_file, secret_ref_option, set_timeout, use_source_secret)
from flux_cli.flags import OCI_PROVIDER

def helm_repository_spec(*, url: str, interval: str, fetch_timeout: str = "0s", oci_provider: str = "",
                         secret_ref: str = "", pass_credentials: bool = False) -> dict:
    """The HelmRepository's spec from the command's flags (validated as flux validates them)."""
    if not url:
        raise CLIError("url is required")
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise CLIError(f"url parse failed: {exc}") from None
    if parts.scheme not in ("http", "https", "oci"):
        raise CLIError(f"url scheme '{parts.scheme}' not supported, can be: http, https and oci")
    if not parts.netloc:
        raise CLIError("url host is required")
    spec: dict = {"url": url, "interval": go_duration(interval)}
    if parts.scheme == "oci":
        spec["type"] = "oci"
        if oci_provider:
            spec["provider"] = OCI_PROVIDER.check(oci_provider, "--oci-provider")
    set_timeout(spec, fetch_timeout)
    if secret_ref:
        spec["secretRef"] = {"name": secret_ref}
        spec["passCredentials"] = pass_credentials
    return dict(sorted(spec.items()))  # flux prints the keys sorted


@create_source_app.command("helm")
@handle_errors
def create_source_helm(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the HelmRepository."),
    url: str = typer.Option("", "--url", help="Helm repository address."),
    username: str = USERNAME_OPTION,
    password: str = PASSWORD_OPTION,
    cert_file: Optional[str] = typer.Option(None, "--cert-file", help="TLS authentication cert file path."),
    key_file: Optional[str] = typer.Option(None, "--key-file", help="TLS authentication key file path."),
    ca_file: Optional[str] = typer.Option(None, "--ca-file", help="TLS authentication CA file path."),
    secret_ref: str = secret_ref_option("The name of an existing secret containing TLS, basic auth or "
                                        "docker-config credentials."),
    oci_provider: str = OCI_PROVIDER.option("", "--oci-provider", "OCI provider for authentication."),
    pass_credentials: bool = typer.Option(False, "--pass-credentials", help="Pass credentials to all domains."),
    interval: str = INTERVAL_OPTION,
    fetch_timeout: str = typer.Option("0s", "--fetch-timeout", help="Set a timeout for fetch operations performed "
                                                                    "by source-controller."),
    export: bool = export_option("HelmRepository"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a HelmRepository source and wait for it to fetch the index."""
    from controllers.api.source import HELM_REPOSITORY
    from flux_cli.commands.create_secret_helm import helm_secret

    a: App = ctx.obj
    labels = parse_labels(label)
    spec = helm_repository_spec(url=url, interval=interval, fetch_timeout=fetch_timeout, oci_provider=oci_provider,
                                secret_ref=secret_ref, pass_credentials=pass_credentials)
    repository = new_object(HELM_REPOSITORY, name, a.namespace, spec, labels)
    if export:
        apply_or_export(a, HELM_REPOSITORY, repository, export=True)
        return
    if not secret_ref:
        cert, key = (read_file(cert_file, "cert"), read_file(key_file, "key")) if cert_file and key_file \
            else (b"", b"")
        secret = helm_secret(f"helm-{name}", a.namespace, username=username, password=password,
                             ca=read_file(ca_file, "TLS CA"), cert=cert, key=key)
        if secret["stringData"]:
            spec["passCredentials"] = pass_credentials
            use_source_secret(a, spec, secret, "applying secret with repository credentials")
    if spec.get("type") != "oci":
        apply_or_export(a, HELM_REPOSITORY, repository, export=False)
        return
    apply_or_export(a, HELM_REPOSITORY, repository, export=False, wait=False)
    a.terminal.waiting("waiting for HelmRepository reconciliation")
    a.terminal.success("HelmRepository reconciliation completed")  # a static object: no status to wait for
