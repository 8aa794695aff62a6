"""The server-side apply engine (what Flux's fluxcd/pkg/ssa is): validate, apply in stages, diff, delete.

One engine for everyone: the kustomize-controller applies a Kustomization's objects with it (field manager
``kustomize-controller``, owner labels ``kustomize.toolkit.fluxcd.io/name|namespace``), ``fluxpy install`` and
bootstrap apply their manifests with it (field manager ``flux``, :func:`apply_staged`).

:meth:`ResourceManager.apply_all_staged` works as Flux's ``ApplyAllStaged`` with one difference that makes a
bad commit harmless: the WHOLE set is validated with a server-side dry run before anything is applied, so an
invalid object leaves the cluster untouched and the error names the object and the apiserver's message. Only
an object that cannot be validated before an earlier stage exists (a custom resource of a CRD in the same set,
an object in a Namespace the set creates) is validated after that stage, just before its own stage.

Stages, as Flux: cluster definitions (CRDs, Namespaces, ClusterRoles), applied and waited for (CRDs
Established, Namespaces not terminating); class kinds (``*Class``: StorageClass, IngressClass, ...), applied and
waited for; then everything else. Inside a stage objects go in Flux's kind order.

"Unchanged" is decided without a GET per object: the dry run returns the live resourceVersion (None when the
object does not exist) and a no-op apply does not change it, so an object is ``unchanged`` when its
resourceVersion survives the apply. A caller that keeps a cache of live objects (a watch) passes ``live`` and
gets Flux's comparison instead (dry-run result vs live, :func:`has_drifted`): unchanged objects then cost one
request (the dry run) and are not applied at all.
"""
from __future__ import annotations

import base64
import binascii
import copy
import dataclasses
import re
import ssl
import time
from typing import Callable, Iterable, Mapping

from controllers.api import meta
from controllers.api.builtin import CRD, NAMESPACE
from controllers.api.objects import find_condition
from controllers.api.types import ResourceType
from controllers.runtime.kube import Conflict, Invalid, KubeClient, KubeError, NotFound
from controllers.runtime.outcomes import RetryableError

# --- Flux's field managers, owner labels and annotations -------------------------------------------------

#: The field manager of Flux's kustomize-controller, so a cluster can move between Flux and fluxpy.
FIELD_MANAGER = "kustomize-controller"
#: The field manager the flux CLI uses (install, bootstrap).
CLI_FIELD_MANAGER = "flux"
#: The prefix of the owner labels and of the annotations below.
OWNER_GROUP = meta.KUSTOMIZE_GROUP
NAME_LABEL = f"{OWNER_GROUP}/name"
NAMESPACE_LABEL = f"{OWNER_GROUP}/namespace"
SSA_ANNOTATION = f"{OWNER_GROUP}/ssa"
FORCE_ANNOTATION = f"{OWNER_GROUP}/force"
PRUNE_ANNOTATION = f"{OWNER_GROUP}/prune"
RECONCILE_ANNOTATION = f"{OWNER_GROUP}/reconcile"
SSA_OVERRIDE, SSA_MERGE, SSA_IF_NOT_PRESENT, SSA_IGNORE = "Override", "Merge", "IfNotPresent", "Ignore"
ENABLED, DISABLED = "enabled", "disabled"
LAST_APPLIED_ANNOTATION = "kubectl.kubernetes.io/last-applied-configuration"

# --- ChangeSet actions, as Flux reports them ---------------------------------------------------------------

CREATED, CONFIGURED, UNCHANGED, DELETED, SKIPPED, UNKNOWN = (
    "created", "configured", "unchanged", "deleted", "skipped", "unknown")
#: the actions that change the cluster (what Flux logs and puts in events)
CHANGING_ACTIONS = (CREATED, CONFIGURED, DELETED)

#: Flux's apply order: these kinds first (in this order), webhooks last, everything else in between.
KIND_ORDER_FIRST = (
    "CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterClass", "RuntimeClass", "PriorityClass",
    "StorageClass", "VolumeSnapshotClass", "IngressClass", "GatewayClass", "ClusterRoleBinding", "ResourceQuota",
    "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret", "Service", "LimitRange", "Deployment",
    "StatefulSet", "CronJob", "PodDisruptionBudget",
)
KIND_ORDER_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_KIND_INDEX = {**{k: i - len(KIND_ORDER_FIRST) for i, k in enumerate(KIND_ORDER_FIRST)},
               **{k: i + 1 for i, k in enumerate(KIND_ORDER_LAST)}}

_RBAC_GROUP = "rbac.authorization.k8s.io"
_RBAC_KINDS = ("Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding")
_IMMUTABLE = re.compile(r"is\simmutable|immutable\sfield")


