"""``fluxpy version [--client]``."""
from __future__ import annotations

import typer

from flux_cli import __version__
from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app


@app.command("version")
@handle_errors
def version(
    ctx: typer.Context,
    client: bool = typer.Option(False, "--client", help="Print only the CLI's version (no cluster needed)."),
    output: str = typer.Option("text", "-o", "--output", help="text, json or yaml."),
) -> None:
    """Print the CLI's version and the versions of the controllers in the cluster."""
    a: App = ctx.obj
    if output not in ("text", "json", "yaml"):
        raise CLIError(f"invalid --output {output!r}: expected text, json or yaml")
    info = {"fluxpy": f"v{__version__}"}
    if not client:
        from controllers.api.builtin import DEPLOYMENT, NAMESPACE
        from controllers.runtime.kube import NotFound

        try:
            ns = a.kube.get(NAMESPACE, a.namespace)
        except NotFound:
            raise CLIError(f"namespace {a.namespace} not found: is fluxpy installed? Run 'fluxpy install'") from None
        info["distribution"] = "fluxpy-v" + ns["metadata"].get("labels", {}).get("app.kubernetes.io/version", "unknown")
        deployments = a.kube.list(DEPLOYMENT, a.namespace, label_selector="app.kubernetes.io/part-of=fluxpy")["items"]
        for d in sorted(deployments, key=lambda d: d["metadata"]["name"]):
            image = d["spec"]["template"]["spec"]["containers"][0]["image"]
            info[d["metadata"]["name"]] = image.rsplit(":", 1)[-1] if ":" in image.rsplit("/", 1)[-1] else image
    if output == "json":
        a.terminal.json(info)
    elif output == "yaml":
        a.terminal.yaml([info])
    else:
        for key, value in info.items():
            a.terminal.line(f"{key}: {value}")
