"""One headless Chromium tab driven over the DevTools protocol: navigate, run JavaScript, screenshot.

`--dump-dom` shows the markup but not whether an image loaded; a page script can ask
the browser itself (`img.complete`, `img.naturalWidth`), and the Network domain reports
the HTTP status of every response. This is the small part of the protocol the UI tests
need, over the `websockets` client that the webserver's dependencies already install.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
from headless_chromium import headless_command
from websockets.sync.client import connect


class CDPError(AssertionError):
    """Chromium answered a protocol command with an error, or a page script threw."""


class ChromiumPage:
    def __init__(self, binary: str, profile_dir: Path, timeout_s: float = 60.0):
        profile_dir.mkdir(parents=True, exist_ok=True)
        (profile_dir / "DevToolsActivePort").unlink(missing_ok=True)  # a previous browser's port
        self.timeout_s = timeout_s
        self.responses: dict[str, dict[str, Any]] = {}  # url -> {status, mimeType}
        self._ids = itertools.count(1)
        self.process = subprocess.Popen(
            [
                *headless_command(binary, profile_dir),
                "--remote-debugging-port=0",  # chromium picks a free port and writes it to DevToolsActivePort
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its renderer and GPU processes share the group: close() stops them all
        )
        try:
            port = self._devtools_port(profile_dir / "DevToolsActivePort")
            pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=10).json()
            target = next(p for p in pages if p.get("type") == "page")
            self.ws = connect(target["webSocketDebuggerUrl"], max_size=None, open_timeout=30)
            self.send("Page.enable")
            self.send("Network.enable")
            self.send("Runtime.enable")
        except BaseException:
            self.close()
            raise

    def _devtools_port(self, path: Path) -> int:
        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"chromium exited with {self.process.returncode} before opening DevTools")
            if path.is_file() and path.read_text().strip():
                return int(path.read_text().split()[0])
            time.sleep(0.1)
        raise AssertionError(f"chromium wrote no {path} in {self.timeout_s:.0f} s")

    # -- protocol ----------------------------------------------------------------------
    def _handle_event(self, message: dict[str, Any]) -> None:
        if message.get("method") == "Network.responseReceived":
            response = message["params"]["response"]
            self.responses[response["url"]] = {"status": response["status"], "mimeType": response.get("mimeType")}

    def send(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self._ids)
        self.ws.send(json.dumps({"id": call_id, "method": method, "params": params}))
        deadline = time.monotonic() + self.timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CDPError(f"no answer to {method} in {self.timeout_s:.0f} s")
            message = json.loads(self.ws.recv(timeout=remaining))
            if message.get("id") == call_id:
                if "error" in message:
                    raise CDPError(f"{method}: {message['error']}")
                return message.get("result", {})
            self._handle_event(message)

    def evaluate(self, expression: str) -> Any:
        """The JSON value of a page expression (awaited if it is a promise)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise CDPError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    # -- what tests do -----------------------------------------------------------------
    def set_viewport(self, width: int, height: int) -> None:
        """Size the page's viewport (the window stays as it is); a tall one shows a whole graph at full zoom."""
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)

    def navigate(self, url: str) -> None:
        self.send("Page.navigate", url=url)

    def wait_for(self, expression: str, timeout_s: float = 60.0, what: str = "") -> Any:
        """Poll a page expression until it is truthy; returns its value."""
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            try:
                value = self.evaluate(expression)
            except CDPError as exc:  # e.g. no document.body yet while the page navigates
                value = f"script error: {exc}"[:300]
            else:
                if value:
                    return value
            time.sleep(0.25)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what or expression} (last: {value!r})")

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        ws = getattr(self, "ws", None)
        if ws is not None:
            ws.close()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.process.pid, sig)
            except ProcessLookupError:
                break
            try:
                self.process.wait(timeout=10)
                break
            except subprocess.TimeoutExpired:
                continue

    def __enter__(self) -> "ChromiumPage":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
