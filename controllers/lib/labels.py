"""Kubernetes label selectors (``metav1.LabelSelector``) as the selector strings the API server accepts."""
from __future__ import annotations

import re
from typing import Mapping

_NAME = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                   r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_OPERATORS = {"In": "in", "NotIn": "notin"}


def _check(key: str, values: list[str] = ()) -> None:
    if not _NAME.match(key or ""):
        raise ValueError(f"key: Invalid value: {key!r}: name part must consist of alphanumeric characters, "
                         "'-', '_' or '.', and must start and end with an alphanumeric character")
    for value in values:
        if not _VALUE.match(value or ""):
            raise ValueError(f"values[0][{key}]: Invalid value: {value!r}: a valid label must be an empty string "
                             "or consist of alphanumeric characters, '-', '_' or '.'")


def selector_string(selector: Mapping | None) -> str:
    """``matchLabels`` and ``matchExpressions`` joined as ``k=v,k in (a,b),!k`` ('' selects everything);
    ValueError with the apimachinery message for an invalid key, value or operator."""
    if not selector:
        return ""
    parts = []
    for key, value in sorted((selector.get("matchLabels") or {}).items()):
        _check(key, [value])
        parts.append(f"{key}={value}")
    for expression in selector.get("matchExpressions") or []:
        key, op, values = expression.get("key", ""), expression.get("operator", ""), expression.get("values") or []
        if op in _OPERATORS:
            if not values:
                raise ValueError("for 'in', 'notin' operators, values set can't be empty")
            _check(key, values)
            parts.append(f"{key} {_OPERATORS[op]} ({','.join(sorted(values))})")
        elif op in ("Exists", "DoesNotExist"):
            if values:
                raise ValueError("values set must be empty for exists and does not exist")
            _check(key)
            parts.append(key if op == "Exists" else f"!{key}")
        else:
            raise ValueError(f"{op!r} is not a valid label selector operator")
    return ",".join(parts)


def matches(labels: Mapping[str, str] | None, match_labels: Mapping[str, str] | None) -> bool:
    """Whether ``labels`` has every key/value of ``match_labels``."""
    labels = labels or {}
    return all(labels.get(k) == v for k, v in (match_labels or {}).items())
