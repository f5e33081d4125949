// taskcast.js: the reusable browser client of taskcast (an ES module; no build step). Import
// this one module; it loads its parts from ./taskcast/ beside it.
//
//   import { TaskcastClient } from "https://tasks.example.com/static/taskcast.js";
//   const client = new TaskcastClient({ baseUrl: "https://tasks.example.com", apiKey });
//   // apiKey submits and cancels; watching uses the task's watch token from submit when the
//   // server hands one out (API_KEY set), else the key.
//   const answer = await client.submit({ kind: "summary", prompt: "hello", params: {}, delay: 5 });
//   const watcher = client.watch(answer.data.task_id, { onState: (state) => show(state) });
//   const final = await watcher.done;      // the terminal state; watcher.stop() ends it early
//
// watch(): "auto" tries SSE, then the shared WebSocket, then long-polling, moving on when a
// transport does not work here; each resumes after the last seq seen, and no state is passed on
// twice. SSE streams and long-polls share maxStreams slots (browsers hold about 6 HTTP/1.1
// connections per host). client.socket() is the one multiplexed /ws of this client, for pages
// that follow many tasks: socket.subscribe(taskId, { onState }).
// submit() sends an Idempotency-Key (a new one per call unless given) and retries with it
// after no answer, 409, 429 or 5xx, so a retry never makes a second task.

import { Slots } from "./taskcast/slots.js";
import { SharedSocket } from "./taskcast/socket.js";
import { Backoff, sleep } from "./taskcast/timing.js";
import { TRANSPORTS, Watcher } from "./taskcast/watch.js";

export { Backoff, sleep } from "./taskcast/timing.js";
export { TRANSPORTS } from "./taskcast/watch.js";
export { TERMINAL } from "./taskcast/wire.js";

const RETRY_STATUSES = new Set([409, 429, 500, 502, 503, 504]);
// Browsers open about 6 HTTP/1.1 connections per host; keep 2 free for POST, DELETE and GET.
const MAX_STREAMS = 4;

export function newKey() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID();
  return `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}-${Math.random().toString(36).slice(2)}`;
}

export class TaskcastClient {
  /**
   * baseUrl: the API's origin (default: this page's); apiKey: a string or a function returning
   * one; tokens: where watch tokens are kept, { get(taskId), set(taskId, token) } (default: memory);
   * watchWithKey: watch a task without a token with the API key (false: the key only submits
   * and cancels); maxStreams: SSE streams and long-polls open at once (Infinity: no cap).
   */
  constructor({
    baseUrl = globalThis.location?.origin, apiKey = "", tokens = null, retries = 2,
    watchWithKey = true, maxStreams = MAX_STREAMS,
  } = {}) {
    this.baseUrl = String(baseUrl).replace(/\/+$/, "");
    this.apiKey = typeof apiKey === "function" ? apiKey : () => apiKey;
    const memory = new Map();
    this.tokens = tokens ?? { get: (id) => memory.get(id) ?? null, set: (id, token) => memory.set(id, token) };
    this.retries = retries;
    this.watchWithKey = watchWithKey;
    this.slots = new Slots(maxStreams);
    // Where an "auto" watch starts; it moves down the chain once a transport proved not to work
    // here. Set it back to "sse" to try the whole chain again.
    this.autoTransport = TRANSPORTS[0];
    this.mux = null;
  }

  /** The credential that watches this task: its watch token, else the API key (watchWithKey). */
  watchCredential(taskId) {
    const token = taskId === undefined ? null : this.tokens.get(taskId);
    return token ?? (this.watchWithKey ? this.apiKey() : "");
  }

  /** The query credential of a stream of this task: { token }, { api_key } or {}. */
  credentials(taskId) {
    const token = taskId === undefined ? null : this.tokens.get(taskId);
    if (token) return { token };
    const key = this.watchWithKey ? this.apiKey() : "";
    return key ? { api_key: key } : {};
  }

