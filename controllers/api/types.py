"""What a kind *is*, as data: API coordinates, CLI names, capabilities and schema.

Every layer shares these: the kube client builds URLs from a :class:`ResourceType`, manifestgen renders a
CRD from a :class:`Kind`, and the CLI's generic verbs (get, suspend, resume, reconcile, delete, export) are
driven by a :class:`Kind`'s capabilities, never by per-kind code.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable


@dataclasses.dataclass(frozen=True)
class ResourceType:
    """A Kubernetes resource: enough to build its REST paths."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None = None, name: str | None = None, subresource: str | None = None) -> str:
        """The REST path of the collection, or of one object (and its subresource)."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


@dataclasses.dataclass(frozen=True)
class PrinterColumn:
    """An ``additionalPrinterColumns`` entry of a CRD (what ``kubectl get`` shows)."""

    name: str
    json_path: str
    type: str = "string"
    priority: int = 0
    description: str = ""


_HEX = None  # compiled on first use: the CLI's import of this module stays cheap


@dataclasses.dataclass(frozen=True)
class Column:
    """A value ``fluxpy get`` prints for a kind (between NAME and READY), or ``reconcile`` reports.

    ``paths`` are read in order, the first that holds a value wins (``objects.dig`` syntax); ``format`` is
    one of :data:`COLUMN_FORMATS`; a column with ``option`` shows only with that ``get`` flag.
    """

    header: str
    paths: tuple[str, ...]
    format: str = "text"
    option: str = ""

    def __post_init__(self):
        if self.format not in COLUMN_FORMATS:
            raise ValueError(f"column {self.header}: unknown format {self.format!r}")

    def value(self, obj: dict[str, Any]) -> str:
        """The column's text for ``obj``, formatted as flux prints it."""
        from controllers.api.objects import dig

        value = next((v for v in (dig(obj, p) for p in self.paths) if v not in (None, "")), None)
        return COLUMN_FORMATS[self.format](value, obj)


def truncate_hex(text: str) -> str:
    """Every run of 40 to 128 hex digits cut to its first 8, as flux's ``get`` shows commits and digests."""
    global _HEX
    if _HEX is None:
        import re

        _HEX = re.compile(r"\b[a-f0-9]{40,128}\b")
    return _HEX.sub(lambda m: m.group(0)[:8], text)


def _ref(value: Any, obj: dict) -> str:
    if not isinstance(value, dict):
        return ""
    namespace = value.get("namespace") or obj.get("metadata", {}).get("namespace", "")
    return f"{value.get('kind', '')}/{namespace}/{value.get('name', '')}"


def _image(value: Any, obj: dict) -> str:
    if not isinstance(value, dict):
        return ""
    ref = f"{value.get('name', '')}:{value.get('tag', '')}"
    return f"{ref}@{value['digest']}" if value.get("digest") else ref


#: how a column turns the value found into text: text, hex (commits and digests cut to 8 digits),
#: bool (True/False), disabled (True when the value is "disabled"), ref (Kind/namespace/name),
#: image (name:tag[@digest]).
COLUMN_FORMATS = {
    "text": lambda v, obj: "" if v is None else str(v),
    "hex": lambda v, obj: "" if v is None else truncate_hex(str(v)),
    "bool": lambda v, obj: str(v is True),
    "disabled": lambda v, obj: str(v == "disabled"),
    "ref": _ref,
    "image": _image,
}


@dataclasses.dataclass(frozen=True)
class ReconcileOption:
    """A ``reconcile`` flag of one kind: given, it sets ``annotation`` to the request's requestedAt token
    (e.g. HelmRelease ``--force`` → ``reconcile.fluxcd.io/forceAt``), which the controller echoes in
    ``status.lastHandled<...>`` once handled."""

    #: the flag without dashes; the CLI declares it (``flux_cli.commands.lifecycle.reconcile``).
    flag: str
    annotation: str


@dataclasses.dataclass(frozen=True)
class OlderVersion:
    """A deprecated API version a kind's CRD still serves next to the storage version, as Flux 2.7's do
    (no conversion webhook: the apiserver only rewrites ``apiVersion``, so the field names must agree
    where the versions share a field)."""

    name: str
    #: OpenAPI v3 schema of ``spec`` in this version (often ``schema.derive`` of the storage one).
    spec_schema: dict[str, Any] = dataclasses.field(compare=False, hash=False)
    #: schema of ``status`` in this version; None: the storage version's.
    status_schema: dict[str, Any] | None = dataclasses.field(default=None, compare=False, hash=False)
    #: ``kubectl get`` columns of this version; None: the storage version's.
    printer_columns: tuple[PrinterColumn, ...] | None = None
    #: the apiserver's warning to clients of this version; "" for Flux's default wording.
    deprecation_warning: str = ""


