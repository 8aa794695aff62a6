"""``fluxpy create secret git NAME --url ...``: a Secret with Git credentials, as ``flux create secret git``.

For an ``ssh://`` URL: a key pair is generated (``--ssh-key-algorithm`` ecdsa (default, ``--ssh-ecdsa-curve``
p384) | ed25519 | rsa (``--ssh-rsa-bits``)) or read from ``--private-key-file`` (with ``--password`` when
encrypted), the server's host keys are scanned with ``ssh-keyscan`` into ``known_hosts``, and the public key
is printed as the deploy key. For ``http(s)://``: ``--username``/``--password`` or ``--bearer-token``, and
``--ca-crt-file``. ``--export`` prints the Secret instead of applying it. The key and scan helpers are shared
with ``create source git``.
"""
from __future__ import annotations

import subprocess
import urllib.parse
from pathlib import Path
from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import LABEL_HELP, create_secret_app, parse_labels

KEY_ALGORITHMS = ("rsa", "ecdsa", "ed25519")
ECDSA_CURVES = ("p256", "p384", "p521")
DEFAULT_SSH_PORT = 22
SCAN_TIMEOUT = 30


def generate_key_pair(algorithm: str = "ecdsa", rsa_bits: int = 2048, ecdsa_curve: str = "p384") -> tuple[bytes, bytes]:
    """A new SSH key pair: (private key PEM, public key in authorized_keys format)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if algorithm == "rsa":
        if rsa_bits < 1024 or rsa_bits % 8:
            raise CLIError(f"invalid RSA key size {rsa_bits}: must be a multiple of 8 and at least 1024")
        key = rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)
    elif algorithm == "ecdsa":
        curves = {"p256": ec.SECP256R1, "p384": ec.SECP384R1, "p521": ec.SECP521R1}
        if ecdsa_curve not in curves:
            raise CLIError(f"unsupported curve: {ecdsa_curve}, must be one of: {', '.join(ECDSA_CURVES)}")
        key = ec.generate_private_key(curves[ecdsa_curve]())
    elif algorithm == "ed25519":
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise CLIError(f"unsupported public key algorithm: {algorithm}, must be one of: {', '.join(KEY_ALGORITHMS)}")
    # PKCS#8 as Flux writes them; ed25519 in the OpenSSH format every ssh client reads
    fmt = serialization.PrivateFormat.OpenSSH if algorithm == "ed25519" else serialization.PrivateFormat.PKCS8
    private = key.private_bytes(serialization.Encoding.PEM, fmt, serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public + b"\n"


def load_key_pair(path: str, password: str = "") -> tuple[bytes, bytes]:
    """The key pair of a private key file (encrypted ones need ``password``)."""
    from cryptography.hazmat.primitives import serialization

    try:
        private = Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"failed to open private key file: open {path}: {(exc.strerror or str(exc)).lower()}") from None
    secret = password.encode() if password else None
    key = None
    for load in (serialization.load_ssh_private_key, serialization.load_pem_private_key):
        try:
            key = load(private, secret)
            break
        except TypeError:
            raise CLIError("ssh: this private key is passphrase protected" if not password
                           else "x509: decryption password incorrect") from None
        except ValueError:
            continue
    if key is None:
        raise CLIError("ssh: no key found")
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return private, public + b"\n"


def scan_host_key(url: str) -> bytes:
    """The SSH server's host keys as known_hosts lines (``ssh-keyscan``; port 22 unless the URL says)."""
    parts = urllib.parse.urlsplit(url)
    host, port = parts.hostname or "", parts.port or DEFAULT_SSH_PORT
    try:
        proc = subprocess.run(["ssh-keyscan", "-T", str(SCAN_TIMEOUT), "-p", str(port), host], capture_output=True,
                              timeout=SCAN_TIMEOUT + 5)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CLIError(f"SSH key scan for host {host}:{port} failed, error: {exc}") from None
    lines = sorted(line for line in proc.stdout.decode(errors="replace").splitlines()
                   if line.strip() and not line.startswith("#"))
    if not lines:
        detail = proc.stderr.decode(errors="replace").strip().splitlines()
        raise CLIError(f"SSH key scan for host {host}:{port} failed, error: "
                       f"{detail[-1] if detail else 'no host key received'}")
    return ("\n".join(lines)).encode()


