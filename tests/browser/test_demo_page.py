"""The demo page in a real browser: submit, watch over each transport, fail, survive a restart."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Callable

import pytest
from playwright.sync_api import Locator, Page, Request, expect

from server.main import create_app
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS, wait_until_status
from tests.clients.servers import ServedApp
from tests.conftest import LiveServer
from tests.helpers import ROOT, free_port

SLOW = 20_000  # ms: covers the page's reconnect backoff after a restart


def _submit(page: Page, prompt: str, *, duration: float = 0.5, steps: int = 2, fail: bool = False) -> Locator:
    page.fill("#prompt", prompt)
    page.fill("#duration", str(duration))
    page.fill("#steps", str(steps))
    page.set_checked("#fail", fail)
    page.click("#submit")
    task = page.locator("li.task", has=page.locator(".prompt", has_text=prompt))
    expect(task).to_have_count(1)
    return task


def _timeline(task: Locator) -> list[str]:
    return task.locator("ol.timeline > li.event").evaluate_all("els => els.map(e => e.dataset.status)")


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
