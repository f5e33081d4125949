// A FIFO limiter for long-lived HTTP requests (SSE streams and long-polls) of one client.

/**
 * Browsers allow about 6 HTTP/1.1 connections per host. Every SSE stream and every
 * long-poll holds one, so without a cap a handful of tasks would starve POST and DELETE.
 * Slots hands out a fixed number of permits; waiters are served first come, first served,
 * which makes long-polls take turns.
 */
export class Slots {
  constructor(size) {
    this.free = size;
    this.waiting = [];
  }

  hasFree() {
    return this.free > 0;
  }

  /** A release function, or null when every slot is taken. */
  tryAcquire() {
    if (this.free === 0) return null;
    this.free -= 1;
    return this.#releaser();
  }

  /** Resolves with a release function; resolves with null if signal aborts first. */
  acquire(signal) {
    const release = this.tryAcquire();
    if (release) return Promise.resolve(release);
    return new Promise((resolve) => {
      const waiter = { resolve };
      this.waiting.push(waiter);
      signal?.addEventListener("abort", () => {
        this.waiting = this.waiting.filter((w) => w !== waiter);
        resolve(null);
      }, { once: true });
    });
  }

  #releaser() {
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const next = this.waiting.shift();
      if (next) next.resolve(this.#releaser());
      else this.free += 1;
    };
  }
}
