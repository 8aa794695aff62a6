"""``fluxpy completion bash|zsh|fish|powershell``: print a shell completion script.

The scripts call back into fluxpy, which completes sub-commands, flags, kind names and — by asking the
cluster — object names. ``completions/`` holds the generated scripts; ``make completions`` regenerates them (a test fails when
they are stale).
"""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from flux_cli.app import CLIError, handle_errors
from flux_cli.root import app

#: shell -> file name under completions/
SHELLS = {"bash": "fluxpy.bash", "zsh": "_fluxpy", "fish": "fluxpy.fish", "powershell": "fluxpy.ps1"}
COMPLETE_VAR = "_FLUXPY_COMPLETE"


def script(shell: str) -> str:
    """The completion script for ``shell``."""
    from typer._completion_shared import get_completion_script

    if shell not in SHELLS:
        raise CLIError(f"unknown shell {shell!r}: expected one of {', '.join(SHELLS)}")
    return get_completion_script(prog_name="fluxpy", complete_var=COMPLETE_VAR, shell=shell).rstrip("\n") + "\n"


@app.command("completion")
@handle_errors
def completion(shell: str = typer.Argument(..., help="bash, zsh, fish or powershell.")) -> None:
    """Print the shell completion script (load it with: source <(fluxpy completion bash))."""
    sys.stdout.write(script(shell))


def write_all(directory: Path) -> list[Path]:
    """(Re)generate every shell's script into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for shell, name in SHELLS.items():
        path = directory / name
        path.write_text(script(shell))
        written.append(path)
    return written

