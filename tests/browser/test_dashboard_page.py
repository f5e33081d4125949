"""The operations page in Chromium: live rows, failures, charts, workers, actions, no polling."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, expect

from server.main import create_app
from server.settings import Settings
from tests.browser.conftest import ARTIFACTS
from tests.clients.servers import ServedApp
from tests.conftest import LiveServer
from tests.helpers import ROOT, free_port, spawn_worker

SLOW = 20_000  # ms: covers the page's reconnect backoff after a restart


def _submit(
    server: LiveServer | ServedApp, prompt: str, headers: dict[str, str] | None = None, **params: Any
) -> str:
    answer = httpx.post(f"{server.url}/tasks", json={"prompt": prompt, "params": params}, headers=headers)
    assert answer.status_code == 202, answer.text
    task_id: str = answer.json()["task_id"]
    return task_id


def _row(page: Page, task_id: str) -> Any:
    return page.locator(f'#tasks tr[data-task-id="{task_id}"]')


def _open(page: Page, url: str) -> None:
    page.goto(f"{url}/dashboard")
    expect(page.locator("#link")).to_have_attribute("data-state", "live")


def test_tasks_move_through_their_states_and_a_failure_shows_its_error(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    _open(page, live_server.url)

    ok = _submit(live_server, "moving along", duration=2, steps=4)
    bad = _submit(live_server, "going wrong", duration=0.2, steps=1, fail=True)

    expect(_row(page, ok)).to_have_attribute("data-status", "RUNNING")
    expect(_row(page, ok).locator(".progress")).to_contain_text("%")
    expect(_row(page, bad)).to_have_attribute("data-status", "FAILED")
    expect(_row(page, bad).locator(".error")).to_contain_text("failed on purpose")
    expect(_row(page, ok)).to_have_attribute("data-status", "DONE")
    expect(page.locator('#counters [data-kind="default"] .done .n')).to_have_text("1")
    expect(page.locator('#counters [data-kind="default"] .failed .n')).to_have_text("1")
    expect(page.locator("#throughput")).not_to_have_attribute("data-points", "0")
    expect(page.locator("#depth")).not_to_have_attribute("data-points", "0")
    assert int(page.locator("#throughput").get_attribute("data-points") or 0) > 0


def test_a_row_opens_the_tasks_live_timeline(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    _open(page, live_server.url)
    task_id = _submit(live_server, "watch me", duration=1.5, steps=3)
    expect(_row(page, task_id)).to_be_visible()

    _row(page, task_id).locator(".kind").click()

    events = page.locator("#timeline-events li.event")
    expect(page.locator("#timeline")).to_be_visible()
    expect(events.last).to_have_attribute("data-status", "DONE")
    statuses = events.evaluate_all("els => els.map(e => e.dataset.status)")
    assert "RUNNING" in statuses and statuses[-1] == "DONE"


def test_cancel_from_the_page(page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]) -> None:
    _open(page, live_server.url)
    task_id = _submit(live_server, "too long", duration=30, steps=30)
    expect(_row(page, task_id)).to_have_attribute("data-status", "RUNNING")

    _row(page, task_id).locator('button[data-action="cancel"]').click()

    expect(_row(page, task_id)).to_have_attribute("data-status", "CANCELLED")
    expect(page.locator("#notice")).to_have_text("Cancelled.")


def test_resubmit_and_requeue_a_failed_task_from_the_page(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    _open(page, live_server.url)
    bad = _submit(live_server, "fails twice", duration=0.1, steps=1, fail=True)
    expect(_row(page, bad)).to_have_attribute("data-status", "FAILED")

    _row(page, bad).locator('button[data-action="resubmit"]').click()
    expect(page.locator("#notice")).to_contain_text("Resubmitted as a new task")
    _row(page, bad).locator('button[data-action="requeue"]').click()
    expect(page.locator("#notice")).to_contain_text("Dead letter requeued")

    expect(page.locator('#tasks tr[data-status="FAILED"]')).to_have_count(3)  # both new ones fail again
    page.locator("#show-dead").click()
    expect(page.locator("#dead-list li")).to_have_count(2)


def test_a_killed_worker_disappears_from_the_workers_table(
    page: Page, start_server: Callable[..., LiveServer]
) -> None:
    server = start_server(worker_gone_after=2.0)
    proc = spawn_worker(server.settings.redis_url, consumer_name="doomed", heartbeat_interval="0.3")
    try:
        _open(page, server.url)
        expect(page.locator('#workers tr[data-name="doomed"]')).to_have_count(1)
        expect(page.locator('#workers tr[data-name="doomed"] .pid')).to_have_text(str(proc.pid))

        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

        expect(page.locator('#workers tr[data-name="doomed"]')).to_have_count(0)
        expect(page.locator("#no-workers")).to_be_visible()
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stderr is not None:
            proc.stderr.close()


def test_no_repeated_get_requests_over_ten_seconds_of_activity(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    gets: list[str] = []
    page.on("request", lambda request: _count_get(request, gets))
    _open(page, live_server.url)
    loaded = len(gets)

    ids, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        ids.append(_submit(live_server, f"activity {len(ids)}", duration=0.3, steps=2))
        page.wait_for_timeout(250)

    expect(_row(page, ids[-1])).to_be_visible()
    during = gets[loaded:]
    assert during == [], f"the page sent GET requests while live: {during}"
    assert len(gets) == len(set(gets)), f"repeated GETs while loading: {gets}"


def _count_get(request: Request, gets: list[str]) -> None:
    if request.method == "GET":
        gets.append(request.url)


def test_with_an_api_key_the_page_asks_for_it(page: Page, start_server: Callable[..., LiveServer]) -> None:
    server = start_server(api_key="sesame")
    task_id = _submit(server, "secret work", headers={"Authorization": "Bearer sesame"})
    page.goto(f"{server.url}/dashboard")

    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#banner")).to_contain_text("needs a key")
    page.fill("#api-key", "sesame")
    page.click("#key-form button")

    expect(page.locator("#link")).to_have_attribute("data-state", "live")
    expect(_row(page, task_id)).to_have_attribute("data-status", "PENDING")
    expect(page.locator("#key-form")).to_be_hidden()


def test_the_page_says_it_is_disconnected_and_reconnects_after_an_api_restart(
    page: Page, settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    port = free_port()
    first = ServedApp(create_app(settings), port=port).start()
    _open(page, first.url)

    first.stop()
    expect(page.locator("#link")).to_have_attribute("data-state", "down")
    expect(page.locator("#banner")).to_contain_text("Disconnected from the API")
    second = ServedApp(create_app(settings), port=port).start()
    try:
        expect(page.locator("#link")).to_have_attribute("data-state", "live", timeout=SLOW)
        task_id = _submit(second, "after the restart", duration=0.2, steps=1)
        expect(_row(page, task_id)).to_have_attribute("data-status", "DONE")
        expect(page.locator("#banner")).to_be_hidden()
    finally:
        second.stop()


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_the_page_fits_the_screen(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes], width: int, height: int
) -> None:
    """Also the source of docs/dashboard.png (1280x800): UPDATE_DOCS_SCREENSHOT=1 writes it there."""
    page.set_viewport_size({"width": width, "height": height})
    _open(page, live_server.url)
    for i in range(12):
        _submit(live_server, f"job {i}", duration=0.2 + i % 4, steps=4, fail=i % 5 == 4)
    expect(page.locator('#tasks tr[data-status="FAILED"]')).not_to_have_count(0)
    expect(page.locator('#tasks tr[data-status="DONE"]')).not_to_have_count(0)
    expect(page.locator("#workers tbody tr")).to_have_count(1)
    expect(page.locator('#counters [data-kind="default"] .failed .n')).not_to_have_text("0")

    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")

    assert overflow <= 0
    path = ARTIFACTS / f"dashboard-{width}x{height}.png"
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=path)


def test_dashboard_under_load(page: Page, live_server: LiveServer) -> None:
    """Also the source of docs/dashboard.png: UPDATE_DOCS_SCREENSHOT=1 writes it there.

    Under load the live list takes a row a second (server/ops/opsfeed.py, the rows' budget),
    so it shows a sample of the tasks: running ones among them while the load lasts."""
    url = live_server.settings.redis_url
    workers = [
        spawn_worker(url, max_concurrency="40", max_retries="1", retry_backoff="0.2") for _ in range(2)
    ]
    try:
        page.set_viewport_size({"width": 1280, "height": 800})
        _open(page, live_server.url)
        path = ARTIFACTS / "dashboard.png"
        ARTIFACTS.mkdir(exist_ok=True)
        running = page.locator('#tasks tr[data-status="RUNNING"]')
        shot = False
        with httpx.Client(base_url=live_server.url) as client:
            for i in range(300):  # ~15 s of mixed work: short, long, retried and failing tasks
                params = {
                    "duration": 0.2 + (i % 7) * 0.4,
                    "steps": 5,
                    "fail": i % 11 == 0,
                    "fail_times": int(i % 5 == 0),
                }
                client.post("/tasks", json={"prompt": f"load {i}", "params": params}).raise_for_status()
                page.wait_for_timeout(50)
                if i >= 200 and not shot and running.count() > 0:
                    page.screenshot(path=path)  # the busy page, running rows in it
                    shot = True

        assert shot, "no RUNNING row in the list during the last 5 s of load"
        assert int(page.locator("#throughput").get_attribute("data-points") or 0) >= 10
        expect(page.locator("#workers tbody tr")).to_have_count(2)
        if os.environ.get("UPDATE_DOCS_SCREENSHOT") == "1":
            shutil.copyfile(path, ROOT / "docs" / "dashboard.png")
    finally:
        for proc in workers:
            proc.terminate()
            proc.wait(timeout=10)
            if proc.stderr is not None:
                proc.stderr.close()
