"""A real, local Kubernetes control plane: etcd + kube-apiserver on loopback ports.

It is fluxpy's embedded cluster (``fluxpy dev up``) and the test fixture. There is no controller-manager,
scheduler or kubelet: namespaces stay Terminating, nothing is garbage-collected, no default service
accounts exist and Deployments never become Ready.

    plane = ControlPlane(workdir).start()
    ... KUBECONFIG=plane.kubeconfig ...
    plane.stop()

Layout of ``workdir`` (created when missing; only ``etcd-data/`` is removed by :meth:`ControlPlane.stop`)::

    pki/           ca.crt ca.key serving.crt serving.key sa.key sa.pub admin.crt admin.key
    etcd-data/     etcd's data directory, fresh for every start
    logs/          etcd.log kube-apiserver.log
    kubeconfig     the admin kubeconfig (context ``fluxpy-local``), credentials embedded
    kubeconfigs/   kubeconfigs minted by :meth:`ControlPlane.kubeconfig_for`
"""
from __future__ import annotations

import base64
import dataclasses
import datetime
import errno
import http.client
import ipaddress
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

from controllers.localcluster import tools

CONTEXT_NAME = "fluxpy-local"
ADMIN_USER = "fluxpy-admin"
SERVICE_CLUSTER_IP_RANGE = "10.96.0.0/16"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
HOST = "127.0.0.1"


class ControlPlaneError(RuntimeError):
    """The control plane could not start; the first line of the message says why."""


@dataclasses.dataclass
class _Process:
    name: str
    argv: list[str]
    log: Path
    popen: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.popen.pid if self.popen else None

    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None


