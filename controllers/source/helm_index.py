"""Helm chart repository indexes, read and written as Flux's source-controller does.

- :func:`load_index` parses an ``index.yaml`` (JSON, or YAML with Helm's strict decoding: unknown or
  duplicate fields are errors), drops invalid chart versions (Helm's metadata validation, which also
  sanitises strings), and sorts every chart's versions newest first;
- :func:`index_json` renders the loaded index exactly as Go's ``json.MarshalIndent`` renders Helm's
  ``IndexFile`` — the bytes the HelmRepository artifact holds, so equal indexes give equal digests;
- :meth:`Index.chart_version` picks a chart version as Flux does (exact match, else the newest version
  satisfying the semver constraint, ties broken by creation time);
- :func:`normalize_url` is Flux's repository URL normal form (trailing ``/`` for HTTP, none for OCI).
"""
from __future__ import annotations

import dataclasses
import json
import re
import urllib.parse
from typing import Any, Callable, Iterable

import yaml

from controllers.lib import semver

#: Flux's size limits (bytes): repository index, chart archive, one file of a chart.
MAX_INDEX_SIZE = 50 << 20
MAX_CHART_SIZE = 10 << 20
MAX_CHART_FILE_SIZE = 5 << 20

ZERO_TIME = "0001-01-01T00:00:00Z"
_ALIAS = re.compile(r"^[a-zA-Z0-9_-]+$")
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$", re.IGNORECASE)


class IndexError_(ValueError):
    """The index cannot be loaded (the message is Helm's/Flux's)."""


class ChartReferenceError(ValueError):
    """The chart or version asked for is not in the index."""


# --------------------------------------------------------------------------- decoding
#
# A decoder turns a YAML node into a Go field's value: ``decode(node, where, mode)``. YAML is decoded as
# sigs.k8s.io/yaml decodes into Helm's structs (scalars into string fields keep their text), JSON as
# encoding/json does (no conversion); ``mode.strict`` makes unknown and duplicate fields errors.


@dataclasses.dataclass(frozen=True)
class _Mode:
    yaml: bool
    strict: bool

    @property
    def prefix(self) -> str:
        return "error unmarshaling JSON: while decoding JSON: " if self.yaml else ""


Decoder = Callable[[yaml.Node, str, _Mode], Any]


def _kind(node: yaml.Node) -> str:
    return {yaml.ScalarNode: "string", yaml.SequenceNode: "array", yaml.MappingNode: "object"}[type(node)]


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _mismatch(node: yaml.Node, where: str, go_type: str, mode: _Mode, kind: str = "") -> IndexError_:
    return IndexError_(f"{mode.prefix}json: cannot unmarshal {kind or _kind(node)} into Go struct field "
                       f"{where} of type {go_type}")


_GO_SCALAR_KINDS = {"tag:yaml.org,2002:int": "number", "tag:yaml.org,2002:float": "number",
                    "tag:yaml.org,2002:bool": "bool"}


def _text(convert: bool) -> Decoder:
    """A Go string field; from YAML, other scalars become their text when ``convert`` (sigs.k8s.io/yaml does
    not for the fields of the chart metadata embedded in an index entry)."""
    def decode(node: yaml.Node, where: str, mode: _Mode) -> str:
        if _is_null(node):
            return ""
        if not isinstance(node, yaml.ScalarNode):
            raise _mismatch(node, where, "string", mode)
        if node.tag in _GO_SCALAR_KINDS and not (mode.yaml and convert):
            raise _mismatch(node, where, "string", mode, _GO_SCALAR_KINDS[node.tag])
        return node.value
    return decode


_string, _embedded_string = _text(True), _text(False)


def _time(node: yaml.Node, where: str, mode: _Mode) -> str:
    """A time.Time field: an RFC 3339 string (kept as text; :func:`format_time` renders it)."""
    if _is_null(node):
        return ""
    if not isinstance(node, yaml.ScalarNode) or node.tag in _GO_SCALAR_KINDS:
        raise IndexError_(f"{mode.prefix}Time.UnmarshalJSON: input is not a JSON string")
    if parse_time(node.value) is None:
        raise IndexError_(f'{mode.prefix}parsing time "{node.value}" as "2006-01-02T15:04:05Z07:00": '
                          f'cannot parse "{node.value}" as "2006"')
    return node.value


