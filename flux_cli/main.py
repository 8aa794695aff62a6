"""The ``fluxpy`` command: the root Typer application and its global flags.

Command modules under ``flux_cli/commands`` register themselves on :data:`app`; they import heavy libraries
(GitPython, PyGithub, jinja2, the kube client) inside their functions, so a command pays only for what it uses.
"""
from __future__ import annotations

import sys
from typing import Optional

import typer

from flux_cli import __version__
from flux_cli.app import DEFAULT_TIMEOUT, App, default_namespace, hoist_global_flags
from flux_cli.terminal import Terminal

app = typer.Typer(
    name="fluxpy",
    help="fluxpy keeps Kubernetes clusters in sync with Git, speaking Flux v2's APIs.",
    no_args_is_help=True,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)


@app.callback()
def root(
    ctx: typer.Context,
    kubeconfig: Optional[str] = typer.Option(None, "--kubeconfig", help="Path to the kubeconfig file."),
    context: Optional[str] = typer.Option(None, "--context", help="The kubeconfig context to use."),
    namespace: Optional[str] = typer.Option(None, "-n", "--namespace",
                                            help="The namespace scope (default flux-system or $FLUX_SYSTEM_NAMESPACE)."),
    timeout: str = typer.Option(DEFAULT_TIMEOUT, "--timeout", help="Timeout for this operation."),
    verbose: bool = typer.Option(False, "--verbose", help="Print generated objects and debug detail."),
) -> None:
    from controllers.api.duration import parse_duration

    try:
        seconds = parse_duration(timeout)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--timeout") from None
    ctx.obj = App(kubeconfig=kubeconfig, context=context, namespace=namespace or default_namespace(),
                  timeout=seconds, verbose=verbose, terminal=Terminal(verbose=verbose))


def _register() -> None:
    from flux_cli.commands import (check, completion, create, dev, events, get, install, lifecycle,  # noqa: F401
                                   logs, trace, version, why)
    from flux_cli.commands import artifact, bootstrap_git, bootstrap_github, bootstrap_gitlab, build, envsubst  # noqa: F401
    from flux_cli.commands import create_kustomization, diff, tree  # noqa: F401
    from flux_cli.commands import (create_secret_git, create_secret_helm, create_secret_oci,  # noqa: F401
                                   create_secret_tls, create_source_bucket, create_source_chart,
                                   create_source_git, create_source_helm, create_source_oci)


_register()


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    import os

    if os.environ.get("_FLUXPY_COMPLETE"):
        # a completion script is asking; register Typer's shell classes (only then: they cost start-up time)
        from typer._completion_classes import completion_init

        completion_init()
    args = hoist_global_flags(list(sys.argv[1:] if argv is None else argv))
    app(args=args, prog_name="fluxpy")


__all__ = ["app", "run", "__version__"]
