// The dashboard's one streaming connection: WS /dashboard/ws, reconnected with backoff.
// It never polls: the server pushes stats every second and the listed tasks' changes.
// A socket that goes quiet (no stats frame for STALL_MS) counts as lost and is replaced.

import { getApiKey, wsUrl } from "../api.js";
import { Backoff } from "../taskcast.js";

const STALL_MS = 5000;
const CLOSE_UNAUTHORIZED = 4401;

export class Link {
  /**
   * handlers: onFrame(frame), onOpen(), onDown({ attempt, delayMs, reason }), onUnauthorized()
   */
  constructor(handlers) {
    this.handlers = handlers;
    this.backoff = new Backoff(500, 5000);
    this.socket = null;
    this.stallTimer = null;
    this.retryTimer = null;
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.close();
    // A browser WebSocket cannot send headers: the operator's key travels as ?api_key=.
    const socket = new WebSocket(wsUrl("/dashboard/ws", { api_key: getApiKey() || null }));
    this.socket = socket;
    socket.onopen = () => {
      this.backoff.reset();
      this.watch();
      this.handlers.onOpen();
    };
    socket.onmessage = (message) => {
      this.watch();
      this.handlers.onFrame(JSON.parse(message.data));
    };
    socket.onclose = (event) => this.closed(socket, event);
  }

  send(op) {
    if (this.socket?.readyState === WebSocket.OPEN) this.socket.send(JSON.stringify(op));
  }

  close() {
    clearTimeout(this.stallTimer);
    if (!this.socket) return;
    this.socket.onclose = null;
    this.socket.close();
    this.socket = null;
  }

  watch() {
    clearTimeout(this.stallTimer);
    this.stallTimer = setTimeout(() => this.socket?.close(4000, "stalled"), STALL_MS);
  }

  closed(socket, event) {
    if (socket !== this.socket) return;
    clearTimeout(this.stallTimer);
    this.socket = null;
    if (event.code === CLOSE_UNAUTHORIZED) {
      this.handlers.onUnauthorized();
      return;
    }
    const delayMs = this.backoff.next();
    this.handlers.onDown({ attempt: this.backoff.attempt, delayMs, reason: event.reason || `code ${event.code}` });
    this.retryTimer = setTimeout(() => this.connect(), delayMs);
  }
}
