"""Helm's values semantics, shared by the HelmChart builds (``valuesFiles``) and the ArtifactGenerator's
``strategy: Merge`` (YAML files merged as Helm values)."""
from __future__ import annotations


def merge_maps(a: dict, b: dict) -> dict:
    """Flux's MergeMaps (Helm's): ``b`` over ``a``, maps merged recursively, anything else replaced."""
    out = dict(a)
    for key, value in b.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_maps(out[key], value)
        else:
            out[key] = value
    return out