def _bool(node: yaml.Node, where: str, mode: _Mode) -> bool:
    if _is_null(node):
        return False
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:bool":
        return node.value.lower() in ("true", "yes", "on", "y")
    raise _mismatch(node, where, "bool", mode, _GO_SCALAR_KINDS.get(node.tag, ""))


def _list_of(item: Decoder) -> Decoder:
    def decode(node: yaml.Node, where: str, mode: _Mode) -> list | None:
        if _is_null(node):
            return None
        if not isinstance(node, yaml.SequenceNode):
            raise _mismatch(node, where, "array", mode)
        return [item(child, where, mode) for child in node.value]
    return decode


def _pairs(node: yaml.MappingNode, mode: _Mode) -> dict[str, yaml.Node]:
    pairs: dict[str, yaml.Node] = {}
    for key_node, value in node.value:
        key = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key_node)
        if key in pairs and mode.strict:
            raise IndexError_(f'error converting YAML to JSON: yaml: key "{key}" already set in map')
        pairs[key] = value
    return pairs


def _map_of(value: Decoder) -> Decoder:
    def decode(node: yaml.Node, where: str, mode: _Mode) -> dict[str, Any] | None:
        if _is_null(node):
            return None
        if not isinstance(node, yaml.MappingNode):
            raise _mismatch(node, where, "map", mode)
        return {k: value(v, where, mode) for k, v in _pairs(node, mode).items()}
    return decode


def _any(node: yaml.Node, where: str, mode: _Mode) -> Any:
    """An untyped value (``interface{}``): YAML's own types, or JSON's when the document is JSON."""
    if not mode.yaml:
        if isinstance(node, yaml.MappingNode):
            return {k.value: _any(v, where, mode) for k, v in node.value}
        if isinstance(node, yaml.SequenceNode):
            return [_any(v, where, mode) for v in node.value]
        if node.style is None:
            try:
                return json.loads(node.value)
            except ValueError:
                pass
        return node.value
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _struct(go_type: str, fields: dict[str, Decoder]) -> Decoder:
    lowered = {k.lower(): k for k in fields}

    def decode(node: yaml.Node, where: str, mode: _Mode) -> dict | None:
        if _is_null(node):
            return None
        if not isinstance(node, yaml.MappingNode):
            raise IndexError_(f"{mode.prefix}json: cannot unmarshal {_kind(node)} into Go value of type {go_type}")
        out: dict[str, Any] = {}
        for key, value in _pairs(node, mode).items():
            name = key if key in fields else lowered.get(key.lower())  # encoding/json ignores case
            if name is None:
                if mode.strict:
                    raise IndexError_(f'{mode.prefix}json: unknown field "{key}"')
                continue
            out[name] = fields[name](value, f"{where}.{name}", mode)
        return out
    return decode


def _metadata_fields(text: Decoder) -> dict[str, Decoder]:
    """chart.Metadata's fields in Go's declaration order (the JSON order), strings read by ``text``."""
    maintainer = {"name": text, "email": text, "url": text}
    dependency = {
        "name": text, "version": text, "repository": text, "condition": text, "tags": _list_of(text),
        "enabled": _bool, "import-values": _list_of(_any), "alias": text,
    }
    return {
        "name": text, "home": text, "sources": _list_of(text), "version": text, "description": text,
        "keywords": _list_of(text), "maintainers": _list_of(_struct("chart.Maintainer", maintainer)),
        "icon": text, "apiVersion": text, "condition": text, "tags": text, "appVersion": text,
        "deprecated": _bool, "annotations": _map_of(text), "kubeVersion": text,
        "dependencies": _list_of(_struct("chart.Dependency", dependency)), "type": text,
    }


