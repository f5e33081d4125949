"""static/taskcast.js, the reusable client module, imported by a page in Chromium: submit,
watch on each transport and with the auto fallback, the stream cap, stop, the key kept from
watching, Idempotency-Key; the demo page's kind and delay fields."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest
from playwright.sync_api import Page, Request, expect

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


def test_watches_beyond_max_streams_wait_for_a_slot_or_take_the_shared_socket(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    page.goto(live_server.url)

    outcome = page.evaluate("""async () => {
      const { TaskcastClient } = await import("/static/taskcast.js");
      const client = new TaskcastClient({ maxStreams: 1 });
      const ids = [];
      for (const n of [1, 2, 3]) {
        const answer = await client.submit({ prompt: `slot ${n}`, params: { duration: 1, steps: 1 } });
        ids.push(answer.data.task_id);
      }
      const links = [[], [], []], via = [[], [], []];
      const watchers = ["sse", "sse", "auto"].map((transport, i) => client.watch(ids[i], {
        transport, onLink: (link) => links[i].push(link), onTransport: (name) => via[i].push(name),
      }));
      const finals = await Promise.all(watchers.map((watcher) => watcher.done));
      return { statuses: finals.map((final) => final.status), links, via };
    }""")

    assert outcome["statuses"] == ["DONE", "DONE", "DONE"]
    assert outcome["via"] == [["sse"], ["sse"], ["websocket"]]
    assert "queued" not in outcome["links"][0]
    assert outcome["links"][1].index("queued") < outcome["links"][1].index("live")


def test_a_stopped_watch_settles_with_null_and_passes_nothing_on(
    page: Page, live_server: LiveServer, worker: subprocess.Popen[bytes]
) -> None:
    page.goto(live_server.url)

    outcome = page.evaluate("""async () => {
      const { TaskcastClient } = await import("/static/taskcast.js");
      const client = new TaskcastClient();
      const answer = await client.submit({ prompt: "stopped early", params: { duration: 1, steps: 4 } });
      const id = answer.data.task_id, seen = [], abort = new AbortController();
      const watcher = client.watch(id, { signal: abort.signal, onState: (s) => seen.push(s.status) });
      await new Promise((resolve) => setTimeout(resolve, 200));
      abort.abort();
      const stopped = await watcher.done, count = seen.length;
      const final = await client.watch(id, { transport: "polling" }).done;
      return { stopped, before: count, after: seen.length, final: final.status };
    }""")

    assert outcome["stopped"] is None
    assert outcome["final"] == "DONE"
    assert outcome["after"] == outcome["before"]


def test_without_watch_with_key_the_key_never_watches(page: Page, start_server: Any) -> None:
    key = "module-api-key"
    server = start_server(api_key=key)
    requests: list[Request] = []
    page.on("request", lambda request: requests.append(request))
    page.goto(server.url)

    outcome = page.evaluate(
        """async (key) => {
      const { TaskcastClient } = await import("/static/taskcast.js");
      const tokens = { get: () => null, set: () => {} };  // a task watched without its token
      const client = new TaskcastClient({ apiKey: key, tokens, watchWithKey: false });
      const answer = await client.submit({ prompt: "no token", params: { duration: 30 } });
      const failed = await client.watch(answer.data.task_id).done.catch((error) => error.status);
      await client.cancel(answer.data.task_id);
      return { submitted: answer.status, failed };
    }""",
        key,
    )

    assert outcome == {"submitted": 202, "failed": 401}
    with_key = [r.method for r in requests if key in r.url + str(r.headers.get("authorization"))]
    assert with_key == ["POST", "DELETE"]
