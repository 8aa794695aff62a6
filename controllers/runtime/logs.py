"""Structured logs as Flux's controllers write them: one JSON object per line (or a console line).

A record has ``level``, ``ts``, ``logger``, ``msg`` and the key/values bound to the logger; records about a
reconciliation carry ``controller``, ``controllerGroup``, ``controllerKind``, ``kind``, ``namespace``,
``name`` and ``reconcileID``. Built on the stdlib ``logging`` package (handlers, locking), configured once
per process with :func:`configure`.
"""
from __future__ import annotations

import datetime as _dt
import json
import logging
import sys
import traceback
from typing import Any, TextIO

TRACE = 5
LEVELS = {"trace": TRACE, "debug": logging.DEBUG, "info": logging.INFO, "error": logging.ERROR}
_NAMES = {TRACE: "trace", logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warn",
          logging.ERROR: "error", logging.CRITICAL: "error"}
ROOT = "fluxpy"
logging.addLevelName(TRACE, "TRACE")


def _timestamp(created: float) -> str:
    t = _dt.datetime.fromtimestamp(created, _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def _record_fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = dict(getattr(record, "kv", {}) or {})
    want_stack = fields.pop("stacktrace", False) is True or record.levelno <= logging.DEBUG
    if record.exc_info and record.exc_info[1] is not None:
        fields.setdefault("error", str(record.exc_info[1]) or type(record.exc_info[1]).__name__)
        if want_stack:
            fields["stacktrace"] = "".join(traceback.format_exception(*record.exc_info))
    return fields


def _logger_name(record: logging.LogRecord) -> str:
    name = record.name
    return name[len(ROOT) + 1:] if name.startswith(ROOT + ".") else ("" if name == ROOT else name)


class JSONFormatter(logging.Formatter):
    """One JSON object per record: level, ts, logger, msg, then the bound key/values."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"level": _NAMES.get(record.levelno, record.levelname.lower()),
                               "ts": _timestamp(record.created)}
        name = _logger_name(record)
        if name:
            out["logger"] = name
        out["msg"] = record.getMessage()
        out.update(_record_fields(record))
        return json.dumps(out, default=str, ensure_ascii=False)


class ConsoleFormatter(logging.Formatter):
    """``ts<TAB>LEVEL<TAB>logger<TAB>msg<TAB>{key/values}`` like zap's console encoder."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record.created), _NAMES.get(record.levelno, record.levelname).upper()]
        name = _logger_name(record)
        if name:
            parts.append(name)
        parts.append(record.getMessage())
        fields = _record_fields(record)
        stack = fields.pop("stacktrace", None)
        if fields:
            parts.append(json.dumps(fields, default=str, ensure_ascii=False))
        line = "\t".join(parts)
        return line + ("\n" + stack.rstrip() if stack else "")


def configure(level: str = "info", encoding: str = "json", file: str | None = None,
              stream: TextIO | None = None) -> None:
    """Send fluxpy's records to stderr (or ``stream``) and optionally append them to ``file``."""
    if level not in LEVELS:
        raise ValueError(f"invalid log level {level!r}: expected one of {', '.join(LEVELS)}")
    if encoding not in ("json", "console"):
        raise ValueError(f"invalid log encoding {encoding!r}: expected json or console")
    formatter = JSONFormatter() if encoding == "json" else ConsoleFormatter()
    root = logging.getLogger(ROOT)
    for handler in list(root.handlers):
        root.removeHandler(handler)
        handler.close()
    handlers: list[logging.Handler] = [logging.StreamHandler(stream or sys.stderr)]
    if file:
        handlers.append(logging.FileHandler(file, encoding="utf-8"))
    for handler in handlers:
        handler.setFormatter(formatter)
        root.addHandler(handler)
    root.setLevel(LEVELS[level])
    root.propagate = False


class Logger:
    """A named logger with bound key/values: ``log.with_values(name=..).info("msg", key=value)``."""

    __slots__ = ("_logger", "_kv")

    def __init__(self, name: str = "", kv: dict[str, Any] | None = None):
        self._logger = logging.getLogger(f"{ROOT}.{name}" if name else ROOT)
        self._kv = kv or {}

    @property
    def name(self) -> str:
        return self._logger.name[len(ROOT) + 1:]

    def with_name(self, name: str) -> "Logger":
        """A child logger (``parent.name``) keeping the bound values."""
        full = f"{self.name}.{name}" if self.name else name
        return Logger(full, self._kv)

    def with_values(self, **kv: Any) -> "Logger":
        return Logger(self.name, {**self._kv, **kv})

    def enabled(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)

    def _log(self, level: int, msg: str, exc: BaseException | None, kv: dict[str, Any]) -> None:
        if not self._logger.isEnabledFor(level):
            return
        exc_info = (type(exc), exc, exc.__traceback__) if exc is not None else None
        self._logger.log(level, msg, exc_info=exc_info, extra={"kv": {**self._kv, **kv}}, stacklevel=3)

    def trace(self, msg: str, **kv: Any) -> None:
        self._log(TRACE, msg, None, kv)

    def debug(self, msg: str, **kv: Any) -> None:
        self._log(logging.DEBUG, msg, None, kv)

    def info(self, msg: str, **kv: Any) -> None:
        self._log(logging.INFO, msg, None, kv)

    def error(self, msg: str, error: BaseException | str | None = None, **kv: Any) -> None:
        if isinstance(error, str):
            kv["error"] = error
            error = None
        self._log(logging.ERROR, msg, error, kv)


def get_logger(name: str = "", **kv: Any) -> Logger:
    return Logger(name, kv)
