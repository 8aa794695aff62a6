"""``fluxpy create image repository | policy | update NAME``: the image automation objects, as flux creates them.

Flags and messages are flux 2.7's: ``repository --image --secret-ref --cert-ref --scan-timeout``,
``policy --image-ref --select-semver|--select-alpha|--select-numeric --filter-regex --filter-extract
--reflect-digest --interval``, ``update --git-repo-ref --git-repo-namespace --git-repo-path --checkout-branch
--push-branch --commit-template --author-name --author-email`` (all ``image.toolkit.fluxcd.io/v1``).
Unlike flux, giving two ``--select-*`` flags at once is always refused (flux silently creates a policy with
none for some pairs), and a ``--commit-template`` that does not parse is refused before anything is applied.
"""
from __future__ import annotations

from typing import Optional

import typer

from flux_cli.app import App, CLIError, handle_errors
from flux_cli.root import command_group
from flux_cli.commands.create import INTERVAL_OPTION, LABEL_OPTION, apply_or_export, create_app, export_option, \
    go_duration, new_object, parse_labels, sorted_keys

create_image_app = command_group("Create or update image automation objects.")
create_app.add_typer(create_image_app, name="image")

ORDERS = ("asc", "desc")
REFLECTION_POLICIES = ("Never", "IfNotPresent", "Always")


