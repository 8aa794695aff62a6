"""``fluxpy bootstrap gitlab``: bootstrap from a GitLab (gitlab.com or self-managed) project, as
``flux bootstrap gitlab``: the project is created when missing (``--visibility``, private by default), the
cluster's SSH key is registered as a read-only deploy key, or ``--token-auth`` stores the token, or
``--deploy-token-auth`` creates a read-only project deploy token for the cluster. The token comes from
``$GITLAB_TOKEN`` or a prompt; ``--hostname`` points at a self-managed server.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.commands.bootstrap import (INTERVAL_OPTION, PATH_OPTION, READ_WRITE_KEY_OPTION, CommonFlags,
                                         bootstrap_app, load_keypair, read_token, run_with_provider, secret_options,
                                         target_path, team_permissions, validate_provider, with_common_flags)

TOKEN_ENV = "GITLAB_TOKEN"


@bootstrap_app.command("gitlab")
@handle_errors
@with_common_flags
def bootstrap_gitlab(
    ctx: typer.Context,
    common: CommonFlags,
    owner: str = typer.Option("", "--owner", help="GitLab user or group name."),
    repository: str = typer.Option("", "--repository", help="GitLab repository (project) name."),
    team: Optional[list[str]] = typer.Option(None, "--team", help="GitLab groups to give maintainer access "
                                                                   "(group[:permission]); repeatable."),
    personal: bool = typer.Option(False, "--personal", help="The owner is a GitLab user (otherwise a group)."),
    private: bool = typer.Option(True, "--private/--no-private", help="Deprecated: use --visibility."),
    visibility: str = typer.Option("private", "--visibility", help="Visibility of a created project: private, "
                                                                   "internal or public."),
    interval: str = INTERVAL_OPTION,
    hostname: str = typer.Option("gitlab.com", "--hostname", help="GitLab hostname (a self-managed server)."),
    path: str = PATH_OPTION,
    read_write_key: bool = READ_WRITE_KEY_OPTION,
    deploy_token_auth: bool = typer.Option(False, "--deploy-token-auth", help=(
        "Create a project deploy token for the cluster instead of an SSH deploy key.")),
) -> None:
    """Deploy fluxpy on a cluster connected to a GitLab repository.

    Creates the project if it does not exist, commits the manifests to the branch, and makes the cluster
    sync from it. When the components are already installed, a re-run upgrades them through Git if needed.
    """
    from controllers.lib.providers.gitlab import DEFAULT_TEAM_PERMISSION, PROJECT_NAME, VISIBILITIES, GitLabProvider

    a: App = ctx.obj
    c = common
    validate_provider(c, owner, repository)
    if not PROJECT_NAME.match(repository):
        raise CLIError(f"{repository} is an invalid project name for gitlab. It can contain only letters, digits, "
                       "emojis, '_', '.', dash, space. It must start with letter, digit, emoji or '_'.")
    if c.token_auth and deploy_token_auth:
        raise CLIError("--token-auth and --deploy-token-auth cannot be set both.")
    if not private:
        visibility = "public"
        a.terminal.line("Using visibility public as --no-private")
    if visibility not in VISIBILITIES:
        raise CLIError(f"invalid --visibility {visibility!r}: one of {', '.join(VISIBILITIES)}")
    token = read_token(TOKEN_ENV, "GitLab token", "Please enter your GitLab personal access token (PAT): ")
    path_value = target_path(path)
    if c.token_auth:
        secret = secret_options(c, auth="basic", username="git", password=token)
    elif deploy_token_auth:
        secret = secret_options(c, auth="deploy-token")
    else:
        secret = secret_options(c, auth="ssh", keypair=load_keypair(c), read_write_key=read_write_key)
    run_with_provider(a, c, GitLabProvider, token, hostname, owner=owner, repository=repository, personal=personal,
                      visibility=visibility, teams=team_permissions(team, DEFAULT_TEAM_PERMISSION), secret=secret,
                      path=path_value, interval=interval)
