// watch(): one task followed over SSE, then the shared WebSocket, then long-polling, moving on
// when a transport never delivers. Each resumes after the last seq seen; no state is passed on
// twice.

import { Backoff, sleep } from "./timing.js";
import { TERMINAL, parseJson } from "./wire.js";

export const TRANSPORTS = ["sse", "websocket", "polling"];
// The server sends the current state first: a fresh stream that stays silent this long is
// held up on the way (a buffering proxy, say), so auto mode moves on.
const FIRST_EVENT_TIMEOUT_MS = 10000;
const POLL_WAIT_SECONDS = 25;
const FAILURES_BEFORE_FALLBACK = 3;

export class Watcher {
  constructor(client, taskId, { transport = "auto", onState = () => {}, onTransport = () => {}, lastSeq = null }) {
    this.client = client;
    this.taskId = taskId;
    this.onState = onState;
    this.onTransport = onTransport;
    this.seq = lastSeq;
    this.chain = transport === "auto" ? TRANSPORTS : [transport];
    this.level = 0;
    this.transport = null;
    this.abort = new AbortController();
    this.stopCurrent = () => {};
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    this.#start();
  }

  stop() {
    this.abort.abort();
    this.stopCurrent();
  }

  /** Passes on a state newer than any seen; ends the watch after a terminal one. */
  deliver(state) {
    const seq = Number(state?.seq);
    if (this.abort.signal.aborted || !Number.isFinite(seq) || (this.seq !== null && seq <= this.seq)) return false;
    this.seq = seq;
    this.onState(state);
    if (TERMINAL.has(state.status)) {
      this.stop();
      this.resolve(state);
    }
    return true;
  }

  fail(status, message) {
    this.stop();
    this.reject(Object.assign(new Error(message), { status }));
  }

  /** The current transport does not work here: the next one of the chain, or give up. */
  fallBack() {
    this.stopCurrent();
    if (this.abort.signal.aborted) return;
    if (this.level + 1 >= this.chain.length) return this.fail(0, `cannot follow task ${this.taskId}`);
    this.level += 1;
    this.#start();
  }

  #start() {
    this.transport = this.chain[this.level];
    this.onTransport(this.transport);
    if (this.transport === "sse") this.stopCurrent = followSse(this);
    else if (this.transport === "websocket") this.stopCurrent = followSocket(this);
    else this.stopCurrent = followPolling(this);
  }
}

/** One EventSource; a stream that never delivers, or keeps failing, makes the watcher fall back. */
function followSse(watcher) {
  const { client, taskId } = watcher;
  let source = null;
  let failures = 0;
  let timer = 0;
  const open = () => {
    let working = false;
    const params = { ...client.credentials(taskId), last_event_id: watcher.seq };
    source = new EventSource(client.url(`${client.taskPath(taskId)}/events`, params));
    const receive = (message) => {
      working = true;
      failures = 0;
      clearTimeout(timer);
      const state = parseJson(message.data);
      if (state) watcher.deliver(state);
    };
    source.addEventListener("task", receive);
    source.addEventListener("message", receive);
    source.onerror = () => {
      if (working && source.readyState !== EventSource.CLOSED) return; // it reconnects by itself
      source.close();
      failures += 1;
      if (!working || failures >= FAILURES_BEFORE_FALLBACK) return checkThenFallBack(watcher);
      timer = setTimeout(open, 1000);
    };
    timer = setTimeout(() => {
      if (!working) watcher.fallBack();
    }, FIRST_EVENT_TIMEOUT_MS);
  };
  open();
  return () => {
    clearTimeout(timer);
    source?.close();
  };
}

/** A stream failed: one plain GET says whether the task is gone (404), the key wrong (401), or
 * the stream itself is blocked on the way (fall back). */
async function checkThenFallBack(watcher) {
  let answer;
  try {
    answer = await watcher.client.get(watcher.taskId, { signal: watcher.abort.signal });
  } catch {
    return watcher.fallBack();
  }
  if (answer.status === 404) return watcher.fail(404, `task ${watcher.taskId} is unknown or expired`);
  if (answer.status === 401 || answer.status === 403) return watcher.fail(401, "the server wants an API key");
  if (answer.status === 200 && watcher.deliver(answer.data) && TERMINAL.has(answer.data.status)) return;
  watcher.fallBack();
}

function followSocket(watcher) {
  const socket = watcher.client.socket();
  const unsubscribe = socket.subscribe(watcher.taskId, {
    lastSeq: watcher.seq,
    onState: (state) => watcher.deliver(state),
    onNeverOpened: () => checkThenFallBack(watcher),
    onError: (frame) => {
      if (frame.code === 4404 || /not found/i.test(frame.error ?? "")) watcher.fail(404, frame.error);
    },
  });
  return unsubscribe;
}

function followPolling(watcher) {
  const { client, taskId } = watcher;
  const signal = watcher.abort.signal;
  const loop = async () => {
    const backoff = new Backoff(1000, 30000);
    let etag = null;
    while (!signal.aborted) {
      let answer;
      try {
        answer = await client.get(taskId, { wait: POLL_WAIT_SECONDS, seq: watcher.seq, etag, signal });
      } catch {
        await sleep(backoff.next(), signal);
        continue;
      }
      backoff.reset();
      if (answer.status === 200) {
        etag = answer.headers.get("ETag");
        watcher.deliver(answer.data);
      } else if (answer.status === 404) {
        return watcher.fail(404, `task ${taskId} is unknown or expired`);
      } else if (answer.status === 401 || answer.status === 403) {
        return watcher.fail(401, "the server wants an API key");
      } else if (answer.status !== 304) {
        await sleep(backoff.next(), signal);
      }
    }
  };
  loop();
  return () => {};
}

/**
 * One multiplexed WebSocket (/ws) for every task watched over WebSocket. It opens on the first
 * subscription, reconnects with backoff while any task is subscribed (resubscribing each with
 * its last seq), and closes when idle.
 * hooks: url(taskIds): the socket URL; seqOf(id): last applied seq or null; tokenOf(id): watch
 * token or null; onEvent(frame), onControl(frame), onDrop({ everOpened }), onState().
 */