class ControlPlane:
    """etcd + kube-apiserver on loopback, with RBAC and client-certificate auth; see the module docstring.

    Ports left as None are chosen free at :meth:`start`. ``build`` lets :meth:`start` build missing
    binaries from Go modules (minutes, once; not counted in the start timeout). ``log`` receives progress
    lines (builds). ``die_with_parent`` (Linux) has the kernel SIGKILL etcd and kube-apiserver when the
    *thread* that started them exits, so a killed test run or supervisor leaves no servers behind: start
    from a long-lived thread (the main thread) or pass False.
    """

    def __init__(
        self,
        workdir: str | os.PathLike,
        *,
        etcd_port: int | None = None,
        etcd_peer_port: int | None = None,
        apiserver_port: int | None = None,
        build: bool = True,
        log: Callable[[str], None] | None = None,
        die_with_parent: bool = True,
        context_name: str = CONTEXT_NAME,
        extra_apiserver_args: tuple[str, ...] = (),
    ):
        self.workdir = Path(workdir).absolute()
        self.etcd_port = etcd_port
        self.etcd_peer_port = etcd_peer_port
        self.apiserver_port = apiserver_port
        self.build = build
        self.context_name = context_name
        #: more kube-apiserver flags (e.g. an audit log for a benchmark that counts requests per client)
        self.extra_apiserver_args = tuple(extra_apiserver_args)
        self._log = log
        self._die_with_parent = die_with_parent
        self._etcd: _Process | None = None
        self._apiserver: _Process | None = None
        #: seconds spent in each start phase ("certs", "etcd", "apiserver", "total"), filled by start().
        self.timings: dict[str, float] = {}

    # -- paths and addresses -------------------------------------------------------------------------

    @property
    def pki_dir(self) -> Path:
        return self.workdir / "pki"

    @property
    def log_dir(self) -> Path:
        return self.workdir / "logs"

    @property
    def data_dir(self) -> Path:
        return self.workdir / "etcd-data"

    @property
    def kubeconfig(self) -> Path:
        """The admin kubeconfig (user in group system:masters)."""
        return self.workdir / "kubeconfig"

    @property
    def ca_file(self) -> Path:
        return self.pki_dir / "ca.crt"

    @property
    def server(self) -> str:
        return f"https://{HOST}:{self.apiserver_port}"

    @property
    def etcd_url(self) -> str:
        return f"http://{HOST}:{self.etcd_port}"

    @property
    def pids(self) -> dict[str, int]:
        """Process ids of the running servers by name ("etcd", "kube-apiserver")."""
        return {p.name: p.pid for p in (self._etcd, self._apiserver) if p and p.running()}

    def running(self) -> bool:
        return bool(self._etcd and self._etcd.running() and self._apiserver and self._apiserver.running())

    # -- lifecycle -----------------------------------------------------------------------------------

    def __enter__(self) -> "ControlPlane":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 60.0) -> "ControlPlane":
        """Start etcd and kube-apiserver and wait until ``/readyz`` answers ok; returns self.

        Raises ControlPlaneError when a binary is missing and cannot be built, a port is taken, a
        process exits early (with the tail of its log) or readiness takes longer than ``timeout``.
        """
        if self._etcd or self._apiserver:
            raise ControlPlaneError("control plane already started")
        etcd_bin, apiserver_bin = self._binaries()
        began = time.monotonic()
        deadline = began + timeout
        for d in (self.pki_dir, self.log_dir):
            d.mkdir(parents=True, exist_ok=True)
        _write_pki(self.pki_dir)
        self.timings = {"certs": time.monotonic() - began}
        given = (self.etcd_port, self.etcd_peer_port, self.apiserver_port)
        for attempt in range(3):
            self._choose_ports()
            shutil.rmtree(self.data_dir, ignore_errors=True)
            launched = time.monotonic()
            try:
                self._etcd = self._spawn("etcd", [str(etcd_bin), *self._etcd_args()])
                self._wait_etcd(deadline)
                self.timings["etcd"] = time.monotonic() - launched
                self._apiserver = self._spawn("kube-apiserver", [str(apiserver_bin), *self._apiserver_args()])
                self._write_kubeconfig(self.kubeconfig, ADMIN_USER, ("system:masters",), cert_name="admin")
                self._wait_apiserver(deadline, timeout)
                break
            except ControlPlaneError as exc:
                self.stop()
                # A port chosen free was taken by someone else before our server bound it: choose again.
                if attempt < 2 and None in given and "address already in use" in str(exc):
                    self.etcd_port, self.etcd_peer_port, self.apiserver_port = given
                    continue
                raise
            except BaseException:
                self.stop()
                raise
        done = time.monotonic()
        self.timings["apiserver"] = done - launched - self.timings["etcd"]
        self.timings["total"] = done - began
        return self

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM kube-apiserver then etcd, SIGKILL after ``grace`` seconds; remove etcd's data. Idempotent."""
        for proc in (self._apiserver, self._etcd):
            if proc and proc.popen:
                _terminate(proc.popen, grace)
        self._apiserver = self._etcd = None
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def restart(self, component: str, *, down: float = 0.0, kill: bool = False, timeout: float = 60.0) -> None:
        """Stop one component ("etcd" or "kube-apiserver"; SIGTERM, or SIGKILL with ``kill``), keep it down
        ``down`` seconds, start it again on the same ports with the same data, and wait until the apiserver
        answers ``/readyz`` again (clients and watches see an outage, as when a real one restarts)."""
        procs = {"etcd": self._etcd, "kube-apiserver": self._apiserver}
        proc = procs.get(component)
        if proc is None or proc.popen is None:
            raise ControlPlaneError(f"cannot restart {component!r}: expected a running etcd or kube-apiserver")
        etcd_bin, apiserver_bin = self._binaries()
        if kill:
            proc.popen.kill()
            proc.popen.wait(10)
        else:
            _terminate(proc.popen, 5.0)
        time.sleep(down)
        deadline = time.monotonic() + timeout
        if component == "etcd":
            self._etcd = self._spawn("etcd", [str(etcd_bin), *self._etcd_args()], append=True)
            self._wait_etcd(deadline)
        else:
            self._apiserver = self._spawn("kube-apiserver", [str(apiserver_bin), *self._apiserver_args()], append=True)
        self._wait_apiserver(deadline, timeout)

    def kubeconfig_for(self, user: str, groups: tuple[str, ...] | list[str] = ()) -> Path:
        """Mint a kubeconfig for ``user`` in ``groups`` (client certificate signed by this plane's CA)."""
        if not self.apiserver_port:
            raise ControlPlaneError("control plane not started: no server address for a kubeconfig")
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", user) or "user"
        if groups:
            safe += "-" + re.sub(r"[^A-Za-z0-9_.-]+", "_", "_".join(groups))
        path = self.workdir / "kubeconfigs" / f"{safe}.kubeconfig"
        path.parent.mkdir(parents=True, exist_ok=True)
        self._write_kubeconfig(path, user, tuple(groups), cert_name=None)
        return path

    @classmethod
    def attach(cls, workdir: str | os.PathLike) -> "ControlPlane":
        """A handle on a plane another process started in ``workdir`` (for kubeconfig_for); owns no process."""
        plane = cls(workdir)
        match = re.search(r"server:\s*https://[^:]+:(\d+)", (plane.kubeconfig).read_text())
        if not match:
            raise ControlPlaneError(f"{plane.kubeconfig} names no server")
        plane.apiserver_port = int(match.group(1))
        return plane

    # -- internals -----------------------------------------------------------------------------------

    def _binaries(self) -> tuple[Path, Path]:
        found = []
        for name in ("etcd", "kube-apiserver"):
            try:
                path = tools.ensure(name, log=self._log) if self.build else tools.find(name)
            except tools.ToolError as exc:
                raise ControlPlaneError(str(exc)) from None
            if path is None:
                raise ControlPlaneError(
                    f"{name} not found: run 'python -m controllers.localcluster.tools {name}' to build it, "
                    f"or set {tools.TOOLS[name].env_var}"
                )
            found.append(path)
        return found[0], found[1]

    def _choose_ports(self) -> None:
        wanted = {"etcd": self.etcd_port, "etcd peer": self.etcd_peer_port, "kube-apiserver": self.apiserver_port}
        for what, port in wanted.items():
            if port and not port_free(port):
                raise ControlPlaneError(f"port {port} ({what}) on {HOST} is already in use")
        taken = {p for p in wanted.values() if p}
        self.etcd_port = self.etcd_port or free_port(taken)
        taken.add(self.etcd_port)
        self.etcd_peer_port = self.etcd_peer_port or free_port(taken)
        taken.add(self.etcd_peer_port)
        self.apiserver_port = self.apiserver_port or free_port(taken)

    def _etcd_args(self) -> list[str]:
        peer = f"http://{HOST}:{self.etcd_peer_port}"
        return [
            "--name=fluxpy",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.etcd_url}",
            f"--advertise-client-urls={self.etcd_url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=fluxpy={peer}",
            "--initial-cluster-state=new",
            # A single member has no one to lose an election to: short raft timers make it leader in
            # ~50ms instead of ~1s. No fsync: the data is thrown away at stop.
            "--heartbeat-interval=10",
            "--election-timeout=100",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]

    def _apiserver_args(self) -> list[str]:
        pki = self.pki_dir
        return [
            f"--etcd-servers={self.etcd_url}",
            f"--bind-address={HOST}",
            f"--advertise-address={HOST}",
            f"--secure-port={self.apiserver_port}",
            f"--tls-cert-file={pki / 'serving.crt'}",
            f"--tls-private-key-file={pki / 'serving.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            "--authorization-mode=RBAC",
            f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
            # No controller-manager: nothing creates the "default" service account, so the
            # ServiceAccount admission plugin would reject every Pod.
            "--disable-admission-plugins=ServiceAccount",
            # Endpoints may not point at loopback; with no kubelet there is nothing to reconcile anyway.
            "--endpoint-reconciler-type=none",
            "--allow-privileged=true",
            "--profiling=false",
            "--shutdown-delay-duration=0s",
            "--v=0",
            *self.extra_apiserver_args,
        ]

    def _spawn(self, name: str, argv: list[str], *, append: bool = False) -> _Process:
        proc = _Process(name, argv, self.log_dir / f"{name}.log")
        with open(proc.log, "ab" if append else "wb") as out:
            out.write(("$ " + " ".join(argv) + "\n").encode())
            out.flush()
            proc.popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                process_group=0,  # Ctrl-C in a terminal reaches us, not the servers: stop() shuts them down in order
                preexec_fn=_die_with_parent if self._die_with_parent and sys.platform == "linux" else None,
            )
        return proc

    def _check_alive(self, proc: _Process) -> None:
        code = proc.popen.poll() if proc.popen else None
        if code is not None:
            tail = _tail(proc.log, 15)
            raise ControlPlaneError(
                f"{proc.name} exited with code {code} during start (log: {proc.log})\n{tail}"
            )

    def _wait_etcd(self, deadline: float) -> None:
        while True:
            self._check_alive(self._etcd)
            conn = http.client.HTTPConnection(HOST, self.etcd_port, timeout=1)
            try:
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            finally:
                conn.close()
            if time.monotonic() > deadline:
                raise ControlPlaneError(f"etcd was not ready at {self.etcd_url}/readyz in time (log: {self._etcd.log})")
            time.sleep(0.01)

    def _wait_apiserver(self, deadline: float, timeout: float) -> None:
        ctx = self.ssl_context()
        last = "no answer"
        while True:
            self._check_alive(self._apiserver)
            self._check_alive(self._etcd)
            conn = http.client.HTTPSConnection(HOST, self.apiserver_port, context=ctx, timeout=2)
            try:
                conn.request("GET", "/readyz")
                resp = conn.getresponse()
                body = resp.read().decode(errors="replace")
                if resp.status == 200:
                    return
                failing = [l.strip() for l in body.splitlines() if l.startswith("[-]")]
                last = f"HTTP {resp.status}: " + (", ".join(failing) or body.strip()[:200])
            except (OSError, http.client.HTTPException) as exc:
                last = str(exc) or type(exc).__name__
            finally:
                conn.close()
            if time.monotonic() > deadline:
                raise ControlPlaneError(
                    f"kube-apiserver was not ready within {timeout:.0f}s ({last}) (log: {self._apiserver.log})"
                )
            time.sleep(0.05)

    def ssl_context(self, cert_name: str = "admin") -> ssl.SSLContext:
        """An SSL context trusting this plane's CA and presenting the ``pki/<cert_name>`` client certificate."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        ctx.load_cert_chain(str(self.pki_dir / f"{cert_name}.crt"), str(self.pki_dir / f"{cert_name}.key"))
        return ctx

    def _write_kubeconfig(self, path: Path, user: str, groups: tuple[str, ...], cert_name: str | None) -> None:
        ca_key = _load_key(self.pki_dir / "ca.key")
        ca_cert = _load_cert(self.ca_file)
        if cert_name and (self.pki_dir / f"{cert_name}.crt").exists():
            cert_pem = (self.pki_dir / f"{cert_name}.crt").read_bytes()
            key_pem = (self.pki_dir / f"{cert_name}.key").read_bytes()
        else:
            key = _new_key()
            cert_pem = _pem_cert(_sign(ca_cert, ca_key, key, _name(user, groups), client=True))
            key_pem = _pem_key(key)
            if cert_name:
                _write(self.pki_dir / f"{cert_name}.crt", cert_pem)
                _write(self.pki_dir / f"{cert_name}.key", key_pem, private=True)
        b64 = lambda data: base64.b64encode(data).decode()  # noqa: E731
        text = (
            "apiVersion: v1\n"
            "kind: Config\n"
            "clusters:\n"
            f"- name: {self.context_name}\n"
            "  cluster:\n"
            f"    server: {self.server}\n"
            f"    certificate-authority-data: {b64(self.ca_file.read_bytes())}\n"
            "users:\n"
            f"- name: {_yaml_str(user)}\n"
            "  user:\n"
            f"    client-certificate-data: {b64(cert_pem)}\n"
            f"    client-key-data: {b64(key_pem)}\n"
            "contexts:\n"
            f"- name: {self.context_name}\n"
            "  context:\n"
            f"    cluster: {self.context_name}\n"
            f"    user: {_yaml_str(user)}\n"
            f"current-context: {self.context_name}\n"
        )
        _write(path, text.encode(), private=True)


# -- ports --------------------------------------------------------------------------------------------


def port_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on ``host:port`` now (TIME_WAIT leftovers do not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


def free_port(exclude: set[int] | frozenset[int] = frozenset(), host: str = HOST) -> int:
    """A port the kernel considers free on ``host`` now, not in ``exclude``."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
        if port not in exclude:
            return port
    raise ControlPlaneError("no free port found on " + host)


