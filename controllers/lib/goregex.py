"""Go's regular expressions (RE2 syntax) and ``Regexp.Expand``, for the fields Flux evaluates with Go's
``regexp`` (Alert inclusion/exclusion lists, ImagePolicy ``filterTags``).

google-re2 binds the RE2 library Go's syntax follows (no backreferences or lookarounds, linear time);
without it, Python's ``re`` is used after refusing the constructs RE2 does not have.
"""
from __future__ import annotations

import functools
import re
from typing import Any

#: constructs Python's ``re`` accepts and RE2 refuses (used only without google-re2)
_NOT_RE2 = re.compile(r"\(\?[=!<]|\(\?P=|\\[1-9]|[*+?}]\+|\(\?>")
_EXPAND = re.compile(r"\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


class InvalidExpression(ValueError):
    """Go's ``regexp.Compile`` would refuse the expression (the message says why, when known)."""


@functools.lru_cache(maxsize=1024)
def compile_go(expression: str) -> Any:
    """A compiled pattern (``search``/``match`` with groups) accepting what Go accepts."""
    try:
        import re2  # google-re2: the same engine as Go's regexp syntax
    except ImportError:  # pragma: no cover - google-re2 is a dependency
        if _NOT_RE2.search(expression):
            raise InvalidExpression(f"{expression}: not RE2 syntax") from None
        try:
            return re.compile(expression)
        except re.error as exc:
            raise InvalidExpression(str(exc)) from None
    try:
        return re2.compile(expression)
    except Exception as exc:  # noqa: BLE001 - re2.error and ValueError alike
        raise InvalidExpression(str(exc)) from None


def go_expand(template: str, match: Any) -> str:
    """Go's ``Regexp.Expand``: ``$1``/``${1}``/``$name``/``${name}`` become the group (empty when it did not
    take part or does not exist: ``$1x`` names group ``1x``), ``$$`` becomes ``$``; other ``$`` stay."""
    def group(name: str) -> str:
        try:
            index = int(name) if name.isdigit() else match.re.groupindex[name]
            return match.group(index) or ""
        except (KeyError, IndexError):
            return ""

    return _EXPAND.sub(lambda m: "$" if m.group(1) == "$" else group(m.group(2) or m.group(3)), template)


def expand_group_names(template: str) -> list[str] | None:
    """The named (not numbered) groups an :func:`go_expand` template refers to, or None when a ``$`` starts
    no reference (flux's ``--filter-extract is malformed``)."""
    names, at = [], 0
    while (at := template.find("$", at)) >= 0:
        ref = _EXPAND.match(template, at)
        if not ref:
            return None
        name = ref.group(2) or ref.group(3)
        if name and not (name.isdigit() and (name == "0" or not name.startswith("0"))):
            names.append(name)
        at = ref.end()
    return names
