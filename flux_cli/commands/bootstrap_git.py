"""``fluxpy bootstrap git``: bootstrap from any Git server, as ``flux bootstrap git``.

Authentication, as Flux: an ``ssh://`` URL uses ``--private-key-file`` (whose host key is trusted on first
use) or the user's SSH agent; ``https://`` uses ``--username``/``--password`` (``$GIT_PASSWORD``) or, with
``--with-bearer-token``, the password as a bearer token; ``http://`` needs ``--allow-insecure-http``. The
cluster syncs over SSH with a deploy key (the private key file, else a generated ECDSA P-384 key the user is
asked to grant access) unless ``--token-auth``, which stores the username and password instead.
"""
from __future__ import annotations

import os
import urllib.parse

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.bootstrap import (INTERVAL_OPTION, PATH_OPTION, CommonFlags, bootstrap_app, load_keypair,
                                         read_token, run, secret_options, target_path, validate, with_common_flags)


@bootstrap_app.command("git")
@handle_errors
@with_common_flags
def bootstrap_git(
    ctx: typer.Context,
    common: CommonFlags,
    url: str = typer.Option("", "--url", help="Git repository URL (ssh://, https://, or http:// with "
                                              "--allow-insecure-http)."),
    interval: str = INTERVAL_OPTION,
    path: str = PATH_OPTION,
    username: str = typer.Option("git", "-u", "--username", help="Basic authentication username (SSH: the user)."),
    password: str = typer.Option("", "-p", "--password", help="Basic authentication password, or the passphrase "
                                                              "of --private-key-file ($GIT_PASSWORD)."),
    silent: bool = typer.Option(False, "-s", "--silent", help="Assume the deploy key is already set up: do not ask."),
    allow_insecure_http: bool = typer.Option(False, "--allow-insecure-http", help="Allow insecure HTTP connections."),
    with_bearer_token: bool = typer.Option(False, "--with-bearer-token", help="Use the password as a bearer token "
                                                                              "for the Authorization header."),
) -> None:
    """Deploy fluxpy on a cluster connected to a Git repository.

    Commits the manifests to the branch of the repository, then makes the cluster sync from it. When the
    components are already installed, a re-run upgrades them through Git if needed.
    """
    from bootstrap.git import Credentials, GitRepoError, scan_host_keys, ssh_host
    from bootstrap.repository import PlainGitSource, plain_git_sync_url

    a: App = ctx.obj
    c = common
    validate(c)
    token_auth = c.token_auth or with_bearer_token
    password = password or os.environ.get("GIT_PASSWORD", "")
    if not url:
        raise CLIError("--url is required, e.g. --url=ssh://git@example.com/org/repository.git")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("ssh", "https", "http") or not parts.hostname:
        raise CLIError(f"invalid --url {url!r}: use ssh://, https:// or http:// with a host "
                       "(scp-like git@host:path is not supported, write ssh://git@host/path)")
    if parts.scheme == "http" and not allow_insecure_http:
        raise CLIError("scheme http is insecure, pass --allow-insecure-http to allow it")
    if token_auth and not password:
        password = read_token("GIT_PASSWORD", "Git password", "Please enter your Git repository password: ")
    path_value = target_path(path)

    credentials = Credentials(ca=secret_options(c).ca)
    keypair = None
    if parts.scheme == "ssh":
        if c.private_key_file:
            keypair = load_keypair(c, password)
            host, port = ssh_host(url)
            try:
                known_hosts = scan_host_keys(host, port)
            except GitRepoError as exc:
                raise CLIError(exc.message) from None
            credentials = Credentials(identity=keypair.private_key, key_password=password, known_hosts=known_hosts)
    elif with_bearer_token:
        credentials.bearer_token = password
    else:
        credentials.username, credentials.password = username, password

    if token_auth:
        auth = "bearer" if with_bearer_token else "basic"
        secret = secret_options(c, auth=auth, username=username, password=password if auth == "basic" else "",
                                bearer_token=password if auth == "bearer" else "")
    else:
        if keypair is None and c.private_key_file:
            keypair = load_keypair(c, password)
        secret = secret_options(c, auth="ssh", keypair=keypair, password=password if keypair else "")
        secret.ca = b""  # a CA is for HTTPS; the cluster syncs over SSH
    sync_url = plain_git_sync_url(url, token_auth=token_auth, username=username,
                                  allow_insecure_http=allow_insecure_http, ssh_hostname=c.ssh_hostname)
    source = PlainGitSource(url, sync_url, credentials,
                            key_has_access=parts.scheme == "ssh" and keypair is not None and not token_auth)
    run(a, c, source, secret=secret, path=path_value, interval=interval, silent=silent)
