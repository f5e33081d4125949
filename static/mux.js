// One multiplexed WebSocket (/ws) for every task watched over WebSocket.
// The socket opens on the first subscription, reconnects with backoff while any task
// is still subscribed (resubscribing each with its last seq), and closes when idle.

import { Backoff } from "./backoff.js";

const IDLE_CLOSE_MS = 15000;

export class Mux {
  /**
   * url(taskIds): the socket URL; seqOf(id): last applied seq or null; tokenOf(id): watch token or null;
   * onEvent(frame), onControl(frame), onDrop({ everOpened }), onState().
   */
  constructor(hooks) {
    this.hooks = hooks;
    this.subs = new Set();
    this.socket = null;
    this.state = "idle"; // idle | connecting | open | retrying
    this.everOpened = false;
    this.retryTimer = 0;
    this.idleTimer = 0;
    this.backoff = new Backoff(500, 15000);
  }

  subscribe(taskId) {
    clearTimeout(this.idleTimer);
    if (this.subs.has(taskId)) return;
    this.subs.add(taskId);
    if (this.state === "open") this.#sendSubscribe(taskId);
    else if (this.state === "idle") this.#connect();
  }

  /** The page no longer wants this task. */
  unsubscribe(taskId) {
    if (!this.subs.delete(taskId)) return;
    if (this.state === "open") this.#send({ op: "unsubscribe", task_id: taskId });
    this.#closeWhenIdle();
  }

  /** The server already ended this subscription (after the terminal event). */
  forget(taskId) {
    this.subs.delete(taskId);
    this.#closeWhenIdle();
  }

  has(taskId) {
    return this.subs.has(taskId);
  }

  /** Skip the remaining backoff, e.g. when the browser comes back online. */
  reconnectNow() {
    if (this.state !== "retrying") return;
    clearTimeout(this.retryTimer);
    this.#connect();
  }

  #connect() {
    this.retryTimer = 0;
    if (!this.subs.size) return this.#setState("idle");
    const socket = new WebSocket(this.hooks.url([...this.subs]));
    this.socket = socket;
    this.#setState("connecting");
    socket.onopen = () => this.#opened(socket);
    socket.onmessage = (message) => this.#received(socket, message.data);
    socket.onclose = () => this.#closed(socket);
  }

  #opened(socket) {
    if (socket !== this.socket) return;
    this.everOpened = true;
    this.#setState("open");
    for (const taskId of this.subs) this.#sendSubscribe(taskId);
  }

  #received(socket, data) {
    if (socket !== this.socket) return;
    // Reset only once frames flow, so a server that accepts and drops at once still backs off.
    this.backoff.reset();
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    if (frame === null || typeof frame !== "object") return;
    if (Object.hasOwn(frame, "op")) this.hooks.onControl(frame);
    else this.hooks.onEvent(frame);
  }

  #closed(socket) {
    if (socket !== this.socket) return;
    this.socket = null;
    this.hooks.onDrop({ everOpened: this.everOpened });
    if (!this.subs.size) return this.#setState("idle");
    this.#setState("retrying");
    this.retryTimer = setTimeout(() => this.#connect(), this.backoff.next());
  }

  #sendSubscribe(taskId) {
    const lastSeq = this.hooks.seqOf(taskId);
    const frame = { op: "subscribe", task_id: taskId };
    if (lastSeq !== null && lastSeq !== undefined) frame.last_seq = lastSeq;
    const token = this.hooks.tokenOf(taskId);
    if (token) frame.token = token;
    this.#send(frame);
  }

  #send(frame) {
    this.socket?.send(JSON.stringify(frame));
  }

  #closeWhenIdle() {
    if (this.subs.size) return;
    clearTimeout(this.idleTimer);
    clearTimeout(this.retryTimer);
    if (this.state === "retrying") this.#setState("idle");
    this.idleTimer = setTimeout(() => this.#closeNow(), IDLE_CLOSE_MS);
  }

  #closeNow() {
    if (this.subs.size || !this.socket) return;
    const socket = this.socket;
    this.socket = null;
    socket.close(1000);
    this.#setState("idle");
  }

  #setState(state) {
    this.state = state;
    this.hooks.onState();
  }
}
