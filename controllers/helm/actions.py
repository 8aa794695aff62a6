"""Helm's release actions done by fluxpy: install, upgrade, rollback, uninstall, test, unlock, drift.

The real ``helm`` renders (:func:`controllers.lib.helm_release.render`); fluxpy does the rest the way Helm's
own actions do, so that storage and resources may live in different namespaces (Flux's ``storageNamespace``,
which the ``helm`` CLI cannot do):

- the release revision is written to Helm's storage first as ``pending-install|upgrade|rollback``
  (:class:`controllers.lib.helm_storage.ReleaseStorage`), so a controller killed mid-action leaves a
  release that is unlocked (marked ``failed``) by the next reconciliation;
- hooks run in Helm's order (events, then weight, then name) with Helm's delete policies
  (``before-hook-creation`` by default, ``hook-succeeded``, ``hook-failed``); a Job hook waits for
  Complete, a Pod hook (tests) for phase Succeeded; each hook's ``last_run`` is recorded in the release;
- the chart's ``crds/`` are applied first as the CRD policy says (Create: only missing ones, CreateReplace:
  all; Skip: none), then the manifest with server-side apply as ``helm-controller`` after a dry run of the
  whole set (an invalid object applies nothing); objects of the previous revision that are gone from the
  manifest are deleted (unless ``helm.sh/resource-policy: keep``);
- unless ``disableWait``, every object must become Ready (kstatus; Jobs only unless ``disableWaitForJobs``);
- then ``deployed`` (the previous deployed revision ``superseded``), or ``failed`` with Helm's description;
  revisions beyond ``maxHistory`` are deleted from storage.

Every failure is an :class:`ActionError` carrying the release revision it stored (None: storage untouched).
"""
from __future__ import annotations

import copy
import dataclasses
import datetime
import time
from typing import Callable, Iterable, Mapping

from controllers.api import meta
from controllers.api.objects import dig
from controllers.lib.health import StatusReader, check_health
from controllers.lib.helm_release import (FIELD_MANAGER, apply_options, namespaced_in, owned_by_release,
                                          release_objects)
from controllers.lib.helm_storage import (PENDING_STATUSES, STATUS_DEPLOYED, STATUS_FAILED, STATUS_PENDING_INSTALL,
                                          STATUS_PENDING_ROLLBACK, STATUS_PENDING_UPGRADE, STATUS_SUPERSEDED,
                                          STATUS_UNINSTALLED, STATUS_UNINSTALLING, ReleaseStorage, status_of)
from controllers.runtime.apply import CREATED, ApplyError, ChangeSet, ObjectRef, ResourceManager
from controllers.runtime.kube import KubeClient, KubeError, NotFound

KEEP_POLICY_ANNOTATION, KEEP = "helm.sh/resource-policy", "keep"
HOOK_BEFORE_CREATION, HOOK_SUCCEEDED, HOOK_FAILED = "before-hook-creation", "hook-succeeded", "hook-failed"
CRDS_SKIP, CRDS_CREATE, CRDS_CREATE_REPLACE = "Skip", "Create", "CreateReplace"


class ActionError(Exception):
    """A Helm action failed; ``release`` is the revision it stored (failed), None when storage is untouched."""

    def __init__(self, message: str, release: dict | None = None):
        super().__init__(message)
        self.message, self.release = message, release


@dataclasses.dataclass
class ActionOptions:
    """How one action runs (from the HelmRelease's install/upgrade/rollback/uninstall/test settings)."""

    timeout: float = 300.0
    disable_wait: bool = False
    disable_wait_for_jobs: bool = False
    disable_hooks: bool = False
    force: bool = False
    cleanup_on_fail: bool = False
    take_ownership: bool = True
    crds: str = CRDS_SKIP
    max_history: int = 5
    propagation: str = "Background"
    keep_history: bool = False
    create_namespace: bool = False


