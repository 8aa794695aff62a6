"""The CDP client in servers.browser: the websocket framing against a scripted socket, then a real headless
Chromium against a tiny page (an ES module drawing an SVG node, a button, an input and an EventSource) served
by a ThreadingHTTPServer on a loopback port. A missing Chromium fails (``make system-deps`` installs it)."""
from __future__ import annotations

import base64
import hashlib
import http.server
import os
import socket
import struct
import threading
import time

import pytest

from servers.browser import CANDIDATES, Browser, JSError, WebSocket, find_chromium

pytestmark = pytest.mark.timeout(60)

INDEX = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>browser test</title>
<script type="module" src="/app.js"></script></head>
<body style="margin:0">
<svg id="graph" width="400" height="200" xmlns="http://www.w3.org/2000/svg"></svg>
<button id="fail">fail</button>
<input id="name">
</body></html>
"""

APP = b"""const NS = "http://www.w3.org/2000/svg";
const svg = document.getElementById("graph");
const g = document.createElementNS(NS, "g");
g.setAttribute("class", "node");
g.setAttribute("data-id", "a");
const rect = document.createElementNS(NS, "rect");
for (const [k, v] of Object.entries({x: 50, y: 40, width: 120, height: 60, fill: "#4a90d9"})) rect.setAttribute(k, v);
rect.addEventListener("click", () => g.setAttribute("class", "node selected"));
g.appendChild(rect);
svg.appendChild(g);
document.getElementById("fail").addEventListener("click", () => {
  console.error("button says no", 42);
  throw new Error("boom from the button");
});
const events = new EventSource("/events");
events.onmessage = (e) => { document.body.dataset.sse = e.data; };
"""


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {"/": ("text/html; charset=utf-8", INDEX), "/app.js": ("text/javascript", APP)}
    stop: threading.Event

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        if self.path == "/events":
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Cache-Control", "no-cache")
            self.end_headers()
            try:
                self.wfile.write(b"data: hello over sse\n\n")
                self.wfile.flush()
                while not self.stop.wait(0.5):  # keep the stream open (no reconnects) until the server stops
                    self.wfile.write(b": keep-alive\n\n")
                    self.wfile.flush()
            except OSError:
                pass
            return
        if self.path not in self.files:
            self.send_error(404)
            return
        ctype, body = self.files[self.path]
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def site():
    stop = threading.Event()
    handler = type("Handler", (_Handler,), {"stop": stop})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def browser():
    with Browser.launch() as b:
        yield b


@pytest.fixture
def page(browser, site):
    p = browser.new_page(width=800, height=600)
    try:
        p.goto(site + "/")
        p.wait_for("document.querySelector('g.node rect')")
        yield p
    finally:
        p.close()


# ------------------------------------------------------------------------------------ find_chromium


def test_find_chromium_env_then_path(monkeypatch, tmp_path):
    fake = tmp_path / "my-chrome"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("FLUXPY_CHROMIUM", str(fake))
    assert find_chromium() == str(fake)

    monkeypatch.setenv("FLUXPY_CHROMIUM", str(tmp_path / "missing"))
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    with pytest.raises(RuntimeError) as err:
        find_chromium()
    assert "FLUXPY_CHROMIUM" in str(err.value) and all(name in str(err.value) for name in CANDIDATES)


# ------------------------------------------------------------------------------------ websocket framing


def _scripted_server(script):
    """A one-connection websocket server on a loopback port running ``script(conn, read_frame)`` after the
    handshake; returns (ws://url, thread, errors)."""
    listener = socket.create_server(("127.0.0.1", 0))
    errors: list[BaseException] = []

    def read_frame(conn):
        def exact(n):
            data = b""
            while len(data) < n:
                chunk = conn.recv(n - len(data))
                assert chunk, "client closed"
                data += chunk
            return data
        b1, b2 = exact(2)
        assert b2 & 0x80, "client frames must be masked"
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack(">H", exact(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", exact(8))[0]
        mask = exact(4)
        return b1, bytes(b ^ mask[i % 4] for i, b in enumerate(exact(n)))

    def run():
        try:
            conn, _ = listener.accept()
            conn.settimeout(5)
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    head += conn.recv(4096)
                key = [line.split(b":", 1)[1].strip() for line in head.split(b"\r\n")
                       if line.lower().startswith(b"sec-websocket-key:")][0]
                accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
                conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                             b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
                script(conn, lambda: read_frame(conn))
        except BaseException as exc:  # reported by the test
            errors.append(exc)
        finally:
            listener.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return f"ws://127.0.0.1:{listener.getsockname()[1]}/devtools/page/x", thread, errors


def _frame(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    n = len(payload)
    head = bytes([(0x80 if fin else 0) | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 1 << 16:
        head += bytes([126]) + struct.pack(">H", n)
    else:
        head += bytes([127]) + struct.pack(">Q", n)
    return head + payload


def test_websocket_frames():
    big16, big64 = "x" * 300, "é" * 40000  # 300 bytes; 80000 bytes (64-bit length)
    seen = {}

    def script(conn, read_frame):
        seen["hello"] = read_frame()
        conn.sendall(_frame(0x1, b"frag", fin=False) + _frame(0x9, b"are you there")  # a ping between fragments
                     + _frame(0x0, b"ment", fin=False) + _frame(0x0, b"ed"))
        seen["pong"] = read_frame()
        conn.sendall(_frame(0x1, big16.encode()))
        # split the 64-bit frame across writes
        data = _frame(0x1, big64.encode())
        for i in range(0, len(data), 7000):
            conn.sendall(data[i:i + 7000])
        seen["long"] = read_frame()
        conn.sendall(_frame(0x8, struct.pack(">H", 1000)))
        seen["close"] = read_frame()

    url, thread, errors = _scripted_server(script)
    ws = WebSocket(url)
    try:
        ws.send("hello")
        assert ws.recv() == "fragmented"
        assert ws.recv() == big16
        assert ws.recv() == big64
        ws.send("y" * 70000)
        with pytest.raises(ConnectionError, match="1000"):
            ws.recv()
    finally:
        ws.close()
    thread.join(5)
    assert not errors, errors
    assert seen["hello"] == (0x81, b"hello")
    assert seen["pong"] == (0x8A, b"are you there")
    assert seen["long"] == (0x81, b"y" * 70000)
    assert seen["close"][0] == 0x88 and seen["close"][1][:2] == struct.pack(">H", 1000)


# ------------------------------------------------------------------------------------ Chromium


def test_launch_and_goto(browser, page, site):
    assert browser.version()["Browser"].startswith(("Chrome/", "HeadlessChrome/"))
    assert page.evaluate("document.title") == "browser test"
    assert page.evaluate("location.href") == site + "/"
    assert page.evaluate("[innerWidth, innerHeight]") == [800, 600]  # the fixed viewport


def test_evaluate(page):
    assert page.evaluate("1 + 1") == 2
    assert page.evaluate("({a: [1, 'two', null], b: true})") == {"a": [1, "two", None], "b": True}
    assert page.evaluate("new Promise(r => setTimeout(() => r('later'), 10))") == "later"
    assert page.evaluate("undefined") is None
    with pytest.raises(JSError, match="TypeError.*no such thing"):
        page.evaluate("(() => { throw new TypeError('no such thing') })()")
    with pytest.raises(JSError, match="rejected here"):
        page.evaluate("Promise.reject(new Error('rejected here'))")


def test_wait_for(page):
    assert page.wait_for("document.body.dataset.sse") == "hello over sse"  # the EventSource got its message
    assert page.wait_for("document.querySelectorAll('g.node').length") == 1
    start = time.monotonic()
    with pytest.raises(JSError) as err:
        page.wait_for("document.querySelector('.never')", timeout=0.3)
    assert 0.25 < time.monotonic() - start < 3
    assert "wait_for timed out after 0.3s: document.querySelector('.never')" in str(err.value)
    with pytest.raises(JSError, match="last error: ReferenceError"):
        page.wait_for("notDefinedYet.x", timeout=0.2)


def test_click_svg_rect(page):
    assert page.evaluate("document.querySelector('g.node').getAttribute('class')") == "node"
    page.click("g.node[data-id=a] rect")
    assert page.wait_for("document.querySelector('g.node.selected') && 'selected'", timeout=2) == "selected"
    with pytest.raises(LookupError, match="no element matches #nothing"):
        page.click("#nothing")


def test_type(page):
    page.type("#name", "héllo wörld")
    assert page.evaluate("document.getElementById('name').value") == "héllo wörld"
    with pytest.raises(LookupError):
        page.type("#missing", "x")


def test_screenshot(page, tmp_path):
    path = page.screenshot(str(tmp_path / "shot.png"))
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (800, 600)


def test_network_bytes(page, site):
    sizes = page.network_bytes()
    assert sizes.get(site + "/", 0) >= len(INDEX), sizes  # on the wire: body and headers
    assert sizes.get(site + "/app.js", 0) >= len(APP), sizes
    assert site + "/events" not in sizes  # the SSE stream is still open
    page.goto("about:blank")
    assert page.network_bytes() == {}  # reset by goto


def test_console_messages(page):
    page.console_messages.clear()
    page.click("#fail")
    deadline = time.monotonic() + 5
    while len([m for m in page.console_messages if m["source"] in ("console", "exception")]) < 2:
        assert time.monotonic() < deadline, page.console_messages
        time.sleep(0.02)
    console = [m for m in page.console_messages if m["source"] == "console"]
    exceptions = [m for m in page.console_messages if m["source"] == "exception"]
    assert console[0]["level"] == "error" and console[0]["text"] == "button says no 42"
    assert "boom from the button" in exceptions[0]["text"]


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = open(f"/proc/{entry}/stat").read()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":  # (state, ppid, pgrp): live members
                members.append(int(entry))
    return members


def test_close_leaves_no_process(site):
    start = time.monotonic()
    b = Browser.launch()
    launched = time.monotonic() - start
    page = b.new_page()
    page.goto(site + "/")
    pid, tmpdir = b.proc.pid, b.tmpdir
    assert _group_members(pid)  # the browser and its helpers
    b.close()
    assert b.proc.poll() is not None
    assert not os.path.exists(tmpdir)
    deadline = time.monotonic() + 5
    while _group_members(pid):
        assert time.monotonic() < deadline, f"chromium processes left: {_group_members(pid)}"
        time.sleep(0.05)
    assert launched < 20