def _create_image_repository(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the ImageRepository."),
    image: str = typer.Option("", "--image", help="the image repository to scan; e.g., library/alpine"),
    secret_ref: str = typer.Option("", "--secret-ref",
                                   help="the name of a docker-registry secret to use for credentials"),
    cert_ref: str = typer.Option("", "--cert-ref", help="the name of a secret to use for TLS certificates"),
    scan_timeout: str = typer.Option("0s", "--scan-timeout",
                                     help="a timeout for scanning; this defaults to the interval if not set"),
    interval: str = INTERVAL_OPTION,
    export: bool = export_option("ImageRepository"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update an ImageRepository object."""
    from controllers.api.duration import parse_duration
    from controllers.api.image import IMAGE_REPOSITORY
    from controllers.lib.oci.registry import InvalidReference, split_repository

    a: App = ctx.obj
    if not image:
        raise CLIError("an image repository (--image) is required")
    try:
        split_repository(image)
    except InvalidReference as exc:
        raise CLIError(f"unable to parse image value: {exc}") from None
    labels = parse_labels(label)
    spec: dict = {"image": image, "interval": go_duration(interval)}
    if parse_duration(go_duration(scan_timeout)) > 0:
        spec["timeout"] = go_duration(scan_timeout)
    if secret_ref:
        spec["secretRef"] = {"name": secret_ref}
    if cert_ref:
        spec["certSecretRef"] = {"name": cert_ref}
    apply_or_export(a, IMAGE_REPOSITORY, new_object(IMAGE_REPOSITORY, name, a.namespace, sorted_keys(spec), labels),
                    export=export)


def _selection(semver: str, alpha: str, numeric: str) -> dict:
    """``spec.policy`` from the ``--select-*`` flags (exactly one)."""
    chosen = [flag for flag in (semver, alpha, numeric) if flag]
    if len(chosen) > 1:
        raise CLIError("only one of --select-semver, --select-alpha or --select-numeric can be specified")
    if semver:
        return {"semver": {"range": semver}}
    for value, flag, key in ((alpha, "--select-alpha", "alphabetical"), (numeric, "--select-numeric", "numerical")):
        if value:
            if value not in ORDERS:
                raise CLIError(f'{flag} must be one of ["asc", "desc"]')
            return {key: {"order": value}}
    raise CLIError("a policy must be provided with either --select-semver or --select-alpha")


def _filter_tags(pattern: str, extract: str) -> dict | None:
    """``spec.filterTags`` from ``--filter-regex``/``--filter-extract``, checked as flux checks them (a Go
    regular expression; every named group the extract template uses exists in it)."""
    from controllers.lib.goregex import InvalidExpression, compile_go, expand_group_names

    if not pattern:
        if extract:
            raise CLIError("cannot specify --filter-extract without specifying --filter-regex")
        return None
    try:
        groups = compile_go(pattern).groupindex
    except InvalidExpression:
        raise CLIError("--filter-regex is an invalid regex pattern") from None
    if not extract:
        return {"pattern": pattern}
    names = expand_group_names(extract)
    if names is None:
        raise CLIError("--filter-extract is malformed")
    missing = [n for n in names if n not in groups]
    if missing:
        raise CLIError(f"capture group ${missing[0]} used in --filter-extract not found in --filter-regex")
    return {"extract": extract, "pattern": pattern}


def _create_image_policy(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the ImagePolicy."),
    image_ref: str = typer.Option("", "--image-ref", help="the name of an image repository object"),
    select_semver: str = typer.Option("", "--select-semver", help="a semver range to apply to tags; e.g., '1.x'"),
    select_alpha: str = typer.Option("", "--select-alpha", help='use alphabetical sorting to select image; either '
                                     '"asc" meaning select the last, or "desc" meaning select the first'),
    select_numeric: str = typer.Option("", "--select-numeric", help='use numeric sorting to select image; either '
                                       '"asc" meaning select the last, or "desc" meaning select the first'),
    filter_regex: str = typer.Option("", "--filter-regex",
                                     help="regular expression pattern used to filter the image tags"),
    filter_extract: str = typer.Option("", "--filter-extract", help="replacement pattern (using capture groups "
                                       "from --filter-regex) to use for sorting"),
    reflect_digest: str = typer.Option("", "--reflect-digest", help="the digest reflection policy to use when "
                                       "observing latest image tags (one of 'Never', 'IfNotPresent', 'Always')"),
    interval: str = typer.Option("0s", "--interval", help="the interval at which to check for new image digests "
                                 "when the policy is set to 'Always'"),
    export: bool = export_option("ImagePolicy"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update an ImagePolicy object."""
    from controllers.api.duration import parse_duration
    from controllers.api.image import IMAGE_POLICY

    a: App = ctx.obj
    if not image_ref:
        raise CLIError("the name of an ImageRepository in the namespace is required (--image-ref)")
    labels = parse_labels(label)
    spec: dict = {"imageRepositoryRef": {"name": image_ref},
                  "policy": _selection(select_semver, select_alpha, select_numeric)}
    if tags := _filter_tags(filter_regex, filter_extract):
        spec["filterTags"] = tags
    if reflect_digest:
        if reflect_digest not in REFLECTION_POLICIES:
            raise CLIError("invalid value for --reflect-digest, must be one of 'Never', 'IfNotPresent', 'Always'")
        spec["digestReflectionPolicy"] = reflect_digest
    if parse_duration(go_duration(interval)) > 0:
        if reflect_digest != "Always":
            raise CLIError("the --interval flag can only be used with the 'Always' digest reflection policy, "
                           "use --reflect-digest=Always")
        spec["interval"] = go_duration(interval)
    apply_or_export(a, IMAGE_POLICY, new_object(IMAGE_POLICY, name, a.namespace, sorted_keys(spec), labels),
                    export=export)


def _create_image_update(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Name of the ImageUpdateAutomation."),
    git_repo_ref: str = typer.Option("", "--git-repo-ref", help="the name of a GitRepository resource with "
                                     "details of the upstream Git repository"),
    git_repo_namespace: str = typer.Option("", "--git-repo-namespace", help="the namespace of the GitRepository "
                                           "resource, defaults to the ImageUpdateAutomation namespace"),
    git_repo_path: str = typer.Option("", "--git-repo-path", help="path to the directory containing the "
                                      "manifests to be updated, defaults to the repository root"),
    checkout_branch: str = typer.Option("", "--checkout-branch", help="the branch to checkout"),
    push_branch: str = typer.Option("", "--push-branch", help="the branch to push commits to, defaults to the "
                                    "checkout branch if not specified"),
    commit_template: str = typer.Option("", "--commit-template", help="a template for commit messages"),
    author_name: str = typer.Option("", "--author-name", help="the name to use for commit author"),
    author_email: str = typer.Option("", "--author-email", help="the email to use for commit author"),
    pull_request_provider: str = typer.Option("", "--pull-request-provider", help="fluxpy: open a pull/merge "
                                              "request from the push branch to the checkout branch through this "
                                              "provider's API (github or gitlab)"),
    pull_request_secret_ref: str = typer.Option("", "--pull-request-secret-ref", help="fluxpy: the Secret with "
                                                "the provider API 'token' (and 'ca.crt')"),
    interval: str = INTERVAL_OPTION,
    export: bool = export_option("ImageUpdateAutomation"),
    label: Optional[list[str]] = LABEL_OPTION,
) -> None:
    """Create or update an ImageUpdateAutomation object."""
    from controllers.api.image import IMAGE_UPDATE_AUTOMATION
    from controllers.lib.gotemplate import Template, TemplateError

    a: App = ctx.obj
    for value, message in ((git_repo_ref, "a reference to a GitRepository is required (--git-repo-ref)"),
                           (checkout_branch, "the Git repository branch is required (--checkout-branch)"),
                           (author_name, "the author name is required (--author-name)"),
                           (author_email, "the author email is required (--author-email)")):
        if not value:
            raise CLIError(message)
    if pull_request_provider or pull_request_secret_ref:
        if pull_request_provider not in ("github", "gitlab"):
            raise CLIError(f"invalid --pull-request-provider {pull_request_provider!r}: expected github or gitlab")
        if not pull_request_secret_ref:
            raise CLIError("--pull-request-provider needs --pull-request-secret-ref (the Secret with the API token)")
        if not push_branch or push_branch == checkout_branch:
            raise CLIError("a pull request needs --push-branch set to a branch other than --checkout-branch")
    if commit_template:
        try:
            Template(commit_template, "commit template")
        except TemplateError as exc:
            raise CLIError(f"invalid --commit-template: {exc}") from None
    labels = parse_labels(label)
    source_ref = {"kind": "GitRepository", "name": git_repo_ref}
    if git_repo_namespace:
        source_ref["namespace"] = git_repo_namespace
    commit: dict = {"author": {"email": author_email, "name": author_name}}
    if commit_template:
        commit["messageTemplate"] = commit_template
    git: dict = {"checkout": {"ref": {"branch": checkout_branch}}, "commit": commit}
    if push_branch:
        git["push"] = {"branch": push_branch}
    if pull_request_provider:
        git["push"]["pullRequest"] = {"provider": pull_request_provider,
                                      "secretRef": {"name": pull_request_secret_ref}}
    spec: dict = {"git": git, "interval": go_duration(interval), "sourceRef": source_ref}
    if git_repo_path:
        spec["update"] = {"path": git_repo_path, "strategy": "Setters"}
    apply_or_export(a, IMAGE_UPDATE_AUTOMATION,
                    new_object(IMAGE_UPDATE_AUTOMATION, name, a.namespace, sorted_keys(spec), labels), export=export)


create_image_app.command("repository")(handle_errors(_create_image_repository))
create_image_app.command("policy")(handle_errors(_create_image_policy))
create_image_app.command("update")(handle_errors(_create_image_update))
