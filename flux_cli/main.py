"""The ``fluxpy`` command: every command module registered on the root app (:mod:`flux_cli.root`), and the
console-script entry point.

Command modules under ``flux_cli/commands`` import heavy libraries (GitPython, PyGithub, jinja2, the kube
client) inside their functions, so a command pays only for what it uses.
"""
from __future__ import annotations

import sys

from flux_cli import __version__
from flux_cli.app import hoist_global_flags
from flux_cli.root import app


def _register() -> None:
    from flux_cli.commands import (check, completion, create, debug, dev, events, get, install, lifecycle,  # noqa: F401
                                   logs, trace, version, why)
    from flux_cli.commands import artifact, bootstrap_git, bootstrap_github, bootstrap_gitlab, build, envsubst  # noqa: F401
    from flux_cli.commands import (create_helmrelease, create_image, create_kustomization, create_notification, diff,  # noqa: F401
                                   helmrelease_preview, migrate, tree)
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
    app(args=prepare_args(list(sys.argv[1:] if argv is None else argv)), prog_name="fluxpy")


def prepare_args(argv: list[str]) -> list[str]:
    """The command line as Typer parses it: global flags hoisted, flux's ``--flag=true|false`` rewritten."""
    return normalize_bool_flags(hoist_global_flags(argv))


def normalize_bool_flags(args: list[str]) -> list[str]:
    """Accept flux's ``--prune=true`` / ``--private=false`` (any of Go's bool spellings: ``=1``, ``=F``, …)
    for boolean flags, which Typer only takes as ``--prune`` / ``--no-private``: rewrite those arguments (only
    boolean flags; other options keep their values)."""
    if not any(a.startswith("--") and "=" in a for a in args):
        return args  # the common case pays nothing
    from argparse import ArgumentTypeError

    from controllers.runtime.flags import parse_bool

    def as_bool(value: str) -> bool | None:
        try:
            return parse_bool(value)
        except ArgumentTypeError:
            return None

    candidates = {a: as_bool(a.partition("=")[2]) for a in args if a.startswith("--") and "=" in a}
    candidates = {a: v for a, v in candidates.items() if v is not None}
    if not candidates:
        return args
    flags = _boolean_flags(args)
    out = []
    for arg in args:
        name = arg.partition("=")[0]
        if arg in candidates and name in flags:
            on, off = flags[name]
            replacement = on if candidates[arg] else off
            if replacement:
                out.append(replacement)
            continue
        out.append(arg)
    return out


def _boolean_flags(args: list[str]) -> dict[str, tuple[str, str | None]]:
    """For the sub-command ``args`` name: ``--flag`` → (the option that sets it true, the one that sets it
    false or None)."""
    import typer.main

    command = typer.main.get_command(app)
    for arg in args:  # descend through the groups the words name (options and values are skipped)
        sub = getattr(command, "commands", {}).get(arg)
        if sub is not None:
            command = sub
    flags: dict[str, tuple[str, str | None]] = {}
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and getattr(param, "is_bool_flag", False):
            on = next((o for o in param.opts if o.startswith("--")), None)
            off = next((o for o in param.secondary_opts if o.startswith("--")), None)
            if on:
                flags[on] = (on, off)
                if off:
                    flags[off] = (off, on)
    return flags