# -- processes ----------------------------------------------------------------------------------------


def _die_with_parent() -> None:  # runs in the child between fork and exec
    import ctypes

    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _terminate(popen: subprocess.Popen, grace: float) -> None:
    if popen.poll() is None:
        try:
            popen.send_signal(signal.SIGTERM)
            popen.wait(grace)
        except subprocess.TimeoutExpired:
            popen.kill()
            popen.wait(5)
        except ProcessLookupError:
            pass


def _tail(path: Path, lines: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            data = f.read().decode(errors="replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


# -- certificates -------------------------------------------------------------------------------------


def _write(path: Path, data: bytes, private: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def _new_key():
    from cryptography.hazmat.primitives.asymmetric import ec

    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _pem_cert(cert) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)


def _load_key(path: Path):
    from cryptography.hazmat.primitives import serialization

    return serialization.load_pem_private_key(path.read_bytes(), None)


def _load_cert(path: Path):
    from cryptography import x509

    return x509.load_pem_x509_certificate(path.read_bytes())


def _name(common_name: str, organizations: tuple[str, ...] = ()):
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in organizations]
    return x509.Name(attrs + [x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _sign(issuer_cert, issuer_key, key, subject, *, client=False, server_names=(), ca=False):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject if issuer_cert is not None else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=365))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        ).add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    else:
        builder = builder.add_extension(
            x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True
        ).add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH]),
            critical=False,
        )
    if server_names:
        sans = []
        for n in server_names:
            try:
                sans.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                sans.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(issuer_key if issuer_cert is not None else key, hashes.SHA256())


