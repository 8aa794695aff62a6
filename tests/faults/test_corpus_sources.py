"""The bad-input corpus of sources and HelmReleases (``tests/faults/corpus/{credentials,helmrelease}/``, format
in :mod:`tests.faults.corpus`) against fluxpy's source- and helm-controllers, the real apiserver and real
servers on loopback (git over HTTP(S) and SSH, docker-registry with htpasswd or token auth or TLS, Helm
repositories over HTTP(S) and OCI, versitygw over HTTP(S)).

As :mod:`tests.faults.test_corpus`, all cases of a group run at once on the same controllers, each its own
object, so a case that wedged a worker would hold back the others; each starts from a good state, its bad
input must give Ready=False with the expected reason and a message naming what is wrong, keep the good state,
and once repaired the object must move on.

- ``credentials``: each source first stores an artifact with good credentials; then its upstream gets a new
  revision and its credentials go wrong (a wrong password, token, key, known host or CA; no Secret; a missing
  one). The source must keep ``status.artifact`` as it was, and no value of its good or wrong credentials may
  show in its conditions, its events or the controllers' logs. Repaired (the good Secret and reference
  back), it must be Ready with the new revision.
- ``helmrelease``: each HelmRelease first installs a chart whose ``values.schema.json`` its values meet; then
  its values (inline or from a ConfigMap/Secret) break the schema. The release must stay at Helm revision 1,
  deployed, its ConfigMap unchanged, its ``status.history`` unchanged, and no value of a Secret may show in
  its conditions, its events or the logs. Repaired (the spec patch undone, a new message value), it must upgrade to
  revision 2.
"""
from __future__ import annotations

import dataclasses
import json
import secrets
import subprocess
from pathlib import Path
from typing import Callable

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from controllers.api.builtin import CONFIGMAP, SECRET
from controllers.api.helm import HELM_RELEASE
from controllers.api.objects import dig, find_condition
from controllers.api.source import BUCKET, GIT_REPOSITORY, HELM_CHART, HELM_REPOSITORY, OCI_REPOSITORY
from controllers.lib.helm_storage import ReleaseStorage, status_of
from controllers.lib.oci.registry import docker_config_json
from controllers.runtime import protocol
from servers import leaks
from servers.git import artifact_storage, git_servers, git_ssh_server  # noqa: F401 - fixtures
from servers.helmrepo import (HelmRepoServer, helm_controllers, helm_repo, helm_repo_auth,  # noqa: F401
                              make_chart, package, push_oci)
from servers.objects import apply_secret, apply_source
from servers.registry import registry_htpasswd, registry_tls, registry_token  # noqa: F401 - fixtures
from servers.s3 import s3_server, s3_tls_server  # noqa: F401 - fixtures
from servers.tls import new_ca
from servers.waiting import events, ready_with

from .conftest import record, start_source_controllers
from .corpus import Case, load_cases
from .test_corpus import merge_undo, wait_cases

# --------------------------------------------------------------------------- shared by both groups

def said_about(kube, namespace: str, obj: dict) -> str:
    """Everything the controllers said about ``obj``: its conditions' messages and its events' messages."""
    texts = [c.get("message") or "" for c in dig(obj, "status.conditions") or []]
    texts += [e.get("message") or "" for e in events(kube, namespace, obj["metadata"]["name"], obj["kind"])]
    return "\n".join(texts)


def message_problems(case: Case, message: str, fill: dict[str, str]) -> list[str]:
    wrong = []
    for part in case.message:
        for key, value in fill.items():
            part = part.replace("{" + key + "}", value)
        if part not in message:
            wrong.append(f"message {message!r} lacks {part!r}")
    if "Traceback" in message:
        wrong.append("message holds a traceback")
    return wrong


def leaked(values: list[str], text: str, where: str) -> list[str]:
    return [f"{where} shows the secret value {value[:4]}…" for value in values if value in text]


