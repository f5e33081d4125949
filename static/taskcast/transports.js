// The three ways a Watcher follows a task. Each takes the watcher, reports states, link states
// and trouble to it, and returns a function that stops it.

import { Backoff, sleep, withTimeout } from "./timing.js";
import { parseJson } from "./wire.js";

// The server sends the current state first: a fresh stream that stays silent this long is
// held up on the way (a buffering proxy, say).
const FIRST_EVENT_TIMEOUT_MS = 10000;
const FAILURES_BEFORE_FALLBACK = 3;
const POLL_WAIT_SECONDS = 25;
const POLL_TIMEOUT_MS = (POLL_WAIT_SECONDS + 10) * 1000;
// A server or proxy that ignores ?wait= answers at once; never ask more often than this.
const MIN_POLL_GAP_MS = 2000;

/** One EventSource, holding one of the client's stream slots while it lives. */
export function followSse(watcher) {
  const { client, taskId } = watcher;
  const ended = new AbortController();
  let source = null;
  let timer = 0;
  let failures = 0;
  let release = null;

  const open = () => {
    const resuming = watcher.seq !== null;
    let working = false;
    const params = { ...client.credentials(taskId), last_event_id: watcher.seq };
    const current = new EventSource(client.url(`${client.taskPath(taskId)}/events`, params));
    source = current;
    const proven = () => {
      working = true;
      failures = 0;
      clearTimeout(timer);
      watcher.setLink("live");
    };
    const receive = (message) => {
      proven();
      const state = parseJson(message.data);
      if (state) watcher.deliver(state, "sse");
    };
    current.addEventListener("task", receive);
    current.addEventListener("message", receive); // a server build without "event: task"
    // Resuming, the server may have nothing newer to say: an open stream has proved itself.
    current.onopen = () => {
      if (resuming || working) proven();
    };
    current.onerror = () => {
      watcher.setLink("retrying");
      if (working && current.readyState !== EventSource.CLOSED) return; // reconnects with Last-Event-ID
      current.close();
      failures += 1;
      troubled(!working);
    };
    if (resuming) return;
    timer = setTimeout(() => {
      current.close();
      troubled(true);
    }, FIRST_EVENT_TIMEOUT_MS);
  };

  // EventSource gives up on a non-200 answer and never retries a first connection that failed.
  const troubled = async (neverWorked) => {
    const verdict = await watcher.check();
    if (verdict === "settled" || ended.signal.aborted) return;
    if (verdict === "ok" && (neverWorked || failures >= FAILURES_BEFORE_FALLBACK)) return watcher.fallBack();
    timer = setTimeout(open, watcher.backoff.next());
  };

  const granted = (permit) => {
    if (!permit) return;
    if (ended.signal.aborted) return permit();
    release = permit;
    open();
  };
  const permit = client.slots.tryAcquire();
  if (permit) granted(permit);
  else {
    watcher.setLink("queued");
    client.slots.acquire(ended.signal).then(granted);
  }
  return () => {
    ended.abort();
    clearTimeout(timer);
    source?.close();
    release?.();
  };
}

/** A subscription on the client's shared /ws socket (no stream slot: it is one connection). */
export function followSocket(watcher) {
  const socket = watcher.client.socket();
  let ended = false;
  let timer = 0;
  let unsubscribe = () => {};

  const subscribe = () => {
    unsubscribe = socket.subscribe(watcher.taskId, {
      lastSeq: watcher.seq,
      onState: (state) => {
        watcher.setLink("live");
        watcher.deliver(state, "websocket");
      },
      onSubscribed: () => watcher.setLink("live"),
      onDrop: () => watcher.setLink("retrying"),
      onNeverOpened: () => neverOpened(),
      onError: (frame) => refused(frame),
    });
  };

  // The server answers HTTP but the socket never opened: WebSocket is blocked on the way. When
  // the server is down too, the socket keeps reconnecting by itself.
  const neverOpened = async () => {
    watcher.setLink("retrying");
    if ((await watcher.check()) === "ok" && !ended) watcher.fallBack();
  };

  // An error frame for this task: the server holds no subscription for it.
  const refused = (frame) => {
    if (frame.code === 404) return watcher.fail(404, frame.error ?? `task ${watcher.taskId} is unknown or expired`);
    if (frame.code === 401) return watcher.fail(401, frame.error ?? "the server wants a watch token");
    watcher.setLink("retrying"); // e.g. the socket's subscription limit: try again later
    timer = setTimeout(async () => {
      if ((await watcher.check()) !== "settled" && !ended) subscribe();
    }, watcher.backoff.next());
  };

  subscribe();
  return () => {
    ended = true;
    clearTimeout(timer);
    unsubscribe();
  };
}

/** Long-polls GET /tasks/{id}?wait=&seq=, each request holding a stream slot while it waits
 * (so many polling tasks take turns). It never falls back: it is the last resort. */
export function followPolling(watcher) {
  const ended = new AbortController();
  pollUntilEnded(watcher, ended.signal);
  return () => ended.abort();
}

async function pollUntilEnded(watcher, signal) {
  const backoff = new Backoff(1000, 30000);
  const cache = { etag: null };
  while (!signal.aborted) {
    const started = Date.now();
    const outcome = await pollOnce(watcher, cache, signal);
    if (outcome === "stop" || signal.aborted) return;
    if (outcome === "error") {
      watcher.setLink("retrying");
      await sleep(backoff.next(), signal);
      continue;
    }
    backoff.reset();
    if (outcome === "same" && Date.now() - started < MIN_POLL_GAP_MS) await sleep(MIN_POLL_GAP_MS, signal);
  }
}

async function pollOnce(watcher, cache, signal) {
  const slots = watcher.client.slots;
  if (!slots.hasFree()) watcher.setLink("queued");
  const release = await slots.acquire(signal);
  if (!release) return "stop";
  if (signal.aborted) {
    release();
    return "stop";
  }
  watcher.setLink("live");
  const timeout = withTimeout(signal, POLL_TIMEOUT_MS);
  try {
    const options = { wait: POLL_WAIT_SECONDS, seq: watcher.seq, etag: cache.etag, signal: timeout.signal };
    return classify(watcher, await watcher.client.get(watcher.taskId, options), cache);
  } catch {
    return "error";
  } finally {
    timeout.done();
    release();
  }
}

/** "moved", "same", "error" (try again after a backoff) or "stop" (the watch ended). */
function classify(watcher, answer, cache) {
  switch (answer.status) {
    case 200:
      cache.etag = answer.headers.get("ETag");
      return watcher.deliver(answer.data, "polling") ? "moved" : "same";
    case 304:
      return "same";
    case 404:
      watcher.fail(404, `task ${watcher.taskId} is unknown or expired`);
      return "stop";
    case 401:
    case 403:
      watcher.fail(401, "the server wants an API key or a watch token");
      return "stop";
    default:
      return "error";
  }
}