_METADATA = _metadata_fields(_embedded_string)
_MAINTAINER_ORDER = ("name", "email", "url")
_DEPENDENCY_ORDER = ("name", "version", "repository", "condition", "tags", "enabled", "import-values", "alias")
#: repo.ChartVersion: the embedded metadata, then its own fields.
_CHART_VERSION: dict[str, Decoder] = {
    **_METADATA,
    "urls": _list_of(_string), "created": _time, "removed": _bool, "digest": _string,
    "checksum": _string, "engine": _string, "tillerVersion": _string, "url": _string,
}
_CHART_VERSIONS = _list_of(_struct("ChartVersion", _CHART_VERSION))
_INDEX = _struct("IndexFile", {
    "serverInfo": _any, "apiVersion": _string, "generated": _time,
    "entries": _map_of(lambda node, where, mode: _CHART_VERSIONS(node, where, mode) or []),
    "publicKeys": _list_of(_string), "annotations": _map_of(_string),
})
_CHART_FILE = _struct("chart.Metadata", _metadata_fields(_string))


def _compose(text: str) -> yaml.Node | None:
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)  # JSON is YAML: one reader for both
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f"line {mark.line + 1}: " if mark else ""
        raise IndexError_(f"error converting YAML to JSON: yaml: {line}{getattr(exc, 'problem', None) or exc}") \
            from None


