// watch(): one task followed over SSE, then the shared WebSocket, then long-polling, moving on
// when a transport does not work here. Each resumes after the last seq seen; no state is passed
// on twice.
//
//   Watcher ─▶ transport (transports.js) ─▶ deliver(state) ─▶ seq must grow ─▶ onState
//      ▲            │ trouble                                  └─ terminal ─▶ done, stop
//      │            ▼
//      └── check(): one GET. 404/401 end the watch; an unreachable server means "retry this
//          transport later"; a reachable one with a transport that never delivered means
//          "fall back" (the last transport of the chain retries instead).

import { followPolling, followSocket, followSse } from "./transports.js";
import { Backoff } from "./timing.js";
import { TERMINAL } from "./wire.js";

export const TRANSPORTS = ["sse", "websocket", "polling"];
const FOLLOW = { sse: followSse, websocket: followSocket, polling: followPolling };

export class Watcher {
  constructor(client, taskId, options = {}) {
    const { transport = "auto", lastSeq = null, signal } = options;
    if (transport !== "auto" && !TRANSPORTS.includes(transport)) {
      throw new TypeError(`transport must be "auto" or one of ${TRANSPORTS.join(", ")}; got ${transport}`);
    }
    this.client = client;
    this.taskId = taskId;
    this.onState = options.onState ?? (() => {});
    this.onTransport = options.onTransport ?? (() => {});
    this.onLink = options.onLink ?? (() => {});
    this.seq = lastSeq;
    this.auto = transport === "auto";
    this.chain = this.auto ? TRANSPORTS : [transport];
    this.level = this.auto ? this.#firstLevel() : 0;
    this.transport = null;
    this.link = "";
    this.backoff = new Backoff(1000, 30000);
    this.abort = new AbortController();
    this.stopCurrent = () => {};
    this.retryTimer = 0;
    this.done = new Promise((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    signal?.addEventListener("abort", () => this.stop(), { once: true });
    if (signal?.aborted) this.stop();
    else this.#start();
  }

  get stopped() {
    return this.abort.signal.aborted;
  }

  /** Ends the watch; done resolves with null if it had not settled, and no callback fires after. */
  stop() {
    if (this.stopped) return;
    this.abort.abort();
    clearTimeout(this.retryTimer);
    this.stopCurrent();
    this.resolve(null);
  }

  /** Passes on a state newer than any seen; ends the watch after a terminal one. */
  deliver(state, via) {
    const seq = Number(state?.seq);
    if (this.stopped || !Number.isFinite(seq) || (this.seq !== null && seq <= this.seq)) return false;
    this.seq = seq;
    this.backoff.reset();
    const terminal = TERMINAL.has(state.status);
    if (terminal) this.resolve(state); // first, so a stop() from inside onState cannot settle done
    this.onState(state, via);
    if (terminal) this.stop();
    return true;
  }

  fail(status, message) {
    if (this.stopped) return;
    this.reject(Object.assign(new Error(message), { status }));
    this.stop();
  }

  setLink(state) {
    if (this.stopped || state === this.link) return;
    this.link = state;
    this.onLink(state);
  }

  /** One plain GET after trouble: "ok" (the server answers; its state was passed on), "down"
   * (unreachable, or a 5xx on the way), or "settled" (the watch ended: terminal, 404, 401). */
  async check() {
    let answer;
    try {
      answer = await this.client.get(this.taskId, { signal: this.abort.signal });
    } catch {
      return this.stopped ? "settled" : "down";
    }
    if (answer.status === 404) this.fail(404, `task ${this.taskId} is unknown or expired`);
    else if (answer.status === 401 || answer.status === 403) this.fail(401, "the server wants an API key or a watch token");
    else if (answer.status !== 200) return "down";
    else this.deliver(answer.data, "get");
    return this.stopped ? "settled" : "ok";
  }

  /** The current transport does not work here: the next one of the chain; the last one retries. */
  fallBack() {
    this.stopCurrent();
    this.stopCurrent = () => {};
    if (this.stopped) return;
    if (this.level + 1 >= this.chain.length) return this.retryLater();
    this.level += 1;
    if (this.auto) this.client.learnTransport(this.chain[this.level]);
    this.#start();
  }

  /** Restart the current transport after a backoff. */
  retryLater() {
    this.stopCurrent();
    this.stopCurrent = () => {};
    this.setLink("retrying");
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.#start(), this.backoff.next());
  }

  /** Auto mode starts where earlier watches of this client found a working transport, and on
   * the shared socket when every stream slot is taken (it costs no extra connection). */
  #firstLevel() {
    const learnt = Math.max(0, TRANSPORTS.indexOf(this.client.autoTransport));
    return learnt === 0 && !this.client.slots.hasFree() ? 1 : learnt;
  }

  #start() {
    if (this.stopped) return;
    const transport = this.chain[this.level];
    if (transport !== this.transport) {
      this.transport = transport;
      this.onTransport(transport);
    }
    this.setLink("connecting");
    this.stopCurrent = FOLLOW[transport](this);
  }
}
