"""The ``Setters`` update strategy of ImageUpdateAutomations: rewrite the YAML scalars marked with an image
policy marker, and nothing else.

A marker is a line comment after a scalar value, as Flux's: ``# {"$imagepolicy": "<namespace>:<policy>"}``
(the whole image, ``<name>:<tag>`` or ``<name>:<tag>@<digest>``), with the suffix ``:tag``, ``:name`` or
``:digest`` for one part. Files are the ``.yaml``/``.yml`` files under the update path that contain the
token ``"$imagepolicy"``; every YAML document in them is read to find the marked scalars and the object
they belong to (apiVersion, kind, name, namespace — for the commit message).

Beyond Flux, which re-serialises each changed file: only the bytes of the marked scalars change. Comments,
blank lines, quoting, block scalars, key order, indentation and line endings all stay as they were. The new
value keeps the old quoting style; a plain scalar whose new value would read as something other than a
string (``1.10`` is a number) is written double-quoted. A setter whose value is empty (``:digest`` of a
policy without digest reflection) leaves the field alone rather than blanking it.
"""
from __future__ import annotations

import dataclasses
import json
import os
import re
from pathlib import Path
from typing import Iterable

import yaml

TOKEN = '"$imagepolicy"'
_MARKER = re.compile(r'^[ \t]*#\s*(\{\s*"\$imagepolicy"\s*:\s*"[^"]*"\s*\})')
_YAML_SUFFIXES = (".yaml", ".yml")


class SetterError(ValueError):
    """A marked file cannot be read (the message names the file)."""


@dataclasses.dataclass(frozen=True, order=True)
class ObjectIdentifier:
    """The object a change is in (``.Changed.Objects`` keys of the commit template; Go's field order)."""

    APIVersion: str = ""
    Kind: str = ""
    Name: str = ""
    Namespace: str = ""
    go_type = "update.ObjectIdentifier"

    def sort_key(self) -> tuple:
        return (self.APIVersion, self.Kind, self.Name, self.Namespace)

    def __str__(self) -> str:
        return "{{%s %s} {%s %s}}" % (self.APIVersion, self.Kind, self.Name, self.Namespace)


@dataclasses.dataclass(frozen=True)
class Change:
    """One rewritten value: the old and the new value and the setter (``ns:policy[:part]``)."""

    OldValue: str
    NewValue: str
    Setter: str
    go_type = "update.Change"

    def __str__(self) -> str:
        return "{%s %s %s}" % (self.OldValue, self.NewValue, self.Setter)


@dataclasses.dataclass
class Result:
    """``update.Result``: file → object → changes; :meth:`Objects` and :meth:`Changes` as Flux's helpers."""

    FileChanges: dict[str, dict[ObjectIdentifier, list[Change]]] = dataclasses.field(default_factory=dict)
    go_type = "update.Result"

    def add(self, file: str, obj: ObjectIdentifier, change: Change) -> None:
        self.FileChanges.setdefault(file, {}).setdefault(obj, []).append(change)

    def Objects(self) -> dict[ObjectIdentifier, list[Change]]:  # noqa: N802 - the template's name
        return {obj: changes for objects in self.FileChanges.values() for obj, changes in objects.items()}

    def Changes(self) -> list[Change]:  # noqa: N802 - the template's name
        seen: list[Change] = []
        for objects in self.FileChanges.values():
            for changes in objects.values():
                seen += [c for c in changes if c not in seen]
        return seen


def image_string(ref: dict) -> str:
    """``ImageRef.String()``: ``name:tag`` or ``name:tag@digest``."""
    value = f"{ref.get('name', '')}:{ref.get('tag', '')}"
    return f"{value}@{ref['digest']}" if ref.get("digest") else value


def setter_values(policies: Iterable[dict]) -> dict[str, str]:
    """Setter name → value for each policy with a ``status.latestRef`` (Flux's four setters per policy)."""
    values: dict[str, str] = {}
    for policy in policies:
        ref = (policy.get("status") or {}).get("latestRef")
        if not ref:
            continue
        meta = policy["metadata"]
        base = f"{meta['namespace']}:{meta['name']}"
        values[base] = image_string(ref)
        values[f"{base}:tag"] = ref.get("tag") or ""
        values[f"{base}:name"] = ref.get("name") or ""
        values[f"{base}:digest"] = ref.get("digest") or ""
    return values