def load_chart_metadata(text: str | bytes) -> dict:
    """A ``Chart.yaml`` (or ``requirements.yaml``) as Helm reads it (lenient); IndexError_ when malformed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    node = _compose(text)
    return (_CHART_FILE(node, "Metadata", _Mode(yaml=True, strict=False)) or {}) if node is not None else {}


def _decode(data: bytes) -> dict:
    """The index document as typed fields: JSON leniently, YAML strictly (as Helm's jsonOrYamlUnmarshal)."""
    text = data.decode("utf-8", errors="replace")
    try:
        json.loads(text)
        mode = _Mode(yaml=False, strict=False)
    except ValueError:
        mode = _Mode(yaml=True, strict=True)
    node = _compose(text)
    if node is None:
        raise IndexError_("empty index.yaml file")
    return _INDEX(node, "IndexFile", mode) or {}


# --------------------------------------------------------------------------- validation


def _sanitize(text: str) -> str:
    """Helm's sanitizeString: white space becomes a space, unprintable characters are dropped."""
    return "".join(" " if c.isspace() else c for c in text if c.isspace() or c.isprintable())


def validate_metadata(cv: dict) -> str | None:
    """Helm's Metadata.Validate on a chart version (sanitising it); the error, or None."""
    for key in ("name", "description", "home", "icon", "condition", "tags", "appVersion", "kubeVersion"):
        if cv.get(key):
            cv[key] = _sanitize(cv[key])
    for key in ("sources", "keywords"):
        if cv.get(key):
            cv[key] = [_sanitize(s) for s in cv[key]]
    if not cv.get("apiVersion"):
        return "validation: chart.metadata.apiVersion is required"
    name = cv.get("name") or ""
    if not name:
        return "validation: chart.metadata.name is required"
    if name != name.rstrip("/").rsplit("/", 1)[-1] or name in (".", ".."):
        return f'validation: chart.metadata.name "{name}" is invalid'
    version = cv.get("version") or ""
    if not version:
        return "validation: chart.metadata.version is required"
    try:
        semver.new_version(version)
    except semver.InvalidVersion:
        return f'validation: chart.metadata.version "{version}" is invalid'
    if cv.get("type") not in (None, "", "application", "library"):
        return "validation: chart.metadata.type must be application or library"
    for m in cv.get("maintainers") or []:
        if m is None:
            return "validation: maintainers must not contain empty or null nodes"
        for key in ("name", "email", "url"):
            if m.get(key):
                m[key] = _sanitize(m[key])
    seen: set[str] = set()
    for dep in cv.get("dependencies") or []:
        if dep is None:
            return "validation: dependencies must not contain empty or null nodes"
        for key in ("name", "version", "repository", "condition"):
            if dep.get(key):
                dep[key] = _sanitize(dep[key])
        if dep.get("tags"):
            dep["tags"] = [_sanitize(t) for t in dep["tags"]]
        if dep.get("alias") and not _ALIAS.match(dep["alias"]):
            return f'validation: dependency "{dep.get("name", "")}" has disallowed characters in the alias'
        key = dep.get("alias") or dep.get("name") or ""
        if key in seen:
            return None  # "more than one dependency with name or alias": skippable for indexes, as in Helm
        seen.add(key)
    return None


def parse_time(text: str) -> tuple[str, str, str] | None:
    """An RFC 3339 time as (date-time, fraction digits, offset); None when not RFC 3339."""
    m = _RFC3339.match(text or "")
    if not m:
        return None
    offset = m.group(3).upper()
    return m.group(1), (m.group(2) or "")[1:], "Z" if offset in ("Z", "+00:00") else offset


def format_time(text: str) -> str:
    """A time as Go marshals a time.Time (RFC 3339 with nanoseconds, trailing zeros dropped)."""
    parsed = parse_time(text)
    if parsed is None:
        return ZERO_TIME
    base, fraction, offset = parsed
    fraction = fraction[:9].rstrip("0")
    return f"{base}{'.' + fraction if fraction else ''}{offset}"


def _time_key(text: str) -> tuple:
    parsed = parse_time(text)
    if parsed is None:
        return ("0001-01-01T00:00:00", 0)
    import datetime as dt
    base, fraction, offset = parsed
    when = dt.datetime.fromisoformat(base + ("+00:00" if offset == "Z" else offset))
    return (when.astimezone(dt.timezone.utc).isoformat(), int((fraction + "0" * 9)[:9]))


# --------------------------------------------------------------------------- the index


@dataclasses.dataclass
class Index:
    """A loaded repository index: ``entries`` maps chart names to versions, newest first."""

    doc: dict
    entries: dict[str, list[dict]]

    def chart_version(self, name: str, wanted: str) -> dict:
        """The chart version Flux would pick for ``name`` and ``wanted`` (a version or a semver range).

        Raises :class:`ChartReferenceError` (no such chart, no version, nothing matching) or
        :class:`semver.InvalidConstraint`.
        """
        if name not in self.entries:
            raise ChartReferenceError("no chart name found")
        versions = self.entries[name]
        if not versions:
            raise ChartReferenceError("no chart version found")
        if wanted:
            for cv in versions:
                if cv.get("version") == wanted:
                    return cv
        constraint = semver.new_constraint("*" if wanted in ("", "*") else wanted)
        best: tuple | None = None
        for cv in versions:
            try:
                v = semver.parse_version(cv.get("version") or "")
            except semver.InvalidVersion:
                continue
            if not constraint.check(v):
                continue
            key = (v, _time_key(cv.get("created") or ""))
            if best is None or key[0] > best[0][0] or (key[0] == best[0][0] and key[1] > best[0][1]):
                best = (key, cv)
        if best is None:
            raise ChartReferenceError(f"no '{name}' chart with version matching '{wanted}' found")
        return best[1]


def _sort_key(cv: dict):
    try:
        return (1, semver.new_version(cv.get("version") or ""))
    except semver.InvalidVersion:
        return (0, None)


def load_index(data: bytes) -> Index:
    """Load an index as Flux does (IndexFromBytes); :class:`IndexError_` when it is not one."""
    if not data:
        raise IndexError_("empty index.yaml file")
    doc = _decode(data)
    if not doc.get("apiVersion"):
        raise IndexError_("no API version specified")
    entries: dict[str, list[dict]] = {}
    for name, versions in (doc.get("entries") or {}).items():
        kept = []
        for cv in versions:
            if cv is None:
                continue
            if not cv.get("apiVersion"):
                cv["apiVersion"] = "v1"
            if validate_metadata(cv) is None:
                kept.append(cv)
        valid = [cv for cv in kept if _sort_key(cv)[0]]
        invalid = [cv for cv in kept if not _sort_key(cv)[0]]
        entries[name] = sorted(valid, key=lambda cv: _sort_key(cv)[1], reverse=True) + invalid
    doc["entries"] = entries if doc.get("entries") is not None else None
    return Index(doc, entries)


# --------------------------------------------------------------------------- encoding (Go's JSON)


def _omit_empty(value: Any) -> bool:
    return value in (None, "", False) or (isinstance(value, (list, dict)) and not value)


def _ordered(doc: dict | None, fields: Iterable[str], always: tuple[str, ...] = ()) -> dict | None:
    if doc is None:
        return None
    out = {}
    for key in fields:
        value = doc.get(key)
        if key in always or not _omit_empty(value):
            out[key] = value
    return out


def _go_number(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, float):
        return value
    return int(value) if value.is_integer() and abs(value) < 1e21 else value


def _go_value(value: Any) -> Any:
    """An untyped value as Go would marshal it (maps with sorted keys, whole floats without '.0')."""
    if isinstance(value, dict):
        return {str(k): _go_value(value[k]) for k in sorted(value, key=lambda k: str(k).encode())}
    if isinstance(value, list):
        return [_go_value(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return _go_number(value)


def _chart_version_json(cv: dict) -> dict:
    out = _ordered(cv, _METADATA) or {}
    if out.get("maintainers"):
        out["maintainers"] = [_ordered(m, _MAINTAINER_ORDER) for m in out["maintainers"]]
    if out.get("annotations"):
        out["annotations"] = dict(sorted(out["annotations"].items(), key=lambda kv: kv[0].encode()))
    if out.get("dependencies"):
        out["dependencies"] = [_ordered({**d, "import-values": _go_value(d.get("import-values"))},
                                        _DEPENDENCY_ORDER, always=("name", "repository"))
                               for d in out["dependencies"]]
    out["urls"] = cv.get("urls")
    out["created"] = format_time(cv.get("created") or "")
    for key in ("removed", "digest", "checksum", "engine", "tillerVersion", "url"):
        if not _omit_empty(cv.get(key)):
            out[key] = cv[key]
    return out


_GO_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def go_json(value: Any) -> bytes:
    """``json.MarshalIndent(value, "", "  ")`` as Go writes it (HTML-safe escaping, UTF-8)."""
    text = json.dumps(value, indent=2, ensure_ascii=False)
    text = re.sub("[<>&\u2028\u2029]", lambda m: _GO_ESCAPES[m.group(0)], text)
    text = text.replace("\\u0008", "\\b").replace("\\u000c", "\\f")
    return text.encode("utf-8")


def index_json(index: Index) -> bytes:
    """The index as the HelmRepository artifact stores it (Go's JSON rendering of Helm's IndexFile)."""
    doc = index.doc
    out: dict[str, Any] = {}
    if doc.get("serverInfo"):
        out["serverInfo"] = _go_value(doc["serverInfo"])
    out["apiVersion"] = doc.get("apiVersion")
    out["generated"] = format_time(doc.get("generated") or "")
    entries = doc.get("entries")
    out["entries"] = None if entries is None else {
        name: [_chart_version_json(cv) for cv in entries[name]]
        for name in sorted(entries, key=lambda n: n.encode())}
    if doc.get("publicKeys"):
        out["publicKeys"] = doc["publicKeys"]
    if doc.get("annotations"):
        out["annotations"] = dict(sorted(doc["annotations"].items(), key=lambda kv: kv[0].encode()))
    return go_json(out)


# --------------------------------------------------------------------------- URLs


def normalize_url(url: str) -> str:
    """Flux's NormalizeURL: ``oci://`` URLs without a trailing ``/``, others with exactly one."""
    if not url:
        return ""
    parts = urllib.parse.urlsplit(url)
    path = parts.path.rstrip("/")
    if parts.scheme != "oci":
        path += "/"
    return urllib.parse.urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def resolve_chart_url(repo_url: str, ref: str) -> str:
    """Helm's ResolveReferenceURL: a chart URL from the index, relative to the repository URL."""
    parsed = urllib.parse.urlsplit(ref)
    if parsed.scheme:
        return ref
    base = urllib.parse.urlsplit(repo_url)
    base_path = base.path.rstrip("/") + "/"
    joined = urllib.parse.urljoin(urllib.parse.urlunsplit((base.scheme, base.netloc, base_path, "", "")), ref)
    if base.query and not parsed.query:
        joined += f"?{base.query}"
    return joined
