"""The fault-injection suite (issue 14): controllers killed with SIGKILL, bad input from a corpus, and the
figures they print.

``make test`` runs the short version; ``make faults`` (``FLUXPY_FAULTS=full``) the full one: more objects,
more kills. Every test here is marked ``faults``. Figures are recorded with :func:`record` and printed at
the end of the run, under "fault-injection figures".
"""
from __future__ import annotations

import os
import statistics

import pytest

#: the full suite (``make faults``) rather than the short one ``make test`` runs
FULL = os.environ.get("FLUXPY_FAULTS", "") == "full"

_FIGURES: dict[str, list] = {}


def scale(short, full):
    """``full`` under ``make faults``, else ``short``."""
    return full if FULL else short


def record(figure: str, value) -> None:
    """Add one measurement of ``figure`` (a count, a duration in seconds, or a (passed, total) pair)."""
    _FIGURES.setdefault(figure, []).append(value)


def start_source_controllers(start_controller, storage, namespace: str, **settings) -> None:
    """One source-controller's reconcilers (GitRepository, OCIRepository, HelmRepository, HelmChart, Bucket)
    sharing ``storage``, in-process on ``namespace`` (``settings``: the controllers', e.g. ``concurrent``)."""
    from controllers.source.bucket import BucketReconciler
    from controllers.source.git import GitRepositoryReconciler
    from controllers.source.helmchart import HelmChartReconciler
    from controllers.source.helmrepo import HelmRepositoryReconciler
    from controllers.source.oci import OCIRepositoryReconciler

    for reconciler in (GitRepositoryReconciler, OCIRepositoryReconciler, HelmRepositoryReconciler,
                       HelmChartReconciler, BucketReconciler):
        start_controller(reconciler(storage), namespace, **settings)


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.faults)


def pytest_terminal_summary(terminalreporter):
    if not _FIGURES:
        return
    write = terminalreporter.write_line
    terminalreporter.section(f"fault-injection figures ({'full' if FULL else 'short'} suite)")
    for figure, values in sorted(_FIGURES.items()):
        if all(isinstance(v, float) for v in values):
            write(f"{figure}: median {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})")
        elif all(isinstance(v, tuple) for v in values):
            write(f"{figure}: {sum(v[0] for v in values)} / {sum(v[1] for v in values)}")
        else:
            write(f"{figure}: {', '.join(str(v) for v in values)}")
