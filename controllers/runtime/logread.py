"""Reading the controllers' structured logs back: from the files locally run controllers write
(``fluxpy dev``: ``<state>/logs/<component>.log``) or from the controller Pods through the API.

Every line a controller writes about an object carries ``kind``, ``namespace``, ``name`` and ``reconcileID``
(see :mod:`controllers.runtime.logs`), so lines can be filtered per object and joined per reconciliation.
Used by ``fluxpy logs`` and ``fluxpy why``.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import threading
from pathlib import Path
from typing import Iterable, Iterator

from controllers.api.builtin import POD
from controllers.runtime.kube import KubeClient

#: severity order of the levels controllers write; --level keeps lines at or above the one given.
LEVEL_ORDER = {"trace": 0, "debug": 1, "info": 2, "warn": 3, "error": 4}


@dataclasses.dataclass(frozen=True)
class LogLine:
    """One log record of one controller."""

    component: str
    record: dict

    @property
    def ts(self) -> str:
        return str(self.record.get("ts", ""))

    @property
    def level(self) -> str:
        return str(self.record.get("level", "info"))

    @property
    def kind(self) -> str:
        return str(self.record.get("kind", ""))

    @property
    def namespace(self) -> str:
        return str(self.record.get("namespace", ""))

    @property
    def name(self) -> str:
        return str(self.record.get("name", ""))

    @property
    def reconcile_id(self) -> str:
        return str(self.record.get("reconcileID", ""))

    @property
    def message(self) -> str:
        msg = str(self.record.get("msg", ""))
        return f"{msg}: {self.record['error']}" if self.record.get("error") else msg


def parse_line(component: str, text: str | bytes) -> LogLine | None:
    """A JSON log line as a LogLine; a line that is not one of our JSON records keeps its text as ``msg``."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    text = text.strip()
    if not text:
        return None
    try:
        record = json.loads(text)
    except ValueError:
        record = None
    if not isinstance(record, dict):
        record = {"msg": text, "level": "info"}
    return LogLine(component, record)


@dataclasses.dataclass(frozen=True)
class LogFilter:
    """Which lines to keep. ``namespace`` None means every namespace."""

    kind: str = ""
    name: str = ""
    namespace: str | None = None
    level: str = ""
    since: dt.datetime | None = None
    reconcile_id: str = ""

    def matches(self, line: LogLine) -> bool:
        if self.kind and line.kind.lower() != self.kind.lower():
            return False
        if self.name and line.name != self.name:
            return False
        if self.namespace is not None and line.namespace and line.namespace != self.namespace:
            return False
        if self.namespace is not None and (self.kind or self.name) and not line.namespace:
            return False
        if self.level and LEVEL_ORDER.get(line.level, 2) < LEVEL_ORDER.get(self.level, 2):
            return False
        if self.reconcile_id and line.reconcile_id != self.reconcile_id:
            return False
        if self.since and line.ts and _parse_ts(line.ts) < self.since:
            return False
        return True