def settle(cases: list[Case], failures: dict[str, list[str]], hidden: dict[str, list[str]]) -> None:
    """Fail with every case's problems (``hidden``: case name -> values no log may show), and record the figure."""
    logs = "\n".join(leaks.log_lines())
    for case in cases:
        found = leaked(hidden[case.name], logs, "a log")
        if found:
            failures.setdefault(case.label, []).extend(found)
    record("corpus cases passed", (len(cases) - len(failures), len(cases)))
    assert not failures, "\n".join(f"{label}: {'; '.join(wrong)}" for label, wrong in sorted(failures.items()))


# --------------------------------------------------------------------------- credentials: the sources

@dataclasses.dataclass
class Upstream:
    """One case's source: its ``kind`` (whose Ready and artifact are checked), its spec with a secretRef to
    the Secret named as the case, its good ``credentials`` and how they make the Secret, and ``advance``
    (a new revision upstream)."""

    kind: object
    spec: dict
    credentials: dict[str, str]
    advance: Callable[[], None]
    url: str
    secret: Callable[[dict], tuple[dict, str]] = lambda creds: (creds, "Opaque")
    ref_field: str = "secretRef"
    """Where the spec names the Secret: ``certSecretRef`` for a source whose Secret is the CA it trusts."""
    auth_kind: object = None
    """The kind whose spec holds the secretRef (a HelmChart's HelmRepository), else ``kind``."""
    auth_spec: dict | None = None
    wrong: dict[str, str] | None = None
    """The wrong credentials, once the case broke them."""

    def hidden(self) -> list[str]:
        """Values that must never show: each of the good and wrong credentials but the public ones (a PEM key
        also by each line of its body)."""
        values = []
        for key, value in [*self.credentials.items(), *(self.wrong or {}).items()]:
            if key not in ("username", "known_hosts", "ca.crt"):
                values += [value] + [line for line in value.splitlines() if len(line) >= 32 and "-----" not in line]
        return values


def _dockerconfig(host: str) -> Callable[[dict], tuple[dict, str]]:
    return lambda c: ({".dockerconfigjson": docker_config_json(host, c["username"], c["password"])},
                      "kubernetes.io/dockerconfigjson")


