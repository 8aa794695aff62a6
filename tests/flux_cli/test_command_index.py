"""The CLI starts fast by importing only the command on the command line (flux_cli.main, flux_cli.command_index):
the index is current, the root help made from it is the full one, and every top-level command registered
alone (a fresh interpreter, as the console script runs) is the command the full registration makes."""
from __future__ import annotations

import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from flux_cli import main
from flux_cli.command_index import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "NO_COLOR": "1", "COLUMNS": "100", "TERM": "dumb"}


def _help(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "flux_cli", *args], cwd=ROOT, env=ENV, capture_output=True,
                          text=True, timeout=60)


def _full_help(args: list[str]) -> str:
    """The help with every command registered (what ``from flux_cli.main import app`` gives)."""
    code = "import sys; from flux_cli.main import app; app(args=sys.argv[1:], prog_name='fluxpy')"
    return subprocess.run([sys.executable, "-c", code, *args], cwd=ROOT, env=ENV, capture_output=True, text=True,
                          timeout=60).stdout


def test_the_index_is_current():
    assert main.build_index() == COMMANDS, "flux_cli/command_index.py is stale: run `make completions`"


def test_the_root_help_and_an_unknown_command_come_from_the_index_alone():
    probe = ("import sys; from flux_cli.main import run\ntry:\n    run(sys.argv[1:])\nexcept SystemExit:\n    pass\n"
             "print(sorted(m for m in sys.modules if m.startswith('flux_cli.commands.')))")
    result = subprocess.run([sys.executable, "-c", probe, "--help"], cwd=ROOT, env=ENV, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.rstrip().endswith("[]"), result.stdout  # no command module imported
    assert _help(["--help"]).stdout == _full_help(["--help"])
    unknown = _help(["frobnicate"])
    assert unknown.returncode == 2 and "No such command 'frobnicate'" in unknown.stderr


def test_each_command_registered_alone_is_the_full_one():
    words = [w for w, entry in COMMANDS.items() if not entry["hidden"]]
    with ThreadPoolExecutor(4) as pool:
        alone = dict(zip(words, pool.map(lambda w: _help([w, "--help"]), words)))
    with ThreadPoolExecutor(4) as pool:
        full = dict(zip(words, pool.map(lambda w: _full_help([w, "--help"]), words)))
    for word in words:
        assert alone[word].returncode == 0, (word, alone[word].stderr)
        assert alone[word].stdout == full[word], word
