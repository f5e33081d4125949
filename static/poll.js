// Long-polling one task: GET /tasks/{id}?wait=25&seq=<last seq> until it ends.

import { getTask } from "./api.js";
import { Backoff, sleep, withTimeout } from "./backoff.js";

const WAIT_SECONDS = 25;
const REQUEST_TIMEOUT_MS = (WAIT_SECONDS + 10) * 1000;
// A server that ignores ?wait= answers at once; never ask more often than this.
const MIN_GAP_MS = 2000;

/**
 * Runs until signal aborts (watch.js aborts it once the task is terminal) or the server
 * says the task is gone (404) or wants credentials (401/403).
 * hooks: slots, onEvent(data) -> applied?, onGone(), onAuth(), setLink(state).
 */
export async function pollTask(task, hooks, signal) {
  const backoff = new Backoff(1000, 30000);
  const state = { etag: null };
  while (!signal.aborted) {
    const started = Date.now();
    const outcome = await pollOnce(task, state, hooks, signal);
    if (outcome === "stop" || signal.aborted) return;
    if (outcome === "error") {
      hooks.setLink("retrying");
      await sleep(backoff.next(), signal);
      continue;
    }
    backoff.reset();
    if (outcome === "same" && Date.now() - started < MIN_GAP_MS) await sleep(MIN_GAP_MS, signal);
  }
}

async function pollOnce(task, state, hooks, signal) {
  if (!hooks.slots.hasFree()) hooks.setLink("queued");
  const release = await hooks.slots.acquire(signal);
  if (!release) return "stop";
  if (signal.aborted) {
    release();
    return "stop";
  }
  hooks.setLink("live");
  const timeout = withTimeout(signal, REQUEST_TIMEOUT_MS);
  try {
    const answer = await getTask(task.task_id, {
      wait: WAIT_SECONDS, seq: task.seq, etag: state.etag, signal: timeout.signal,
    });
    return classify(answer, state, hooks);
  } catch {
    return "error";
  } finally {
    timeout.done();
    release();
  }
}

function classify(answer, state, hooks) {
  switch (answer.status) {
    case 200:
      state.etag = answer.headers.get("ETag");
      return hooks.onEvent(answer.data) ? "moved" : "same";
    case 304:
      return "same";
    case 404:
      hooks.onGone();
      return "stop";
    case 401:
    case 403:
      hooks.onAuth();
      return "stop";
    default:
      return "error";
  }
}
