"""``fluxpy create ...``: the command groups and the one flow every create command follows.

Each ``create`` sub-command lives in its own module (``create_source_git.py``, ``create_secret_git.py``,
...), builds the object from its flags and hands it to :func:`apply_or_export`: with ``--export`` the YAML
is printed; otherwise the object is created or updated (server-side apply, field manager ``flux``), and —
for kinds a controller reconciles — fluxpy waits until it is Ready at the new generation and prints
``✔ fetched revision …`` / ``✔ applied revision …``, or the failure. Secrets go through
:func:`export_or_upsert_secret` (``--export`` prints them, otherwise :func:`upsert_secret` applies them).

The options several create commands share are declared here once (flux's ``createFlags`` and
``createSourceFlags``): ``--interval``, ``--fetch-timeout``, ``--export``, ``--label``, ``--secret-ref``,
``--ignore-paths``, ``--username``/``--password`` and the TLS file options, with the helpers that turn
them into fields (:func:`go_duration`, :func:`set_timeout`, :func:`object_meta`, :func:`read_file`).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

import typer

from flux_cli.app import App, CLIError
from flux_cli.flags import VERIFY_PROVIDER
from flux_cli.root import app, command_group

if TYPE_CHECKING:
    from controllers.api.types import Kind

create_app = command_group("Create or update fluxpy objects.")
create_source_app = command_group("Create or update sources.")
create_secret_app = command_group("Create or update Secrets for sources and providers.")
create_app.add_typer(create_source_app, name="source")
create_app.add_typer(create_secret_app, name="secret")
app.add_typer(create_app, name="create")

#: the label that marks objects created by the CLI (as flux's ``--label`` adds its own).
LABEL_HELP = "Labels to set, as key=value (repeatable or comma-separated)."

# --- the options the create commands share (typer defaults; one OptionInfo may serve several commands) ------

INTERVAL_OPTION = typer.Option("1m", "--interval", help="Source sync interval.")
FETCH_TIMEOUT_OPTION = typer.Option("0s", "--fetch-timeout", help="Set a timeout for fetching from the source.")
LABEL_OPTION = typer.Option(None, "--label", help=LABEL_HELP)
PROXY_SECRET_REF_OPTION = typer.Option("", "--proxy-secret-ref", help="The name of an existing secret containing "
                                                                      "the proxy address and credentials.")
USERNAME_OPTION = typer.Option("", "--username", "-u", help="Basic authentication username.")
PASSWORD_OPTION = typer.Option("", "--password", "-p", help="Basic authentication password.")
TLS_CRT_FILE_OPTION = typer.Option(None, "--tls-crt-file", help="TLS authentication cert file path.")
TLS_KEY_FILE_OPTION = typer.Option(None, "--tls-key-file", help="TLS authentication key file path.")
CA_CRT_FILE_OPTION = typer.Option(None, "--ca-crt-file", help="TLS authentication CA file path.")


def export_option(kind: str = "Secret") -> Any:
    """``--export``: print the object (a ``kind``) as YAML instead of applying it."""
    return typer.Option(False, "--export", help=f"Print the {kind} as YAML instead of applying it.")


#: ``--export`` of the ``create secret`` commands.
SECRET_EXPORT_OPTION = export_option("Secret")


def secret_ref_option(help: str) -> Any:  # noqa: A002 - typer's word
    """``--secret-ref``: an existing Secret the source refers to (what it holds is the command's ``help``)."""
    return typer.Option("", "--secret-ref", help=help)


def ignore_paths_option(where: str) -> Any:
    """``--ignore-paths``: .sourceignore patterns for what a source leaves out of its artifact."""
    return typer.Option(None, "--ignore-paths", help=f"Paths to ignore in {where} (comma-separated or repeated).")


# --- from flags to fields ---------------------------------------------------------------------------------

def go_duration(value: str) -> str:
    """A duration flag as Go prints it (``1m`` → ``1m0s``); ValueError for one that does not parse."""
    from controllers.api.duration import format_duration, parse_duration

    return format_duration(parse_duration(value))


def set_timeout(spec: dict, fetch_timeout: str) -> None:
    """``spec.timeout`` from ``--fetch-timeout`` when it is set and positive (flux leaves ``0s`` out)."""
    from controllers.api.duration import parse_duration

    if fetch_timeout and parse_duration(fetch_timeout) > 0:
        spec["timeout"] = go_duration(fetch_timeout)


def verify_spec(provider: str, secret_ref: str = "", issuer: str = "", subject: str = "") -> dict | None:
    """``spec.verify`` from the ``--verify-*`` flags (keys: provider, secretRef, matchOIDCIdentity), None
    without a provider; CLIError in flux's words for an unknown provider, and for a secret or OIDC identity
    without one."""
    if not provider:
        if secret_ref:
            raise CLIError("a verification provider must be specified when a secret is specified")
        if issuer or subject:
            raise CLIError("a verification provider must be specified when OIDC issuer/subject is specified")
        return None
    verify: dict = {"provider": VERIFY_PROVIDER.check(provider, "--verify-provider")}
    if secret_ref:
        verify["secretRef"] = {"name": secret_ref}
    if issuer or subject:
        verify["matchOIDCIdentity"] = [{"issuer": issuer, "subject": subject}]
    return verify


def object_meta(name: str, namespace: str, labels: dict[str, str] | None = None) -> dict:
    """``metadata`` with the name, the namespace and (when any) the ``--label`` labels."""
    meta: dict = {"labels": labels} if labels else {}
    return {**meta, "name": name, "namespace": namespace}  # flux's order: keys sorted


def read_file(path: Optional[str], what: str, *, failure: str = "failed to read") -> bytes:
    """The content of a file named by a flag (``b""`` when the flag is empty); a CLIError in flux's words
    (``<failure> <what> file: open <path>: <reason>``) when it cannot be read."""
    if not path:
        return b""
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise CLIError(f"{failure} {what} file: open {path}: {(exc.strerror or str(exc)).lower()}") from None


def parse_labels(values: Optional[list[str]]) -> dict[str, str]:
    """``--label a=b,c=d`` → ``{"a": "b", "c": "d"}``; a malformed pair is a CLI error."""
    from flux_cli.flags import split_list

    labels = {}
    for item in split_list(values):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"invalid --label {item!r}: expected key=value")
        labels[key] = value
    return labels


