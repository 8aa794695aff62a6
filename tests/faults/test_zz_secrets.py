"""Secrets stay secret: after every other test of the session (``tests/conftest.py`` runs this file last),
no value of any Secret the suite created may appear in what the suite's controllers and CLI said.

The Secrets are read from the apiserver (namespaces of finished tests stay Terminating: there is no
namespace controller, so their Secrets, Events and Flux objects are still there). What is scanned: every
log record of an in-process controller or CLI run and every controller process's log file, every Event,
the status of every Flux object, every in-process CLI run's output, and ``fluxpy get all -A`` and
``fluxpy events -A`` run now.

The public halves of credentials (``ca.crt``, ``tls.crt``, ``identity.pub``, ``known_hosts``, user names)
are not secrets, and values shorter than 8 characters are too common to scan for.
"""
from __future__ import annotations

import base64
import binascii
import json

from typer.testing import CliRunner

from controllers.api.builtin import EVENT, SECRET
from controllers.api.kinds import KINDS
from servers import leaks

from .conftest import record
from .processes import LOG_FILES

PUBLIC_KEYS = {"ca.crt", "tls.crt", "caFile", "certFile", "identity.pub", "known_hosts", "username", "user"}
MIN_LENGTH = 8
#: the commands that print a Secret when asked to (``--export``)
PRINTS_SECRETS = ("create secret", "create tenant")


def prints_secrets(args: tuple[str, ...]) -> bool:
    """Whether the CLI run's job was to print a Secret: ``create secret ... --export`` (without ``--export``
    it only reports what it created, and is scanned)."""
    exported = any(a == "--export" or a.startswith("--export=") for a in args)
    return exported and any(" ".join(args).startswith(p) for p in PRINTS_SECRETS)


def secret_values(kube) -> dict[str, str]:
    """Each secret value of every Secret in the cluster -> where it comes from (``ns/name[key]``); a PEM
    block also by each line of its body."""
    values = {}
    for secret in kube.list(SECRET)["items"]:
        where = f"{secret['metadata'].get('namespace')}/{secret['metadata']['name']}"
        for key, encoded in (secret.get("data") or {}).items():
            if key in PUBLIC_KEYS:
                continue
            try:
                value = base64.b64decode(encoded).decode()
            except (binascii.Error, UnicodeDecodeError):
                continue
            lines = [value.strip()]
            if "-----BEGIN" in value:
                lines += [line for line in value.splitlines() if len(line) >= 32 and not line.startswith("-----")]
            for line in lines:
                if len(line) >= MIN_LENGTH:
                    values.setdefault(line, f"{where}[{key}]")
    return values


def said(kube) -> list[tuple[str, str]]:
    """``(where, text)`` of everything scanned."""
    texts = [("log", line) for line in leaks.log_lines()]
    texts += [(f"log file {path.name}", path.read_text(errors="replace")) for path in LOG_FILES if path.exists()]
    for event in kube.list(EVENT)["items"]:
        involved = event.get("involvedObject") or {}
        texts.append((f"event about {involved.get('kind')}/{involved.get('namespace')}/{involved.get('name')}",
                      json.dumps({k: event.get(k) for k in ("message", "note", "reason", "metadata")})))
    for kind in KINDS:
        for obj in kube.list(kind)["items"]:
            meta = obj["metadata"]
            texts.append((f"status of {kind.kind}/{meta.get('namespace')}/{meta['name']}",
                          json.dumps(obj.get("status") or {})))
    texts += [(f"fluxpy {' '.join(args)}", output) for args, output in leaks.outputs() if not prints_secrets(args)]
    return texts


def run_cli(kubeconfig, *args: str) -> tuple[tuple[str, ...], str]:
    from flux_cli.main import app, prepare_args

    result = CliRunner().invoke(app, prepare_args(["--kubeconfig", str(kubeconfig), *args]), env={"NO_COLOR": "1"})
    return args, result.stdout + result.stderr


def leaked(values: dict[str, str], texts: list[tuple[str, str]]) -> list[str]:
    """Each secret value found in a text: which Secret, where, and the text around it (the value masked)."""
    found = []
    for where, text in texts:
        for value, secret in values.items():
            if value in text:
                at = text.index(value)
                context = text[max(0, at - 80):at] + "<SECRET>" + text[at + len(value):at + len(value) + 40]
                found.append(f"{secret} in {where}: …{context}…")
    return found


def test_the_scan_finds_a_planted_value(kube, namespace):
    value = "planted-" + base64.b32encode(namespace.encode()).decode()[:16]
    kube.create(SECRET, {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "planted"},
                         "stringData": {"token": value}}, namespace)
    event = kube.create(EVENT, {"apiVersion": "v1", "kind": "Event", "metadata": {"name": "planted"},
                                "involvedObject": {"kind": "Secret", "name": "planted", "namespace": namespace},
                                "reason": "Planted", "message": f"the token is {value}", "type": "Normal"}, namespace)
    try:
        found = leaked(secret_values(kube), said(kube))
        assert [f for f in found if f.startswith(f"{namespace}/planted[token] in event about Secret/")] and \
            all(value not in f for f in found)
    finally:
        kube.delete(EVENT, event["metadata"]["name"], namespace)
        kube.delete(SECRET, "planted", namespace)


def test_no_secret_value_appears_in_logs_events_statuses_or_cli_output(kube, kubeconfig):
    for args in (("get", "all", "-A"), ("events", "-A")):
        leaks.record_output(*run_cli(kubeconfig, *args))
    values = secret_values(kube)
    texts = said(kube)
    found = leaked(values, texts)
    record("secret values found in output", len(found))
    record("secret values scanned for", len(values))
    record("texts scanned (log records among them)", f"{len(texts)} ({sum(w == 'log' for w, _ in texts)})")
    assert not found, f"{len(found)} secret value(s) leaked:\n" + "\n".join(found[:50])
