"""All terminal output goes through here.

- Progress (action / waiting / success / failure / warning lines, spinners) goes to **stderr**; spinners
  only when stderr is a terminal.
- Results (tables, YAML, JSON) go to **stdout**, plain when stdout is not a terminal or ``NO_COLOR`` is set,
  so scripts can parse them.
- rich is imported only when a styled table or spinner is actually drawn.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any, Iterable, Iterator, Sequence

# Flux's logger symbols, so output reads the same as the flux CLI's.
SYMBOLS = {"action": "►", "generate": "✚", "waiting": "◎", "success": "✔", "failure": "✗", "warning": "⚠"}
_STYLES = {"action": "", "generate": "", "waiting": "", "success": "green", "failure": "red", "warning": "yellow"}
_STATUS_STYLES = {"True": "green", "False": "red", "Unknown": "yellow"}


class Terminal:
    """The one writer of fluxpy's terminal output."""

    def __init__(self, out=None, err=None, *, color: bool | None = None, verbose: bool = False, silent: bool = False):
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        no_color = bool(os.environ.get("NO_COLOR")) or os.environ.get("TERM") == "dumb"
        self.color = (not no_color) if color is None else color
        self.verbose = verbose
        self.silent = silent

    def _tty(self, stream) -> bool:
        try:
            return stream.isatty()
        except (AttributeError, ValueError):
            return False

    @property
    def interactive(self) -> bool:
        """Whether a person is watching stderr (spinners, prompts)."""
        return self._tty(self.err)

    def _styled(self, stream) -> bool:
        return self.color and self._tty(stream)

    # ------------------------------------------------------------------ progress lines (stderr)

    def _log(self, level: str, message: str) -> None:
        if self.silent and level not in ("failure", "warning"):
            return
        line = f"{SYMBOLS[level]} {message}"
        style = _STYLES[level]
        if style and self._styled(self.err):
            codes = {"green": "32", "red": "31", "yellow": "33"}
            line = f"\x1b[{codes[style]}m{line}\x1b[0m"
        print(line, file=self.err, flush=True)

    def action(self, message: str) -> None:
        self._log("action", message)

    def generate(self, message: str) -> None:
        self._log("generate", message)

    def waiting(self, message: str) -> None:
        self._log("waiting", message)

    def success(self, message: str) -> None:
        self._log("success", message)

    def failure(self, message: str) -> None:
        self._log("failure", message)

    def warning(self, message: str) -> None:
        self._log("warning", message)

    def debug(self, message: str) -> None:
        if self.verbose:
            print(f"  {message}", file=self.err, flush=True)

    @contextlib.contextmanager
    def spinner(self, message: str) -> Iterator[None]:
        """Show a spinner on stderr while the block runs (a plain 'waiting' line when not interactive)."""
        if self.silent:
            yield
            return
        if not self.interactive:
            self.waiting(message)
            yield
            return
        from rich.console import Console

        with Console(file=self.err, no_color=not self.color).status(message):
            yield

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question on the terminal; False when nobody can answer."""
        if not (self.interactive and self._tty(sys.stdin)):
            return False
        self.err.write(f"{question} [y/N]: ")
        self.err.flush()
        return sys.stdin.readline().strip().lower() in ("y", "yes")

    # ------------------------------------------------------------------ results (stdout)

    def line(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def table(self, headers: Sequence[str], rows: Iterable[Sequence[Any]], *, no_header: bool = False,
              status_columns: Sequence[str] = ("READY",)) -> None:
        """Print rows under headers: a coloured rich table on a terminal, aligned plain text otherwise."""
        rows = [[("" if c is None else str(c)) for c in row] for row in rows]
        if self._styled(self.out):
            from rich.console import Console
            from rich.table import Table

            table = Table(box=None, show_header=not no_header, header_style="bold", pad_edge=False)
            for h in headers:
                table.add_column(h, overflow="fold")
            styled = {i for i, h in enumerate(headers) if h in status_columns}
            for row in rows:
                table.add_row(*(_status_markup(c) if i in styled else _escape(c) for i, c in enumerate(row)))
            Console(file=self.out, soft_wrap=False).print(table)
            return
        self.out.write(format_plain_table(headers, rows, no_header=no_header))
        self.out.flush()

    def tree(self, root, label, children, *, highlighted=()) -> None:
        """Print a tree: ``label(node)`` gives a node's text, ``children(node)`` its children; nodes in
        ``highlighted`` (the failing path) are shown in bold red on a terminal and marked ``»`` otherwise."""
        marked = {id(n) for n in highlighted}
        if self._styled(self.out):
            from rich.console import Console
            from rich.tree import Tree

            def styled(node):
                text = _escape(label(node))
                return f"[bold red]{text}[/bold red]" if id(node) in marked else text

            def grow(branch, node):
                for child in children(node):
                    grow(branch.add(styled(child)), child)

            top = Tree(styled(root))
            grow(top, root)
            Console(file=self.out, soft_wrap=True).print(top)
            return
        lines = []

        def walk(node, prefix: str, connector: str) -> None:
            mark = "» " if id(node) in marked else ""
            lines.append(f"{prefix}{connector}{mark}{label(node)}")
            kids = list(children(node))
            for i, child in enumerate(kids):
                last = i == len(kids) - 1
                walk(child, prefix + ("" if not connector else ("    " if connector == "└── " else "│   ")),
                     "└── " if last else "├── ")

        walk(root, "", "")
        self.out.write("\n".join(lines) + "\n")
        self.out.flush()

    def yaml(self, objects: Sequence[dict]) -> None:
        """Print objects as a multi-document YAML stream."""
        import yaml

        for i, obj in enumerate(objects):
            if i:
                self.out.write("---\n")
            self.out.write(yaml.safe_dump(obj, sort_keys=False, default_flow_style=False))
        self.out.flush()

    def json(self, value: Any) -> None:
        self.out.write(json.dumps(value, indent=2) + "\n")
        self.out.flush()


def format_plain_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, no_header: bool = False) -> str:
    """Columns separated by at least three spaces, like flux's tab-aligned tables."""
    all_rows = ([list(headers)] if not no_header else []) + [list(r) for r in rows]
    if not all_rows:
        return ""
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(headers))]
    lines = []
    for r in all_rows:
        cells = [c.ljust(widths[i]) if i < len(r) - 1 else c for i, c in enumerate(r)]
        lines.append("   ".join(cells).rstrip())
    return "\n".join(lines) + "\n"


def _escape(text: str) -> str:
    return text.replace("[", r"\[")


def _status_markup(value: str) -> str:
    style = _STATUS_STYLES.get(value)
    return f"[{style}]{value}[/{style}]" if style else _escape(value)