def git_secret(name: str, namespace: str, url: str, *, username: str = "", password: str = "",
               bearer_token: str = "", ca_crt: bytes = b"", ca_file: bytes = b"", private_key_file: str = "",
               key_algorithm: str = "ecdsa", rsa_bits: int = 2048, ecdsa_curve: str = "p384",
               labels: dict[str, str] | None = None, require_credentials: bool = True) -> dict:
    """The Git credentials Secret for ``url`` (``stringData``), as flux's sourcesecret generates it."""
    scheme = urllib.parse.urlsplit(url).scheme
    data: dict[str, str] = {}
    if scheme == "ssh":
        private, public = load_key_pair(private_key_file, password) if private_key_file else \
            generate_key_pair(key_algorithm, rsa_bits, ecdsa_curve)
        data = {"identity": private.decode(), "identity.pub": public.decode(), "known_hosts": scan_host_key(url).decode()}
        if password:
            data["password"] = password
    elif scheme in ("http", "https"):
        if require_credentials and (not username or not password) and not bearer_token:
            raise CLIError("for Git over HTTP/S the username and password, or a bearer token is required")
        if username and password and bearer_token:
            raise CLIError("user credentials and bearer token cannot be used together")
        if username and password:
            data.update(username=username, password=password)
        if bearer_token:
            data["bearerToken"] = bearer_token
        if ca_crt:
            data["ca.crt"] = ca_crt.decode()
        elif ca_file:
            data["caFile"] = ca_file.decode()
    else:
        raise CLIError(f"git URL scheme '{scheme}' not supported, can be: ssh, http and https")
    meta: dict = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = labels
    return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "stringData": data}


def read_ca(path: Optional[str]) -> bytes:
    if not path:
        return b""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"unable to read TLS CA file: open {path}: {(exc.strerror or str(exc)).lower()}") from None


@create_secret_app.command("git")
@handle_errors
def create_secret_git(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Secret."),
    url: str = typer.Option("", "--url", help="Git address, e.g. ssh://git@host/org/repository."),
    username: str = typer.Option("", "--username", "-u", help="Basic authentication username."),
    password: str = typer.Option("", "--password", "-p", help="Basic authentication password (or the private "
                                                              "key's passphrase)."),
    bearer_token: str = typer.Option("", "--bearer-token", help="Bearer authentication token."),
    key_algorithm: str = typer.Option("ecdsa", "--ssh-key-algorithm",
                                      help="SSH public key algorithm: " + ", ".join(KEY_ALGORITHMS) + "."),
    rsa_bits: int = typer.Option(2048, "--ssh-rsa-bits", help="SSH RSA public key bit size (multiple of 8)."),
    ecdsa_curve: str = typer.Option("p384", "--ssh-ecdsa-curve",
                                    help="SSH ECDSA public key curve: " + ", ".join(ECDSA_CURVES) + "."),
    ca_file: Optional[str] = typer.Option(None, "--ca-file", help="Path to a TLS CA file (deprecated: use "
                                                                  "--ca-crt-file)."),
    ca_crt_file: Optional[str] = typer.Option(None, "--ca-crt-file", help="Path to a TLS CA certificate file; "
                                                                          "takes precedence over --ca-file."),
    private_key_file: Optional[str] = typer.Option(None, "--private-key-file",
                                                   help="Path to a private key file used for authenticating to "
                                                        "the Git SSH server."),
    export: bool = typer.Option(False, "--export", help="Print the Secret as YAML instead of applying it."),
    label: Optional[list[str]] = typer.Option(None, "--label", help=LABEL_HELP),
) -> None:
    """Create or update a Kubernetes secret for Git authentication."""
    from flux_cli.commands.create_secret_tls import upsert_secret

    a: App = ctx.obj
    if not url:
        raise CLIError("url is required")
    ca_crt = read_ca(ca_crt_file)
    secret = git_secret(name, a.namespace, url, username=username, password=password, bearer_token=bearer_token,
                        ca_crt=ca_crt, ca_file=b"" if ca_crt else read_ca(ca_file),
                        private_key_file=private_key_file or "", key_algorithm=key_algorithm, rsa_bits=rsa_bits,
                        ecdsa_curve=ecdsa_curve, labels=parse_labels(label))
    if export:
        a.terminal.yaml([secret])
        return
    if "identity.pub" in secret["stringData"]:
        a.terminal.generate(f"deploy key: {secret['stringData']['identity.pub'].strip()}")
    upsert_secret(a, secret)
    a.terminal.action(f"git secret '{name}' created in '{a.namespace}' namespace")
