// Timing primitives of the client: exponential backoff and abortable waits.

export class Backoff {
  constructor(baseMs = 500, maxMs = 30000) {
    this.baseMs = baseMs;
    this.maxMs = maxMs;
    this.attempt = 0;
  }

  /** Next delay in ms; "equal jitter" so many clients restarting together spread out. */
  next() {
    const ceiling = Math.min(this.maxMs, this.baseMs * 2 ** this.attempt);
    this.attempt += 1;
    return ceiling / 2 + (Math.random() * ceiling) / 2;
  }

  reset() {
    this.attempt = 0;
  }
}

/** Resolves after ms, or at once (without throwing) when signal aborts. */
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });
}

/** A signal that aborts when parent aborts or after ms, whichever comes first; done() drops the timer. */
export function withTimeout(parent, ms) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new DOMException("timed out", "TimeoutError")), ms);
  const stop = () => {
    clearTimeout(timer);
    controller.abort(parent.reason);
  };
  if (parent.aborted) stop();
  else parent.addEventListener("abort", stop, { once: true });
  return { signal: controller.signal, done: () => clearTimeout(timer) };
}
