"""``fluxpy create source git NAME --url ... (--branch | --tag | --tag-semver | --commit | --ref-name)``.

As ``flux create source git``: without ``--secret-ref``, an ``ssh://`` URL gets a Secret named after the
source with a generated (or ``--private-key-file``) key pair and the scanned host keys — the deploy key is
printed and, unless ``--silent``, confirmed — and ``--username``/``--password`` on ``http(s)://`` get a
basic-auth Secret (``--ca-file`` adds a CA). ``--export`` prints only the GitRepository. Otherwise the
source is created or updated, fluxpy waits for it to be Ready and prints ``✔ fetched revision …``.
"""
from __future__ import annotations

import urllib.parse
from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.create import (FETCH_TIMEOUT_OPTION, INTERVAL_OPTION, LABEL_OPTION, USERNAME_OPTION,
                                      apply_or_export, create_source_app, export_option, go_duration,
                                      ignore_paths_option, new_object, parse_labels, secret_ref_option, set_timeout,
                                      use_source_secret)
from flux_cli.commands.create_secret_git import (ECDSA_CURVE_OPTION, KEY_ALGORITHM_OPTION, PASSWORD_OPTION,
                                                 PRIVATE_KEY_FILE_OPTION, RSA_BITS_OPTION, URL_OPTION, git_secret,
                                                 read_ca)
from flux_cli.flags import GIT_PROVIDER


def git_repository_spec(*, url: str, branch: str = "", tag: str = "", semver: str = "", ref_name: str = "",
                        commit: str = "", interval: str = "1m", fetch_timeout: str = "", secret_ref: str = "",
                        recurse_submodules: bool = False, ignore_paths: list[str] | None = None,
                        ca_file: str = "", provider: str = "") -> dict:
    """The GitRepository's spec from the command's flags, validated as flux validates them."""
    if not url:
        raise CLIError("url is required")
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("ssh", "http", "https"):
        raise CLIError(f"git URL scheme '{scheme}' not supported, can be: ssh, http and https")
    if not (branch or tag or semver or commit or ref_name):
        raise CLIError("a Git ref is required, use one of the following: --branch, --tag, --commit, --ref-name or "
                       "--tag-semver")
    if ca_file and scheme == "ssh":
        raise CLIError("specifying a CA file is not supported for Git over SSH")
    if commit:
        ref = {"commit": commit, **({"branch": branch} if branch else {})}
    elif ref_name:
        ref = {"name": ref_name}
    elif semver:
        ref = {"semver": semver}
    elif tag:
        ref = {"tag": tag}
    else:
        ref = {"branch": branch}
    spec: dict = {"url": url, "interval": go_duration(interval), "ref": ref}
    set_timeout(spec, fetch_timeout)
    if recurse_submodules:
        spec["recurseSubmodules"] = True
    if ignore_paths:
        spec["ignore"] = "\n".join(ignore_paths)
    if secret_ref:
        spec["secretRef"] = {"name": secret_ref}
    if provider:
        spec["provider"] = GIT_PROVIDER.check(provider, "--provider")
    return spec


@create_source_app.command("git")
@handle_errors
def create_source_git(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the GitRepository."),
    url: str = URL_OPTION,
    branch: str = typer.Option("", "--branch", help="Git branch."),
    tag: str = typer.Option("", "--tag", help="Git tag."),
    semver: str = typer.Option("", "--tag-semver", help="Git tag semver range."),
    ref_name: str = typer.Option("", "--ref-name", help="Git reference name."),
    commit: str = typer.Option("", "--commit", help="Git commit."),
    username: str = USERNAME_OPTION,
    password: str = PASSWORD_OPTION,
    key_algorithm: str = KEY_ALGORITHM_OPTION,
    rsa_bits: int = RSA_BITS_OPTION,
    ecdsa_curve: str = ECDSA_CURVE_OPTION,
    secret_ref: str = secret_ref_option("The name of an existing secret containing SSH or basic credentials."),
    provider: str = GIT_PROVIDER.option("", "--provider", "The Git provider name (azure and github authenticate "
                                        "without a credentials Secret of fluxpy's making)."),
    ca_file: Optional[str] = typer.Option(None, "--ca-file", help="Path to a TLS CA file used for validating "
                                                                  "self-signed certificates."),
    private_key_file: Optional[str] = PRIVATE_KEY_FILE_OPTION,
    recurse_submodules: bool = typer.Option(False, "--recurse-submodules",
                                            help="Initialize and include Git submodules in the artifact."),
    silent: bool = typer.Option(False, "--silent", "-s", help="Assume the deploy key is already set up: skip the "
                                                              "confirmation."),
    ignore_paths: Optional[list[str]] = ignore_paths_option("the repository"),
    interval: str = INTERVAL_OPTION,
    fetch_timeout: str = FETCH_TIMEOUT_OPTION,
    export: bool = export_option("GitRepository"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update a GitRepository source and wait for its artifact."""
    from controllers.api.source import GIT_REPOSITORY
    from flux_cli.flags import split_list

    a: App = ctx.obj
    labels = parse_labels(label)
    spec = git_repository_spec(url=url, branch=branch, tag=tag, semver=semver, ref_name=ref_name, commit=commit,
                               interval=interval, fetch_timeout=fetch_timeout, secret_ref=secret_ref,
                               recurse_submodules=recurse_submodules, ignore_paths=split_list(ignore_paths),
                               ca_file=ca_file or "", provider=provider)
    repository = new_object(GIT_REPOSITORY, name, a.namespace, spec, labels)
    if not export and not secret_ref and provider in ("", "generic"):
        _configure_authentication(a, name, spec, username=username, password=password, ca_file=ca_file or "",
                                  private_key_file=private_key_file or "", key_algorithm=key_algorithm,
                                  rsa_bits=rsa_bits, ecdsa_curve=ecdsa_curve, silent=silent)
    apply_or_export(a, GIT_REPOSITORY, repository, export=export)


def _configure_authentication(a: App, name: str, spec: dict, *, username: str, password: str, ca_file: str,
                              private_key_file: str, key_algorithm: str, rsa_bits: int, ecdsa_curve: str,
                              silent: bool) -> None:
    """flux's credentials Secret for a source created without ``--secret-ref`` (none when nothing to store)."""
    scheme = urllib.parse.urlsplit(spec["url"]).scheme
    if scheme == "http" and (username or password):
        a.terminal.warning("insecure configuration: credentials configured for an HTTP URL")
    if scheme != "ssh" and not (username and password) and not ca_file:
        return
    secret = git_secret(name, a.namespace, spec["url"], username=username if username and password else "",
                        password=password if username and password or scheme == "ssh" else "",
                        ca_file=read_ca(ca_file) if scheme == "https" else b"", private_key_file=private_key_file,
                        key_algorithm=key_algorithm, rsa_bits=rsa_bits, ecdsa_curve=ecdsa_curve,
                        require_credentials=False)
    data = secret["stringData"]
    if not data:
        return
    if "known_hosts" in data:
        a.terminal.success(f"collected public key from SSH server:\n{data['known_hosts']}")
    if "identity.pub" in data:
        a.terminal.generate(f"deploy key: {data['identity.pub'].strip()}")
        if not silent and not a.terminal.confirm("Have you added the deploy key to your repository"):
            raise CLIError("aborting")
    use_source_secret(a, spec, secret, "applying secret with repository credentials")
