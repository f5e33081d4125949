"""static/taskcast.js, the reusable client module, imported by a page in Chromium: submit,
watch on each transport and with the auto fallback, Idempotency-Key; the demo page's kind and
delay fields."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from server.main import create_app
from server.settings import Settings
from tests.clients.servers import ServedApp, StreamBlocker
from tests.conftest import LiveServer

FOLLOW = """async ({ transport, prompt }) => {
  const { TaskcastClient } = await import("/static/taskcast.js");
  const client = new TaskcastClient();
  const answer = await client.submit({ prompt, params: { duration: 0.3, steps: 2 } });
  const seqs = [], via = [];
  const watcher = client.watch(answer.data.task_id, {
    transport, onState: (s) => seqs.push(s.seq), onTransport: (t) => via.push(t),
  });
  return { status: answer.status, final: await watcher.done, seqs, via };
}"""


def _follow(page: Page, url: str, transport: str, prompt: str) -> dict[str, Any]:
    page.goto(url)
    outcome: dict[str, Any] = page.evaluate(FOLLOW, {"transport": transport, "prompt": prompt})
    return outcome


@pytest.mark.parametrize("transport", ["sse", "websocket", "polling"])
def test_the_module_watches_a_task_to_done_on_each_transport(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes], transport: str
) -> None:
    outcome = _follow(page, live_server.url, transport, f"module over {transport}")

    assert outcome["status"] == 202
    assert outcome["final"]["status"] == "DONE"
    assert outcome["seqs"] == sorted(set(outcome["seqs"]))
    assert outcome["seqs"][-1] == outcome["final"]["seq"]
    assert outcome["via"] == [transport]


def test_auto_falls_back_to_polling_when_streams_are_blocked(
    page: Page, settings: Settings, worker: subprocess.Popen[bytes]
) -> None:
    proxy = StreamBlocker(create_app(settings), sse_answer="html", block_ws=True)
    server = ServedApp(proxy).start()
    try:
        outcome = _follow(page, server.url, "auto", "module behind a strict proxy")
    finally:
        server.stop()

    assert outcome["final"]["status"] == "DONE"
    assert outcome["via"] == ["sse", "websocket", "polling"]
    assert outcome["seqs"] == sorted(set(outcome["seqs"]))


def test_the_module_sends_one_idempotency_key_for_repeats(page: Page, live_server: LiveServer) -> None:
    page.goto(live_server.url)

    ids = page.evaluate("""async () => {
      const { TaskcastClient } = await import("/static/taskcast.js");
      const client = new TaskcastClient();
      const body = { prompt: "only once", params: { duration: 30 }, idempotencyKey: "page-key" };
      const first = await client.submit(body), again = await client.submit(body);
      return [first.data.task_id, again.data.task_id, again.data.replayed];
    }""")

    assert ids[0] == ids[1] and ids[2] is True


def test_the_page_submits_a_kind_and_a_delay_and_marks_an_unknown_kind(page: Page, start_server: Any) -> None:
    server = start_server(task_kinds="default,summary")
    page.goto(server.url)

    page.fill("#prompt", "a delayed summary")
    page.fill("#kind", "summary")
    page.fill("#delay", "30")
    page.click("#submit")
    task = page.locator("li.task")
    page.fill("#prompt", "an unknown kind")
    page.fill("#kind", "render")
    page.click("#submit")

    expect(task).to_have_attribute("data-kind", "summary")
    expect(task).to_have_attribute("data-status", "PENDING")
    expect(task).not_to_have_attribute("data-run-at", "")
    expect(page.locator("#kind")).to_have_attribute("aria-invalid", "true")