class Sources:
    """How each ``source:`` of the corpus is made (:data:`SOURCES`), its servers started on first use."""

    def __init__(self, kube, namespace: str, request, tmp_path: Path):
        self.kube, self.namespace, self.request, self.tmp = kube, namespace, request, tmp_path
        self._servers: dict[str, object] = {}

    def server(self, key: str, make: Callable[[], object]):
        if key not in self._servers:
            self._servers[key] = make()
        return self._servers[key]

    def fixture(self, name: str):
        return self.request.getfixturevalue(name)

    def git_http(self, case: Case, auth: str) -> Upstream:
        """``auth``: basic, bearer, or basic-tls (HTTPS, the Secret holding the CA too)."""
        options = {"bearer_token": secrets.token_hex(16)} if auth == "bearer" else \
            {"username": "flux", "password": secrets.token_hex(12), "tls": auth == "basic-tls"}
        server = self.server(f"git-{auth}", lambda: self.fixture("git_servers")(**options))
        repo = server.repo(case.name, {"cm.yaml": "v: 1\n"})
        creds = {"bearerToken": server.bearer_token} if auth == "bearer" else \
            {"username": server.username, "password": server.password}
        if server.tls:
            creds["ca.crt"] = server.ca_pem.decode()
        return Upstream(GIT_REPOSITORY, {"url": server.url(repo), "ref": {"branch": "main"}}, creds,
                        lambda: repo.commit({"cm.yaml": "v: 2\n"}), server.url(repo))

    def git_ssh(self, case: Case, passphrase: bool = False) -> Upstream:
        """The server's client key, or a key of the case's encrypted with a passphrase (``password``)."""
        server = self.fixture("git_ssh_server")
        repo = server.repo(case.name, {"cm.yaml": "v: 1\n"})
        creds = {"identity": server.client_key.decode(), "known_hosts": server.known_hosts.decode()}
        if passphrase:
            key, creds["password"] = self.tmp / f"{case.name}-key", secrets.token_hex(12)
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", creds["password"], "-C", case.name, "-f",
                            str(key)], check=True, capture_output=True, timeout=30)
            server.authorize(key.with_suffix(".pub").read_text())
            creds["identity"] = key.read_text()
        return Upstream(GIT_REPOSITORY, {"url": server.url(repo), "ref": {"branch": "main"}}, creds,
                        lambda: repo.commit({"cm.yaml": "v: 2\n"}), server.url(repo))

    def oci(self, case: Case, fixture: str, service_account: bool = False) -> Upstream:
        registry = self.fixture(fixture)
        repository = registry.new_repository(case.name)
        registry.push(repository, "v1", {"cm.yaml": "v: 1\n"})
        spec = {"url": registry.url(repository), "ref": {"tag": "v1"}}
        if registry.tls:  # no credentials: the Secret is the CA
            return Upstream(OCI_REPOSITORY, spec, {"ca.crt": registry.ca_pem.decode()},
                            lambda: registry.push(repository, "v1", {"cm.yaml": "v: 2\n"}), spec["url"],
                            ref_field="certSecretRef")
        if service_account:  # the pull secret comes from the service account, not spec.secretRef
            self.kube.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                             "metadata": {"name": case.name, "namespace": self.namespace},
                             "imagePullSecrets": [{"name": case.name}]}, field_manager="fluxpy-tests")
            spec["serviceAccountName"] = case.name
        return Upstream(OCI_REPOSITORY, spec, {"username": registry.username, "password": registry.password},
                        lambda: registry.push(repository, "v1", {"cm.yaml": "v: 2\n"}), spec["url"],
                        secret=_dockerconfig(registry.host))

    def helm_http(self, case: Case, tls: bool = False) -> Upstream:
        """Basic auth (``helm_repo_auth``), or HTTPS with the CA in the Secret of ``certSecretRef``."""
        server = self.server("helm-tls", self._helm_tls) if tls else self.fixture("helm_repo_auth")
        server.add_chart(make_chart(self.tmp / case.name / "1", case.name, "1.0.0"))
        creds = {"ca.crt": server.ca_pem.decode()} if tls else {"username": server.username,
                                                                 "password": server.password}
        return Upstream(HELM_REPOSITORY, {"url": server.url}, creds,
                        lambda: server.add_chart(make_chart(self.tmp / case.name / "2", case.name, "1.1.0")),
                        server.url, ref_field="certSecretRef" if tls else "secretRef")

    def _helm_tls(self) -> HelmRepoServer:
        server = HelmRepoServer(self.tmp / "helm-tls" / "charts", tls=True).start()
        self.request.addfinalizer(server.stop)
        return server

    def helm_oci(self, case: Case, fixture: str) -> Upstream:
        registry = self.fixture(fixture)
        repository = registry.new_repository("charts")

        def push(version: str) -> None:
            chart = make_chart(self.tmp / case.name / version, case.name, version)
            push_oci(registry, package(chart, self.tmp / case.name / f"pkg-{version}"), repository)

        push("0.1.0")
        url = f"oci://{registry.host}/{repository}"
        return Upstream(HELM_CHART, {"chart": case.name, "version": "*",
                                     "sourceRef": {"kind": "HelmRepository", "name": case.name}},
                        {"username": registry.username, "password": registry.password}, lambda: push("0.2.0"), url,
                        auth_kind=HELM_REPOSITORY, auth_spec={"url": url, "type": "oci", "insecure": True})

    def bucket(self, case: Case, tls: bool = False) -> Upstream:
        """Keys in the Secret, or (``tls``) keys in a Secret of their own and the CA in the case's."""
        server = self.fixture("s3_tls_server" if tls else "s3_server")
        bucket = server.make_bucket({"cm.yaml": "v: 1\n"})
        spec = {"bucketName": bucket, "endpoint": server.endpoint, "insecure": not tls}
        advance = lambda: server.put(bucket, {"cm.yaml": "v: 2\n"})  # noqa: E731
        if not tls:
            return Upstream(BUCKET, spec, server.secret_data(), advance, server.endpoint)
        apply_secret(self.kube, self.namespace, f"{case.name}-keys", server.secret_data())
        return Upstream(BUCKET, {**spec, "secretRef": {"name": f"{case.name}-keys"}},
                        {"ca.crt": server.ca_pem.decode()}, advance, server.endpoint, ref_field="certSecretRef")