@dataclasses.dataclass(frozen=True)
class Kind(ResourceType):
    """A Flux kind: its API coordinates, CRD details, CLI names and capabilities.

    The CLI resolves ``fluxpy get source git`` / ``fluxpy reconcile ks`` through ``cli_names``; what a
    verb may do with the kind is read from the capability fields below.
    """

    singular: str = ""
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    #: OpenAPI v3 schema of ``spec`` (structural; see controllers.api.schema).
    spec_schema: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)
    #: OpenAPI v3 schema of ``status``.
    status_schema: dict[str, Any] = dataclasses.field(default_factory=dict, compare=False, hash=False)
    printer_columns: tuple[PrinterColumn, ...] = ()
    #: deprecated versions still served (``version`` is the storage version), e.g. v1beta2 sources.
    older_versions: tuple[OlderVersion, ...] = dataclasses.field(default=(), compare=False)
    #: the names the CLI accepts, first one canonical, e.g. ("source git", "sources git", "gitrepository").
    cli_names: tuple[str, ...] = ()
    #: CLI group this kind belongs to for ``get <group> all`` (e.g. "sources"); "" for none.
    cli_group: str = ""
    #: whether the kind has ``spec.suspend`` (suspend / resume apply).
    suspendable: bool = True
    #: whether ``reconcile`` applies (the controller honours reconcile.fluxcd.io/requestedAt).
    reconcilable: bool = True
    #: the kind's own ``reconcile`` flags (``--force``, ``--reset`` for HelmRelease).
    reconcile_options: tuple[ReconcileOption, ...] = ()
    #: dotted path to the source reference in the object for ``reconcile --with-source``
    #: (e.g. "spec.sourceRef"); "" when the kind has no source.
    source_ref_path: str = ""
    #: the object's source as ``{kind, name[, namespace, apiVersion, relation]}`` when ``source_ref_path``
    #: cannot say it (a HelmRelease's chartRef or generated HelmChart); None: read ``source_ref_path``.
    source_resolver: Callable[[dict], dict | None] | None = dataclasses.field(default=None, compare=False)
    #: what ``reconcile`` reports in :attr:`reconciled` (e.g. status.artifact.revision).
    revision: Column | None = None
    #: the columns ``get`` prints between NAME and READY/MESSAGE, as flux's ``get`` for the kind.
    columns: tuple[Column, ...] = ()
    #: whether ``get`` cuts commit hashes and digests in the Ready message to 8 digits (as flux, per kind).
    truncate_message: bool = False
    #: READY/MESSAGE of a kind flux shows as always ready (no Ready condition), e.g. "Alert is Ready";
    #: with ``static_ready_when`` ``(path, value)`` only for objects that have that value there.
    static_ready: str = ""
    static_ready_when: tuple[str, str] | None = None
    #: the line ``reconcile``/``create`` print once the object is Ready, formatted with ``revision`` (the
    #: kind's :attr:`revision`) and ``message`` (the Ready message): "fetched revision {revision}" for
    #: sources, "scan fetched {revision} tags" for an ImageRepository, as flux words them.
    reconciled: str = "applied revision {revision}"
    #: dotted paths to the interval after which the controller retries a failed object, first one set wins
    #: (e.g. Kustomization: spec.retryInterval, then spec.interval); () means exponential backoff.
    retry_interval_paths: tuple[str, ...] = ()
    #: the controller that reconciles this kind (used for install components and health reporting).
    controller: str = ""

    @property
    def display(self) -> str:
        """The canonical CLI name, e.g. 'source git'."""
        return self.cli_names[0] if self.cli_names else self.kind.lower()

    def serving(self, *older: OlderVersion) -> "Kind":
        """This kind with ``older`` versions served next to its storage version."""
        return dataclasses.replace(self, older_versions=self.older_versions + older)

    @property
    def served_versions(self) -> tuple[str, ...]:
        """Every version the CRD serves, storage version first."""
        return (self.version, *(older.name for older in self.older_versions))

    def at(self, version: str) -> ResourceType:
        """This kind's resource at one of its :attr:`served_versions` (for paths of an older version)."""
        if version not in self.served_versions:
            raise ValueError(f"{self.kind} does not serve {self.group}/{version}")
        return ResourceType(self.group, version, self.kind, self.plural, self.namespaced)

    def deprecation_warning(self, older: OlderVersion) -> str:
        """What the apiserver tells clients of an older version, in Flux's words."""
        return older.deprecation_warning or f"{older.name} {self.kind} is deprecated, upgrade to {self.version}"

    def retry_interval(self, obj: dict) -> tuple[float, str] | None:
        """``(seconds, path)`` of the first of :attr:`retry_interval_paths` the object sets, or None
        (the controller's exponential backoff)."""
        from controllers.api.duration import parse_duration
        from controllers.api.objects import dig

        for path in self.retry_interval_paths:
            value = dig(obj, path)
            if value:
                return parse_duration(str(value)), path
        return None

    @property
    def resource_type(self) -> ResourceType:
        return ResourceType(self.group, self.version, self.kind, self.plural, self.namespaced)

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"
