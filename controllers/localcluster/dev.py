"""The backend of ``fluxpy dev up | down | env | status``: a detached local control plane, plus controllers.

``up`` starts a supervisor process (``python -m controllers.localcluster.dev serve <state_dir>``) in its own
session; it owns etcd and kube-apiserver (a :class:`~controllers.localcluster.plane.ControlPlane`), survives
the CLI exiting, and shuts them down on SIGTERM. Everything lives in the state directory
(``$FLUXPY_STATE_DIR``, else ``$XDG_STATE_HOME/fluxpy/dev``, else ``~/.local/state/fluxpy/dev``)::

    state.json          phase, pids, ports, server, kubeconfig path (written by the supervisor)
    supervisor.log      the supervisor's own output
    plane/              the control plane's workdir: kubeconfig, pki/, logs/{etcd,kube-apiserver}.log
    logs/<name>.log     output of controllers started by start_controllers (read by ``fluxpy logs``)
    controllers.json    pids and command lines of those controllers
    endpoints.json      the local notification-controller's ports: events (every controller's
                        ``EVENTS_ADDR``) and receiver (the Receivers' webhooks)

Functions return data and raise :class:`DevError`; they print nothing (progress goes to a ``log`` callable).
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable, Iterator, Sequence

from controllers.localcluster import tools
from controllers.localcluster.plane import HOST, ControlPlane, ControlPlaneError, _tail, free_port
from controllers.runtime.settings import default_state_dir

STATE_FILE = "state.json"
CONTROLLERS_FILE = "controllers.json"
SUPERVISOR_LOG = "supervisor.log"
PLANE_DIR = "plane"
LOGS_DIR = "logs"
_LOCK_FILE = ".lock"
ENDPOINTS_FILE = "endpoints.json"
NOTIFICATION_CONTROLLER = "notification-controller"
#: what down() removes; anything else a user keeps in the state directory is left alone.
_OWNED = (STATE_FILE, CONTROLLERS_FILE, SUPERVISOR_LOG, PLANE_DIR, LOGS_DIR, ENDPOINTS_FILE)
_PROJECT_ROOT = Path(__file__).resolve().parents[2]

Log = Callable[[str], None]


class DevError(RuntimeError):
    """The dev cluster could not be started, stopped or used; the message says why."""


class DevNotRunning(DevError):
    """No dev cluster is running in the state directory."""


@dataclasses.dataclass(frozen=True)
class DevCluster:
    """A running dev control plane, as recorded in ``state.json``."""

    state_dir: Path
    kubeconfig: Path
    server: str
    supervisor_pid: int
    #: server process ids: {"etcd": ..., "kube-apiserver": ...}
    pids: dict[str, int]
    #: {"etcd": ..., "etcd peer": ..., "kube-apiserver": ...}
    ports: dict[str, int]
    started_at: str
    #: seconds from launching etcd to kube-apiserver Ready
    start_seconds: float

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / LOGS_DIR

    @property
    def plane_dir(self) -> Path:
        return self.state_dir / PLANE_DIR


@dataclasses.dataclass(frozen=True)
class ControllerProcess:
    """A controller run locally against the dev cluster."""

    component: str
    pid: int
    argv: tuple[str, ...]
    log: Path
    started_at: str
    running: bool


@dataclasses.dataclass(frozen=True)
class DevStatus:
    """What ``fluxpy dev status`` reports."""

    state_dir: Path
    #: the supervisor and both servers are alive
    running: bool
    #: kube-apiserver answered /readyz ok just now
    ready: bool
    cluster: DevCluster | None
    controllers: tuple[ControllerProcess, ...]
    #: why it is not running/ready when a state was found ("" otherwise)
    problem: str = ""


@dataclasses.dataclass(frozen=True)
class DevEnv:
    """The environment that points tools at the dev cluster."""

    kubeconfig: Path
    variables: dict[str, str]

    def script(self, shell: str = "sh") -> str:
        """Lines to ``eval`` in ``shell`` ("sh", "bash", "zsh", "fish" or "powershell")."""
        lines = []
        for key, value in self.variables.items():
            if shell == "fish":
                lines.append(f"set -gx {key} {shlex.quote(value)};")
            elif shell in ("powershell", "pwsh"):
                lines.append(f"$Env:{key} = \"{value}\"")
            elif shell in ("sh", "bash", "zsh", "dash", "ksh"):
                lines.append(f"export {key}={shlex.quote(value)}")
            else:
                raise DevError(f"unknown shell {shell!r}: use sh, bash, zsh, fish or powershell")
        return "\n".join(lines) + "\n"


def _resolve(state_dir: str | os.PathLike | None) -> Path:
    return Path(state_dir).absolute() if state_dir else default_state_dir()


def _noop(_: str) -> None:
    pass


# -- up / down / status / env ------------------------------------------------------------------------


def up(
    state_dir: str | os.PathLike | None = None,
    *,
    log: Log = _noop,
    timeout: float = 90.0,
    etcd_port: int | None = None,
    etcd_peer_port: int | None = None,
    apiserver_port: int | None = None,
) -> DevCluster:
    """Start the dev control plane detached, or return the one already running in ``state_dir``.

    Missing binaries are built first (minutes, once; progress through ``log``). Raises DevError when it
    cannot start within ``timeout`` seconds (after any build); the message carries the reason.
    """
    sd = _resolve(state_dir)
    sd.mkdir(parents=True, exist_ok=True)
    with _locked(sd, timeout):
        state = _read_state(sd)
        if state:
            existing = _running_cluster(sd, state)
            if existing and _ready(existing):
                log(f"dev cluster already running at {existing.server}")
                return existing
            log("clearing a stale dev cluster state")
            _kill_recorded(sd, state, grace=5)
            _clear(sd)
        env = _child_env()
        for name in ("etcd", "kube-apiserver"):  # build in the foreground, where the user sees progress
            try:
                env[tools.TOOLS[name].env_var] = str(tools.ensure(name, log=log))
            except tools.ToolError as exc:
                raise DevError(str(exc)) from None
        (sd / LOGS_DIR).mkdir(exist_ok=True)
        argv = [sys.executable, "-m", "controllers.localcluster.dev", "serve", str(sd), f"--timeout={timeout}"]
        for flag, port in (("--etcd-port", etcd_port), ("--etcd-peer-port", etcd_peer_port),
                           ("--apiserver-port", apiserver_port)):
            if port:
                argv.append(f"{flag}={port}")
        log("starting etcd and kube-apiserver")
        pid = _spawn_detached(argv, sd / SUPERVISOR_LOG, env, cwd=sd)
        deadline = time.monotonic() + timeout + 10
        while True:
            state = _read_state(sd) or {}
            if state.get("phase") == "running":
                cluster = _cluster_from_state(sd, state)
                log(f"dev cluster ready at {cluster.server} in {cluster.start_seconds:.1f}s")
                return cluster
            if state.get("phase") == "failed":
                _stop_pid(pid, grace=5)
                raise DevError(state.get("error") or "the dev cluster failed to start")
            if not _alive(pid):
                tail = _tail(sd / SUPERVISOR_LOG, 15)
                raise DevError(f"the dev cluster supervisor exited during start (log: {sd / SUPERVISOR_LOG})\n{tail}")
            if time.monotonic() > deadline:
                _stop_pid(pid, grace=5)
                raise DevError(f"the dev cluster did not start within {timeout:.0f}s (log: {sd / SUPERVISOR_LOG})")
            time.sleep(0.05)


def down(state_dir: str | os.PathLike | None = None, *, log: Log = _noop, timeout: float = 30.0) -> bool:
    """Stop controllers, the control plane and its supervisor, and remove the state. Returns whether
    anything was running. Tolerates a stale or half-written state."""
    sd = _resolve(state_dir)
    if not sd.exists():
        return False
    with _locked(sd, timeout):
        stopped = stop_controllers(sd, log=log)
        state = _read_state(sd)
        was_running = bool(stopped)
        if state:
            was_running |= _kill_recorded(sd, state, grace=timeout, log=log)
        _clear(sd)
    with contextlib.suppress(OSError):
        (sd / _LOCK_FILE).unlink()
        sd.rmdir()  # only when empty: other files a user keeps there stay
    return was_running


def status(state_dir: str | os.PathLike | None = None) -> DevStatus:
    """Whether a dev cluster runs in ``state_dir``, its details, readiness, and its controllers."""
    sd = _resolve(state_dir)
    ctrls = tuple(list_controllers(sd))
    state = _read_state(sd)
    if not state:
        return DevStatus(sd, False, False, None, ctrls, "")
    phase = state.get("phase")
    if phase == "failed":
        return DevStatus(sd, False, False, None, ctrls, state.get("error") or "failed")
    cluster = _running_cluster(sd, state)
    if cluster is None:
        problem = "starting" if phase == "starting" and _alive(state.get("supervisor_pid")) else (
            "stale state: the supervisor or a server is gone (run 'fluxpy dev down')")
        return DevStatus(sd, False, False, None, ctrls, problem)
    ready = _ready(cluster)
    return DevStatus(sd, True, ready, cluster, ctrls, "" if ready else "kube-apiserver is not ready")


def env(state_dir: str | os.PathLike | None = None) -> DevEnv:
    """The environment variables for the running dev cluster; raises DevNotRunning."""
    sd = _resolve(state_dir)
    state = _read_state(sd)
    cluster = _running_cluster(sd, state) if state else None
    if cluster is None:
        raise DevNotRunning(f"no dev cluster is running (state: {sd}); start one with 'fluxpy dev up'")
    return DevEnv(cluster.kubeconfig, {"KUBECONFIG": str(cluster.kubeconfig)})


def cluster(state_dir: str | os.PathLike | None = None) -> DevCluster:
    """The running dev cluster; raises DevNotRunning."""
    sd = _resolve(state_dir)
    state = _read_state(sd)
    found = _running_cluster(sd, state) if state else None
    if found is None:
        raise DevNotRunning(f"no dev cluster is running (state: {sd}); start one with 'fluxpy dev up'")
    return found


# -- controllers -------------------------------------------------------------------------------------


def controller_command(component: str, kubeconfig: Path) -> list[str]:
    """The command line of a locally run controller: the same entrypoint a Pod runs, with its metrics and
    health endpoints on free loopback ports (in a Pod they default to :8080 and :9440, which several local
    controllers cannot share)."""
    metrics = free_port()
    health = free_port({metrics})
    return [sys.executable, "-m", "controllers", component, "--kubeconfig", str(kubeconfig),
            f"--metrics-addr={HOST}:{metrics}", f"--health-addr={HOST}:{health}",
            # the Lease is how `fluxpy install/check` see a local controller is alive (it has no Pod)
            "--enable-leader-election"]


def notification_endpoints(state_dir: str | os.PathLike | None = None) -> dict[str, int]:
    """The loopback ports of the local notification-controller: ``events`` (where every local controller
    posts its events, as ``--events-addr`` in a cluster) and ``receiver`` (the Receivers' webhooks). Chosen
    once per state directory (``endpoints.json``), so a restarted controller keeps its addresses."""
    path = _resolve(state_dir) / ENDPOINTS_FILE
    ports = _read_json(path) or {}
    if not all(isinstance(ports.get(k), int) for k in ("events", "receiver")):
        events = free_port()
        ports = {"events": events, "receiver": free_port({events})}
        path.parent.mkdir(parents=True, exist_ok=True)
        _write_json(path, ports)
    return ports


def start_controllers(
    state_dir: str | os.PathLike | None,
    components: Iterable[str],
    *,
    kubeconfig: str | os.PathLike | None = None,
    namespace: str = "flux-system",
    command: Callable[[str, Path], Sequence[str]] = controller_command,
    env: dict[str, str] | None = None,
    restart: bool = False,
) -> list[ControllerProcess]:
    """Run each component detached (``python -m controllers <component> --kubeconfig ...``), output to
    ``logs/<component>.log``. A component already running is kept unless ``restart``. ``kubeconfig``
    defaults to the dev cluster's (DevNotRunning when there is none). ``namespace`` is the runtime namespace
    (``RUNTIME_NAMESPACE``, as a Pod's would be): where the controllers hold their leader Leases."""
    sd = _resolve(state_dir)
    kc = Path(kubeconfig) if kubeconfig else cluster(sd).kubeconfig
    (sd / LOGS_DIR).mkdir(parents=True, exist_ok=True)
    child_env = _child_env()
    child_env["RUNTIME_NAMESPACE"] = namespace
    started = []
    with _locked(sd, 30):
        endpoints = notification_endpoints(sd)
        child_env["EVENTS_ADDR"] = f"http://{HOST}:{endpoints['events']}/"
        child_env.update(env or {})
        records = _read_json(sd / CONTROLLERS_FILE) or {}
        for component in components:
            if "/" in component or component in ("", ".", ".."):
                raise DevError(f"invalid component name {component!r}")
            rec = records.get(component)
            if rec and _alive(rec["pid"], rec["argv"]):
                if not restart:
                    started.append(_controller(component, rec, True))
                    continue
                _stop_pid(rec["pid"], grace=10, argv=rec["argv"], group=True)
            argv = [str(a) for a in command(component, kc)]
            if component == NOTIFICATION_CONTROLLER and NOTIFICATION_CONTROLLER in argv:
                argv += [f"--events-addr={HOST}:{endpoints['events']}", f"--receiverAddr={HOST}:{endpoints['receiver']}"]
            log_path = sd / LOGS_DIR / f"{component}.log"
            log_path.unlink(missing_ok=True)
            pid = _spawn_detached(argv, log_path, child_env, cwd=sd)
            rec = {"pid": pid, "argv": argv, "log": str(log_path), "started_at": _now()}
            records[component] = rec
            started.append(_controller(component, rec, True))
        _write_json(sd / CONTROLLERS_FILE, records)
    return started


def stop_controllers(
    state_dir: str | os.PathLike | None,
    components: Iterable[str] | None = None,
    *,
    grace: float = 10.0,
    log: Log = _noop,
) -> list[str]:
    """SIGTERM (then SIGKILL after ``grace``) the named controllers, or all; returns those that were running."""
    sd = _resolve(state_dir)
    path = sd / CONTROLLERS_FILE
    records = _read_json(path) or {}
    names = list(records) if components is None else [c for c in components if c in records]
    stopped = []
    for name in names:
        rec = records.pop(name)
        if _alive(rec["pid"], rec["argv"]):
            log(f"stopping {name}")
            _stop_pid(rec["pid"], grace=grace, argv=rec["argv"], group=True)
            stopped.append(name)
    if records:
        _write_json(path, records)
    else:
        path.unlink(missing_ok=True)
    return stopped


def list_controllers(state_dir: str | os.PathLike | None = None) -> list[ControllerProcess]:
    """The controllers started in ``state_dir``, running or exited."""
    sd = _resolve(state_dir)
    records = _read_json(sd / CONTROLLERS_FILE) or {}
    return [_controller(name, rec, _alive(rec["pid"], rec["argv"])) for name, rec in records.items()]


def _controller(name: str, rec: dict, running: bool) -> ControllerProcess:
    return ControllerProcess(name, rec["pid"], tuple(rec["argv"]), Path(rec["log"]), rec["started_at"], running)


# -- the supervisor ----------------------------------------------------------------------------------


class _Stop(Exception):
    pass


def serve(
    state_dir: Path,
    *,
    timeout: float = 90.0,
    etcd_port: int | None = None,
    etcd_peer_port: int | None = None,
    apiserver_port: int | None = None,
) -> int:
    """Supervisor main loop: start the plane, record it, watch it, stop it on SIGTERM/SIGINT."""
    sd = Path(state_dir).absolute()
    stopping = False

    def on_signal(signum, frame):
        nonlocal stopping
        if not stopping:
            stopping = True
            raise _Stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    me = {"supervisor_pid": os.getpid(), "supervisor_argv": _cmdline(os.getpid()) or sys.argv}
    _write_json(sd / STATE_FILE, {"phase": "starting", **me})
    plane = ControlPlane(
        sd / PLANE_DIR, etcd_port=etcd_port, etcd_peer_port=etcd_peer_port, apiserver_port=apiserver_port,
        build=False, log=lambda m: print(m, flush=True),
    )
    code = 0
    try:
        try:
            plane.start(timeout=timeout)
        except ControlPlaneError as exc:
            print(f"start failed: {exc}", flush=True)
            _write_json(sd / STATE_FILE, {"phase": "failed", "error": str(exc), **me})
            return 1
        _write_json(sd / STATE_FILE, {
            "phase": "running",
            **me,
            "server": plane.server,
            "kubeconfig": str(plane.kubeconfig),
            "pids": plane.pids,
            "server_argv": {name: _cmdline(pid) for name, pid in plane.pids.items()},
            "ports": {"etcd": plane.etcd_port, "etcd peer": plane.etcd_peer_port,
                      "kube-apiserver": plane.apiserver_port},
            "started_at": _now(),
            "start_seconds": round(plane.timings.get("total", 0.0), 3),
        })
        print(f"ready at {plane.server} in {plane.timings.get('total', 0):.2f}s ({plane.timings})", flush=True)
        while True:
            time.sleep(0.5)
            if not plane.running():
                gone = [n for n in ("etcd", "kube-apiserver") if n not in plane.pids]
                error = f"{' and '.join(gone)} exited unexpectedly (logs: {plane.log_dir})"
                print(error, flush=True)
                _write_json(sd / STATE_FILE, {"phase": "failed", "error": error, **me})
                code = 1
                break
    except _Stop:
        print("stopping", flush=True)
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        plane.stop()
    if code == 0:
        (sd / STATE_FILE).unlink(missing_ok=True)
    print("stopped", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m controllers.localcluster.dev")
    sub = parser.add_subparsers(dest="command", required=True)
    srv = sub.add_parser("serve", help="run the control plane in the foreground (what 'up' detaches)")
    srv.add_argument("state_dir", type=Path)
    srv.add_argument("--timeout", type=float, default=90.0)
    srv.add_argument("--etcd-port", type=int)
    srv.add_argument("--etcd-peer-port", type=int)
    srv.add_argument("--apiserver-port", type=int)
    for name in ("up", "down", "status", "env"):
        p = sub.add_parser(name)
        p.add_argument("state_dir", type=Path, nargs="?")
    args = parser.parse_args(argv)
    say = lambda m: print(m, file=sys.stderr, flush=True)  # noqa: E731
    try:
        if args.command == "serve":
            return serve(args.state_dir, timeout=args.timeout, etcd_port=args.etcd_port,
                         etcd_peer_port=args.etcd_peer_port, apiserver_port=args.apiserver_port)
        if args.command == "up":
            print(up(args.state_dir, log=say).kubeconfig)
        elif args.command == "down":
            down(args.state_dir, log=say)
        elif args.command == "env":
            print(env(args.state_dir).script(), end="")
        else:
            st = status(args.state_dir)
            print(json.dumps(dataclasses.asdict(st), default=str, indent=2))
    except DevError as exc:
        say(f"✗ {exc}")
        return 1
    return 0


# -- state files, processes --------------------------------------------------------------------------


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def _read_state(sd: Path) -> dict | None:
    return _read_json(sd / STATE_FILE)


def _cluster_from_state(sd: Path, state: dict) -> DevCluster:
    return DevCluster(
        state_dir=sd,
        kubeconfig=Path(state["kubeconfig"]),
        server=state["server"],
        supervisor_pid=state["supervisor_pid"],
        pids=dict(state.get("pids", {})),
        ports=dict(state.get("ports", {})),
        started_at=state.get("started_at", ""),
        start_seconds=state.get("start_seconds", 0.0),
    )


def _running_cluster(sd: Path, state: dict) -> DevCluster | None:
    """The cluster a state records, when its supervisor and both servers are alive."""
    if state.get("phase") != "running":
        return None
    try:
        found = _cluster_from_state(sd, state)
    except (KeyError, TypeError):
        return None
    if not _alive(found.supervisor_pid, state.get("supervisor_argv")):
        return None
    argvs = state.get("server_argv", {})
    if not all(_alive(pid, argvs.get(name)) for name, pid in found.pids.items()):
        return None
    return found


def _ready(found: DevCluster) -> bool:
    import http.client

    try:
        plane = ControlPlane.attach(found.plane_dir)
        conn = http.client.HTTPSConnection("127.0.0.1", plane.apiserver_port, context=plane.ssl_context(), timeout=3)
        try:
            conn.request("GET", "/readyz")
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except (OSError, ControlPlaneError, http.client.HTTPException):
        return False


def _kill_recorded(sd: Path, state: dict, *, grace: float, log: Log = _noop) -> bool:
    """Stop the supervisor of ``state`` (it stops the servers), then any server left behind."""
    was_running = False
    pid = state.get("supervisor_pid")
    if pid and _alive(pid, state.get("supervisor_argv")):
        log("stopping the dev control plane")
        _stop_pid(pid, grace=grace, argv=state.get("supervisor_argv"))
        was_running = True
    argvs = state.get("server_argv", {})
    for name, spid in (state.get("pids") or {}).items():
        if _alive(spid, argvs.get(name)):
            _stop_pid(spid, grace=5, argv=argvs.get(name))
            was_running = True
    return was_running


def _clear(sd: Path) -> None:
    for name in _OWNED:
        path = sd / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(sd: Path, timeout: float) -> Iterator[None]:
    """An exclusive lock on the state directory (one up/down/start at a time)."""
    sd.mkdir(parents=True, exist_ok=True)
    fd = os.open(sd / _LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DevError(f"another fluxpy dev command holds {sd / _LOCK_FILE}") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(_PROJECT_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    return env


#: children this process spawned, so their exit is reaped and seen at once (not left as zombies).
_CHILDREN: dict[int, subprocess.Popen] = {}


def _spawn_detached(argv: Sequence[str], log_path: Path, env: dict[str, str], cwd: Path) -> int:
    """Start ``argv`` in a new session (it outlives this process), output appended to ``log_path``."""
    with open(log_path, "ab") as out:
        try:
            popen = subprocess.Popen(
                list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                env=env, cwd=cwd, start_new_session=True,
            )
        except OSError as exc:
            raise DevError(f"cannot run {argv[0]}: {exc}") from None
    _CHILDREN[popen.pid] = popen
    return popen.pid


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]]


def _alive(pid: int | None, argv: Sequence[str] | None = None) -> bool:
    """Whether ``pid`` runs (not a zombie) and, when ``argv`` is given and /proc is there, runs ``argv``."""
    if not pid:
        return False
    popen = _CHILDREN.get(pid)
    if popen is not None:
        # our own unreaped child: its pid cannot be reused, and between fork and exec its cmdline is still ours
        return popen.poll() is None
    else:
        with contextlib.suppress(ChildProcessError, OSError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return not os.path.exists("/proc/self")  # no /proc (macOS): trust kill(0); else it just exited
    except OSError:
        return True
    if stat.rsplit(")", 1)[-1].split()[0] in ("Z", "X"):
        return False
    if argv:
        return _cmdline(pid) == list(argv)
    return True


def _stop_pid(pid: int, *, grace: float, argv: Sequence[str] | None = None, group: bool = False) -> None:
    """SIGTERM ``pid`` (its whole process group when ``group``), SIGKILL after ``grace`` seconds."""
    if not _alive(pid, argv):
        return
    send = (lambda s: os.killpg(pid, s)) if group else (lambda s: os.kill(pid, s))
    with contextlib.suppress(ProcessLookupError, PermissionError):
        send(signal.SIGTERM)
    deadline = time.monotonic() + grace
    while _alive(pid):
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                send(signal.SIGKILL)
            kill_deadline = time.monotonic() + 5
            while _alive(pid) and time.monotonic() < kill_deadline:
                time.sleep(0.02)
            break
        time.sleep(0.02)
    _CHILDREN.pop(pid, None)


if __name__ == "__main__":
    sys.exit(main())
