"""``fluxpy bootstrap``: the command group, the flags every bootstrap command shares, and the one run.

As ``flux bootstrap``: the sub-commands (``git``, ``github``, ``gitlab``, one module each) commit the
manifests to a repository and make the cluster sync itself from it. The shared flags are Flux's persistent
bootstrap flags, plus fluxpy's ``--via-pull-request`` (protected branches: propose the manifests in a
pull/merge request, install with read-only credentials, finish once it is merged) and ``--read-only``
(commit nothing: print the files to commit, install once they are in the repository).

Typer has no persistent flags, so :func:`with_common_flags` adds the shared ones to each sub-command's
signature and hands them to it as one :class:`CommonFlags`.
"""
from __future__ import annotations

import dataclasses
import inspect
import os
import sys
import typing
from typing import Any, Callable, Optional

import typer

from flux_cli.app import App, CLIError
from flux_cli.root import app, command_group

bootstrap_app = command_group("Deploy fluxpy on a cluster the GitOps way.")
app.add_typer(bootstrap_app, name="bootstrap")

SSH_KEY_ALGORITHMS = ("rsa", "ecdsa", "ed25519")

# Flags more than one sub-command declares, with the same default and help (not Flux's persistent ones).
INTERVAL_OPTION = typer.Option("1m0s", "--interval", help="Sync interval.")
PATH_OPTION = typer.Option("", "--path", help="Path relative to the repository root; the cluster syncs this "
                                              "directory.")
READ_WRITE_KEY_OPTION = typer.Option(False, "--read-write-key", help="Give the deploy key write access.")
ECDSA_CURVES = ("p256", "p384", "p521")


@dataclasses.dataclass
class CommonFlags:
    """The flags every ``bootstrap`` sub-command takes (Flux's persistent bootstrap flags)."""

    version: str
    components: Optional[list[str]]
    components_extra: Optional[list[str]]
    registry: str
    image_pull_secret: str
    branch: str
    recurse_submodules: bool
    watch_all_namespaces: bool
    network_policy: bool
    token_auth: bool
    log_level: str
    cluster_domain: str
    toleration_keys: Optional[list[str]]
    secret_name: str
    ssh_key_algorithm: str
    ssh_rsa_bits: int
    ssh_ecdsa_curve: str
    ssh_hostname: str
    ca_file: str
    private_key_file: str
    author_name: str
    author_email: str
    gpg_key_ring: str
    gpg_passphrase: str
    gpg_key_id: str
    commit_message_appendix: str
    via_pull_request: bool
    pull_request_branch: str
    read_only: bool
    ui_actions: bool = False


def _common_parameters() -> list[inspect.Parameter]:
    from controllers import __version__

    o = typer.Option
    specs: list[tuple[str, Any, Any]] = [
        ("version", str, o(__version__, "--version", help="fluxpy version of the components (the controller "
                                                           "image tag).")),
        ("components", Optional[list[str]], o(None, "--components", help="List of components, accepts "
                                                                           "comma-separated values.")),
        ("components_extra", Optional[list[str]], o(None, "--components-extra", help=(
            "List of components in addition to those supplied or defaulted, e.g. "
            "image-reflector-controller,image-automation-controller,source-watcher."))),
        ("registry", str, o("ghcr.io/fluxpy", "--registry", help="Container registry of the controller image.")),
        ("image_pull_secret", str, o("", "--image-pull-secret", help="Secret used to pull the controller image.")),
        ("branch", str, o("main", "--branch", help="Git branch.")),
        ("recurse_submodules", bool, o(False, "--recurse-submodules", help=(
            "Configure the GitRepository to include Git submodules in its artifact."))),
        ("watch_all_namespaces", bool, o(True, "--watch-all-namespaces/--no-watch-all-namespaces",
                                         help="Watch custom resources in all namespaces.")),
        ("network_policy", bool, o(True, "--network-policy/--no-network-policy", help=(
            "Deny ingress to the controllers from other namespaces."))),
        ("token_auth", bool, o(False, "--token-auth", help=(
            "Sync with the personal access token (over HTTPS) instead of an SSH deploy key."))),
        ("log_level", str, o("info", "--log-level", help="Controllers' log level: debug, info or error.")),
        ("cluster_domain", str, o("cluster.local", "--cluster-domain", help="Internal cluster domain.")),
        ("toleration_keys", Optional[list[str]], o(None, "--toleration-keys", help=(
            "Taint keys the controller pods tolerate."))),
        ("secret_name", str, o("flux-system", "--secret-name", help=(
            "Name of the Secret the sync credentials are stored in."))),
        ("ssh_key_algorithm", str, o("ecdsa", "--ssh-key-algorithm", help="SSH key algorithm: rsa, ecdsa or "
                                                                          "ed25519.")),
        ("ssh_rsa_bits", int, o(2048, "--ssh-rsa-bits", help="SSH RSA key size in bits.")),
        ("ssh_ecdsa_curve", str, o("p384", "--ssh-ecdsa-curve", help="SSH ECDSA curve: p256, p384 or p521.")),
        ("ssh_hostname", str, o("", "--ssh-hostname", help=(
            "SSH host[:port], when the SSH host differs from the HTTPS one."))),
        ("ca_file", str, o("", "--ca-file", help="Path to a TLS CA bundle for self-signed certificates.")),
        ("private_key_file", str, o("", "--private-key-file", help=(
            "Path to a private key file used for authenticating to the Git SSH server."))),
        ("author_name", str, o("Flux", "--author-name", help="Author name for Git commits.")),
        ("author_email", str, o("", "--author-email", help="Author email for Git commits.")),
        ("gpg_key_ring", str, o("", "--gpg-key-ring", help="Path to a GPG key ring for signing commits.")),
        ("gpg_passphrase", str, o("", "--gpg-passphrase", help="Passphrase for decrypting the GPG private key.")),
        ("gpg_key_id", str, o("", "--gpg-key-id", help="Key id for selecting a key of the key ring.")),
        ("commit_message_appendix", str, o("", "--commit-message-appendix", help=(
            "Text to add to the commit messages, e.g. '[ci skip]'."))),
        ("via_pull_request", bool, o(False, "--via-pull-request", help=(
            "For protected branches: push the manifests to a branch and propose them in a pull/merge request; "
            "the cluster is installed with read-only credentials and syncs once it is merged."))),
        ("pull_request_branch", str, o("", "--pull-request-branch", help=(
            "Branch the pull request comes from (default fluxpy-bootstrap-<branch>)."))),
        ("read_only", bool, o(False, "--read-only", help=(
            "Commit nothing: print the manifests to commit; once they are in the repository, install."))),
        ("ui_actions", bool, o(False, "--ui-actions", help=(
            "Let the ui component (--components-extra=ui) reconcile, suspend and resume; read-only otherwise."))),
    ]
    return [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, annotation, default in specs]


