"""Test driver: open the pool window exactly as ``tray.desktop.window`` does, wait until the page shows
``expect``, print the page's text as one JSON line, then keep the window up until stdin closes.

Usage: ``python -m tests.support.window_probe <expect>`` with the UI address as the first stdin line.

The UI's Content-Security-Policy (``script-src 'self'``) rightly refuses pywebview's
``evaluate_js`` (it wraps the code in ``eval``), so the page text is read through WebKit's own
``evaluate_javascript``, which runs as the user agent and is not subject to the page's policy.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any

import webview

from tray.desktop.window import _icon_path, create


def page_text(window: Any) -> str:
    from gi.repository import GLib
    from webview.platforms.gtk import BrowserView

    view = BrowserView.instances[window.uid].webview
    done, box = threading.Event(), {"text": ""}

    def finished(source: Any, result: Any, _data: Any) -> None:
        try:
            box["text"] = source.evaluate_javascript_finish(result).to_string()
        except Exception as exc:
            box["text"] = f"<error {exc}>"
        done.set()

    def run() -> bool:
        view.evaluate_javascript("document.body ? document.body.innerText : ''", -1, None, None, None,
                                 finished, None)
        return False

    GLib.idle_add(run)
    done.wait(10)
    return box["text"]


def probe(window: Any, expect: str) -> None:
    window.events.loaded.wait(30)
    text, deadline = "", time.monotonic() + 30
    while time.monotonic() < deadline:
        text = page_text(window)
        if expect in text:
            break
        time.sleep(0.2)
    print(json.dumps({"text": text}), flush=True)
    sys.stdin.read()  # the test screenshots meanwhile; closing stdin closes the window
    window.destroy()


def main() -> None:
    url = sys.stdin.readline().strip()
    window = create(url)
    webview.start(probe, (window, sys.argv[1]), icon=_icon_path())


if __name__ == "__main__":
    main()