def helm_now() -> str:
    """Now, as Helm writes times (RFC 3339 with fractions, UTC)."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Releaser:
    """Helm actions on release ``name`` in ``namespace`` with ``client`` (the HelmRelease's, impersonated or
    remote) and ``storage``; ``owner`` is the HelmRelease (``name``, ``namespace``) for Flux's origin labels."""

    def __init__(self, client: KubeClient, storage: ReleaseStorage, name: str, namespace: str, *,
                 health_interval: float = 2.0, hook_interval: float = 0.5):
        self.client, self.storage, self.name, self.namespace = client, storage, name, namespace
        self.health_interval, self.hook_interval = health_interval, hook_interval
        self.manager = ResourceManager(client, field_manager=FIELD_MANAGER, owner_group=meta.HELM_GROUP)
        self._namespaced = namespaced_in(client)

    # ------------------------------------------------------------------ objects

    def objects(self, release: Mapping) -> list[dict]:
        """The release's manifest as applied (namespaces defaulted, Helm's ownership metadata)."""
        return release_objects(release.get("manifest") or "", self.name, self.namespace, self._namespaced)

    def _refs(self, objects: Iterable[Mapping]) -> list[ObjectRef]:
        return [ObjectRef.from_object(o, namespaced=bool(dig(o, "metadata.namespace"))) for o in objects]

    apply_options = staticmethod(apply_options)

    # ------------------------------------------------------------------ install / upgrade / rollback

    def install(self, release: dict, options: ActionOptions, crds: list[dict], *, replace: bool = False) -> dict:
        """``helm install`` of a rendered release; the stored deployed revision."""
        latest = self.storage.latest(self.name)
        if latest is not None and not (replace or status_of(latest) == STATUS_UNINSTALLED):
            raise ActionError("cannot re-use a name that is still in use")
        if options.create_namespace:
            self._create_namespace()
        release = self._prepared(release, (int(latest["version"]) if latest else 0) + 1, STATUS_PENDING_INSTALL,
                                 "Initial install underway")
        return self._deploy(release, None, options, crds, events=("pre-install", "post-install"),
                            done="Install complete", failed=f"Release \"{self.name}\" failed")

    def upgrade(self, release: dict, options: ActionOptions, crds: list[dict]) -> dict:
        """``helm upgrade`` to a rendered release; the stored deployed revision."""
        latest = self.storage.latest(self.name)
        current = self.storage.deployed(self.name) or latest
        version = (int(latest["version"]) if latest else 0) + 1
        release = self._prepared(release, version, STATUS_PENDING_UPGRADE, "Preparing upgrade",
                                 first_deployed=dig(current or {}, "info.first_deployed"))
        return self._deploy(release, current, options, crds, events=("pre-upgrade", "post-upgrade"),
                            done="Upgrade complete", failed=f"Upgrade \"{self.name}\" failed")

    def rollback(self, target: dict, options: ActionOptions) -> dict:
        """``helm rollback`` to the stored revision ``target``; the new deployed revision."""
        latest = self.storage.latest(self.name)
        current = self.storage.deployed(self.name) or latest
        release = copy.deepcopy(target)
        release = self._prepared(release, int(latest["version"]) + 1, STATUS_PENDING_ROLLBACK,
                                 f"Rollback to {target['version']}", first_deployed=dig(target, "info.first_deployed"))
        return self._deploy(release, current, options, [], events=("pre-rollback", "post-rollback"),
                            done=f"Rollback to {target['version']}", failed=f"Rollback \"{self.name}\" failed")

    def _create_namespace(self) -> None:
        """``install.createNamespace``: the release namespace, as ``helm install --create-namespace`` makes it."""
        from controllers.api.builtin import NAMESPACE

        try:
            self.client.get(NAMESPACE, self.namespace)
        except NotFound:
            try:
                self.client.create(NAMESPACE, {"apiVersion": "v1", "kind": "Namespace", "metadata": {
                    "name": self.namespace, "labels": {"name": self.namespace}}})
            except KubeError as exc:
                raise ActionError(f"failed to create namespace: {exc.message}") from None

    def _prepared(self, release: dict, version: int, status: str, description: str, *,
                  first_deployed: str | None = None) -> dict:
        now = helm_now()
        release = copy.deepcopy(release)
        release.update(name=self.name, namespace=self.namespace, version=version)
        info = dict(release.get("info") or {})
        info.update(first_deployed=first_deployed or now, last_deployed=now, status=status, description=description)
        info.pop("deleted", None)
        release["info"] = info
        for hook in release.get("hooks") or []:
            hook["last_run"] = {"phase": ""}
        return release

    def _deploy(self, release: dict, current: dict | None, options: ActionOptions, crds: list[dict], *,
                events: tuple[str, str], done: str, failed: str) -> dict:
        self.storage.create(release)
        changes = ChangeSet()
        try:
            self._apply_crds(crds, options.crds)
            if not options.disable_hooks:
                self.run_hooks(release, events[0], options.timeout)
            objects = self.objects(release)
            if not options.take_ownership:
                self._check_ownership(objects)
            changes = self.manager.apply_all_staged(objects, self.apply_options(options.force))
            if current is not None:
                self._delete_removed(current, objects)
            if not options.disable_wait:
                self._wait(objects, options)
            if not options.disable_hooks:
                self.run_hooks(release, events[1], options.timeout)
        except (ActionError, ApplyError, KubeError, TimeoutError) as exc:
            message = getattr(exc, "message", "") or str(exc)
            if options.cleanup_on_fail:
                self._cleanup(changes if not isinstance(exc, ApplyError) else exc.changes)
            release["info"].update(status=STATUS_FAILED, description=f"{failed}: {message}")
            self._store(release)
            raise ActionError(message, release) from None
        for older in self.storage.history(self.name):
            if older["version"] != release["version"] and status_of(older) in (STATUS_DEPLOYED, *PENDING_STATUSES):
                older["info"]["status"] = STATUS_SUPERSEDED
                self._store(older)
        release["info"].update(status=STATUS_DEPLOYED, description=done)
        self._store(release)
        self._prune_history(options.max_history)
        return release

    def _store(self, release: dict) -> None:
        self.storage.update(release)

    def _apply_crds(self, crds: list[dict], policy: str) -> None:
        if not crds or policy == CRDS_SKIP:
            return
        wanted = crds
        if policy == CRDS_CREATE:
            wanted = [c for c in crds if not self._exists(c)]
        if wanted:
            self.manager.apply_all_staged(copy.deepcopy(wanted), self.apply_options())

    def _exists(self, obj: Mapping) -> bool:
        return self._live(obj) is not None

    def _live(self, obj: Mapping) -> dict | None:
        try:
            rt = self.client.resource_for(obj["apiVersion"], obj["kind"])
            return self.client.get(rt, dig(obj, "metadata.name"), dig(obj, "metadata.namespace") if rt.namespaced
                                   else None)
        except NotFound:
            return None

    def _check_ownership(self, objects: list[dict]) -> None:
        """Helm's refusal to adopt objects of another owner (``disableTakeOwnership``)."""
        for obj in objects:
            live = self._live(obj)
            if live is not None and not owned_by_release(live, self.name, self.namespace):
                where = f" in namespace \"{dig(obj, 'metadata.namespace')}\"" if dig(obj, "metadata.namespace") else ""
                raise ActionError(f"Unable to continue with install: {obj['kind']} \"{dig(obj, 'metadata.name')}\""
                                  f"{where} exists and cannot be imported into the current release: invalid "
                                  f"ownership metadata")

    def _delete_removed(self, current: dict, objects: list[dict]) -> None:
        kept = set(self._refs(objects))
        for old in self.objects(current):
            ref = self._refs([old])[0]
            if ref in kept or (dig(old, "metadata.annotations") or {}).get(KEEP_POLICY_ANNOTATION) == KEEP:
                continue
            self.manager.delete(ref)

    def _wait(self, objects: list[dict], options: ActionOptions) -> None:
        refs = [r for r in self._refs(objects) if not (r.kind == "Job" and options.disable_wait_for_jobs)]
        if not refs:
            return
        result = check_health(StatusReader(self.client), refs, timeout=options.timeout,
                              interval=self.health_interval, fail_fast=True)
        if not result.healthy:
            raise ActionError(result.message)

    def _cleanup(self, changes: ChangeSet) -> None:
        for entry in changes:
            if entry.action == CREATED:
                try:
                    self.manager.delete(entry.ref)
                except KubeError:
                    pass

    def _prune_history(self, max_history: int) -> None:
        if max_history <= 0:
            return
        revisions = self.storage.history(self.name)
        deployed = {r["version"] for r in revisions if status_of(r) == STATUS_DEPLOYED}
        for old in revisions[:max(0, len(revisions) - max_history)]:
            if old["version"] not in deployed:
                self.storage.delete(self.name, old["version"])

    # ------------------------------------------------------------------ hooks and tests

    def run_hooks(self, release: dict, event: str, timeout: float, *,
                  select: Callable[[dict], bool] = lambda hook: True) -> None:
        """Run the release's hooks for ``event`` (Helm's order and delete policies); the first failure is an
        ActionError. Each hook's ``last_run`` is updated in ``release`` (not stored)."""
        hooks = [h for h in release.get("hooks") or [] if event in (h.get("events") or []) and select(h)]
        hooks.sort(key=lambda h: (int(h.get("weight") or 0), h.get("name") or ""))
        for hook in hooks:
            policies = hook.get("delete_policies") or [HOOK_BEFORE_CREATION]
            objects = release_objects(hook.get("manifest") or "", self.name, self.namespace, self._namespaced)
            if not objects:
                continue
            obj = objects[0]
            ref = self._refs([obj])[0]
            if HOOK_BEFORE_CREATION in policies:
                self._delete_and_wait(ref, timeout)
            hook["last_run"] = {"started_at": helm_now(), "phase": "Running"}
            try:
                self.client.apply(obj, field_manager=FIELD_MANAGER)
                failure = self._wait_hook(obj, ref, timeout)
            except KubeError as exc:
                failure = exc.message
            hook["last_run"].update(completed_at=helm_now(), phase="Failed" if failure else "Succeeded")
            if failure:
                if HOOK_FAILED in policies:
                    self._delete_quietly(ref)
                raise ActionError(f"{event} hook {ref.subject} failed: {failure}")
            if HOOK_SUCCEEDED in policies:
                self._delete_quietly(ref)

    def _wait_hook(self, obj: dict, ref: ObjectRef, timeout: float) -> str:
        """'' when the hook completed, else why not: a Job until Complete/Failed, a Pod until
        Succeeded/Failed; anything else is done once created."""
        if ref.kind not in ("Job", "Pod"):
            return ""
        rt = self.client.resource_for(obj["apiVersion"], obj["kind"])
        deadline = time.monotonic() + timeout
        while True:
            live = self.client.get(rt, ref.name, ref.namespace)
            if ref.kind == "Pod":
                phase = dig(live, "status.phase") or ""
                if phase == "Succeeded":
                    return ""
                if phase == "Failed":
                    return f"pod {ref.name} failed"
            else:
                for c in dig(live, "status.conditions", []) or []:
                    if c.get("status") == "True" and c.get("type") == "Complete":
                        return ""
                    if c.get("status") == "True" and c.get("type") == "Failed":
                        return f"job {ref.name} failed: {c.get('reason') or c.get('message') or 'Failed'}"
            if time.monotonic() >= deadline:
                return "timed out waiting for the condition"
            time.sleep(self.hook_interval)

    def _delete_and_wait(self, ref: ObjectRef, timeout: float) -> None:
        self._delete_quietly(ref)
        try:
            self.manager.wait_for_termination([ref], timeout=timeout, interval=self.hook_interval)
        except TimeoutError as exc:
            raise ActionError(str(exc)) from None

    def _delete_quietly(self, ref: ObjectRef) -> None:
        try:
            self.manager.delete(ref, propagation="Background")
        except KubeError:
            pass

    def test(self, release: dict, timeout: float, filters: list[dict] | None = None) -> tuple[dict, str]:
        """``helm test``: the release's test hooks (``filters`` as Flux's), recorded in storage; the release
        and the failure ('' when every test passed)."""
        release = copy.deepcopy(release)
        failure = ""
        try:
            self.run_hooks(release, "test", timeout, select=lambda h: test_selected(h.get("name") or "", filters))
        except (ActionError, KubeError) as exc:
            failure = getattr(exc, "message", "") or str(exc)
        self._store(release)
        return release, failure

    # ------------------------------------------------------------------ uninstall and unlock

    def uninstall(self, release: dict, options: ActionOptions) -> dict:
        """``helm uninstall``: pre-delete hooks, the manifest's objects deleted (CRDs of ``crds/`` kept), the
        deletion waited for, post-delete hooks; the revision marked ``uninstalled`` (``keepHistory``) or every
        revision deleted from storage. Returns the uninstalled revision."""
        release = copy.deepcopy(release)
        release["info"].update(status=STATUS_UNINSTALLING, deleted=helm_now())
        self._store(release)
        try:
            if not options.disable_hooks:
                self.run_hooks(release, "pre-delete", options.timeout)
            objects = [o for o in self.objects(release)
                       if (dig(o, "metadata.annotations") or {}).get(KEEP_POLICY_ANNOTATION) != KEEP]
            refs = self._refs(objects)
            self.manager.delete_all(refs, propagation=options.propagation.capitalize())
            if not options.disable_wait:
                self.manager.wait_for_termination(refs, timeout=options.timeout, interval=self.hook_interval)
            if not options.disable_hooks:
                self.run_hooks(release, "post-delete", options.timeout)
        except (ActionError, ApplyError, KubeError, TimeoutError) as exc:
            message = getattr(exc, "message", "") or str(exc)
            release["info"].update(status=STATUS_FAILED, description=f"Uninstallation failed: {message}")
            self._store(release)
            raise ActionError(message, release) from None
        release["info"].update(status=STATUS_UNINSTALLED, description="Uninstallation complete")
        if options.keep_history:
            self._store(release)
        else:
            for old in self.storage.history(self.name):
                self.storage.delete(self.name, old["version"])
        return release

    def unlock(self, release: dict) -> dict:
        """A release stuck in ``pending-*`` (a killed action) marked ``failed``, as Flux's unlock does."""
        release = copy.deepcopy(release)
        stale = status_of(release)
        release["info"].update(status=STATUS_FAILED, description=f"Release unlocked from stale '{stale}' state")
        self._store(release)
        return release

    # ------------------------------------------------------------------ drift

    def diff(self, release: Mapping, ignore: list[dict] | None = None) -> list["Drift"]:
        """What differs between the release's manifest and the cluster: objects deleted (``removed``) or
        changed (``changed``) by someone else, after the ``driftDetection.ignore`` rules."""
        drifts = []
        for obj in self.objects(release):
            entry, live, merged = self.manager.diff(obj, self.apply_options())
            if entry.action == CREATED:
                drifts.append(Drift(entry.ref, "removed", obj))
            elif live is not None and merged is not None:
                paths = ignored_paths(ignore, obj)
                live, merged = strip_paths(live, paths), strip_paths(merged, paths)
                counts = count_changes(_quiet(live), _quiet(merged))
                if any(counts):
                    drifts.append(Drift(entry.ref, "changed", obj, live, merged, counts))
        return drifts

    def correct(self, drifts: list["Drift"]) -> ChangeSet:
        """Re-apply the drifted objects."""
        if not drifts:
            return ChangeSet()
        return self.manager.apply_all([copy.deepcopy(d.desired) for d in drifts], self.apply_options())


