"""The demo page in a real browser: submit, watch over each transport, fail, survive a restart;
every stream opened by the client module's watch, the stream cap, the fallback behind a strict proxy."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Locator, Page, Request, expect

from server.main import create_app
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, wait_until_status
from tests.clients.servers import ServedApp, StreamBlocker
from tests.conftest import LiveServer
from tests.helpers import ROOT, free_port

SLOW = 20_000  # ms: covers the page's reconnect backoff after a restart
WATCH_PARTS = {"/static/taskcast/watch.js", "/static/taskcast/transports.js"}


def _submit(page: Page, prompt: str, *, duration: float = 0.5, steps: int = 2, fail: bool = False) -> Locator:
    page.fill("#prompt", prompt)
    page.fill("#duration", str(duration))
    page.fill("#steps", str(steps))
    page.set_checked("#fail", fail)
    page.click("#submit")
    task = page.locator("li.task", has=page.locator(".prompt", has_text=prompt))
    expect(task).to_have_count(1)
    return task


def _timeline(task: Locator, field: str = "status") -> list[str]:
    """One field of each timeline entry: its status, or "via" (the transport that delivered it)."""
    values: list[str] = task.locator("ol.timeline > li.event").evaluate_all(
        f"els => els.map(e => e.dataset.{field})"
    )
    return values


def test_page_shows_running_then_done_with_the_result(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    page.goto(live_server.url)

    task = _submit(page, "hello browser", duration=1.5, steps=3)

    expect(task).to_have_attribute("data-status", "RUNNING")
    expect(task).to_have_attribute("data-status", "DONE")
    expect(task.locator("pre.result")).to_be_visible()
    expect(task.locator("pre.result")).to_contain_text('"upper": "HELLO BROWSER"')
    expect(task.locator(".status")).to_have_text("DONE")
    statuses = _timeline(task)
    assert statuses.index("RUNNING") < statuses.index("DONE")
    assert statuses[-1] == "DONE"


def test_forced_polling_reaches_done(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    page.goto(live_server.url)
    page.select_option("#transport", "polling")

    task = _submit(page, "hello polling", duration=0.5, steps=2)

    expect(task).to_have_attribute("data-status", "DONE")
    expect(task).to_have_attribute("data-transport", "polling")
    expect(task.locator("pre.result")).to_contain_text('"echo": "hello polling"')


def test_failed_task_shows_its_error(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    page.goto(live_server.url)

    task = _submit(page, "hello failure", duration=0.2, steps=1, fail=True)

    expect(task).to_have_attribute("data-status", "FAILED")
    expect(task.locator("pre.error")).to_be_visible()
    expect(task.locator("pre.error")).to_contain_text("failed on purpose")
    expect(task.locator("pre.result")).to_be_hidden()


@pytest.mark.parametrize("ends", ["while_the_api_is_down", "after_the_restart"])
def test_page_reconnects_after_the_api_restarts(
    page: Page, settings: Settings, worker: subprocess.Popen[bytes], ends: str
) -> None:
    port = free_port()
    first = ServedApp(create_app(settings), port=port).start()
    page.goto(first.url)
    task = _submit(page, "hello restart", duration=1.5 if ends == "while_the_api_is_down" else 4, steps=3)
    expect(task).to_have_attribute("data-status", "RUNNING")

    first.stop()
    if ends == "while_the_api_is_down":
        wait_until_status(settings, task.get_attribute("data-task-id") or "", "DONE")
    second = ServedApp(create_app(settings), port=port).start()
    try:
        expect(task).to_have_attribute("data-status", "DONE", timeout=SLOW)
        expect(task.locator("pre.result")).to_contain_text('"echo": "hello restart"')
    finally:
        second.stop()


def test_demo_page_after_a_few_tasks(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    """Also the source of docs/demo-page.png: UPDATE_DOCS_SCREENSHOT=1 writes it there."""
    for_docs = os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1"
    page.goto(live_server.url)
    done = _submit(page, "Summarise the history of Redis", duration=0.6, steps=3)
    failed = _submit(page, "Translate this into Klingon", duration=0.3, steps=1, fail=True)
    expect(done).to_have_attribute("data-status", "DONE")
    expect(failed).to_have_attribute("data-status", "FAILED")
    running = _submit(page, "Render a 4K video of a cat", duration=20, steps=40)

    expect(running.locator(".progress-text")).to_have_text(
        re.compile(r"[2-9]\d%" if for_docs else r"[1-9]\d*%")
    )
    path = ARTIFACTS / "demo-page.png"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=path, full_page=True)
    running.locator(".cancel").click()

    expect(running).to_have_attribute("data-status", "CANCELLED")
    expect(running.locator(".cancel")).to_be_hidden()
    if for_docs:
        shutil.copyfile(path, ROOT / "docs" / "demo-page.png")


@pytest.mark.parametrize("transport", ["sse", "websocket", "polling"])
def test_with_an_api_key_the_page_watches_with_the_watch_token_and_keeps_the_key_for_submit(
    page: Page,
    start_server: Callable[..., LiveServer],
    worker: subprocess.Popen[bytes],
    transport: str,
) -> None:
    key = "page-api-key"
    server = start_server(api_key=key)
    requests: list[Request] = []
    sockets: list[str] = []
    page.on("request", lambda request: requests.append(request))
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.goto(server.url)
    page.fill("#api-key", key)
    page.dispatch_event("#api-key", "change")
    page.select_option("#transport", transport)

    task = _submit(page, f"hello token {transport}", duration=0.3, steps=1)

    expect(task).to_have_attribute("data-status", "DONE")
    expect(task).to_have_attribute("data-transport", transport)
    watching = [r for r in requests if r.method == "GET" and "/tasks/" in r.url]
    assert all(r.headers.get("authorization") != f"Bearer {key}" for r in watching)
    assert all(key not in url for url in [r.url for r in requests] + sockets)
    submits = [r for r in requests if r.method == "POST"]
    assert [r.headers.get("authorization") for r in submits] == [f"Bearer {key}"]
    if transport == "sse":
        assert any("token=" in r.url for r in watching if r.url.split("?")[0].endswith("/events"))
    if transport == "websocket":
        assert sockets and all("token=" in url for url in sockets)


# Records every stream the page opens (EventSource, WebSocket, long-poll fetch) with the files
# of its stack that are served under /static/, the opener first; and the most EventSources open.
RECORD_STREAMS = """(() => {
  Error.stackTraceLimit = 100;
  const streams = (window.__streams = []);
  let open = 0;
  window.__maxOpenSse = 0;
  const opener = () => (new Error().stack ?? "").split("\\n")
    .map((line) => line.match(/https?:\\/\\/[^\\s)]+/)?.[0])
    .filter((url) => url?.includes("/static/"))
    .map((url) => new URL(url.replace(/(:\\d+)+$/, "")).pathname);
  const NativeEventSource = window.EventSource;
  window.EventSource = class extends NativeEventSource {
    constructor(url, init) {
      super(url, init);
      streams.push({ kind: "sse", stack: opener() });
      window.__maxOpenSse = Math.max(window.__maxOpenSse, (open += 1));
    }
    close() {
      if (this.readyState !== NativeEventSource.CLOSED) open -= 1;
      super.close();
    }
  };
  const NativeWebSocket = window.WebSocket;
  window.WebSocket = class extends NativeWebSocket {
    constructor(url, protocols) {
      super(url, protocols);
      streams.push({ kind: "websocket", stack: opener() });
    }
  };
  const nativeFetch = window.fetch;
  window.fetch = function (input, init) {
    if (/[?&]wait=/.test(String(input))) streams.push({ kind: "polling", stack: opener() });
    return nativeFetch.call(this, input, init);
  };
})();"""


@pytest.mark.parametrize("transport", ["auto", "sse", "websocket", "polling"])
def test_every_stream_of_the_page_is_opened_by_the_client_module(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes], transport: str
) -> None:
    page.add_init_script(RECORD_STREAMS)
    page.goto(live_server.url)
    page.select_option("#transport", transport)

    task = _submit(page, f"watched by the module over {transport}", duration=0.3, steps=1)

    expect(task).to_have_attribute("data-status", "DONE")
    streams: list[dict[str, Any]] = page.evaluate("window.__streams")
    assert {s["kind"] for s in streams} == {"sse" if transport == "auto" else transport}
    assert all(_opened_by_the_modules_watch(s["stack"]) for s in streams), streams


def _opened_by_the_modules_watch(stack: list[str]) -> bool:
    """From the opener down to the page's own code, the stack passes through the module's watch
    (a reconnect on the module's timer has no frame of the page at all)."""
    module = list(itertools.takewhile(lambda path: path.startswith("/static/taskcast"), stack))
    return len(module) == len(stack) or bool(WATCH_PARTS.intersection(module))


def test_forced_sse_keeps_four_streams_open_and_the_fifth_task_waits_for_a_slot(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    page.add_init_script(RECORD_STREAMS)
    page.goto(live_server.url)
    page.select_option("#transport", "sse")

    tasks = [_submit(page, f"slot {n}", duration=3, steps=1) for n in range(5)]

    expect(tasks[-1]).to_have_attribute("data-link", "queued")
    for task in tasks:
        expect(task).to_have_attribute("data-status", "DONE", timeout=SLOW)
    assert page.evaluate("window.__maxOpenSse") == 4
    assert "sse" in _timeline(tasks[-1], "via")


def test_behind_a_proxy_that_blocks_both_streams_the_page_falls_back_to_polling(
    page: Page, settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    server = ServedApp(StreamBlocker(create_app(settings), sse_answer="html", block_ws=True)).start()
    try:
        page.goto(server.url)

        task = _submit(page, "hello strict proxy", duration=2, steps=2)

        expect(task).to_have_attribute("data-status", "DONE")
        expect(task).to_have_attribute("data-transport", "polling")
        expect(page.locator("#transport-in-use")).to_have_attribute("data-resolved", "polling")
        assert "polling" in _timeline(task, "via")
    finally:
        server.stop()
