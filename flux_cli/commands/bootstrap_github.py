"""``fluxpy bootstrap github``: bootstrap from a GitHub (or GitHub Enterprise Server) repository, as
``flux bootstrap github``: the repository is created when missing (private unless ``--no-private``),
teams get access (``--team slug[:permission]``, maintain by default), the cluster's SSH key is registered as
a read-only deploy key named ``<namespace>-<branch>-<secret>[-<path>]`` (``--read-write-key`` for write), or
with ``--token-auth`` the token itself is stored. The token comes from ``$GITHUB_TOKEN`` or a prompt;
``--hostname`` points at an Enterprise server (its API under ``/api/v3``).
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.bootstrap import (INTERVAL_OPTION, PATH_OPTION, READ_WRITE_KEY_OPTION, CommonFlags,
                                         bootstrap_app, read_token, run_with_provider, secret_options, target_path,
                                         team_permissions, validate_provider, with_common_flags)

TOKEN_ENV = "GITHUB_TOKEN"


@bootstrap_app.command("github")
@handle_errors
@with_common_flags
def bootstrap_github(
    ctx: typer.Context,
    common: CommonFlags,
    owner: str = typer.Option("", "--owner", help="GitHub user or organization name."),
    repository: str = typer.Option("", "--repository", help="GitHub repository name."),
    team: Optional[list[str]] = typer.Option(None, "--team", help="GitHub team and the access to give it "
                                                                   "(team:maintain); repeatable or comma-separated."),
    personal: bool = typer.Option(False, "--personal", help="The owner is a GitHub user (otherwise an "
                                                            "organization)."),
    private: bool = typer.Option(True, "--private/--no-private", help="Create the repository private "
                                                                      "(--no-private: public)."),
    interval: str = INTERVAL_OPTION,
    hostname: str = typer.Option("github.com", "--hostname", help="GitHub hostname (GitHub Enterprise Server)."),
    path: str = PATH_OPTION,
    read_write_key: bool = READ_WRITE_KEY_OPTION,
) -> None:
    """Deploy fluxpy on a cluster connected to a GitHub repository.

    Creates the repository if it does not exist, commits the manifests to the branch, and makes the cluster
    sync from it. When the components are already installed, a re-run upgrades them through Git if needed.
    """
    from controllers.lib.providers.github import DEFAULT_TEAM_PERMISSION, GitHubProvider

    a: App = ctx.obj
    c = common
    validate_provider(c, owner, repository)
    if c.private_key_file:
        raise CLIError("--private-key-file is not supported by 'bootstrap github': the deploy key is generated "
                       "(use 'bootstrap git' to bring your own key)")
    token = read_token(TOKEN_ENV, "GitHub token", "Please enter your GitHub personal access token (PAT): ")
    path_value = target_path(path)
    secret = secret_options(c, auth="basic" if c.token_auth else "ssh", username="git",
                            password=token if c.token_auth else "", read_write_key=read_write_key)
    run_with_provider(a, c, GitHubProvider, token, hostname, owner=owner, repository=repository, personal=personal,
                      visibility="private" if private else "public",
                      teams=team_permissions(team, DEFAULT_TEAM_PERMISSION), secret=secret, path=path_value,
                      interval=interval)
