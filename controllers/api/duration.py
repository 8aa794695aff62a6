"""Go-style durations as Flux's APIs and flags use them (``1m30s``, ``500ms``, ``2h``)."""
from __future__ import annotations

import re

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str) -> float:
    """Parse a Go duration into seconds; raise ValueError naming the expected form."""
    value = str(text).strip()
    if value in ("0", "0s"):
        return 0.0
    pos, total = 0, 0.0
    for match in _PART.finditer(value):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(value) or not value:
        raise ValueError(f"invalid duration {text!r}: expected a number with a unit, e.g. 30s, 5m, 1h30m")
    return total


def format_duration(seconds: float) -> str:
    """Format seconds the way Go prints a time.Duration (``5m0s``, ``1h0m0s``, ``1.5s``)."""
    if seconds < 1:
        return f"{round(seconds * 1000)}ms" if seconds else "0s"
    whole = int(seconds)
    frac = seconds - whole
    h, rem = divmod(whole, 3600)
    m, s = divmod(rem, 60)
    sec = f"{s + frac:g}s"
    if h:
        return f"{h}h{m}m{sec}"
    if m:
        return f"{m}m{sec}"
    return sec
