"""The application object every command receives, global flags, and the mapping of errors to exits.

Global flags work anywhere on the command line, as flux's persistent flags do (``fluxpy get ks -n apps``):
:func:`hoist_global_flags` moves them in front of the sub-command before Typer parses.
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import TYPE_CHECKING, Callable

from flux_cli.terminal import Terminal

if TYPE_CHECKING:
    from controllers.runtime.kube import KubeClient

DEFAULT_NAMESPACE = "flux-system"
DEFAULT_TIMEOUT = "5m0s"

#: flags every command accepts; value-taking ones map to True.
GLOBAL_FLAGS = {"--kubeconfig": True, "--context": True, "--namespace": True, "-n": True, "--timeout": True,
                "--verbose": False}


class CLIError(Exception):
    """A failure to report as one line on stderr, with an exit code (flux exits 1 on any error)."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def default_namespace() -> str:
    return os.environ.get("FLUX_SYSTEM_NAMESPACE") or DEFAULT_NAMESPACE


def hoist_global_flags(argv: list[str]) -> list[str]:
    """Move global flags (and their values) to the front so the root callback parses them anywhere."""
    hoisted, rest, i = [], [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            rest += argv[i:]
            break
        name = arg.split("=", 1)[0]
        if name in GLOBAL_FLAGS:
            hoisted.append(arg)
            if GLOBAL_FLAGS[name] and "=" not in arg and i + 1 < len(argv):
                hoisted.append(argv[i + 1])
                i += 1
        else:
            rest.append(arg)
        i += 1
    return hoisted + rest


@dataclasses.dataclass
class App:
    """Global options and shared services (terminal, lazily created kube client)."""

    kubeconfig: str | None = None
    context: str | None = None
    namespace: str = dataclasses.field(default_factory=default_namespace)
    timeout: float = 300.0
    verbose: bool = False
    terminal: Terminal = dataclasses.field(default_factory=Terminal)
    _kube: "KubeClient | None" = None

    @property
    def kube(self) -> "KubeClient":
        """The kube client for --kubeconfig/--context, created on first use."""
        if self._kube is None:
            from controllers.runtime.kube import KubeClient

            self._kube = KubeClient.from_kubeconfig(self.kubeconfig, self.context)
            self._kube.on_warning = self.terminal.warning  # the apiserver's warnings, as kubectl prints them
        return self._kube


def describe_error(exc: BaseException) -> tuple[str, int] | None:
    """The one-line message and exit code for an expected failure; None for a bug (shown as a traceback)."""
    from controllers.runtime import kube

    if isinstance(exc, CLIError):
        return str(exc), exc.code
    if isinstance(exc, kube.KubeConfigError):
        return str(exc), 1
    if isinstance(exc, kube.Unauthorized):
        return f"the Kubernetes API refused the credentials: {exc.message}", 1
    if isinstance(exc, kube.KubeError):
        return exc.message, 1
    from controllers.api.kinds import UnknownKind

    if isinstance(exc, (UnknownKind, ValueError)):
        return str(exc), 1
    if isinstance(exc, TimeoutError):
        return str(exc) or "timed out", 1
    from controllers.runtime.outcomes import ReconcileError

    if isinstance(exc, ReconcileError):  # e.g. the apply engine's dry-run failure naming the object
        return exc.message, 1
    return None


def handle_errors(func: Callable) -> Callable:
    """Decorate a command: expected failures become one '✗ message' line and flux's exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        import typer

        try:
            return func(*args, **kwargs)
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
        except Exception as exc:  # noqa: BLE001 - classified below; bugs re-raise
            described = describe_error(exc)
            if described is None:
                raise
            message, code = described
            Terminal().failure(message)
            raise typer.Exit(code) from None

    return wrapper