def candidate_files(root: Path) -> list[Path]:
    """The YAML files under ``root`` that mention the marker token (hidden directories skipped), sorted."""
    found = []
    for directory, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if name.endswith(_YAML_SUFFIXES):
                path = Path(directory, name)
                with open(path, "rb") as fh:
                    if TOKEN.encode() in fh.read():
                        found.append(path)
    return found


def _setter_of(text: str, end: int) -> str | None:
    """The setter named by a marker comment right after position ``end`` on the same line."""
    line_end = text.find("\n", end)
    m = _MARKER.match(text[end: len(text) if line_end < 0 else line_end])
    if not m:
        return None
    try:
        return str(json.loads(m.group(1))["$imagepolicy"])
    except (ValueError, KeyError):
        return None


def _identifier(document: yaml.Node) -> ObjectIdentifier:
    fields: dict[str, str] = {}
    if isinstance(document, yaml.MappingNode):
        for key, value in document.value:
            if isinstance(key, yaml.ScalarNode) and key.value in ("apiVersion", "kind") \
                    and isinstance(value, yaml.ScalarNode):
                fields[key.value] = value.value
            if isinstance(key, yaml.ScalarNode) and key.value == "metadata" and isinstance(value, yaml.MappingNode):
                for k, v in value.value:
                    if isinstance(k, yaml.ScalarNode) and k.value in ("name", "namespace") \
                            and isinstance(v, yaml.ScalarNode):
                        fields[k.value] = v.value
    return ObjectIdentifier(fields.get("apiVersion", ""), fields.get("kind", ""), fields.get("name", ""),
                            fields.get("namespace", ""))


def _scalars(node: yaml.Node) -> Iterable[yaml.ScalarNode]:
    """Every value scalar (mapping values and sequence items), in document order."""
    if isinstance(node, yaml.MappingNode):
        for _, value in node.value:
            yield from _scalars(value)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _scalars(item)
    elif isinstance(node, yaml.ScalarNode):
        yield node


def _render(old_source: str, style: str | None, value: str) -> str:
    """``value`` written in the old scalar's style."""
    if style == "'":
        return "'" + value.replace("'", "''") + "'"
    if style == '"':
        return json.dumps(value, ensure_ascii=False)
    try:
        plain_ok = isinstance(yaml.safe_load(value), str) and "\n" not in value and ": " not in value \
            and " #" not in value
    except yaml.YAMLError:
        plain_ok = False
    return value if plain_ok else json.dumps(value, ensure_ascii=False)


def update_text(text: str, values: dict[str, str], file: str, result: Result) -> str:
    """The text with every marked scalar set to its setter's value; changes recorded in ``result``."""
    edits: list[tuple[int, int, str]] = []
    try:
        documents = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError as exc:
        raise SetterError(f"{file}: {exc}") from None
    for document in documents:
        if document is None:
            continue
        identifier = None
        for scalar in _scalars(document):
            if scalar.style in ("|", ">"):
                continue
            setter = _setter_of(text, scalar.end_mark.index)
            if setter is None or setter not in values:
                continue
            new = values[setter]
            if not new or new == scalar.value:
                continue
            identifier = identifier or _identifier(document)
            start, end = scalar.start_mark.index, scalar.end_mark.index
            edits.append((start, end, _render(text[start:end], scalar.style, new)))
            result.add(file, identifier, Change(scalar.value, new, setter))
    for start, end, replacement in sorted(edits, reverse=True):
        text = text[:start] + replacement + text[end:]
    return text


def apply_setters(root: Path, update_path: str, policies: Iterable[dict]) -> Result:
    """Rewrite the marked values under ``root/update_path`` in place; what changed, by file (paths
    relative to ``update_path``, as Flux reports them)."""
    values = setter_values(policies)
    result = Result()
    base = (root / (update_path or ".")).resolve()
    if not str(base).startswith(str(root.resolve())):
        raise SetterError(f"update path '{update_path}' is outside the repository")
    if not base.is_dir():
        raise SetterError(f"update path '{update_path}' does not exist in the repository")
    for path in candidate_files(base):
        raw = path.read_bytes()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        relative = path.relative_to(base).as_posix()
        # PyYAML positions count characters of text with "\r\n" kept: newline="" preserves the bytes
        updated = update_text(text, values, relative, result)
        if updated != text:
            with open(path, "w", encoding="utf-8", newline="") as fh:
                fh.write(updated)
    return result
