"""The cluster side of bootstrap: what is installed already, the source Secret, applying manifests, and
waiting until the sync objects are Ready at the pushed revision and the controllers are alive.

All through the one kube client (``controllers.runtime.kube.KubeClient``) and the CLI's apply engine
(``controllers.runtime.apply.apply_staged``, field manager ``flux``)."""
from __future__ import annotations

import base64
import time
from typing import Callable

from controllers.api.builtin import SECRET
from controllers.api.kinds import kind_by_name
from controllers.api.objects import dig, find_condition
from controllers.runtime.kube import KubeClient, NotFound
from manifestgen.sync import normalize_kustomization_path

GIT_REPOSITORY = kind_by_name("GitRepository")
KUSTOMIZATION = kind_by_name("Kustomization")


class ClusterError(Exception):
    """A cluster step failed or timed out; the message says which object and why."""


def get_or_none(kube: KubeClient, rt, name: str, namespace: str | None) -> dict | None:
    """The object, or None when it (or its kind) does not exist."""
    try:
        return kube.get(rt, name, namespace)
    except NotFound:
        return None


def existing_kustomization(kube: KubeClient, name: str, namespace: str) -> dict | None:
    """The flux-system Kustomization of an earlier bootstrap, if any (None also when the CRD is absent)."""
    return get_or_none(kube, KUSTOMIZATION, name, namespace)


def path_change(existing: dict | None, target_path: str) -> str:
    """The path of an existing Kustomization when it differs from ``target_path`` ("" when it does not)."""
    if not existing:
        return ""
    current = dig(existing, "spec.path") or ""
    if normalize_kustomization_path(current) == normalize_kustomization_path(target_path or "./"):
        return ""
    return current or "./"


def must_install(existing: dict | None) -> bool:
    """Whether the components must be applied from the CLI: nothing has applied them from Git yet (the
    Kustomization is missing or never applied a revision), as Flux decides."""
    return not existing or not dig(existing, "status.lastAppliedRevision")


def secret_data(kube: KubeClient, name: str, namespace: str) -> dict[str, str] | None:
    """The decoded data of a Secret, None when it does not exist."""
    secret = get_or_none(kube, SECRET, name, namespace)
    if secret is None:
        return None
    out = {k: base64.b64decode(v).decode(errors="replace") for k, v in (secret.get("data") or {}).items()}
    out.update(secret.get("stringData") or {})
    return out


def apply_secret(kube: KubeClient, secret: dict, field_manager: str = "flux") -> bool:
    """Create or update the Secret from its ``stringData``; False (and no write) when the live data is the same."""
    meta = secret["metadata"]
    wanted = secret.get("stringData") or {}
    if secret_data(kube, meta["name"], meta["namespace"]) == wanted:
        return False
    body = {k: v for k, v in secret.items() if k != "stringData"}
    body["data"] = {k: base64.b64encode(v.encode()).decode() for k, v in wanted.items()}
    existing = get_or_none(kube, SECRET, meta["name"], meta["namespace"])
    if existing is None:
        kube.create(SECRET, body, meta["namespace"])
    else:
        # replace (not merge): keys dropped from the credentials must go, e.g. identity when moving to a token
        existing["data"] = body["data"]
        existing.pop("stringData", None)
        if meta.get("labels"):
            existing["metadata"].setdefault("labels", {}).update(meta["labels"])
        kube.replace(SECRET, existing)
    return True


def request_reconcile(kube: KubeClient, kind, name: str, namespace: str) -> None:
    from controllers.runtime.protocol import request_reconcile as request

    try:
        request(kube, kind, name, namespace)
    except NotFound:
        pass


def revision_of(kind, obj: dict) -> str:
    """The revision a sync object reached: the artifact's for a source, the last attempted for a
    Kustomization (as Flux's bootstrap compares them)."""
    if kind.kind == "Kustomization":
        return dig(obj, "status.lastAttemptedRevision") or ""
    return dig(obj, "status.artifact.revision") or ""


def wait_reconciled(kube: KubeClient, kind, name: str, namespace: str, revision: str, *, timeout: float,
                    on_progress: Callable[[str], None] | None = None) -> dict:
    """Wait until ``kind/namespace/name`` is Ready at ``revision`` for its current generation.

    Fails at once when it is suspended, or not Ready at that very revision (a Ready=False from an older
    revision is waited through: the controller has not caught up yet). ClusterError names the object, the
    revision and the last Ready message."""
    label = f"{kind.kind} '{namespace}/{name}'"
    state: dict = {"message": ""}

    def settled(obj: dict) -> bool:
        if (obj.get("spec") or {}).get("suspend"):
            return True
        generation = obj["metadata"].get("generation")
        observed = dig(obj, "status.observedGeneration")
        ready = find_condition(obj, "Ready") or {}
        message = ready.get("message") or ""
        if message != state["message"]:
            state["message"] = message
            if on_progress and message:
                on_progress(message)
        if observed is not None and generation is not None and observed != generation:
            return False
        at_revision = revision_of(kind, obj) == revision
        if ready.get("status") == "True":
            return at_revision
        return ready.get("status") == "False" and at_revision and find_condition(obj, "Reconciling") is None

    try:
        obj = kube.wait_for(kind, name, namespace, settled, timeout=timeout, what=f"{label} at {revision}")
    except NotFound:
        raise ClusterError(f"{label} was not found: it is created by the sync manifests; check they were "
                           "applied") from None
    except TimeoutError:
        last = state["message"] or "no Ready condition yet"
        raise ClusterError(f"timed out waiting for {label} to be reconciled at revision {revision}: {last}") from None
    if (obj.get("spec") or {}).get("suspend"):
        words = "source git" if kind.kind == "GitRepository" else "kustomization"
        raise ClusterError(f"{label} is suspended: resume it ('fluxpy resume {words} {name} -n {namespace}') and "
                           "run bootstrap again")
    ready = find_condition(obj, "Ready") or {}
    if ready.get("status") != "True":
        raise ClusterError(f"{label} not ready at revision {revision}: {ready.get('message') or ready.get('reason')}")
    return obj


def wait_components(kube: KubeClient, namespace: str, components: list[str], *, timeout: float,
                    on_healthy: Callable[[str, str], None] | None = None) -> None:
    """Wait until every component is alive (Deployment Available, or a leader Lease renewed: local
    controller processes have no Pods); ClusterError naming the ones that are not."""
    from controllers.runtime.protocol import component_health

    deadline = time.monotonic() + timeout
    pending = list(components)
    details: dict[str, str] = {}
    while pending:
        for name in list(pending):
            ok, details[name] = component_health(kube, namespace, name)
            if ok:
                pending.remove(name)
                if on_healthy:
                    on_healthy(name, details[name])
        if not pending:
            return
        if time.monotonic() > deadline:
            raise ClusterError("timed out waiting for controllers: "
                               + "; ".join(f"{n}: {details[n]}" for n in pending)
                               + " (with the embedded control plane, start them with 'fluxpy dev up')")
        time.sleep(1)