#: ``source:`` -> how to make it
SOURCES: dict[str, Callable[[Sources, Case], Upstream]] = {
    "git-http-basic": lambda s, c: s.git_http(c, "basic"),
    "git-http-bearer": lambda s, c: s.git_http(c, "bearer"),
    "git-https-basic": lambda s, c: s.git_http(c, "basic-tls"),
    "git-ssh": Sources.git_ssh,
    "git-ssh-passphrase": lambda s, c: s.git_ssh(c, passphrase=True),
    "oci-htpasswd": lambda s, c: s.oci(c, "registry_htpasswd"),
    "oci-token": lambda s, c: s.oci(c, "registry_token"),
    "oci-htpasswd-service-account": lambda s, c: s.oci(c, "registry_htpasswd", service_account=True),
    "oci-tls": lambda s, c: s.oci(c, "registry_tls"),
    "helm-http-basic": Sources.helm_http,
    "helm-https": lambda s, c: s.helm_http(c, tls=True),
    "helm-oci-htpasswd": lambda s, c: s.helm_oci(c, "registry_htpasswd"),
    "helm-oci-token": lambda s, c: s.helm_oci(c, "registry_token"),
    "bucket": Sources.bucket,
    "bucket-tls": lambda s, c: s.bucket(c, tls=True),
}


def generated(what: str, current: str) -> str:
    """A fresh key nobody trusts: an OpenSSH private key (``ssh-key``), ``current``'s known_hosts lines with
    another host key (``host-key``), or the certificate of another CA (``ca``)."""
    if what == "ca":
        return new_ca("fluxpy-corpus-untrusted-ca").cert_pem.decode()
    key = Ed25519PrivateKey.generate()
    if what == "ssh-key":
        return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                                 serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return "".join(f"{line.split()[0]} {public.decode()}\n" for line in current.splitlines() if line.strip())


def wrong_credentials(case: Case, up: Upstream) -> dict[str, str]:
    replaced = {key: generated(value["generate"], up.credentials[key]) if isinstance(value, dict) else str(value)
                for key, value in ((case.wrong or {}).get("credentials") or {}).items()}
    return {**up.credentials, **replaced}


def store_secret(kube, namespace: str, case: Case, up: Upstream, creds: dict[str, str]) -> None:
    data, type_ = up.secret(creds)
    apply_secret(kube, namespace, case.name, data, type_)


def create_source(kube, namespace: str, case: Case, up: Upstream) -> None:
    store_secret(kube, namespace, case, up, up.credentials)
    secret_ref = {} if "serviceAccountName" in up.spec else {up.ref_field: {"name": case.name}}
    if up.auth_kind:
        apply_source(kube, up.auth_kind, namespace, case.name, {"interval": "1h", **up.auth_spec, **secret_ref})
        apply_source(kube, up.kind, namespace, case.name, {"interval": "1h", **up.spec})
    else:
        apply_source(kube, up.kind, namespace, case.name, {"interval": "1h", "timeout": "20s", **up.spec, **secret_ref})


def break_source(kube, namespace: str, case: Case, up: Upstream) -> None:
    """A new revision upstream, and the case's wrong credentials."""
    up.advance()
    if "credentials" in case.wrong:
        up.wrong = wrong_credentials(case, up)
        store_secret(kube, namespace, case, up, up.wrong)
    if "secretRef" in case.wrong:
        kube.patch(up.auth_kind or up.kind, case.name, {"spec": {up.ref_field: case.wrong["secretRef"]}}, namespace)
    protocol.request_reconcile(kube, up.kind, case.name, namespace)


def repair_source(kube, namespace: str, case: Case, up: Upstream) -> None:
    store_secret(kube, namespace, case, up, up.credentials)
    if "secretRef" in case.wrong:
        kube.patch(up.auth_kind or up.kind, case.name, {"spec": {up.ref_field: {"name": case.name}}}, namespace)
    protocol.request_reconcile(kube, up.kind, case.name, namespace)