@dataclasses.dataclass
class Drift:
    """One object that differs from the release: ``removed`` or ``changed`` (with the live and merged objects
    and Flux's counts of additions, changes, removals)."""

    ref: ObjectRef
    kind: str
    desired: dict
    live: dict | None = None
    merged: dict | None = None
    counts: tuple[int, int, int] = (0, 0, 0)

    def __str__(self) -> str:
        if self.kind == "removed":
            return f"{self.ref.subject} removed"
        added, changed, removed = self.counts
        return f"{self.ref.subject} changed ({added} additions, {changed} changes, {removed} removals)"


def test_selected(name: str, filters: list[dict] | None) -> bool:
    """Flux's test filters: an excluded name never runs; with any include, only included names run."""
    includes = [f for f in filters or [] if not f.get("exclude")]
    if any(f.get("exclude") and f.get("name") == name for f in filters or []):
        return False
    return not includes or any(f.get("name") == name for f in includes)


_NOISE = ("managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink")


def _quiet(obj: Mapping | None) -> dict:
    obj = copy.deepcopy(dict(obj or {}))
    for key in _NOISE:
        (obj.get("metadata") or {}).pop(key, None)
    obj.pop("status", None)
    return obj


def count_changes(live, merged) -> tuple[int, int, int]:
    """(additions, changes, removals) of leaf values from ``live`` to ``merged`` (as a JSON patch counts)."""
    if isinstance(live, dict) and isinstance(merged, dict):
        totals = [0, 0, 0]
        for key in set(live) | set(merged):
            if key not in live:
                totals[0] += 1
            elif key not in merged:
                totals[2] += 1
            else:
                for i, n in enumerate(count_changes(live[key], merged[key])):
                    totals[i] += n
        return tuple(totals)  # type: ignore[return-value]
    return (0, 0, 0) if live == merged else (0, 1, 0)