def with_common_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command the shared flags: its signature gains them, and it receives them as ``common``."""
    own = inspect.signature(func)
    hints = typing.get_type_hints(func)
    common_params = _common_parameters()
    names = {p.name for p in common_params}
    params = [p.replace(annotation=hints.get(p.name, p.annotation)) for p in own.parameters.values()
              if p.name != "common"]
    params = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) if p.kind != p.VAR_KEYWORD else p for p in params]

    def wrapper(**kwargs: Any) -> Any:
        common = CommonFlags(**{name: kwargs.pop(name) for name in names})
        return func(common=common, **kwargs)

    wrapper.__name__, wrapper.__qualname__ = func.__name__, func.__qualname__
    wrapper.__doc__, wrapper.__module__ = func.__doc__, func.__module__
    wrapper.__signature__ = inspect.Signature(params + common_params)  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in params + common_params}
    return wrapper


# ------------------------------------------------------------------------------------------ inputs


def read_token(env_var: str, what: str, prompt: str) -> str:
    """A token from ``$env_var``, else from the terminal (hidden) or one line of stdin."""
    token = os.environ.get(env_var, "").strip()
    if token:
        return token
    if sys.stdin.isatty():
        import getpass

        token = getpass.getpass(prompt, stream=sys.stderr).strip()
    else:
        token = sys.stdin.readline().strip()
    if not token:
        raise CLIError(f"no {what}: set ${env_var} (or type it when asked)")
    return token


def read_file(path: str, what: str) -> bytes:
    if not path:
        return b""
    try:
        return open(os.path.expanduser(path), "rb").read()
    except OSError as exc:
        raise CLIError(f"failed to read {what} {path}: {(exc.strerror or str(exc)).lower()}") from None


def target_path(path: str) -> str:
    from manifestgen.sync import safe_relative_path

    try:
        return safe_relative_path(path)
    except ValueError as exc:
        raise CLIError(f"invalid --path: {exc}") from None


def team_permissions(values: Optional[list[str]], default: str) -> dict[str, str]:
    """``--team a --team b:admin`` (or comma-separated) → ``{"a": default, "b": "admin"}``."""
    from flux_cli.flags import split_list

    teams = {}
    for item in split_list(values):
        name, _, permission = item.partition(":")
        teams[name] = permission or default
    return teams


def install_options(a: App, c: CommonFlags):
    from flux_cli.commands.install import install_options as from_flags

    options = from_flags(a, c.components, c.components_extra, c.registry, c.image_pull_secret, c.network_policy,
                         c.watch_all_namespaces, c.log_level, c.cluster_domain, c.toleration_keys,
                         ui_actions=c.ui_actions)
    options.version = c.version.removeprefix("v")
    options.validate()
    return options


def secret_options(c: CommonFlags, **kwargs: Any):
    from bootstrap.plan import SecretOptions

    if c.ssh_key_algorithm not in SSH_KEY_ALGORITHMS:
        raise CLIError(f"invalid --ssh-key-algorithm {c.ssh_key_algorithm!r}: one of {', '.join(SSH_KEY_ALGORITHMS)}")
    if c.ssh_ecdsa_curve not in ECDSA_CURVES:
        raise CLIError(f"invalid --ssh-ecdsa-curve {c.ssh_ecdsa_curve!r}: one of {', '.join(ECDSA_CURVES)}")
    return SecretOptions(key_algorithm=c.ssh_key_algorithm, rsa_bits=c.ssh_rsa_bits, ecdsa_curve=c.ssh_ecdsa_curve,
                         ca=read_file(c.ca_file, "TLS CA file"), **kwargs)


def load_keypair(c: CommonFlags, password: str = ""):
    from manifestgen.sync import load_keypair as load

    if not c.private_key_file:
        return None
    try:
        return load(read_file(c.private_key_file, "private key file"), password)
    except ValueError as exc:
        raise CLIError(f"invalid --private-key-file {c.private_key_file}: {exc}") from None


def validate(c: CommonFlags) -> None:
    if c.via_pull_request and c.read_only:
        raise CLIError("--via-pull-request and --read-only cannot be used together")
    if c.pull_request_branch and not c.via_pull_request:
        raise CLIError("--pull-request-branch needs --via-pull-request")
    if c.pull_request_branch and c.pull_request_branch == c.branch:
        raise CLIError("--pull-request-branch must differ from --branch")
    if c.gpg_passphrase and not c.gpg_key_ring or c.gpg_key_id and not c.gpg_key_ring:
        raise CLIError("--gpg-passphrase and --gpg-key-id need --gpg-key-ring")


def validate_provider(c: CommonFlags, owner: str, repository: str) -> None:
    """:func:`validate`, and the repository flags ``bootstrap github`` and ``bootstrap gitlab`` require."""
    validate(c)
    if not owner or not repository:
        raise CLIError("--owner and --repository are required")


# ------------------------------------------------------------------------------------------ the run


def run_with_provider(a: App, c: CommonFlags, provider_class, token: str, hostname: str, *, owner: str,
                      repository: str, personal: bool, visibility: str, teams: dict[str, str], secret, path: str,
                      interval: str) -> None:
    """The end of ``bootstrap github`` and ``bootstrap gitlab``: connect to the provider's API, describe the
    repository to create or reuse, run. Syncing over SSH, the CA is only for the API (not the Secret)."""
    from controllers.lib.providers.base import ProviderError
    from bootstrap.repository import ProviderSource

    ca = secret.ca
    if secret.auth == "ssh":
        secret.ca = b""
    try:
        provider = provider_class(token, hostname, ca_file=c.ca_file or None)
    except ProviderError as exc:
        raise CLIError(exc.message) from None
    source = ProviderSource(provider, owner, repository, token, personal=personal, visibility=visibility,
                            teams=teams, sync_transport="ssh" if secret.auth == "ssh" else "https",
                            ssh_hostname=c.ssh_hostname, ca=ca, default_branch=c.branch)
    run(a, c, source, secret=secret, path=path, interval=interval)



def run(a: App, c: CommonFlags, source, *, secret, path: str, interval: str, silent: bool = False) -> None:
    """Build the options, run the bootstrap plan, turn its failures into one-line errors."""
    from bootstrap.plan import Bootstrap, BootstrapError, BootstrapOptions, check_options
    from controllers.api.duration import parse_duration

    try:
        seconds = parse_duration(interval)
    except ValueError as exc:
        raise CLIError(f"invalid --interval: {exc}") from None
    mode = "pull-request" if c.via_pull_request else ("read-only" if c.read_only else "push")
    options = BootstrapOptions(
        install=install_options(a, c), secret=secret, branch=c.branch, target_path=path, interval=seconds,
        secret_name=c.secret_name, recurse_submodules=c.recurse_submodules, author_name=c.author_name,
        author_email=c.author_email, gpg_key_ring=c.gpg_key_ring, gpg_passphrase=c.gpg_passphrase,
        gpg_key_id=c.gpg_key_id, commit_message_appendix=c.commit_message_appendix, mode=mode,
        pull_request_branch=c.pull_request_branch, silent=silent, timeout=a.timeout)
    try:
        check_options(options)
        outcome = Bootstrap(a.kube, source, options, a.terminal).run()
    except BootstrapError as exc:
        raise CLIError(str(exc)) from None
    if outcome.pending:
        return
    a.terminal.success("bootstrap finished")
