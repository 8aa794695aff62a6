"""Process flag values, parsed one way for every component (as Go's ``strconv.ParseBool`` and pflag do).

In the runtime, not in ``controllers.lib``, because the runtime's own settings and every component's entry
point parse flags, and the runtime may not import the library.
"""
from __future__ import annotations

import argparse

from controllers.api.duration import parse_duration

_TRUE = ("1", "t", "true", "yes", "y")
_FALSE = ("0", "f", "false", "no", "n")


def parse_bool(value: str | bool) -> bool:
    """``--flag=true``/``false`` (and Go's other spellings); an argparse error names the bad value."""
    if isinstance(value, bool):
        return value
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"invalid boolean {value!r}")


def parse_duration_flag(value: str) -> float:
    """A Go duration flag (``30s``, ``1m30s``) in seconds; an argparse error names the bad value."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
