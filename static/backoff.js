// Timing primitives shared by the transports: exponential backoff and abortable waits.

export { Backoff, sleep } from "./taskcast.js";

/** A signal that aborts when parent aborts or after ms, whichever comes first. */
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