def ignored_paths(rules: list[dict] | None, obj: Mapping) -> list[str]:
    """The JSON pointers of the ``driftDetection.ignore`` rules whose target matches ``obj``."""
    paths: list[str] = []
    for rule in rules or []:
        if _selected(rule.get("target"), obj):
            paths += rule.get("paths") or []
    return paths


def _selected(target: Mapping | None, obj: Mapping) -> bool:
    import re

    if not target:
        return True
    group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
    values = {"group": group, "version": version, "kind": obj.get("kind"), "name": dig(obj, "metadata.name"),
              "namespace": dig(obj, "metadata.namespace") or ""}
    for key, actual in values.items():
        wanted = target.get(key)
        if wanted and not re.fullmatch(str(wanted), str(actual or "")):
            return False
    for key, field in (("labelSelector", "labels"), ("annotationSelector", "annotations")):
        for term in filter(None, str(target.get(key) or "").split(",")):
            name, _, value = term.partition("=")
            if (dig(obj, f"metadata.{field}") or {}).get(name.strip()) != value.strip():
                return False
    return True


def strip_paths(obj: Mapping, pointers: Iterable[str]) -> dict:
    """``obj`` without the values at the JSON pointers (missing ones ignored)."""
    obj = copy.deepcopy(dict(obj))
    for pointer in pointers:
        parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer.lstrip("/").split("/")]
        node = obj
        for part in parts[:-1]:
            node = node.get(part) if isinstance(node, dict) else (
                node[int(part)] if isinstance(node, list) and part.isdigit() and int(part) < len(node) else None)
            if node is None:
                break
        else:
            last = parts[-1]
            if isinstance(node, dict):
                node.pop(last, None)
            elif isinstance(node, list) and last.isdigit() and int(last) < len(node):
                node.pop(int(last))
    return obj


def summarize(drifts: list[Drift]) -> str:
    """Flux's SummarizeDiffSet: one line per drifted object."""
    return "\n".join(str(d) for d in drifts)

