"""``fluxpy create source oci NAME``: an OCIRepository source.

As ``flux create source oci``: ``--url`` and one of ``--tag``, ``--tag-semver``, ``--digest`` are required;
``--secret-ref`` names an image pull secret (``fluxpy create secret oci``); ``--export`` prints the
OCIRepository, otherwise fluxpy applies it, waits for it to be Ready and prints the fetched revision.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (FETCH_TIMEOUT_OPTION, INTERVAL_OPTION, LABEL_OPTION, PROXY_SECRET_REF_OPTION,
                                      apply_or_export, create_source_app, export_option,
                                      go_duration, ignore_paths_option, new_object, parse_labels, secret_ref_option,
                                      set_timeout, verify_spec)
from flux_cli.flags import OCI_PROVIDER, VERIFY_PROVIDER



def oci_repository_spec(*, url: str, tag: str = "", semver: str = "", digest: str = "", provider: str = "generic",
                        secret_ref: str = "", proxy_secret_ref: str = "", service_account: str = "",
                        cert_ref: str = "", verify_provider: str = "", verify_secret_ref: str = "",
                        verify_subject: str = "", verify_issuer: str = "", ignore_paths: list[str] | None = None,
                        insecure: bool = False, interval: str = "1m", fetch_timeout: str = "0s") -> dict:
    """The OCIRepository's spec from the command's flags (validated as flux validates them), keys sorted
    as flux's YAML prints them."""
    if not url:
        raise CLIError("url is required")
    if not (semver or tag or digest):
        raise CLIError("--tag, --tag-semver or --digest is required")
    OCI_PROVIDER.check(provider, "--provider")
    ref = {k: v for k, v in (("digest", digest), ("semver", semver), ("tag", tag)) if v}
    spec: dict = {"interval": go_duration(interval), "provider": provider, "ref": ref, "url": url}
    if insecure:
        spec["insecure"] = True
    if ignore_paths:
        spec["ignore"] = "\n".join(ignore_paths)
    set_timeout(spec, fetch_timeout)
    for field, value in (("secretRef", secret_ref), ("proxySecretRef", proxy_secret_ref),
                         ("certSecretRef", cert_ref)):
        if value:
            spec[field] = {"name": value}
    if service_account:
        spec["serviceAccountName"] = service_account
    verify = verify_spec(verify_provider, verify_secret_ref, verify_issuer, verify_subject)
    if verify:
        spec["verify"] = dict(sorted(verify.items()))
    return dict(sorted(spec.items()))


@create_source_app.command("oci")
@handle_errors
def create_source_oci(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the OCIRepository."),
    url: str = typer.Option("", "--url", help="The OCI repository URL."),
    tag: str = typer.Option("", "--tag", help="The OCI artifact tag."),
    tag_semver: str = typer.Option("", "--tag-semver", help="The OCI artifact tag semver range."),
    digest: str = typer.Option("", "--digest", help="The OCI artifact digest."),
    provider: str = OCI_PROVIDER.option("generic", "--provider", "The OCI provider name."),
    secret_ref: str = secret_ref_option("The name of the Kubernetes image pull secret (type "
                                        "'kubernetes.io/dockerconfigjson')."),
    proxy_secret_ref: str = PROXY_SECRET_REF_OPTION,
    service_account: str = typer.Option("", "--service-account",
                                        help="The name of the Kubernetes service account that refers to an image "
                                             "pull secret."),
    cert_ref: str = typer.Option("", "--cert-ref", help="The name of a secret to use for TLS certificates."),
    verify_provider: str = VERIFY_PROVIDER.option("", "--verify-provider", "The signature verification provider."),
    verify_secret_ref: str = typer.Option("", "--verify-secret-ref",
                                          help="The name of a secret to use for signature verification."),
    verify_subject: str = typer.Option("", "--verify-subject",
                                       help="Regular expression for the OIDC subject during signature verification."),
    verify_issuer: str = typer.Option("", "--verify-issuer",
                                      help="Regular expression for the OIDC issuer during signature verification."),
    ignore_paths: Optional[list[str]] = ignore_paths_option("the artifact"),
    insecure: bool = typer.Option(False, "--insecure", help="For when connecting to non-TLS registries over plain "
                                                            "HTTP."),
    interval: str = INTERVAL_OPTION,
    fetch_timeout: str = FETCH_TIMEOUT_OPTION,
    export: bool = export_option("OCIRepository"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update an OCIRepository source and wait for its artifact."""
    from controllers.api.source import OCI_REPOSITORY
    from flux_cli.flags import split_list

    a: App = ctx.obj
    spec = oci_repository_spec(url=url, tag=tag, semver=tag_semver, digest=digest, provider=provider,
                               secret_ref=secret_ref, proxy_secret_ref=proxy_secret_ref,
                               service_account=service_account, cert_ref=cert_ref, verify_provider=verify_provider,
                               verify_secret_ref=verify_secret_ref, verify_subject=verify_subject,
                               verify_issuer=verify_issuer, ignore_paths=split_list(ignore_paths), insecure=insecure,
                               interval=interval, fetch_timeout=fetch_timeout)
    repository = new_object(OCI_REPOSITORY, name, a.namespace, spec, parse_labels(label))
    apply_or_export(a, OCI_REPOSITORY, repository, export=export)
