"""Browser fixtures: Debian's Chromium driven by Playwright, a subprocess worker, screenshots.

These tests are sync (Playwright's sync API refuses to run inside a running event loop).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from redis import Redis

from server.settings import Settings
from taskstore import Keys
from tests.helpers import ROOT, spawn_worker

CHROMIUM = Path(os.environ.get("TASKCAST_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts"


# Module scope, not session: while Playwright's sync API is open, its event loop counts as
# running in this thread, and every async test after it would fail to start its own loop.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.is_file():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: install it with `apt-get update && apt-get install -y chromium`, "
            "or point TASKCAST_CHROMIUM at a Chromium binary",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh page (own context, so empty localStorage); its screenshot goes to test-artifacts/."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    yield page
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=ARTIFACTS / f"{request.node.name}.png", full_page=True)
    context.close()


@pytest.fixture
def worker_process(settings: Settings) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Factory: `python -m worker` on the test's Redis, no retries, quick to notice new tasks."""
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> subprocess.Popen[bytes]:
        proc = spawn_worker(settings.redis_url, max_retries="0", read_block_ms="50", shutdown_grace="1")
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stderr is not None:
            proc.stderr.close()


@pytest.fixture
def worker(worker_process: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    return worker_process()


def wait_until_status(settings: Settings, task_id: str, status: str, timeout: float = 15.0) -> None:
    """Poll the task's hash (the source of truth) until it has `status`, without the API."""
    key = Keys(prefix=settings.key_prefix, queue=settings.queue_key).task(task_id)
    deadline = time.monotonic() + timeout
    with Redis.from_url(settings.redis_url) as redis:
        while (current := redis.hget(key, "status")) != status.encode():
            if time.monotonic() > deadline:
                raise AssertionError(f"task {task_id} still {current!r} after {timeout} s, wanted {status}")
            time.sleep(0.05)