def _write_pki(pki: Path) -> None:
    """Create the CA, serving certificate and service-account keys unless they already exist."""
    if all((pki / f).exists() for f in ("ca.crt", "ca.key", "serving.crt", "serving.key", "sa.key", "sa.pub")):
        return
    from cryptography.hazmat.primitives import serialization

    ca_key = _new_key()
    ca_cert = _sign(None, None, ca_key, _name("fluxpy-local-ca"), ca=True)
    serving_key = _new_key()
    service_ip = str(next(ipaddress.ip_network(SERVICE_CLUSTER_IP_RANGE).hosts()))
    serving = _sign(
        ca_cert,
        ca_key,
        serving_key,
        _name("kube-apiserver"),
        server_names=(
            "localhost", "127.0.0.1", "::1", service_ip, "kubernetes", "kubernetes.default",
            "kubernetes.default.svc", "kubernetes.default.svc.cluster.local",
        ),
    )
    sa_key = _new_key()
    for f in ("admin.crt", "admin.key"):  # signed by the old CA, if any
        (pki / f).unlink(missing_ok=True)
    _write(pki / "ca.key", _pem_key(ca_key), private=True)
    _write(pki / "ca.crt", _pem_cert(ca_cert))
    _write(pki / "serving.key", _pem_key(serving_key), private=True)
    _write(pki / "serving.crt", _pem_cert(serving))
    _write(pki / "sa.key", _pem_key(sa_key), private=True)
    _write(
        pki / "sa.pub",
        sa_key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )


def _yaml_str(value: str) -> str:
    """``value`` as a YAML scalar: plain when safe, else double-quoted (JSON quoting is valid YAML)."""
    import json

    return value if re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.@/-]*", value) else json.dumps(value)
