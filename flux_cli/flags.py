"""Flag values shared by several commands."""
from __future__ import annotations

from typing import Optional

from flux_cli.app import CLIError


def split_list(values: Optional[list[str]]) -> list[str]:
    """Accept both repeated flags and comma-separated lists, as flux does (``--components a,b``)."""
    return [v.strip() for item in values or [] for v in item.split(",") if v.strip()]


def selected_components(components: Optional[list[str]], components_extra: Optional[list[str]]) -> list[str]:
    """``--components`` (default: the default components) plus ``--components-extra``, validated."""
    from controllers.api.kinds import ALL_COMPONENTS, COMPONENTS

    names = split_list(components) or list(COMPONENTS)
    names += [n for n in split_list(components_extra) if n not in names]
    unknown = [n for n in names if n not in ALL_COMPONENTS]
    if unknown:
        raise CLIError(f"unknown component(s) {', '.join(unknown)}: expected some of {', '.join(ALL_COMPONENTS)}")
    return names
