"""``fluxpy create secret git NAME --url ...``: a Secret with Git credentials, as ``flux create secret git``.

For an ``ssh://`` URL: a key pair is generated (``--ssh-key-algorithm`` ecdsa (default, ``--ssh-ecdsa-curve``
p384) | ed25519 | rsa (``--ssh-rsa-bits``)) or read from ``--private-key-file`` (with ``--password`` when
encrypted), the server's host keys are scanned with ``ssh-keyscan`` into ``known_hosts``, and the public key
is printed as the deploy key. For ``http(s)://``: ``--username``/``--password`` or ``--bearer-token``, and
``--ca-crt-file``. ``--export`` prints the Secret instead of applying it. The key and scan helpers are shared
with ``create source git``.
"""
from __future__ import annotations

import urllib.parse
from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (LABEL_OPTION, SECRET_EXPORT_OPTION, USERNAME_OPTION, create_secret_app,
                                      export_or_upsert_secret, parse_labels, read_file)

KEY_ALGORITHMS = ("rsa", "ecdsa", "ed25519")
ECDSA_CURVES = ("p256", "p384", "p521")
SCAN_TIMEOUT = 30.0

#: The options ``create secret git`` shares with ``create source git`` (which makes the same Secret).
URL_OPTION = typer.Option("", "--url", help="Git address, e.g. ssh://git@host/org/repository.")
PASSWORD_OPTION = typer.Option("", "--password", "-p", help="Basic authentication password (or the private "
                                                            "key's passphrase).")
KEY_ALGORITHM_OPTION = typer.Option("ecdsa", "--ssh-key-algorithm",
                                    help="SSH public key algorithm: " + ", ".join(KEY_ALGORITHMS) + ".")
RSA_BITS_OPTION = typer.Option(2048, "--ssh-rsa-bits", help="SSH RSA public key bit size (multiple of 8).")
ECDSA_CURVE_OPTION = typer.Option("p384", "--ssh-ecdsa-curve",
                                  help="SSH ECDSA public key curve: " + ", ".join(ECDSA_CURVES) + ".")
PRIVATE_KEY_FILE_OPTION = typer.Option(None, "--private-key-file",
                                       help="Path to a private key file used for authenticating to the Git SSH "
                                            "server.")


def _validate_key_flags(algorithm: str, ecdsa_curve: str) -> None:
    if algorithm not in KEY_ALGORITHMS:
        raise CLIError(f"unsupported public key algorithm: {algorithm}, must be one of: {', '.join(KEY_ALGORITHMS)}")
    if ecdsa_curve not in ECDSA_CURVES:
        raise CLIError(f"unsupported curve: {ecdsa_curve}, must be one of: {', '.join(ECDSA_CURVES)}")


def scan_host_key(url: str) -> bytes:
    """The SSH server's host keys as known_hosts lines (``ssh-keyscan``; port 22 unless the URL says)."""
    from bootstrap.git import GitRepoError, scan_host_keys, ssh_host

    host, port = ssh_host(url)
    try:
        return scan_host_keys(host, port, timeout=SCAN_TIMEOUT)
    except GitRepoError as exc:
        raise CLIError(f"SSH key scan for host {host}:{port} failed, error: {exc}") from None


def git_secret(name: str, namespace: str, url: str, *, username: str = "", password: str = "",
               bearer_token: str = "", ca_crt: bytes = b"", ca_file: bytes = b"", private_key_file: str = "",
               key_algorithm: str = "ecdsa", rsa_bits: int = 2048, ecdsa_curve: str = "p384",
               labels: dict[str, str] | None = None, require_credentials: bool = True) -> dict:
    """The Git credentials Secret for ``url`` (``stringData``), as flux's sourcesecret generates it: a key
    pair (generated, or read from ``private_key_file``) and the scanned host keys for ``ssh://``; basic auth
    or a bearer token and a CA for ``http(s)://``."""
    from manifestgen.sync import GitSecretOptions, generate_git_secret, generate_keypair, load_keypair

    scheme = urllib.parse.urlsplit(url).scheme
    options = GitSecretOptions(name=name, namespace=namespace, labels=labels or {})
    if scheme == "ssh":
        _validate_key_flags(key_algorithm, ecdsa_curve)
        if private_key_file:
            options.keypair = load_keypair(read_file(private_key_file, "private key", failure="failed to open"),
                                           password)
        else:
            options.keypair = generate_keypair(key_algorithm, rsa_bits=rsa_bits, ecdsa_curve=ecdsa_curve)
        options.known_hosts, options.password = scan_host_key(url), password
    elif scheme in ("http", "https"):
        if require_credentials and (not username or not password) and not bearer_token:
            raise CLIError("for Git over HTTP/S the username and password, or a bearer token is required")
        if username and password and bearer_token:
            raise CLIError("user credentials and bearer token cannot be used together")
        options.username, options.password, options.bearer_token, options.ca_crt = \
            username, password, bearer_token, ca_crt
    else:
        raise CLIError(f"git URL scheme '{scheme}' not supported, can be: ssh, http and https")
    secret = generate_git_secret(options)
    if ca_file and not ca_crt and scheme != "ssh":
        secret["stringData"]["caFile"] = ca_file.decode()  # the deprecated --ca-file's key
    return secret


def read_ca(path: Optional[str]) -> bytes:
    """``--ca-file``/``--ca-crt-file`` (flux's "unable to read TLS CA file" when it cannot be read)."""
    return read_file(path, "TLS CA", failure="unable to read")


@create_secret_app.command("git")
@handle_errors
def create_secret_git(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the Secret."),
    url: str = URL_OPTION,
    username: str = USERNAME_OPTION,
    password: str = PASSWORD_OPTION,
    bearer_token: str = typer.Option("", "--bearer-token", help="Bearer authentication token."),
    key_algorithm: str = KEY_ALGORITHM_OPTION,
    rsa_bits: int = RSA_BITS_OPTION,
    ecdsa_curve: str = ECDSA_CURVE_OPTION,
    ca_file: Optional[str] = typer.Option(None, "--ca-file", help="Path to a TLS CA file (deprecated: use "
                                                                  "--ca-crt-file)."),
    ca_crt_file: Optional[str] = typer.Option(None, "--ca-crt-file", help="Path to a TLS CA certificate file; "
                                                                          "takes precedence over --ca-file."),
    private_key_file: Optional[str] = PRIVATE_KEY_FILE_OPTION,
    export: bool = SECRET_EXPORT_OPTION,
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a Kubernetes secret for Git authentication."""
    a: App = ctx.obj
    if not url:
        raise CLIError("url is required")
    ca_crt = read_ca(ca_crt_file)
    secret = git_secret(name, a.namespace, url, username=username, password=password, bearer_token=bearer_token,
                        ca_crt=ca_crt, ca_file=b"" if ca_crt else read_ca(ca_file),
                        private_key_file=private_key_file or "", key_algorithm=key_algorithm, rsa_bits=rsa_bits,
                        ecdsa_curve=ecdsa_curve, labels=parse_labels(label))
    if not export and "identity.pub" in secret["stringData"]:
        a.terminal.generate(f"deploy key: {secret['stringData']['identity.pub'].strip()}")
    export_or_upsert_secret(a, secret, "git", export=export)
