"""Helm's values semantics, shared by the HelmChart builds (``valuesFiles``), the ArtifactGenerator's
``strategy: Merge`` (YAML files merged as Helm values) and a HelmRelease's values (:func:`chart_values`:
``valuesFrom`` then inline ``values``, used by the helm-controller and ``fluxpy debug hr --show-values``)."""
from __future__ import annotations

from typing import Any


def merge_maps(a: dict, b: dict) -> dict:
    """Flux's MergeMaps (Helm's): ``b`` over ``a``, maps merged recursively, anything else replaced."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_maps(out[key], value)
        else:
            out[key] = value
    return out


DEFAULT_VALUES_KEY = "values.yaml"


class ValuesReferenceError(Exception):
    """A ``valuesFrom`` entry cannot be resolved; the message is Flux's (``could not resolve Secret chart values
    reference 'ns/name' with key 'values.yaml': …``)."""


def _reference_error(ref: dict, namespace: str, reason: str) -> ValuesReferenceError:
    optional = " optional" if ref.get("optional") else ""
    key = ref.get("valuesKey") or DEFAULT_VALUES_KEY
    return ValuesReferenceError(f"could not resolve{optional} {ref.get('kind')} chart values reference "
                                f"'{namespace}/{ref.get('name')}' with key '{key}': {reason}")


def chart_values(kube, namespace: str, values: dict | None, values_from: list[dict] | None, *,
                 secrets: list[str] | None = None) -> dict:
    """A HelmRelease's final values, as Flux composes them: each ``valuesFrom`` ConfigMap/Secret in order
    (its ``valuesKey``, default ``values.yaml``, parsed as YAML and merged, or with ``targetPath`` set at that
    path), missing ones skipped when ``optional``; then the inline ``values`` over them. ``secrets``, when
    given, receives every string taken from a Secret (for :func:`mask`)."""
    import base64

    import yaml

    from controllers.api.builtin import CONFIGMAP, SECRET
    from controllers.runtime.kube import NotFound

    result: dict = {}
    objects: dict[tuple[str, str], dict | None] = {}
    for ref in values_from or []:
        kind, name = ref.get("kind"), ref.get("name")
        if kind not in ("ConfigMap", "Secret"):
            raise _reference_error(ref, namespace, "unsupported values reference kind")
        if (kind, name) not in objects:
            try:
                objects[(kind, name)] = kube.get(CONFIGMAP if kind == "ConfigMap" else SECRET, name, namespace)
            except NotFound:
                objects[(kind, name)] = None
        obj = objects[(kind, name)]
        if obj is None:
            if ref.get("optional"):
                continue
            raise _reference_error(ref, namespace, f'{kind.lower()}s "{name}" not found')
        key = ref.get("valuesKey") or DEFAULT_VALUES_KEY
        data = (obj.get("data") or {}).get(key)
        if data is None:
            if ref.get("optional"):
                continue
            raise _reference_error(ref, namespace, "key not found in resource")
        text = base64.b64decode(data).decode() if kind == "Secret" else data
        if kind == "Secret" and secrets is not None:
            secrets.append(text)
        if ref.get("targetPath"):
            try:
                set_path_value(result, ref["targetPath"], text)
            except ValueError as exc:
                raise _reference_error(ref, namespace, f"failed to merge value: {exc}") from None
            continue
        try:
            parsed = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise _reference_error(ref, namespace, f"failed to read values data: {exc}") from None
        if not isinstance(parsed, dict):
            raise _reference_error(ref, namespace, "failed to read values data: not a map")
        if kind == "Secret" and secrets is not None:
            secrets += _strings(parsed)
        result = merge_maps(result, parsed)
    return merge_maps(result, values or {})


def _strings(node) -> list[str]:
    """Every non-empty string in a YAML document's tree."""
    if isinstance(node, dict):
        return [s for value in node.values() for s in _strings(value)]
    if isinstance(node, list):
        return [s for value in node for s in _strings(value)]
    return [node] if isinstance(node, str) and node else []


def mask(text: str, values: list[str]) -> str:
    """``text`` with each of ``values`` replaced by ``***``: quoted (as Helm's schema errors quote a value)
    whatever its length, bare when it is long enough (8 characters) not to be a common word."""
    for value in sorted(set(values), key=len, reverse=True):
        for quote in ("'", '"'):
            text = text.replace(f"{quote}{value}{quote}", f"{quote}***{quote}")
        if len(value) >= 8:
            text = text.replace(value, "***")
    return text


def _typed(value: str):
    """Helm's ``--set`` typing (strvals.typedVal): true/false, null, integers without a leading zero."""
    if value in ("true", "false"):
        return value == "true"
    if value == "null":
        return None
    if value == "0" or (value.lstrip("-")[:1] not in ("", "0") and value.lstrip("-").isdigit()):
        return int(value)
    return value


def set_path_value(values: dict, path: str, value: str) -> None:
    """Set ``value`` at Helm's ``--set`` path (``a.b``, ``list[0].name``, ``\\.`` escapes a dot) as Flux's
    ReplacePathValue: a quoted value stays a string, others are typed as ``--set`` types them. (One
    assignment: commas in the value are kept, where ``--set`` would split them.)"""
    import re

    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        typed = value.strip("'\"")
    else:
        typed = _typed(value)
    keys = [k.replace("\\.", ".") for k in re.split(r"(?<!\\)\.", path)]
    node: Any = values
    for i, key in enumerate(keys):
        match = re.fullmatch(r"([^\[\]]*)((?:\[\d+\])+)", key)
        name, indices = (match.group(1), [int(n) for n in re.findall(r"\d+", match.group(2))]) if match else (key, [])
        if not name or "[" in name or "]" in name:
            raise ValueError(f"key {path!r} has no value (invalid path)")
        last = i == len(keys) - 1
        if not isinstance(node, dict):
            raise ValueError(f"key {path!r}: {name!r} is not a map")
        if not indices:
            if last:
                node[name] = typed
            else:
                node = _as_map(node, name)
            continue
        target = node.get(name)
        if not isinstance(target, list):
            target = node[name] = []
        for j, index in enumerate(indices):
            while len(target) <= index:
                target.append(None)
            if j == len(indices) - 1:
                if last:
                    target[index] = typed
                else:
                    if not isinstance(target[index], dict):
                        target[index] = {}
                    node = target[index]
            else:
                if not isinstance(target[index], list):
                    target[index] = []
                target = target[index]


def _as_map(node: dict, name: str) -> dict:
    """``node[name]`` as a map (replacing what is not one), as ``--set`` walks a path."""
    if not isinstance(node.get(name), dict):
        node[name] = {}
    return node[name]