def _parse_ts(value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return dt.datetime.min.replace(tzinfo=dt.timezone.utc)


def merge(lines: Iterable[LogLine]) -> list[LogLine]:
    """All lines in time order (stable for equal timestamps)."""
    return sorted(lines, key=lambda line: line.ts)


# ----------------------------------------------------------------------------------- local files

def local_log_files(logs_dir: Path, components: Iterable[str] | None = None) -> dict[str, Path]:
    """``component -> log file`` for the controllers run by ``fluxpy dev``."""
    wanted = set(components) if components else None
    return {p.stem: p for p in sorted(Path(logs_dir).glob("*.log")) if wanted is None or p.stem in wanted}


def read_files(files: dict[str, Path]) -> list[LogLine]:
    """Every line of every file, parsed."""
    out = []
    for component, path in files.items():
        with open(path, "rb") as f:
            out += [line for line in (parse_line(component, raw) for raw in f) if line]
    return out


def follow_files(files: dict[str, Path], stop: threading.Event, *, poll: float = 0.2) -> Iterator[LogLine]:
    """Yield lines appended to the files from now on, until ``stop`` is set."""
    handles = {}
    try:
        for component, path in files.items():
            f = open(path, "rb")
            f.seek(0, os.SEEK_END)
            handles[component] = f
        while not stop.is_set():
            idle = True
            for component, f in handles.items():
                for raw in iter(f.readline, b""):
                    idle = False
                    line = parse_line(component, raw)
                    if line:
                        yield line
            if idle:
                stop.wait(poll)
    finally:
        for f in handles.values():
            f.close()


# ----------------------------------------------------------------------------------- controller Pods

def controller_pods(kube: KubeClient, namespace: str) -> list[tuple[str, str]]:
    """``(component, pod name)`` of the running fluxpy controller Pods in ``namespace``."""
    pods = kube.list(POD, namespace, label_selector="app.kubernetes.io/part-of=fluxpy").get("items") or []
    out = []
    for pod in pods:
        labels = pod["metadata"].get("labels") or {}
        component = labels.get("app.kubernetes.io/component") or labels.get("app") or pod["metadata"]["name"]
        out.append((component, pod["metadata"]["name"]))
    return out


def _pod_log_params(follow: bool, since: dt.datetime | None, tail: int | None) -> dict:
    params: dict = {"follow": follow or None, "container": "manager"}
    if since:
        params["sinceTime"] = since.strftime("%Y-%m-%dT%H:%M:%SZ")
    if tail is not None and tail >= 0:
        params["tailLines"] = tail
    return params


def read_pods(kube: KubeClient, namespace: str, pods: list[tuple[str, str]], *, since: dt.datetime | None = None,
              tail: int | None = None) -> list[LogLine]:
    """The current logs of each Pod (its ``manager`` container), parsed."""
    out = []
    for component, pod in pods:
        path = POD.path(namespace, pod, "log")
        out += [line for line in (parse_line(component, raw) for raw in
                                  kube.stream_lines(path, _pod_log_params(False, since, tail), timeout=60)) if line]
    return out


def follow_pods(kube: KubeClient, namespace: str, pods: list[tuple[str, str]], stop: threading.Event) -> Iterator[LogLine]:
    """Yield new lines from every Pod as they come (one streaming request per Pod), until ``stop`` is set."""
    import queue

    lines: "queue.Queue[LogLine]" = queue.Queue()

    def pump(component: str, pod: str) -> None:
        path = POD.path(namespace, pod, "log")
        for raw in kube.stream_lines(path, _pod_log_params(True, None, 0), timeout=24 * 3600):
            if stop.is_set():
                return
            line = parse_line(component, raw)
            if line:
                lines.put(line)

    for component, pod in pods:
        threading.Thread(target=pump, args=(component, pod), daemon=True).start()
    while not stop.is_set():
        try:
            yield lines.get(timeout=0.2)
        except queue.Empty:
            continue


def last_reconciliation(lines: Iterable[LogLine], kind: str, namespace: str, name: str) -> list[LogLine]:
    """The lines of the object's most recent reconciliation (joined by reconcileID), in time order."""
    about = [line for line in merge(lines) if line.kind.lower() == kind.lower() and line.name == name
             and line.namespace == namespace]
    ids = [line.reconcile_id for line in about if line.reconcile_id]
    if not ids:
        return about[-5:]
    return [line for line in about if line.reconcile_id == ids[-1]]


class NoLogs(Exception):
    """No controller logs can be found (no local controllers, no controller Pods)."""


def open_logs(kube: KubeClient, *, flux_namespace: str = "flux-system", state_dir=None,
              since: dt.datetime | None = None):
    """The controllers' lines so far, and a function that follows new ones: ``(lines, follow(stop))``.

    When the client points at the local control plane of ``fluxpy dev`` (same server), read the files its
    controllers write; otherwise the controller Pods' logs through the API. Raises :class:`NoLogs`.
    """
    from controllers.localcluster import dev

    try:
        cluster = dev.cluster(state_dir)
    except dev.DevError:
        cluster = None
    if cluster is not None and cluster.server.rstrip("/") == kube.server.rstrip("/"):
        files = local_log_files(cluster.logs_dir)
        if not files:
            raise NoLogs(f"no controller logs in {cluster.logs_dir}: are the controllers running? ('fluxpy dev up')")
        return read_files(files), lambda stop: follow_files(files, stop)
    pods = controller_pods(kube, flux_namespace)
    if not pods:
        raise NoLogs(f"no fluxpy controller Pods found in {flux_namespace}: is fluxpy installed? "
                     "(or pass --flux-namespace)")
    return (read_pods(kube, flux_namespace, pods, since=since),
            lambda stop: follow_pods(kube, flux_namespace, pods, stop))


def since_duration(seconds: float) -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)


__all__ = ["LogLine", "LogFilter", "parse_line", "merge", "local_log_files", "read_files", "follow_files",
           "controller_pods", "read_pods", "follow_pods", "last_reconciliation", "since_duration", "open_logs",
           "NoLogs"]
