"""What the test session said, kept for the secrets scan (``tests/faults/test_zz_secrets.py``, run last).

- :func:`install` (from ``tests/conftest.py``) keeps every log record of a ``fluxpy`` logger (at INFO
  and above, the controllers' default level): in-process controllers, the CLI, the servers. It hooks the
  log record factory, so it keeps records even when a test reconfigures fluxpy's handlers
  (``controllers.runtime.logs.configure``).
- :func:`record_output` is called by the ``fluxpy`` fixtures with each in-process CLI run.
"""
from __future__ import annotations

import logging
from typing import Iterator

_RECORDS: list[logging.LogRecord] = []
_OUTPUTS: list[tuple[tuple[str, ...], str]] = []
_installed = False


def install() -> None:
    """Keep every ``fluxpy`` log record from now on (idempotent)."""
    global _installed
    if _installed:
        return
    _installed = True
    previous = logging.getLogRecordFactory()

    def factory(*args, **kwargs) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        if record.name.startswith("fluxpy"):
            _RECORDS.append(record)
        return record

    logging.setLogRecordFactory(factory)
    fluxpy = logging.getLogger("fluxpy")
    if fluxpy.level == logging.NOTSET:  # the controllers' default level (not the root's WARNING): INFO is scanned too
        fluxpy.setLevel(logging.INFO)


def log_lines() -> Iterator[str]:
    """Every kept record as its JSON log line (message, error and key/values)."""
    from controllers.runtime.logs import JSONFormatter

    formatter = JSONFormatter()
    for record in list(_RECORDS):
        try:
            yield formatter.format(record)
        except Exception:  # noqa: BLE001 - a record that does not format is still scanned by its message
            yield str(record.msg)


def record_output(args: list[str] | tuple[str, ...], output: str) -> None:
    """Keep what one in-process ``fluxpy ARGS`` printed."""
    _OUTPUTS.append((tuple(args), output))


def outputs() -> list[tuple[tuple[str, ...], str]]:
    """``(args, stdout + stderr)`` of every in-process CLI run so far."""
    return list(_OUTPUTS)