def sorted_keys(value: Any) -> Any:
    """Maps with their keys sorted at every depth: flux prints objects through JSON, so its YAML is sorted."""
    if isinstance(value, dict):
        return {k: sorted_keys(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [sorted_keys(v) for v in value]
    return value


def new_object(kind: "Kind", name: str, namespace: str, spec: dict, labels: dict[str, str] | None = None) -> dict:
    """A fluxpy object with only the fields a user would write."""
    return {"apiVersion": kind.api_version, "kind": kind.kind, "metadata": object_meta(name, namespace, labels),
            "spec": spec}


def apply_or_export(a: App, kind: "Kind", obj: dict, *, export: bool, wait: bool = True) -> dict | None:
    """Print ``obj`` as YAML (``--export``), or apply it and wait for its controller's verdict."""
    from controllers.runtime import protocol
    from controllers.runtime.apply import CLI_FIELD_MANAGER
    from flux_cli.commands.lifecycle import reconcile_failed, report_ready

    if export:
        a.terminal.yaml([obj])
        return None
    name, ns = obj["metadata"]["name"], obj["metadata"].get("namespace")
    label = f"{kind.kind} '{ns}/{name}'" if ns else f"{kind.kind} '{name}'"
    a.terminal.generate(f"generating {kind.kind}")
    a.terminal.action(f"applying {label}")
    applied = a.kube.apply(obj, field_manager=CLI_FIELD_MANAGER)
    a.terminal.success(f"{kind.kind} {'created' if applied['metadata'].get('generation') == 1 else 'updated'}")
    if wait and not kind.reconcilable and kind.static_ready:
        # static configuration (Provider, Alert v1beta3): ready once it exists, as flux reports it
        a.terminal.waiting(f"waiting for {kind.kind} reconciliation")
        a.terminal.success(f"{kind.kind} {name} is ready")
        return applied
    if not (wait and kind.reconcilable):
        return applied
    a.terminal.waiting(f"waiting for {kind.kind} reconciliation")
    try:
        ready = protocol.wait_ready(a.kube, kind, name, ns, timeout=a.timeout)
    except protocol.ReconcileFailed as exc:
        raise reconcile_failed(label, exc) from None
    a.terminal.success(f"{kind.kind} reconciliation completed")
    report_ready(a, kind, ready)
    return ready


# --- Secrets ----------------------------------------------------------------------------------------------

def upsert_secret(a: App, secret: dict) -> dict:
    """Create or update a Secret (server-side apply of its ``data``, field manager ``flux``)."""
    import base64

    from controllers.runtime.apply import CLI_FIELD_MANAGER

    body = {k: v for k, v in secret.items() if k != "stringData"}
    body["data"] = {**(secret.get("data") or {}),
                    **{k: base64.b64encode(v.encode()).decode() for k, v in (secret.get("stringData") or {}).items()}}
    return a.kube.apply(body, field_manager=CLI_FIELD_MANAGER)


def export_or_upsert_secret(a: App, secret: dict, what: str, *, export: bool) -> None:
    """The end of every ``create secret`` command: print the Secret (``--export``), or apply it and say
    ``<what> secret '<name>' created in '<namespace>' namespace``."""
    if export:
        a.terminal.yaml([secret])
        return
    upsert_secret(a, secret)
    a.terminal.action(f"{what} secret '{secret['metadata']['name']}' created in '{a.namespace}' namespace")


def use_source_secret(a: App, spec: dict, secret: dict, action: str) -> None:
    """A ``create source`` command's own credentials Secret: applied (after ``action`` is printed) and
    referred to by ``spec.secretRef``."""
    a.terminal.action(action)
    upsert_secret(a, secret)
    spec["secretRef"] = {"name": secret["metadata"]["name"]}
    a.terminal.success("authentication configured")