# --- identities -----------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ObjectRef:
    """An object's identity (Flux's ObjMetadata) plus its API version, which identity ignores."""

    group: str
    kind: str
    namespace: str
    name: str
    version: str = dataclasses.field(default="", compare=False)

    @classmethod
    def from_object(cls, obj: Mapping, *, namespaced: bool = True) -> "ObjectRef":
        group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
        meta_ = obj.get("metadata") or {}
        return cls(group, str(obj.get("kind") or ""), (meta_.get("namespace") or "") if namespaced else "",
                   str(meta_.get("name") or ""), version)

    @classmethod
    def from_id(cls, object_id: str, version: str = "") -> "ObjectRef":
        """Parse an inventory id ``<namespace>_<name>_<group>_<Kind>``; raise ValueError when malformed."""
        namespace, sep, rest = object_id.partition("_")
        name_group, sep2, kind = rest.rpartition("_")
        name, sep3, group = name_group.rpartition("_")
        name = name.replace("__", ":")
        if not (sep and sep2 and sep3 and kind and name) or "_" in name:
            raise ValueError(f"unable to parse stored object metadata: {object_id}")
        return cls(group, kind, namespace, name, version)

    @property
    def id(self) -> str:
        """Flux's inventory id; colons in RBAC names are written as ``__``."""
        name = self.name.replace(":", "__") if self.group == _RBAC_GROUP and self.kind in _RBAC_KINDS else self.name
        return f"{self.namespace}_{name}_{self.group}_{self.kind}"

    @property
    def subject(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` when cluster-scoped), as Flux prints objects."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def sort_key(self) -> tuple:
        """Flux's apply order: kind rank, group, kind, namespace, name."""
        return (_KIND_INDEX.get(self.kind, 0), self.group, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        return self.subject


def object_id(obj: dict) -> str:
    """``Kind/namespace/name`` of a manifest, before its kind is known to be namespaced."""
    return ObjectRef.from_object(obj).subject


@dataclasses.dataclass(frozen=True)
class ChangeSetEntry:
    """What happened to one object: created, configured, unchanged, deleted, skipped or unknown."""

    ref: ObjectRef
    action: str

    @property
    def subject(self) -> str:
        return self.ref.subject

    def __str__(self) -> str:
        return f"{self.ref.subject} {self.action}"


#: the name ``fluxpy install`` used for a change entry
Change = ChangeSetEntry


class ChangeSet(list):
    """The entries of an apply or delete, in order; ``str()`` is Flux's one line per entry."""

    def __str__(self) -> str:
        return "\n".join(str(e) for e in self)

    def changed(self) -> "ChangeSet":
        """The entries that changed the cluster (created, configured, deleted)."""
        return ChangeSet(e for e in self if e.action in CHANGING_ACTIONS)

    def refs(self, *, skipped: bool = False) -> list[ObjectRef]:
        return [e.ref for e in self if skipped or e.action != SKIPPED]

    def to_map(self) -> dict[str, str]:
        return {e.subject: e.action for e in self}

    def to_grouped_map(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for e in self:
            grouped.setdefault(e.action, []).append(e.subject)
        return grouped


@dataclasses.dataclass(frozen=True)
class Owner:
    """The Kustomization that owns applied objects, recorded in Flux's owner labels."""

    name: str
    namespace: str
    group: str = OWNER_GROUP

    @property
    def labels(self) -> dict[str, str]:
        return {f"{self.group}/name": self.name, f"{self.group}/namespace": self.namespace}

    def owns(self, obj: Mapping) -> bool:
        """Whether the object's owner labels name this owner."""
        labels = (obj.get("metadata") or {}).get("labels") or {}
        return all(labels.get(k) == v for k, v in self.labels.items())

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


# --- errors ---------------------------------------------------------------------------------------------


class ApplyError(RetryableError):
    """Applying failed; ``changes`` holds what was applied before the failure (empty when nothing was).

    The message is Flux's: the error, then the objects changed before it, one per line.
    """

    default_reason = meta.RECONCILIATION_FAILED_REASON

    def __init__(self, message: str, *, changes: ChangeSet | None = None, reason: str | None = None):
        self.changes = changes if changes is not None else ChangeSet()
        self.error = message
        changed = self.changes.changed()
        super().__init__(f"{message}\n{changed}" if changed else message, reason=reason)

    def with_changes(self, changes: ChangeSet) -> "ApplyError":
        return type(self)(self.error, changes=changes, reason=self.reason)


class DryRunError(ApplyError):
    """The server-side dry run refused objects; nothing of their stage (or of the set) was applied."""


def dry_run_message(ref: ObjectRef, exc: KubeError) -> str:
    """Flux's message for a failed dry run, naming the object and quoting the apiserver."""
    if isinstance(exc, NotFound):
        if not ref.namespace:
            return f"{ref.subject} namespace not specified: {exc.message}"
        return f"{ref.subject} not found: {exc.message}"
    reason = (exc.body or {}).get("reason") if isinstance(exc.body, dict) else exc.reason
    reason = f" ({reason})" if reason else ""
    return f"{ref.subject} dry-run failed{reason}: {exc.message}"


# --- options --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class FieldManagerMatch:
    """Managed-fields entries to take over: ``name`` (a prefix unless ``exact``) with this ``operation``."""

    name: str
    operation: str  # "Apply" or "Update"
    exact: bool = False

    def matches(self, entry: Mapping) -> bool:
        if entry.get("operation") != self.operation or entry.get("subresource"):
            return False
        manager = entry.get("manager") or ""
        return manager == self.name if self.exact else manager.startswith(self.name)


@dataclasses.dataclass(frozen=True)
class Cleanup:
    """Metadata removed from live objects before applying, and field managers whose fields are taken over."""

    annotations: tuple[str, ...] = ()
    labels: tuple[str, ...] = ()
    field_managers: tuple[FieldManagerMatch, ...] = ()
    #: objects carrying any of these labels/annotations (on the manifest or live) are left alone
    exclusions: Mapping[str, str] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class ApplyOptions:
    """How a set is applied (Flux's ssa.ApplyOptions)."""

    #: recreate objects whose immutable fields changed
    force: bool = False
    #: objects (manifest or live) carrying any of these are skipped
    exclusions: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: objects whose manifest carries any of these are applied only when they do not exist
    if_not_present: Mapping[str, str] = dataclasses.field(default_factory=dict)
    #: objects (manifest or live) carrying any of these are recreated on immutable-field errors
    force_selector: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cleanup: Cleanup | None = None
    #: polling interval and timeout of the waits between stages (seconds)
    wait_interval: float = 2.0
    wait_timeout: float = 60.0


def kustomization_apply_options(*, force: bool = False, field_manager: str = FIELD_MANAGER,
                                disallowed_field_managers: Iterable[str] = (), wait_timeout: float = 60.0
                                ) -> ApplyOptions:
    """The options Flux's kustomize-controller applies with: its annotations, and the take-over of fields set
    by kubectl (client- or server-side), ``before-first-apply`` and the pre-SSA controller."""
    managers = [FieldManagerMatch("kubectl", "Apply"), FieldManagerMatch("kubectl", "Update"),
                FieldManagerMatch("before-first-apply", "Update"), FieldManagerMatch(field_manager, "Update")]
    for name in disallowed_field_managers:
        managers += [FieldManagerMatch(name, "Apply"), FieldManagerMatch(name, "Update")]
    return ApplyOptions(
        force=force,
        exclusions={RECONCILE_ANNOTATION: DISABLED, SSA_ANNOTATION: SSA_IGNORE},
        if_not_present={SSA_ANNOTATION: SSA_IF_NOT_PRESENT},
        force_selector={FORCE_ANNOTATION: ENABLED},
        cleanup=Cleanup(
            annotations=(LAST_APPLIED_ANNOTATION, f"{OWNER_GROUP}/checksum", "fluxcd.io/sync-checksum"),
            labels=("fluxcd.io/sync-gc-mark",),
            field_managers=tuple(managers),
            exclusions={SSA_ANNOTATION: SSA_MERGE},
        ),
        wait_timeout=wait_timeout,
    )


# --- pure helpers ---------------------------------------------------------------------------------------


def any_in_metadata(obj: Mapping | None, selectors: Mapping[str, str]) -> bool:
    """Whether a label or annotation of ``obj`` has a selector's key and (case-insensitively) its value."""
    if not obj or not selectors:
        return False
    meta_ = obj.get("metadata") or {}
    labels, annotations = meta_.get("labels") or {}, meta_.get("annotations") or {}
    return any((labels.get(k) and str(labels[k]).lower() == v.lower())
               or (annotations.get(k) and str(annotations[k]).lower() == v.lower())
               for k, v in selectors.items())


def is_cluster_definition(obj: Mapping) -> bool:
    """CRDs, Namespaces and ClusterRoles: applied (and waited for) before anything else."""
    kind, api_version = obj.get("kind"), str(obj.get("apiVersion") or "")
    return ((kind == "CustomResourceDefinition" and api_version.startswith("apiextensions.k8s.io/"))
            or (kind == "Namespace" and api_version == "v1")
            or (kind == "ClusterRole" and api_version.startswith(f"{_RBAC_GROUP}/")))


def is_class_definition(obj: Mapping) -> bool:
    """StorageClass, IngressClass, GatewayClass, ...: applied after the cluster definitions."""
    return str(obj.get("kind") or "").endswith("Class")


def stage_of(obj: Mapping) -> int:
    """0: cluster definitions, 1: class definitions, 2: the rest."""
    return 0 if is_cluster_definition(obj) else 1 if is_class_definition(obj) else 2


_POD_TEMPLATES = {"Pod": ("spec",), "Deployment": ("spec", "template", "spec"),
                  "StatefulSet": ("spec", "template", "spec"), "DaemonSet": ("spec", "template", "spec"),
                  "ReplicaSet": ("spec", "template", "spec"), "Job": ("spec", "template", "spec"),
                  "CronJob": ("spec", "jobTemplate", "spec", "template", "spec")}


def normalize(obj: Mapping) -> dict:
    """A copy of a manifest as Flux normalises it before applying: no ``status`` (except for CRDs) or
    ``creationTimestamp``, Secret ``stringData`` moved into ``data``, default port protocols, and an invalid CRD
    conversion ``caBundle`` removed."""
    obj = copy.deepcopy(dict(obj))
    meta_ = obj.get("metadata")
    if isinstance(meta_, dict):
        meta_.pop("creationTimestamp", None)
    kind, api_version = obj.get("kind"), obj.get("apiVersion")
    if kind != "CustomResourceDefinition":
        obj.pop("status", None)
    if kind == "Secret" and api_version == "v1" and obj.get("stringData"):
        data = dict(obj.get("data") or {})
        for key, value in obj.pop("stringData").items():
            data[key] = base64.b64encode(str(value).encode()).decode()
        obj["data"] = data
    path = _POD_TEMPLATES.get(kind or "")
    if path and api_version in ("v1", "apps/v1", "batch/v1"):
        spec = obj
        for part in path:
            spec = spec.get(part) if isinstance(spec, dict) else None
        containers = spec.get("containers") if isinstance(spec, dict) else None
        for container in containers if isinstance(containers, list) else []:
            for port in container.get("ports") or [] if isinstance(container, dict) else []:
                if isinstance(port, dict) and not port.get("protocol"):
                    port["protocol"] = "TCP"
    if kind == "Service" and api_version == "v1":
        for port in (obj.get("spec") or {}).get("ports") or []:
            if isinstance(port, dict) and not port.get("protocol"):
                port["protocol"] = "TCP"
    if kind == "CustomResourceDefinition":
        client_config = (((obj.get("spec") or {}).get("conversion") or {}).get("webhook") or {}).get("clientConfig")
        if isinstance(client_config, dict) and client_config.get("caBundle") and \
                not _valid_ca_bundle(client_config["caBundle"]):
            del client_config["caBundle"]
    return obj


def _valid_ca_bundle(value: str) -> bool:
    try:
        ssl.create_default_context(cadata=base64.b64decode(value, validate=True).decode())
        return True
    except (binascii.Error, UnicodeDecodeError, ssl.SSLError, ValueError):
        return False


_DIFF_IGNORED_TOP = ("metadata", "status")


def has_drifted(live: Mapping, dry_run: Mapping) -> bool:
    """Flux's drift test: labels, annotations, or anything outside ``metadata``/``status`` differs."""
    if not dry_run.get("metadata", {}).get("resourceVersion"):
        return True
    live_meta, dry_meta = live.get("metadata") or {}, dry_run.get("metadata") or {}
    if (live_meta.get("labels") or {}) != (dry_meta.get("labels") or {}):
        return True
    if (live_meta.get("annotations") or {}) != (dry_meta.get("annotations") or {}):
        return True
    strip = lambda o: {k: v for k, v in o.items() if k not in _DIFF_IGNORED_TOP}  # noqa: E731
    return strip(live) != strip(dry_run)


def is_immutable_error(exc: KubeError) -> bool:
    """Flux's (kubectl's) test for an update an object refuses: Conflict, Invalid, or an 'immutable' message."""
    return isinstance(exc, (Conflict, Invalid)) or bool(_IMMUTABLE.search(exc.message or ""))


def merge_fields(a: Mapping | None, b: Mapping | None) -> dict:
    """The union of two ``fieldsV1`` sets (tries of ``f:``/``k:``/``v:``/``i:`` keys)."""
    merged = copy.deepcopy(dict(a or {}))
    for key, value in (b or {}).items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = merge_fields(merged[key], value)
        else:
            merged.setdefault(key, copy.deepcopy(value))
    return merged


def take_over_managed_fields(entries: list[dict], matches: Iterable[FieldManagerMatch], field_manager: str
                             ) -> list[dict] | None:
    """Managed fields with every matching manager's fields given to ``field_manager``'s Apply entry; None when
    nothing matches (Flux's PatchReplaceFieldsManagers)."""
    matches = list(matches)
    ours = next((e for e in entries if e.get("manager") == field_manager and e.get("operation") == "Apply"
                 and not e.get("subresource")), None)
    kept, edited, previous = [], False, ours
    for entry in entries:
        if entry is previous:
            continue
        if any(m.matches(entry) for m in matches):
            if ours is None:
                ours = {**entry, "manager": field_manager, "operation": "Apply"}
            else:
                ours = {**ours, "fieldsV1": merge_fields(ours.get("fieldsV1"), entry.get("fieldsV1"))}
            edited = True
            continue
        kept.append(entry)
    return kept + [ours] if edited else None


# --- the engine -----------------------------------------------------------------------------------------

LiveLookup = Callable[[ObjectRef], "dict | None"]
Waiter = Callable[[list[ObjectRef], float, float], None]


@dataclasses.dataclass
class _Plan:
    """One object on its way through validation and apply."""

    obj: dict
    stage: int
    rt: ResourceType | None = None
    ref: ObjectRef | None = None
    dry: dict | None = None
    live: dict | None = None
    skipped: bool = False
    deferred: bool = False
    recreate: bool = False
    cleanup: bool = False
    #: the object's kind is defined by a CRD of the same set
    kind_from_set: bool = False

    @property
    def exists(self) -> bool:
        return bool(self.live) or bool(self.dry and self.dry.get("metadata", {}).get("resourceVersion"))

    @property
    def best_ref(self) -> ObjectRef:
        return self.ref or ObjectRef.from_object(self.obj)


class ResourceManager:
    """Applies, diffs and deletes objects with server-side apply as one field manager (Flux's ResourceManager).

    ``waiter(refs, timeout, interval)`` waits for applied stage objects to be ready and raises on failure; the
    default waits (with a watch) for CRDs to be Established and Namespaces to be active. The kustomize-controller
    passes its kstatus health checker.
    """

    def __init__(self, kube: KubeClient, *, field_manager: str = FIELD_MANAGER, owner_group: str = OWNER_GROUP,
                 waiter: Waiter | None = None):
        self.kube = kube
        self.field_manager = field_manager
        self.owner_group = owner_group
        self.waiter = waiter or self._wait_definitions

    # ------------------------------------------------------------------ owner labels

    def owner(self, name: str, namespace: str) -> Owner:
        return Owner(name, namespace, self.owner_group)

    def set_owner_labels(self, objects: Iterable[dict], name: str, namespace: str) -> None:
        """Label every object with its owner (in place, as Flux's SetOwnerLabels)."""
        labels = self.owner(name, namespace).labels
        for obj in objects:
            meta_ = obj.setdefault("metadata", {})
            meta_["labels"] = {**(meta_.get("labels") or {}), **labels}

    # ------------------------------------------------------------------ apply

    def apply_all_staged(self, objects: Iterable[Mapping], options: ApplyOptions | None = None, *,
                         live: LiveLookup | None = None,
                         on_change: Callable[[ChangeSetEntry], None] | None = None) -> ChangeSet:
        """Validate the whole set, then apply it stage by stage; return every object's action.

        Raises :class:`DryRunError` (nothing applied) when an object is invalid, and :class:`ApplyError` carrying
        the partial change set when a later step fails.
        """
        return self._apply(objects, options or ApplyOptions(), live, on_change, staged=True)

    def apply_all(self, objects: Iterable[Mapping], options: ApplyOptions | None = None, *,
                  live: LiveLookup | None = None,
                  on_change: Callable[[ChangeSetEntry], None] | None = None) -> ChangeSet:
        """Validate then apply the set in one stage (kind order, no waits)."""
        return self._apply(objects, options or ApplyOptions(), live, on_change, staged=False)

    def _apply(self, objects, options: ApplyOptions, live: LiveLookup | None, on_change, *, staged: bool
               ) -> ChangeSet:
        plans = [_Plan(normalize(o), stage_of(o) if staged else 0) for o in objects]
        plans.sort(key=lambda p: (p.stage, p.best_ref.sort_key()))
        self._validate_all(plans, options)
        changes = ChangeSet()
        try:
            for stage in sorted({p.stage for p in plans}):
                members = [p for p in plans if p.stage == stage]
                self._validate_deferred(members, options)
                for plan in members:
                    entry = self._apply_plan(plan, options, live)
                    changes.append(entry)
                    if on_change:
                        on_change(entry)
                if staged and stage < 2:  # definitions that changed must be ready before what uses them
                    changed = [e.ref for e in changes[-len(members):] if e.action in (CREATED, CONFIGURED)]
                    if changed:
                        self.waiter(changed, options.wait_timeout, options.wait_interval)
        except ApplyError as exc:
            raise exc.with_changes(changes) from None
        except KubeError as exc:
            raise ApplyError(exc.message, changes=changes) from None
        except TimeoutError as exc:
            raise ApplyError(str(exc), changes=changes) from None
        return changes

    def _validate_all(self, plans: list[_Plan], options: ApplyOptions) -> None:
        """Dry-run every object; collect every error, so one message names every invalid object."""
        errors: list[str] = []
        pending = _Prerequisites()
        for plan in plans:
            try:
                self._validate(plan, options, pending if plan.stage > 0 else None)
            except DryRunError as exc:
                errors.append(exc.error)
            if plan.stage == 0 and not plan.skipped:
                pending.add(plan)
        if errors:
            raise DryRunError("\n".join(errors))

    def _validate_deferred(self, plans: list[_Plan], options: ApplyOptions) -> None:
        errors = []
        for plan in plans:
            if plan.deferred:
                plan.deferred = False
                try:
                    self._validate(plan, options, None)
                except DryRunError as exc:
                    errors.append(exc.error)
        if errors:
            raise DryRunError("\n".join(errors))

    def _validate(self, plan: _Plan, options: ApplyOptions, pending: "_Prerequisites | None") -> None:
        """Dry-run one object; mark it skipped, deferred (it needs an earlier stage) or to be recreated.

        ``pending`` is None when earlier stages are applied: then a kind defined by a CRD of the set may take
        a moment to be served, and is waited for (up to the wait timeout).
        """
        obj = plan.obj
        if any_in_metadata(obj, options.exclusions):
            plan.skipped = True
            return
        if pending is not None:
            plan.kind_from_set = pending.defines_kind(obj)
        retry_until = time.monotonic() + (options.wait_timeout if pending is None and plan.kind_from_set else 0)
        while True:
            try:
                plan.rt = self.kube.resource_for(obj["apiVersion"], obj["kind"])
                break
            except NotFound:
                if pending is not None and plan.kind_from_set:
                    plan.deferred = True
                    return
                if time.monotonic() < retry_until:
                    time.sleep(0.2)
                    continue
                raise DryRunError(f"{object_id(obj)} dry-run failed: no matches for kind \"{obj.get('kind')}\" "
                                  f"in version \"{obj.get('apiVersion')}\"") from None
            except KeyError:
                raise DryRunError(f"{object_id(obj)} dry-run failed: apiVersion and kind are required") from None
        if not (obj.get("metadata") or {}).get("name"):
            raise DryRunError(f"{object_id(obj)} dry-run failed: metadata.name is required")
        plan.ref = ObjectRef.from_object(obj, namespaced=plan.rt.namespaced)
        if plan.rt.namespaced and not plan.ref.namespace:
            raise DryRunError(f"{plan.ref.subject} namespace not specified: a namespace is required for "
                              f"{plan.rt.plural}.{plan.rt.group or 'core'}")
        while True:
            try:
                plan.dry = self._dry_run(plan)
                break
            except KubeError as exc:
                if pending is not None and pending.blocks(obj):
                    plan.deferred = True
                    return
                if isinstance(exc, NotFound) and time.monotonic() < retry_until:
                    time.sleep(0.2)
                    continue
                self._on_dry_run_error(plan, options, exc)
                return
        if any_in_metadata(plan.dry, options.exclusions) or \
                (plan.exists and any_in_metadata(obj, options.if_not_present)):
            plan.skipped = True
            return
        cleanup = options.cleanup
        if cleanup and plan.exists and not any_in_metadata(obj, cleanup.exclusions) \
                and not any_in_metadata(plan.dry, cleanup.exclusions):
            plan.cleanup = _needs_cleanup(plan.dry, cleanup)

    def _dry_run(self, plan: _Plan) -> dict:
        return self.kube.patch(plan.rt, plan.ref.name, plan.obj, plan.ref.namespace or None, patch_type="apply",
                               field_manager=self.field_manager, force=True, dry_run=True)

    def _on_dry_run_error(self, plan: _Plan, options: ApplyOptions, exc: KubeError) -> None:
        """Skip, plan a recreation, or raise the DryRunError naming the object."""
        try:
            live = self._get(plan.rt, plan.ref)
        except KubeError:  # e.g. RBAC forbids reading it too: report the dry-run error itself
            live = None
        if live is not None and (any_in_metadata(live, options.exclusions)
                                 or any_in_metadata(plan.obj, options.if_not_present)):
            plan.skipped, plan.live = True, live
            return
        forced = options.force or any_in_metadata(plan.obj, options.force_selector) \
            or any_in_metadata(live, options.force_selector)
        if live is not None and forced and is_immutable_error(exc) and self._recreation_valid(plan):
            plan.recreate, plan.live = True, live
            return
        raise DryRunError(dry_run_message(plan.ref, exc))

    def _recreation_valid(self, plan: _Plan) -> bool:
        """Whether the object would be accepted if created anew: a dry-run create under a generated name, so a
        recreation never deletes an object whose replacement the apiserver would refuse."""
        probe = copy.deepcopy(plan.obj)
        probe["metadata"].pop("name", None)
        probe["metadata"]["generateName"] = plan.ref.name[:50] + "-"
        try:
            self.kube.create(plan.rt, probe, plan.ref.namespace or None, dry_run=True)
        except Invalid as exc:
            causes = ((exc.body or {}).get("details") or {}).get("causes") or []
            return bool(causes) and all(str(c.get("field", "")).startswith("metadata.name") for c in causes)
        except KubeError:
            return False
        return True

    def _apply_plan(self, plan: _Plan, options: ApplyOptions, live_lookup: LiveLookup | None) -> ChangeSetEntry:
        if plan.skipped:
            ref = ObjectRef.from_object(plan.live, namespaced=plan.rt.namespaced) if plan.live and plan.rt \
                else plan.best_ref
            return ChangeSetEntry(ref, SKIPPED)
        ref = plan.ref
        if plan.recreate:
            self._delete_and_wait(plan, options)
            self._apply_object(plan)
            return ChangeSetEntry(ref, CREATED)
        before = (plan.dry or {}).get("metadata", {}).get("resourceVersion")
        patched = plan.cleanup and self._cleanup(plan, options.cleanup)
        if not patched and before and live_lookup is not None:
            live = live_lookup(ref)
            if live is not None and not has_drifted(live, plan.dry):
                return ChangeSetEntry(ref, UNCHANGED)
        after = self._apply_object(plan).get("metadata", {}).get("resourceVersion")
        if not before:
            return ChangeSetEntry(ref, CREATED)
        return ChangeSetEntry(ref, CONFIGURED if patched or after != before else UNCHANGED)

    def _apply_object(self, plan: _Plan) -> dict:
        try:
            return self.kube.patch(plan.rt, plan.ref.name, plan.obj, plan.ref.namespace or None, patch_type="apply",
                                   field_manager=self.field_manager, force=True)
        except KubeError as exc:
            raise ApplyError(f"{plan.ref.subject} apply failed: {exc.message}") from None

    def _delete_and_wait(self, plan: _Plan, options: ApplyOptions) -> None:
        try:
            self._delete_exact(plan.rt, plan.live, "Background")
            self.kube.wait_for(plan.rt, plan.ref.name, plan.ref.namespace or None, lambda o: False,
                               timeout=options.wait_timeout)
        except NotFound:
            return
        except TimeoutError:
            raise ApplyError(f"{plan.ref.subject} immutable field detected, failed to wait for object to be "
                             f"deleted: timed out after {options.wait_timeout:g}s") from None
        except KubeError as exc:
            raise ApplyError(f"{plan.ref.subject} immutable field detected, failed to delete object: "
                             f"{exc.message}") from None

    def _cleanup(self, plan: _Plan, cleanup: Cleanup, attempts: int = 3) -> bool:
        """Remove Flux's stale metadata and take over kubectl's fields with one JSON patch; True if patched."""
        live = self._get(plan.rt, plan.ref)
        if live is None or any_in_metadata(live, cleanup.exclusions):
            return False
        meta_ = live["metadata"]
        ops: list[dict] = []
        for section, keys in (("annotations", cleanup.annotations), ("labels", cleanup.labels)):
            for key in keys:
                if key in (meta_.get(section) or {}):
                    ops.append({"op": "remove", "path": f"/metadata/{section}/{_pointer(key)}"})
        fields = take_over_managed_fields(meta_.get("managedFields") or [], cleanup.field_managers,
                                          self.field_manager)
        if fields is not None:
            ops.append({"op": "replace", "path": "/metadata/managedFields", "value": fields})
        if not ops:
            return False
        ops.insert(0, {"op": "test", "path": "/metadata/resourceVersion", "value": meta_["resourceVersion"]})
        try:
            self.kube.patch(plan.rt, plan.ref.name, ops, plan.ref.namespace or None, patch_type="json",
                            field_manager=self.field_manager)
        except KubeError as exc:
            if attempts > 1 and isinstance(exc, (Invalid, Conflict)):  # changed since read: read it again
                return self._cleanup(plan, cleanup, attempts - 1)
            raise ApplyError(f"{plan.ref.subject} metadata.managedFields cleanup failed: {exc.message}") from None
        return True

    # ------------------------------------------------------------------ diff

    def diff(self, obj: Mapping, options: ApplyOptions | None = None
             ) -> tuple[ChangeSetEntry, dict | None, dict | None]:
        """Flux's Diff of one object: ``(entry, live, merged)``; live and merged (without managedFields, Secret
        data masked) only when the object drifted. Raises :class:`DryRunError` for an invalid object."""
        options = options or ApplyOptions()
        plan = _Plan(normalize(obj), 0)
        try:
            plan.rt = self.kube.resource_for(plan.obj["apiVersion"], plan.obj["kind"])
        except NotFound:
            raise DryRunError(f"{object_id(plan.obj)} dry-run failed: no matches for kind "
                              f"\"{plan.obj.get('kind')}\" in version \"{plan.obj.get('apiVersion')}\"") from None
        plan.ref = ObjectRef.from_object(plan.obj, namespaced=plan.rt.namespaced)
        live = self._get(plan.rt, plan.ref)
        if any_in_metadata(plan.obj, options.exclusions) or any_in_metadata(live, options.exclusions) \
                or (live is not None and any_in_metadata(plan.obj, options.if_not_present)):
            return ChangeSetEntry(plan.ref, SKIPPED), None, None
        try:
            dry = self._dry_run(plan)
        except KubeError as exc:
            forced = options.force or any_in_metadata(plan.obj, options.force_selector) \
                or any_in_metadata(live, options.force_selector)
            if live is not None and forced and is_immutable_error(exc):
                return ChangeSetEntry(plan.ref, CREATED), None, None
            raise DryRunError(dry_run_message(plan.ref, exc)) from None
        if live is None or not dry.get("metadata", {}).get("resourceVersion"):
            return ChangeSetEntry(plan.ref, CREATED), None, None
        if not has_drifted(live, dry):
            return ChangeSetEntry(plan.ref, UNCHANGED), None, None
        for o in (live, dry):
            o.get("metadata", {}).pop("managedFields", None)
        if plan.ref.kind == "Secret" and plan.ref.group == "":
            mask_secret_data(live, dry)
        return ChangeSetEntry(plan.ref, CONFIGURED), live, dry

    # ------------------------------------------------------------------ delete

    def delete(self, ref: ObjectRef, *, inclusions: Mapping[str, str] | None = None,
               exclusions: Mapping[str, str] | None = None, propagation: str = "Background",
               hold: bool = False) -> ChangeSetEntry | None:
        """Delete one object unless its labels miss an ``inclusions`` pair or it carries an ``exclusions`` one;
        with ``hold``, return None instead of deleting an object that would be deleted.

        An object already gone is reported ``deleted``, as Flux does. The delete is conditional on the uid and
        resourceVersion examined, so an object changed meanwhile (relabelled for another owner) is examined
        again instead of deleted.
        """
        try:
            rt = self.kube.resource_for(ref.api_version, ref.kind)
        except NotFound:
            return ChangeSetEntry(ref, DELETED)  # the kind is not served any more: nothing of it is left
        for _ in range(3):
            live = self._get(rt, ref)
            if live is None:
                return ChangeSetEntry(ref, DELETED)
            labels = live["metadata"].get("labels") or {}
            if any(labels.get(k) != v for k, v in (inclusions or {}).items()) \
                    or any_in_metadata(live, exclusions or {}):
                return ChangeSetEntry(ref, SKIPPED)
            if hold:
                return None
            try:
                self._delete_exact(rt, live, propagation)
                return ChangeSetEntry(ref, DELETED)
            except Conflict:
                continue
        raise KubeError(409, "Conflict", f"{ref.subject} kept changing while being deleted")

    def delete_all(self, refs: Iterable[ObjectRef], *, inclusions: Mapping[str, str] | None = None,
                   exclusions: Mapping[str, str] | None = None, propagation: str = "Background") -> ChangeSet:
        """Delete objects in reverse apply order; raise :class:`ApplyError` listing every failure."""
        changes, errors = ChangeSet(), []
        for ref in sorted(refs, key=ObjectRef.sort_key, reverse=True):
            try:
                changes.append(self.delete(ref, inclusions=inclusions, exclusions=exclusions, propagation=propagation))
            except KubeError as exc:
                changes.append(ChangeSetEntry(ref, UNKNOWN))
                errors.append(f"{ref.subject} delete failed: {exc.message}")
        if errors:
            raise ApplyError(f"delete failed, errors: {';'.join(errors)};", changes=changes,
                             reason=meta.PRUNE_FAILED_REASON)
        return changes

    def wait_for_termination(self, refs: Iterable[ObjectRef], *, timeout: float, interval: float = 2.0) -> None:
        """Wait until every object is gone; raise TimeoutError naming the first one still there."""
        deadline = time.monotonic() + timeout
        for ref in refs:
            try:
                rt = self.kube.resource_for(ref.api_version, ref.kind)
            except NotFound:
                continue
            while self._get(rt, ref) is not None:
                if time.monotonic() >= deadline:
                    raise TimeoutError(f"{ref.subject} termination timeout: timed out after {timeout:g}s")
                time.sleep(min(interval, max(0.05, deadline - time.monotonic())))

    # ------------------------------------------------------------------ helpers

    def _get(self, rt: ResourceType, ref: ObjectRef) -> dict | None:
        try:
            return self.kube.get(rt, ref.name, ref.namespace or None)
        except NotFound:
            return None

    def _delete_exact(self, rt: ResourceType, live: dict, propagation: str) -> None:
        """Delete exactly the examined object (uid and resourceVersion preconditions); gone is fine."""
        meta_ = live["metadata"]
        body = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": propagation,
                "preconditions": {"uid": meta_.get("uid"), "resourceVersion": meta_.get("resourceVersion")}}
        try:
            self.kube.request("DELETE", rt.path(meta_.get("namespace"), meta_["name"]), body=body)
        except NotFound:
            pass

    def _wait_definitions(self, refs: list[ObjectRef], timeout: float, interval: float) -> None:
        """Wait for CRDs to be Established and Namespaces to be active (watching, not polling)."""
        deadline = time.monotonic() + timeout
        for ref in refs:
            if ref.kind == "CustomResourceDefinition":
                rt, ready, what = CRD, _crd_established, "established"
            elif ref.kind == "Namespace" and not ref.group:
                rt, ready, what = NAMESPACE, _namespace_active, "active"
            else:
                continue
            try:
                self.kube.wait_for(rt, ref.name, None, ready, timeout=max(1.0, deadline - time.monotonic()))
            except TimeoutError:
                raise TimeoutError(f"timeout waiting for: [{ref.subject} status: 'InProgress': not {what}]") from None


class _Prerequisites:
    """What later stages may need from the first one before they can be validated: kinds of the set's CRDs,
    and Namespaces and ClusterRoles the set creates."""

    def __init__(self) -> None:
        self.kinds: set[tuple[str, str]] = set()
        self.namespaces: set[str] = set()
        self.cluster_roles: set[str] = set()

    def add(self, plan: _Plan) -> None:
        obj = plan.obj
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            self.kinds.add((spec.get("group", ""), (spec.get("names") or {}).get("kind", "")))
        elif plan.deferred or not plan.exists:
            name = (obj.get("metadata") or {}).get("name", "")
            if obj.get("kind") == "Namespace":
                self.namespaces.add(name)
            elif obj.get("kind") == "ClusterRole":
                self.cluster_roles.add(name)

    def defines_kind(self, obj: Mapping) -> bool:
        return (str(obj.get("apiVersion") or "").rpartition("/")[0], obj.get("kind")) in self.kinds

    def blocks(self, obj: Mapping) -> bool:
        """Whether the object's dry run may fail only because an earlier stage is not applied yet."""
        if self.defines_kind(obj):
            return True
        if (obj.get("metadata") or {}).get("namespace") in self.namespaces:
            return True
        role = obj.get("roleRef") or {}
        return obj.get("kind") in ("RoleBinding", "ClusterRoleBinding") and role.get("kind") == "ClusterRole" \
            and role.get("name") in self.cluster_roles


def _needs_cleanup(obj: Mapping, cleanup: Cleanup) -> bool:
    meta_ = obj.get("metadata") or {}
    return (any(k in (meta_.get("annotations") or {}) for k in cleanup.annotations)
            or any(k in (meta_.get("labels") or {}) for k in cleanup.labels)
            or any(m.matches(e) for e in meta_.get("managedFields") or [] for m in cleanup.field_managers))


def _pointer(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _crd_established(obj: dict) -> bool:
    return (find_condition(obj, "Established") or {}).get("status") == "True"


def _namespace_active(obj: dict) -> bool:
    return not obj["metadata"].get("deletionTimestamp") and (obj.get("status") or {}).get("phase", "Active") == "Active"


MASK, MASK_BEFORE, MASK_AFTER = "***", "*** (before)", "*** (after)"


def mask_secret_data(live: dict | None, merged: dict | None) -> None:
    """Replace Secret ``data`` values in place: ``***`` when equal, ``*** (before)``/``*** (after)`` when not."""
    old = dict((live or {}).get("data") or {})
    new = dict((merged or {}).get("data") or {})
    for key in old:
        if key in new and old[key] != new[key]:
            old[key], new[key] = MASK_BEFORE, MASK_AFTER
        else:
            old[key] = MASK
            if key in new:
                new[key] = MASK
    for key in new:
        if key not in old:
            new[key] = MASK
    if live is not None and live.get("data") is not None:
        live["data"] = old
    if merged is not None and merged.get("data") is not None:
        merged["data"] = new


# --- the CLI's entry point ------------------------------------------------------------------------------


def apply_staged(kube: KubeClient, objects: Iterable[dict], *, field_manager: str = CLI_FIELD_MANAGER,
                 timeout: float = 120.0, on_change: Callable[[ChangeSetEntry], None] | None = None) -> ChangeSet:
    """Validate then apply manifests as the flux CLI does (install, bootstrap): cluster definitions first and
    waited for, then the rest; return the changes (each also passed to ``on_change``)."""
    manager = ResourceManager(kube, field_manager=field_manager)
    return manager.apply_all_staged(objects, ApplyOptions(wait_timeout=timeout), on_change=on_change)
