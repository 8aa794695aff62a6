"""``fluxpy create secret oci NAME``: an image pull secret for OCIRepositories (and OCI HelmRepositories).

As ``flux create secret oci``: a ``kubernetes.io/dockerconfigjson`` Secret whose ``.dockerconfigjson`` has one
``auths`` entry for ``--url`` (username, password and their base64 ``auth``), formatted as Flux formats it;
``--export`` prints it instead of applying it.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (LABEL_OPTION, PASSWORD_OPTION, SECRET_EXPORT_OPTION, USERNAME_OPTION,
                                      create_secret_app, export_or_upsert_secret, object_meta, parse_labels)


def oci_secret(name: str, namespace: str, *, url: str, username: str, password: str,
               labels: dict[str, str] | None = None) -> dict:
    """The Secret flux generates; CLIError (flux's message) for a missing flag or a URL that does not parse."""
    from controllers.lib.oci.registry import InvalidReference, Reference, docker_config_json

    for flag, value in (("url", url), ("username", username), ("password", password)):
        if not value:
            raise CLIError(f"--{flag} is required")
    try:
        Reference.parse(url)
    except InvalidReference as exc:
        raise CLIError(f"error parsing url: '{exc}'") from None
    return {"apiVersion": "v1", "kind": "Secret", "metadata": object_meta(name, namespace, labels),
            "stringData": {".dockerconfigjson": docker_config_json(url, username, password)},
            "type": "kubernetes.io/dockerconfigjson"}


@create_secret_app.command("oci")
@handle_errors
def create_secret_oci(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Secret."),
    url: str = typer.Option("", "--url", help="The OCI repository address, e.g. ghcr.io/stefanprodan/charts."),
    username: str = USERNAME_OPTION,
    password: str = PASSWORD_OPTION,
    export: bool = SECRET_EXPORT_OPTION,
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Kubernetes image pull secret for an OCI registry."""
    a: App = ctx.obj
    secret = oci_secret(name, a.namespace, url=url, username=username, password=password,
                        labels=parse_labels(label))
    export_or_upsert_secret(a, secret, "oci", export=export)