def check_source(kube, namespace: str, case: Case, up: Upstream, obj: dict | str, before: dict) -> list[str]:
    """What the case got wrong once its source failed (empty: it passed)."""
    if isinstance(obj, str):
        return [f"{obj}, expected False {case.reason}"]
    message = find_condition(obj, "Ready")["message"]
    wrong = message_problems(case, message, {"namespace": namespace, "url": up.url})
    wrong += leaked(up.hidden(), said_about(kube, namespace, obj), "a condition or event")
    if case.stalled and (find_condition(obj, "Stalled") or {}).get("status") != "True":
        wrong.append("not Stalled")
    if dig(obj, "status.artifact") != dig(before, "status.artifact"):
        wrong.append(f"the artifact changed from {dig(before, 'status.artifact.revision')} to "
                     f"{dig(obj, 'status.artifact.revision')}")
    return wrong


@pytest.fixture
def source_controllers(start_controller, namespace, flux_crds, artifact_storage):
    start_source_controllers(start_controller, artifact_storage, namespace)


def test_wrong_credentials_keep_the_last_artifact_and_hide_the_secret(kube, namespace, request, tmp_path,
                                                                      source_controllers):
    cases = load_cases("credentials")
    sources = Sources(kube, namespace, request, tmp_path)
    upstreams = {c.name: SOURCES[c.source](sources, c) for c in cases}
    for case in cases:
        create_source(kube, namespace, case, upstreams[case.name])
    before = wait_cases(kube, namespace, {c.name: (upstreams[c.name].kind, ready_with("True")) for c in cases})
    unready = {name: obj for name, obj in before.items() if isinstance(obj, str)}
    assert not unready, f"the good revision is not stored: {unready}"

    failures: dict[str, list[str]] = {}
    for case in cases:
        break_source(kube, namespace, case, upstreams[case.name])
    broken = wait_cases(kube, namespace, {c.name: (upstreams[c.name].kind, ready_with("False", c.reason))
                                          for c in cases})
    for case in cases:
        wrong = check_source(kube, namespace, case, upstreams[case.name], broken[case.name], before[case.name])
        if wrong:
            failures[case.label] = wrong

    for case in cases:
        repair_source(kube, namespace, case, upstreams[case.name])
    repairs = wait_cases(kube, namespace, {c.name: (upstreams[c.name].kind, lambda o, c=c: ready_with("True")(o) and
                                                    dig(o, "status.artifact.revision") not in
                                                    (None, dig(before[c.name], "status.artifact.revision")))
                                           for c in cases})
    for case in cases:
        if isinstance(repairs[case.name], str):
            failures.setdefault(case.label, []).append(f"not repaired with a new revision: {repairs[case.name]}")
    settle(cases, failures, {name: up.hidden() for name, up in upstreams.items()})


# --------------------------------------------------------------------------- helmrelease: values and a schema

CHART = "schema"
#: the chart's values schema: what the corpus's values break
SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "required": ["replicas", "message"],
    "properties": {
        "replicas": {"type": "integer"},
        "message": {"type": "string"},
        "color": {"enum": ["red", "green", "blue"]},
        "password": {"type": "string", "pattern": "^[a-z0-9]+$"},
    },
}
#: each HelmRelease's good values (``message`` is required and the chart has no default for it)
GOOD_VALUES = {"replicas": 1, "message": "good"}
OBJECT_KINDS = {"ConfigMap": CONFIGMAP, "Secret": SECRET}


def release_state(kube, namespace: str, case: Case) -> dict:
    """What must not change while the case is broken: Helm's stored revisions, the release's ConfigMap."""
    revisions = ReleaseStorage(kube, namespace).history(case.name)
    return {"revisions": [(int(r["version"]), status_of(r)) for r in revisions],
            "configmap": kube.get(CONFIGMAP, f"{case.name}-{CHART}", namespace)["data"]}


