"""The UI fixture: a ``fluxpy ui`` server for a kube client, stopped at the end of the test."""
from __future__ import annotations

import pytest

from flux_cli.web import launch


@pytest.fixture
def ui_for(flux_crds):
    """Start a UI for a kube client (``ui_for(kube, namespaces=(...))``); stopped at the end of the test."""
    started = []

    def start(kube, **kw):
        running = launch.workstation(kube, port=0, **kw)
        started.append(running)
        return running

    yield start
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium (Debian's package; a missing browser is a failure, not a skip)."""
    from servers.browser import Browser

    with Browser.launch() as running:
        yield running


@pytest.fixture
def page(browser):
    opened = browser.new_page(1280, 800)
    yield opened
    errors = [m for m in opened.console_messages if m["level"] == "error" or m["source"] == "exception"]
    opened.close()
    assert not [e for e in errors if "/api/" not in (e.get("url") or "") and "40" not in e["text"]], errors
