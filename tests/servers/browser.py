"""A headless Chromium driven over the Chrome DevTools Protocol (CDP), stdlib only (docs/ui.md section 4).

    with Browser.launch() as browser:
        page = browser.new_page(width=1280, height=800)
        page.goto("http://127.0.0.1:8000/")
        page.wait_for("document.querySelector('g.node')")
        page.click("g.node[data-id=a] rect")
        page.screenshot("graph.png")

- :func:`find_chromium`: ``$FLUXPY_CHROMIUM``, then ``chromium``, ``chromium-browser``, ``google-chrome`` on PATH;
- :class:`Browser`: ``launch()`` starts Chromium with ``--remote-debugging-port=0`` in a throw-away profile and
  reads the port from ``DevToolsActivePort``; ``new_page()``; ``close()`` kills it (and its process group) and
  removes the profile. Chromium's stdout and stderr go to ``browser.log_path`` (:meth:`Browser.log`);
- :class:`Page`: one tab over its own websocket; a reader thread answers commands and dispatches events;
  ``send``, ``goto``, ``evaluate``, ``wait_for`` (polled once per animation frame inside the page), ``click``
  (a real mouse click at the element's centre), ``type``, ``screenshot``, ``console_messages``,
  ``network_bytes()``, ``close()``;
- :class:`WebSocket`: a minimal RFC 6455 client (masked client frames; fragmented, 16/64-bit length server
  frames; ping answered with pong; close).

No pytest fixtures here: callers write their own.
"""
from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import urllib.parse
import urllib.request

#: bounds (seconds)
LAUNCH_TIMEOUT = 20.0
SEND_TIMEOUT = 30.0
CLOSE_TIMEOUT = 5.0
#: below this much free space in /dev/shm Chromium is told to use /tmp (Debian's /etc/chromium.d/dev-shm does the
#: same, but its check breaks when findmnt prints two lines)
MIN_DEV_SHM = 1 << 30

CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class CDPError(RuntimeError):
    """A CDP command answered with an error, timed out, or the connection closed."""


class JSError(RuntimeError):
    """An exception thrown (or a promise rejected) by page JavaScript; ``str()`` is its text."""


def find_chromium() -> str:
    """The Chromium to run: ``$FLUXPY_CHROMIUM`` (a path or a command name), else the first of
    ``chromium``, ``chromium-browser``, ``google-chrome`` on PATH. RuntimeError naming what was tried."""
    tried = []
    env = os.environ.get("FLUXPY_CHROMIUM")
    if env:
        found = shutil.which(env)
        if found:
            return found
        tried.append(f"$FLUXPY_CHROMIUM={env!r} (not an executable)")
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
        tried.append(name)
    raise RuntimeError(
        "no Chromium found: tried " + ", ".join(tried) + " on PATH; install it (`make system-deps` installs "
        "Debian's chromium) or set FLUXPY_CHROMIUM to the browser's path")


# --------------------------------------------------------------------------------------------- websocket