def secret_strings(case: Case) -> list[str]:
    """The values in the case's Secrets (``stringData``; of a YAML map, each value): none may show in a
    condition, an event or a log."""
    found = []
    for obj in (o for o in case.objects if o["kind"] == "Secret"):
        for text in (obj.get("stringData") or {}).values():
            parsed = yaml.safe_load(text)
            found += [str(v) for v in parsed.values()] if isinstance(parsed, dict) else [text]
    return found


def check_release(kube, namespace: str, case: Case, obj: dict | str, before: dict, state: dict) -> list[str]:
    if isinstance(obj, str):
        return [f"{obj}, expected False {case.reason}"]
    wrong = message_problems(case, find_condition(obj, "Ready")["message"], {"namespace": namespace})
    wrong += leaked(secret_strings(case), said_about(kube, namespace, obj), "a condition or event")
    if dig(obj, "status.history") != dig(before, "status.history"):
        wrong.append(f"status.history changed: {dig(obj, 'status.history')}")
    now = release_state(kube, namespace, case)
    if now != state:
        wrong.append(f"the release changed from {state} to {now}")
    return wrong


def test_values_breaking_the_chart_schema_keep_the_release(kube, namespace, helm_controllers, helm_repo, tmp_path):
    cases = load_cases("helmrelease")
    chart = make_chart(tmp_path, CHART, "1.0.0", values={"replicas": 1},
                       files={"values.schema.json": json.dumps(SCHEMA, indent=2)})
    helm_repo.add_chart(chart)
    apply_source(kube, HELM_REPOSITORY, namespace, "charts", {"url": helm_repo.url, "interval": "1h"})
    spec = {"interval": "1h", "values": GOOD_VALUES, "chart": {"spec": {
        "chart": CHART, "version": "*", "sourceRef": {"kind": "HelmRepository", "name": "charts"}}}}
    for case in cases:
        apply_source(kube, HELM_RELEASE, namespace, case.name, spec)
    installed = wait_cases(kube, namespace, {c.name: (HELM_RELEASE, ready_with("True", "InstallSucceeded"))
                                             for c in cases})
    unready = {name: obj for name, obj in installed.items() if isinstance(obj, str)}
    assert not unready, f"the good values are not installed: {unready}"
    states = {c.name: release_state(kube, namespace, c) for c in cases}

    for case in cases:
        for obj in case.objects:
            kube.create(OBJECT_KINDS[obj["kind"]], obj, namespace)
        kube.patch(HELM_RELEASE, case.name, {"spec": case.spec}, namespace)
    broken = wait_cases(kube, namespace, {c.name: (HELM_RELEASE, ready_with("False", c.reason)) for c in cases})
    failures = {}
    for case in cases:
        wrong = check_release(kube, namespace, case, broken[case.name], installed[case.name], states[case.name])
        if wrong:
            failures[case.label] = wrong

    for case in cases:
        undo = merge_undo(installed[case.name]["spec"], case.spec)
        undo["values"] = {**(undo.get("values") or {}), "message": f"repaired-{case.name}"}
        kube.patch(HELM_RELEASE, case.name, {"spec": undo}, namespace)
        for obj in case.objects:
            kube.delete(OBJECT_KINDS[obj["kind"]], obj["metadata"]["name"], namespace)
    repairs = wait_cases(kube, namespace, {c.name: (HELM_RELEASE, lambda o: ready_with("True", "UpgradeSucceeded")(o)
                                                    and (dig(o, "status.history") or [{}])[0].get("version") == 2)
                                           for c in cases})
    for case in cases:
        if isinstance(repairs[case.name], str):
            failures.setdefault(case.label, []).append(f"not upgraded to revision 2: {repairs[case.name]}")
        elif json.loads(kube.get(CONFIGMAP, f"{case.name}-{CHART}", namespace)["data"]["values"])["message"] != \
                f"repaired-{case.name}":
            failures.setdefault(case.label, []).append("upgraded, but the ConfigMap does not hold the new values")
    settle(cases, failures, {c.name: secret_strings(c) for c in cases})
