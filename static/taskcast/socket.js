// The shared multiplexed WebSocket (/ws): one socket for every task watched over WebSocket.

import { Backoff } from "./timing.js";
import { TERMINAL, parseJson } from "./wire.js";

/**
 * One multiplexed WebSocket (/ws) for every task watched over WebSocket. It opens on the first
 * subscription, reconnects with backoff while any task is subscribed (resubscribing each with
 * its last seq), and closes when idle.
 * hooks: url(taskIds): the socket URL; seqOf(id): last applied seq or null; tokenOf(id): watch
 * token or null; onEvent(frame), onControl(frame), onDrop({ everOpened }), onState().
 */
class Mux {
  constructor(hooks, { idleCloseMs = 15000 } = {}) {
    this.hooks = hooks;
    this.idleCloseMs = idleCloseMs;
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

  /** The caller no longer wants this task. */
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
    const frame = parseJson(data);
    if (!frame) return;
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
    const token = this.hooks.tokenOf?.(taskId);
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
    this.idleTimer = setTimeout(() => this.#closeNow(), this.idleCloseMs);
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

/**
 * A client's shared /ws: per-task listeners on one Mux, each task's last seq kept for resumes.
 * A listener: { lastSeq, onState(state), onSubscribed(), onError(frame), onDrop(),
 * onNeverOpened() }. onDrop: the socket closed and reconnects by itself; onNeverOpened: it
 * closed without ever opening (blocked on the way, or the server is down).
 */
export class SharedSocket {
  constructor(client) {
    this.listeners = new Map();
    this.changeListeners = new Set();
    this.mux = new Mux({
      // A server with API_KEY admits /ws with any valid watch token (or the key); each
      // subscribe frame then carries the token of its own task.
      url: (taskIds) => {
        const withToken = taskIds.map((id) => client.credentials(id)).find((c) => c.token);
        return client.wsUrl("/ws", withToken ?? client.credentials());
      },
      tokenOf: (taskId) => client.tokens.get(taskId),
      seqOf: (taskId) => this.listeners.get(taskId)?.lastSeq ?? null,
      onEvent: (frame) => this.#event(frame),
      onControl: (frame) => this.#control(frame),
      onDrop: ({ everOpened }) => this.#dropped(everOpened),
      onState: () => this.#changed(),
    });
  }

  /** idle | connecting | open | retrying */
  get state() {
    return this.mux.state;
  }

  /** How many tasks are subscribed. */
  get size() {
    return this.mux.subs.size;
  }

  /** Follow one task; returns unsubscribe(). */
  subscribe(taskId, listener) {
    const entry = { ...listener };
    this.listeners.set(taskId, entry);
    this.mux.subscribe(taskId);
    this.#changed();
    return () => {
      if (this.listeners.get(taskId) !== entry) return; // ended already, or a later subscriber's
      this.listeners.delete(taskId);
      this.mux.unsubscribe(taskId);
      this.#changed();
    };
  }

  /** onChange(state, size) after the socket's state or its number of tasks changed; returns a remover. */
  onChange(onChange) {
    this.changeListeners.add(onChange);
    return () => this.changeListeners.delete(onChange);
  }

  /** Skip the remaining backoff, e.g. when the browser comes back online. */
  reconnectNow() {
    this.mux.reconnectNow();
  }

  #event(frame) {
    const taskId = String(frame.task_id);
    const listener = this.listeners.get(taskId);
    if (!listener) return;
    listener.lastSeq = Math.max(listener.lastSeq ?? 0, Number(frame.seq) || 0);
    if (TERMINAL.has(frame.status)) {
      this.listeners.delete(taskId);
      this.mux.forget(taskId);
      this.#changed();
    }
    listener.onState?.(frame);
  }

  /** "subscribed", or an "error" that names a task: the server holds no subscription for it. */
  #control(frame) {
    const taskId = String(frame.task_id);
    const listener = this.listeners.get(taskId);
    if (!listener) return;
    if (frame.op === "subscribed") return listener.onSubscribed?.();
    if (frame.op !== "error") return;
    this.listeners.delete(taskId);
    this.mux.forget(taskId);
    this.#changed();
    listener.onError?.(frame);
  }

  #dropped(everOpened) {
    for (const listener of [...this.listeners.values()]) {
      if (everOpened) listener.onDrop?.();
      else listener.onNeverOpened?.();
    }
  }

  #changed() {
    for (const onChange of this.changeListeners) onChange(this.state, this.size);
  }
}
