"""The ``fluxpy`` command: the command modules registered on the root app (:mod:`flux_cli.root`), and the
console-script entry point.

The CLI starts fast: :func:`run` imports only the command modules of the command on the command line, as
:mod:`flux_cli.command_index` lists them (``fluxpy get ks`` imports the ``get`` modules, not ``bootstrap``'s);
the root help and an unknown command are answered from the index alone. The index is generated from the full
registration (``make completions``; a test keeps it current). Reading :data:`app` from this module registers
every command (what tests and the completion scripts use). Command modules import heavy libraries (GitPython,
PyGithub, jinja2, the kube client) inside their functions, so a command pays only for what it uses.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any

from flux_cli.app import GLOBAL_FLAGS, hoist_global_flags

#: every command module, in registration order (the order of the root help's listing)
COMMAND_MODULES = (
    "check", "completion", "create", "debug", "dev", "events", "get", "install", "lifecycle", "logs", "trace",
    "version", "why", "artifact", "bootstrap_git", "bootstrap_github", "bootstrap_gitlab", "build", "envsubst",
    "create_helmrelease", "create_image", "create_kustomization", "create_notification", "diff",
    "helmrelease_preview", "migrate", "tree", "create_secret_git", "create_secret_helm", "create_secret_oci",
    "create_secret_tls", "create_source_bucket", "create_source_chart", "create_source_git", "create_source_helm",
    "create_source_oci", "ui",
)


def register(modules: tuple[str, ...] = COMMAND_MODULES) -> None:
    """Import command modules (``flux_cli.commands.<name>``): each adds its commands to the root app."""
    for name in modules:
        importlib.import_module(f"flux_cli.commands.{name}")


def __getattr__(name: str) -> Any:
    if name == "app":  # the whole command tree
        register()
        from flux_cli.root import app

        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_word(args: list[str]) -> str | None:
    """The top-level command of a prepared command line (global flags come first), None when there is none."""
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            return None
        if arg.startswith("-"):
            i += 2 if GLOBAL_FLAGS.get(arg) else 1
            continue
        return arg
    return None


def modules_for(args: list[str]) -> tuple[str, ...] | None:
    """The command modules a prepared command line needs (the index's), None when it names no command."""
    from flux_cli.command_index import COMMANDS

    entry = COMMANDS.get(command_word(args) or "")
    return entry["modules"] if entry else None


def _app_for(args: list[str]):
    """The Typer app that answers ``args``: the root app with just the command's modules, or, for the root
    help and unknown commands, a copy of the root whose commands are placeholders from the index."""
    import os

    from flux_cli.root import app

    if os.environ.get("_FLUXPY_COMPLETE"):
        register()
        return app
    modules = modules_for(args)
    if modules is None:
        return index_app()
    register(modules)
    return app


def index_app():
    """The root app's options with placeholder commands named and described as the index says (for the root
    help and the "No such command" error, which list them)."""
    import typer

    from flux_cli.command_index import COMMANDS
    from flux_cli.root import app

    listing = typer.Typer(**{k: getattr(app.info, k) for k in ("cls", "name", "help", "no_args_is_help",
                                                                "context_settings")},
                          add_completion=False, pretty_exceptions_enable=False,
                          rich_markup_mode=app.rich_markup_mode)
    listing.registered_callback = app.registered_callback
    for name, entry in COMMANDS.items():
        listing.command(name, help=entry["help"], hidden=entry["hidden"])(_placeholder)
    return listing


def _placeholder() -> None:  # never run: a real command's word registers the real command
    raise SystemExit("fluxpy: internal error, a placeholder command ran")


def build_index() -> dict[str, dict]:
    """The index of :mod:`flux_cli.command_index`, from the full registration: per top-level command, in the
    root help's order, its short help, whether hidden, and the command modules its sub-tree comes from."""
    import typer.main

    register()
    from flux_cli.root import app

    root = typer.main.get_command(app)
    index = {}
    for name in root.list_commands(None):
        command = root.commands[name]
        modules = sorted(_modules_of(command))
        help_text = command.short_help or (command.help or "").strip().split("\n\n")[0]
        index[name] = {"help": help_text, "hidden": bool(command.hidden), "modules": tuple(modules)}
    return index


def _modules_of(command) -> set[str]:
    prefix = "flux_cli.commands."
    found = set()
    callback = getattr(command, "callback", None)
    module = getattr(callback, "__module__", "") or ""
    if module.startswith(prefix):
        found.add(module[len(prefix):])
    for sub in (getattr(command, "commands", None) or {}).values():
        found |= _modules_of(sub)
    return found


def write_index(path) -> None:
    """Regenerate :mod:`flux_cli.command_index` (``make completions``)."""
    from pathlib import Path
    from pprint import pformat

    body = pformat(build_index(), width=116, sort_dicts=False)
    Path(path).write_text('"""Generated by ``make completions`` (flux_cli.main.write_index): the top-level commands, '
                          'their help\nand the command modules that register them. Do not edit."""\n\n'
                          f"COMMANDS = {body}\n")


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    import os

    if os.environ.get("_FLUXPY_COMPLETE"):
        # a completion script is asking; register Typer's shell classes (only then: they cost start-up time)
        from typer._completion_classes import completion_init

        completion_init()
    args = prepare_args(list(sys.argv[1:] if argv is None else argv))
    _app_for(args)(args=args, prog_name="fluxpy")


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

    from flux_cli.root import app

    register(modules_for(hoist_global_flags(args)) or COMMAND_MODULES)
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