  /** An auto watch fell back to transport: later auto watches of this client start there. */
  learnTransport(transport) {
    if (TRANSPORTS.indexOf(transport) > TRANSPORTS.indexOf(this.autoTransport)) this.autoTransport = transport;
  }

  taskPath(taskId) {
    return `/tasks/${encodeURIComponent(taskId)}`;
  }

  /** A URL of the API. EventSource and WebSocket cannot send headers: add credentials(taskId). */
  url(path, params = {}) {
    const url = new URL(this.baseUrl + path);
    for (const [name, value] of Object.entries(params)) {
      if (value !== null && value !== undefined) url.searchParams.set(name, String(value));
    }
    return url.href;
  }

  wsUrl(path, params = {}) {
    const url = new URL(this.url(path, params));
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.href;
  }

  /** fetch() that never throws on an HTTP status, only when the server is unreachable. */
  async request(method, path, { body, headers = {}, signal, bearer = this.apiKey() } = {}) {
    const init = { method, headers: { Accept: "application/json", ...headers }, cache: "no-store", signal };
    if (bearer) init.headers.Authorization = `Bearer ${bearer}`;
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(this.baseUrl + path, init);
    return { status: response.status, headers: response.headers, data: await readBody(response) };
  }

  /** POST /tasks; resolves with { status, headers, data } (202 queued, 200 cached, 4xx refused). */
  async submit({ kind, prompt, params = {}, delay, idempotencyKey, signal } = {}) {
    const body = { prompt, params };
    if (kind !== undefined && kind !== null) body.kind = kind;
    if (delay !== undefined && delay !== null) body.delay = delay;
    const headers = { "Idempotency-Key": `"${idempotencyKey ?? newKey()}"` };
    const backoff = new Backoff(200, 5000);
    for (let attempt = 0; ; attempt += 1) {
      const last = attempt >= this.retries;
      try {
        const answer = await this.request("POST", "/tasks", { body, headers, signal });
        if (answer.data?.watch_token) this.tokens.set(answer.data.task_id, answer.data.watch_token);
        if (last || !RETRY_STATUSES.has(answer.status)) return answer;
        await sleep(retryDelay(answer.headers, backoff), signal);
      } catch (error) {
        if (last || signal?.aborted) throw error;
        await sleep(backoff.next(), signal);
      }
    }
  }

  /** GET /tasks/{id}; with wait and seq a long-poll that answers 304 when nothing moved. The
   * bearer is watchCredential(taskId) (pass `bearer` to choose). */
  get(taskId, { wait, seq, etag, signal, bearer = this.watchCredential(taskId) } = {}) {
    const params = new URLSearchParams();
    if (wait !== undefined) params.set("wait", String(wait));
    if (seq !== null && seq !== undefined) params.set("seq", String(seq));
    const query = params.toString() ? `?${params}` : "";
    const headers = etag ? { "If-None-Match": etag } : {};
    return this.request("GET", this.taskPath(taskId) + query, { headers, signal, bearer });
  }

  cancel(taskId) {
    return this.request("DELETE", this.taskPath(taskId));
  }

  /** The shared multiplexed WebSocket of this client (opened on the first subscription). */
  socket() {
    if (!this.mux) this.mux = new SharedSocket(this);
    return this.mux;
  }

  /**
   * Follow one task. options: transport ("auto" | "sse" | "websocket" | "polling"),
   * onState(state, via) (via: the transport, or "get" for a check after trouble),
   * onTransport(name), onLink(state) (connecting | live | queued | retrying), lastSeq (resume
   * after it), signal (an AbortSignal that stops it). Returns { stop(), done, transport, link };
   * done resolves with the terminal state (null after stop()), or rejects with an Error whose
   * status is 404 (unknown or expired task) or 401 (key or token refused).
   */
  watch(taskId, options = {}) {
    return new Watcher(this, String(taskId), options);
  }
}

function retryDelay(headers, backoff) {
  const after = Number(headers?.get("Retry-After"));
  return Number.isFinite(after) && after >= 0 ? Math.min(after, 30) * 1000 : backoff.next();
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