class WebSocket:
    """A websocket client for ``ws://`` URLs: ``send(text)`` (thread-safe), ``recv() -> str`` (one reader),
    ``close()``. Pings are answered; a close frame from the peer is answered and raises ConnectionError."""

    def __init__(self, url: str, timeout: float = 10.0):
        parts = urllib.parse.urlsplit(url)
        if parts.scheme != "ws":
            raise ValueError(f"only ws:// URLs are supported: {url}")
        host, port = parts.hostname, parts.port or 80
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        self._send_lock = threading.Lock()
        self._closed = False
        self._buf = b""
        self.sock = socket.create_connection((host, port), timeout=timeout)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            self.sock.sendall((
                f"GET {path or '/'} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
            while b"\r\n\r\n" not in self._buf:
                chunk = self.sock.recv(4096)
                if not chunk:
                    raise ConnectionError(f"websocket handshake with {url}: connection closed")
                self._buf += chunk
            head, self._buf = self._buf.split(b"\r\n\r\n", 1)
            lines = head.decode("latin-1").split("\r\n")
            status = lines[0].split(" ", 2)
            if len(status) < 2 or status[1] != "101":
                raise ConnectionError(f"websocket handshake with {url}: {lines[0]}")
            headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
            accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
            if headers.get("sec-websocket-accept") != accept:
                raise ConnectionError(f"websocket handshake with {url}: bad Sec-WebSocket-Accept")
            self.sock.settimeout(None)  # the reader blocks; close() unblocks it
        except BaseException:
            self.sock.close()
            raise

    # frames
    def _send_frame(self, opcode: int, payload: bytes) -> None:
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 1 << 16:
            header += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            header += bytes([0x80 | 127]) + struct.pack(">Q", n)
        mask = os.urandom(4)
        header += mask
        masked = (int.from_bytes(payload, "big") ^ int.from_bytes((mask * (n // 4 + 1))[:n], "big")).to_bytes(n, "big")
        with self._send_lock:
            if self._closed and opcode != 0x8:
                raise ConnectionError("websocket closed")
            self.sock.sendall(bytes(header) + masked)

    def _read(self, n: int) -> bytes:
        while len(self._buf) < n:
            chunk = self.sock.recv(max(1 << 16, n - len(self._buf)))
            if not chunk:
                raise ConnectionError("websocket closed (EOF)")
            self._buf += chunk
        out, self._buf = self._buf[:n], self._buf[n:]
        return out

    def _read_frame(self) -> tuple[bool, int, bytes]:
        b1, b2 = self._read(2)
        n = b2 & 0x7F
        if n == 126:
            n = struct.unpack(">H", self._read(2))[0]
        elif n == 127:
            n = struct.unpack(">Q", self._read(8))[0]
        mask = self._read(4) if b2 & 0x80 else None  # servers do not mask, but accept it
        payload = self._read(n)
        if mask:
            payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        return bool(b1 & 0x80), b1 & 0x0F, payload

    def send(self, text: str) -> None:
        """Send one text frame."""
        self._send_frame(0x1, text.encode())

    def recv(self) -> str:
        """The next whole text (or binary, decoded) message; continuation frames are joined."""
        parts: list[bytes] = []
        while True:
            fin, opcode, payload = self._read_frame()
            if opcode == 0x9:  # ping
                self._send_frame(0xA, payload)
                continue
            if opcode == 0xA:  # pong
                continue
            if opcode == 0x8:  # close: answer and stop
                try:
                    self._send_frame(0x8, payload[:2])
                except OSError:
                    pass
                self._closed = True
                code = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
                raise ConnectionError(f"websocket closed by peer ({code})")
            parts.append(payload)  # 0x1/0x2 start a message, 0x0 continues it
            if fin:
                return b"".join(parts).decode("utf-8", errors="replace")

    def close(self) -> None:
        """Send a close frame (best effort) and close the socket; a blocked ``recv()`` then raises."""
        if not self._closed:
            try:
                self._send_frame(0x8, struct.pack(">H", 1000))
            except OSError:
                pass
            self._closed = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


# --------------------------------------------------------------------------------------------- browser


class Browser:
    """A headless Chromium process with a DevTools port. Use :meth:`launch`; a context manager."""

    def __init__(self, proc: subprocess.Popen, port: int, ws_path: str, tmpdir: str, log_path: str):
        self.proc = proc
        self.port = port
        self.ws_url = f"ws://127.0.0.1:{port}{ws_path}"  # the browser target (Target.* commands)
        self.tmpdir = tmpdir
        self.log_path = log_path
        self.pages: list[Page] = []

    @classmethod
    def launch(cls, headless: bool = True, binary: str | None = None, args: list[str] = (),
               timeout: float = LAUNCH_TIMEOUT) -> "Browser":
        """Start Chromium in a fresh temporary profile and wait (``timeout``) for its DevTools port."""
        binary = binary or find_chromium()
        tmpdir = tempfile.mkdtemp(prefix="fluxpy-chromium-")
        profile = os.path.join(tmpdir, "profile")
        os.mkdir(profile)
        log_path = os.path.join(tmpdir, "chromium.log")
        argv = [binary, *(["--headless"] if headless else []), "--no-sandbox", "--disable-gpu",
                "--remote-debugging-port=0", f"--user-data-dir={profile}", "--no-first-run",
                "--no-default-browser-check"]
        if _dev_shm_free() < MIN_DEV_SHM:
            argv.append("--disable-dev-shm-usage")
        argv += [*args, "about:blank"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)  # its own process group: close() ends every child
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + timeout
        try:
            while True:
                lines = _read_text(port_file).splitlines()
                if len(lines) >= 2 and lines[0].strip().isdigit():
                    return cls(proc, int(lines[0]), lines[1].strip(), tmpdir, log_path)
                if proc.poll() is not None:
                    raise RuntimeError(f"chromium exited ({proc.returncode}) before opening its DevTools port: "
                                       f"{' '.join(argv)}\n{_tail(log_path)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"chromium did not write {port_file} within {timeout:g}s: "
                                       f"{' '.join(argv)}\n{_tail(log_path)}")
                time.sleep(0.02)
        except BaseException:
            _kill(proc)
            shutil.rmtree(tmpdir, ignore_errors=True)
            raise

    def _http(self, method: str, path: str) -> bytes:
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", method=method)
        with urllib.request.urlopen(req, timeout=SEND_TIMEOUT) as resp:
            return resp.read()

    def version(self) -> dict:
        """``/json/version`` (``Browser``, ``Protocol-Version``, ``User-Agent``, ...)."""
        return json.loads(self._http("GET", "/json/version"))

    def new_page(self, width: int = 1280, height: int = 800) -> "Page":
        """Open a tab (``PUT /json/new``) with a fixed ``width`` x ``height`` viewport (device scale 1) and the
        ``Page``, ``Runtime``, ``Network`` and ``Log`` domains enabled."""
        target = json.loads(self._http("PUT", "/json/new?about:blank"))
        page = Page(self, target["id"], target["webSocketDebuggerUrl"])
        try:
            page.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                      mobile=False)
            for domain in ("Page", "Runtime", "Network", "Log"):
                page.send(f"{domain}.enable")
        except BaseException:
            page.close()
            raise
        self.pages.append(page)
        return page

    def log(self) -> str:
        """Chromium's stdout and stderr so far."""
        return _read_text(self.log_path)

    def close(self) -> None:
        """Close the pages, end Chromium (SIGTERM, then SIGKILL to its process group) and remove the profile."""
        for page in list(self.pages):
            page.close()
        _kill(self.proc)
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> "Browser":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _dev_shm_free() -> int:
    try:
        st = os.statvfs("/dev/shm")
    except OSError:
        return 0
    return st.f_bavail * st.f_frsize


def _read_text(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _tail(path: str, n: int = 40) -> str:
    lines = _read_text(path).splitlines()[-n:]
    return "chromium output:\n" + "\n".join(lines) if lines else "(chromium wrote nothing)"


def _kill(proc: subprocess.Popen) -> None:
    """SIGTERM the browser, wait, then SIGKILL whatever is left of its process group (zygote, renderers)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(CLOSE_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(CLOSE_TIMEOUT)
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # the group is proc's own (start_new_session); stragglers only
    except (ProcessLookupError, PermissionError):
        pass


# --------------------------------------------------------------------------------------------- page


class _Waiter:
    def __init__(self, method: str, predicate):
        self.method, self.predicate = method, predicate
        self.event = threading.Event()
        self.params: dict | None = None


class Page:
    """One tab: a CDP session over the page's websocket, with a reader thread.

    ``console_messages`` is a list of dicts ``{"source", "level", "text", "url"}`` where ``source`` is
    ``"console"`` (Runtime.consoleAPICalled; ``level`` is the console method: log, error, warning, ...),
    ``"exception"`` (Runtime.exceptionThrown, an uncaught exception or unhandled rejection) or ``"log"``
    (Log.entryAdded: network errors, interventions, ...). It accumulates; clear it when you like.
    """

    def __init__(self, browser: Browser | None, target_id: str, ws_url: str):
        self.browser, self.target_id = browser, target_id
        self.ws = WebSocket(ws_url)
        self.console_messages: list[dict] = []
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, list] = {}  # id -> [threading.Event, message]
        self._waiters: list[_Waiter] = []
        self._handlers: dict[str, list] = {}
        self._responses: dict[str, str] = {}  # requestId -> url, since the last goto
        self._finished: dict[str, int] = {}  # requestId -> encodedDataLength
        self._closed: str | None = None  # why the connection ended
        self._reader = threading.Thread(target=self._read_loop, name=f"cdp-{target_id[:8]}", daemon=True)
        self._reader.start()

    # protocol
    def _read_loop(self) -> None:
        try:
            while True:
                msg = json.loads(self.ws.recv())
                if "id" in msg:
                    with self._lock:
                        slot = self._pending.pop(msg["id"], None)
                    if slot:
                        slot[1] = msg
                        slot[0].set()
                elif "method" in msg:
                    self._dispatch(msg["method"], msg.get("params", {}))
        except Exception as exc:  # OSError/ConnectionError: closed; anything else: a bug, reported to senders
            reason = f"connection to the page closed: {exc!r}"
        with self._lock:
            self._closed = self._closed or reason
            pending, self._pending = self._pending, {}
        for slot in pending.values():
            slot[0].set()

    def _dispatch(self, method: str, params: dict) -> None:
        if method == "Network.responseReceived":
            self._responses[params["requestId"]] = params["response"]["url"]
        elif method == "Network.loadingFinished":
            self._finished[params["requestId"]] = int(params.get("encodedDataLength", 0))
        elif method == "Runtime.consoleAPICalled":
            frame = (params.get("stackTrace") or {}).get("callFrames") or [{}]
            self.console_messages.append({
                "source": "console", "level": params.get("type", "log"),
                "text": " ".join(_remote_text(arg) for arg in params.get("args", [])), "url": frame[0].get("url")})
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            self.console_messages.append({"source": "exception", "level": "error", "text": _exception_text(details),
                                          "url": details.get("url")})
        elif method == "Log.entryAdded":
            entry = params.get("entry", {})
            self.console_messages.append({"source": "log", "level": entry.get("level", "info"),
                                          "text": entry.get("text", ""), "url": entry.get("url")})
        with self._lock:
            matched = [w for w in self._waiters if w.method == method and (w.predicate is None or w.predicate(params))]
            for w in matched:
                self._waiters.remove(w)
            handlers = list(self._handlers.get(method, ()))
        for w in matched:
            w.params = params
            w.event.set()
        for handler in handlers:
            try:
                handler(params)
            except Exception:  # a caller's handler must not stop the reader
                pass

    def on(self, method: str, handler) -> None:
        """Call ``handler(params)`` (on the reader thread) for every event ``method``."""
        with self._lock:
            self._handlers.setdefault(method, []).append(handler)

    def expect(self, method: str, predicate=None) -> _Waiter:
        """Register interest in the next event ``method`` (matching ``predicate(params)``) *before* causing it;
        then ``page.wait_event(waiter, timeout)``."""
        waiter = _Waiter(method, predicate)
        with self._lock:
            self._waiters.append(waiter)
        return waiter

    def wait_event(self, waiter: _Waiter, timeout: float = SEND_TIMEOUT) -> dict:
        """The params of the event ``waiter`` (from :meth:`expect`) stands for; TimeoutError after ``timeout``."""
        if not waiter.event.wait(timeout):
            with self._lock:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            raise TimeoutError(f"no {waiter.method} event within {timeout:g}s")
        return waiter.params

    def send(self, method: str, _timeout: float = SEND_TIMEOUT, **params) -> dict:
        """Send a CDP command and return its result; CDPError on an error answer, a closed connection or
        no answer within ``_timeout`` seconds."""
        slot = [threading.Event(), None]
        with self._lock:
            if self._closed:
                raise CDPError(f"{method}: {self._closed}")
            self._next_id += 1
            msg_id = self._next_id
            self._pending[msg_id] = slot
        try:
            self.ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        except OSError as exc:
            with self._lock:
                self._pending.pop(msg_id, None)
            raise CDPError(f"{method}: {exc}") from exc
        if not slot[0].wait(_timeout):
            with self._lock:
                self._pending.pop(msg_id, None)
            raise CDPError(f"{method}: no answer within {_timeout:g}s")
        answer = slot[1]
        if answer is None:
            raise CDPError(f"{method}: {self._closed}")
        if "error" in answer:
            err = answer["error"]
            data = f" {err['data']}" if err.get("data") else ""
            raise CDPError(f"{method}: {err.get('message')} ({err.get('code')}){data}")
        return answer.get("result", {})

    # navigation and scripts
    def goto(self, url: str, timeout: float = 15) -> None:
        """Navigate and wait for ``Page.loadEventFired``; resets :meth:`network_bytes`."""
        self._responses, self._finished = {}, {}
        loaded = self.expect("Page.loadEventFired")
        result = self.send("Page.navigate", url=url, _timeout=timeout)
        if result.get("errorText"):
            with self._lock:
                if loaded in self._waiters:
                    self._waiters.remove(loaded)
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        try:
            self.wait_event(loaded, timeout)
        except TimeoutError:
            raise TimeoutError(f"{url}: no load event within {timeout:g}s") from None

    def evaluate(self, expression: str, await_promise: bool = True, timeout: float = SEND_TIMEOUT):
        """The value of a JS expression (awaited if a promise), by value (JSON-like; None for undefined);
        JSError with the exception's text if it throws or the promise rejects."""
        result = self.send("Runtime.evaluate", expression=expression, awaitPromise=await_promise,
                           returnByValue=True, userGesture=True, _timeout=timeout)
        if "exceptionDetails" in result:
            raise JSError(_exception_text(result["exceptionDetails"]))
        return result.get("result", {}).get("value")

    def wait_for(self, js_expression: str, timeout: float = 5):
        """Poll ``js_expression`` once per animation frame inside the page until it is truthy and return its
        value; JSError naming the expression (and its last exception, if any) after ``timeout`` seconds.
        A throwing expression counts as not yet true."""
        script = """new Promise((resolve, reject) => {
  const expr = %s, fn = () => (%s);
  let lastError = null, done = false;
  const fail = () => {
    if (done) return;
    done = true;
    const last = lastError ? " (last error: " + lastError + ")" : "";
    reject(new Error("wait_for timed out after %gs: " + expr + last));
  };
  const timer = setTimeout(fail, %d);  /* also fires if frames stop (a hidden page) */
  const tick = () => {
    if (done) return;
    let value;
    try { value = fn(); lastError = null; } catch (e) { lastError = String(e); }
    if (value) { done = true; clearTimeout(timer); resolve(value); return; }
    requestAnimationFrame(tick);
  };
  tick();
})""" % (json.dumps(js_expression), js_expression, timeout, int(timeout * 1000))
        return self.evaluate(script, await_promise=True, timeout=timeout + SEND_TIMEOUT)

    # input
    def _center(self, css_selector: str) -> tuple[float, float]:
        box = self.evaluate("""(() => {
  const el = document.querySelector(%s);
  if (!el) return {error: "no element matches " + %s};
  el.scrollIntoView({block: "center", inline: "center"});
  const r = el.getBoundingClientRect();
  if (!(r.width > 0 && r.height > 0)) return {error: %s + " has an empty box"};
  const x = r.left + r.width / 2, y = r.top + r.height / 2;
  const hit = document.elementFromPoint(x, y);
  if (!hit || !(hit === el || el.contains(hit)))
    return {error: %s + " is covered at its centre by " + (hit ? hit.outerHTML.slice(0, 120) : "nothing")};
  return {x, y};
})()""" % ((json.dumps(css_selector),) * 4), await_promise=False)
        if "error" in box:
            raise LookupError(box["error"])
        return box["x"], box["y"]

    def click(self, css_selector: str) -> None:
        """A real left click (mouse moved, pressed, released) at the centre of the element (HTML or SVG)
        ``css_selector`` matches; LookupError if there is none, it is empty or something covers it."""
        x, y = self._center(css_selector)
        self.send("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)
        self.send("Input.dispatchMouseEvent", type="mousePressed", x=x, y=y, button="left", buttons=1, clickCount=1)
        self.send("Input.dispatchMouseEvent", type="mouseReleased", x=x, y=y, button="left", buttons=0, clickCount=1)

    def type(self, css_selector: str, text: str) -> None:
        """Focus the element ``css_selector`` matches and insert ``text`` (``Input.insertText``: input events,
        no key events); LookupError if there is none."""
        found = self.evaluate("(() => { const el = document.querySelector(%s); if (!el) return false; "
                              "el.focus(); return document.activeElement === el; })()" % json.dumps(css_selector),
                              await_promise=False)
        if not found:
            raise LookupError(f"no focusable element matches {css_selector}")
        self.send("Input.insertText", text=text)

    # output
    def screenshot(self, path: str) -> str:
        """Save the viewport as a PNG at ``path``; returns ``path``."""
        data = self.send("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def network_bytes(self) -> dict[str, int]:
        """``{url: bytes}`` (``encodedDataLength``: on the wire, headers included; summed over repeated URLs) of
        the responses that finished loading since the last :meth:`goto`. A still-open stream (SSE) is absent."""
        out: dict[str, int] = {}
        for request_id, size in list(self._finished.items()):
            url = self._responses.get(request_id)
            if url is not None:
                out[url] = out.get(url, 0) + size
        return out

    def close(self) -> None:
        """Close the websocket and the tab."""
        with self._lock:
            self._closed = self._closed or "page closed"
        self.ws.close()
        self._reader.join(CLOSE_TIMEOUT)
        if self.browser is not None:
            if self in self.browser.pages:
                self.browser.pages.remove(self)
            if self.browser.proc.poll() is None:
                try:
                    self.browser._http("GET", f"/json/close/{self.target_id}")
                except OSError:
                    pass


def _remote_text(obj: dict) -> str:
    """A console argument (a Runtime.RemoteObject) as text."""
    if "value" in obj:
        return obj["value"] if isinstance(obj["value"], str) else json.dumps(obj["value"])
    if "unserializableValue" in obj:
        return obj["unserializableValue"]
    return obj.get("description", obj.get("type", ""))


def _exception_text(details: dict) -> str:
    """The text of a Runtime.ExceptionDetails: the exception's description (message and stack) or value."""
    exc = details.get("exception") or {}
    if exc.get("description"):
        return exc["description"]
    if "value" in exc:
        return exc["value"] if isinstance(exc["value"], str) else json.dumps(exc["value"])
    return details.get("text", "exception")
