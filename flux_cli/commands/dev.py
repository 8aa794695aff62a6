"""``fluxpy dev up | down | env | status``: the embedded local control plane (etcd + kube-apiserver on
loopback) with fluxpy's controllers running as local processes."""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import app, command_group

dev_app = command_group("Run a local control plane (etcd + kube-apiserver) with fluxpy's controllers.")
app.add_typer(dev_app, name="dev")

STATE_DIR_HELP = "Where the dev cluster keeps its state (default $FLUXPY_STATE_DIR or ~/.local/state/fluxpy/dev)."


def _dev_errors():
    from controllers.localcluster.dev import DevError
    from controllers.localcluster.plane import ControlPlaneError
    from controllers.localcluster.tools import ToolError

    return DevError, ControlPlaneError, ToolError


def _guard(func, *args, **kwargs):
    """Run a dev-cluster operation, turning its errors into one CLI line."""
    try:
        return func(*args, **kwargs)
    except _dev_errors() as exc:
        raise CLIError(str(exc)) from None


@dev_app.command("up")
@handle_errors
def up(
    ctx: typer.Context,
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
    controllers: bool = typer.Option(True, "--controllers/--no-controllers",
                                     help="Also run the controllers as local processes."),
    components: Optional[list[str]] = typer.Option(None, "--components", help="Controllers to run (comma-separated)."),
    components_extra: Optional[list[str]] = typer.Option(None, "--components-extra", help="Extra controllers to run."),
) -> None:
    """Start the local control plane (idempotent) and the controllers."""
    from controllers.localcluster import dev
    from flux_cli.flags import selected_components

    a: App = ctx.obj
    a.terminal.action("starting the local control plane (etcd + kube-apiserver)")
    cluster = _guard(dev.up, state_dir, log=a.terminal.waiting, timeout=a.timeout)
    a.terminal.success(f"control plane ready at {cluster.server}")
    if controllers:
        names = selected_components(components, components_extra)
        for proc in _guard(dev.start_controllers, state_dir, names, namespace=a.namespace):
            a.terminal.success(f"{proc.component} running (pid {proc.pid}, log {proc.log})")
    a.terminal.success(f"kubeconfig written to {cluster.kubeconfig}")
    a.terminal.line(_guard(dev.env, state_dir).script("sh").rstrip("\n"))


@dev_app.command("down")
@handle_errors
def down(
    ctx: typer.Context,
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
) -> None:
    """Stop the controllers and the local control plane, and remove their state."""
    from controllers.localcluster import dev

    a: App = ctx.obj
    _guard(dev.stop_controllers, state_dir, log=a.terminal.action)
    stopped = _guard(dev.down, state_dir, log=a.terminal.action)
    a.terminal.success("local control plane stopped" if stopped else "no local control plane was running")


@dev_app.command("env")
@handle_errors
def env(
    ctx: typer.Context,
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
    shell: str = typer.Option("sh", "--shell", help="sh, bash, zsh, fish or powershell."),
) -> None:
    """Print the environment that points kubectl and fluxpy at the local control plane: eval "$(fluxpy dev env)"."""
    from controllers.localcluster import dev

    a: App = ctx.obj
    a.terminal.line(_guard(dev.env, state_dir).script(shell).rstrip("\n"))


@dev_app.command("status")
@handle_errors
def status(
    ctx: typer.Context,
    state_dir: Optional[str] = typer.Option(None, "--state-dir", help=STATE_DIR_HELP),
) -> None:
    """Show whether the local control plane and the controllers are running."""
    from controllers.localcluster import dev

    a: App = ctx.obj
    st = _guard(dev.status, state_dir)
    if not st.running:
        raise CLIError(st.problem or f"no local control plane is running (state in {st.state_dir}): run 'fluxpy dev up'")
    a.terminal.success(f"control plane {'ready' if st.ready else 'not ready'} at {st.cluster.server} "
                       f"(kubeconfig {st.cluster.kubeconfig})")
    rows = [[p.component, str(p.pid), "running" if p.running else "stopped", str(p.log)] for p in st.controllers]
    if rows:
        a.terminal.table(["CONTROLLER", "PID", "STATE", "LOG"], rows, status_columns=())
