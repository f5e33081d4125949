"""Auto-batching of transitions, cache writes and acks.

    execute() ─move()──▶ pending ─┐
    execute() ─cache()─▶ pending ─┼─▶ flusher: one pipeline = moves + SETs + XACK/XDEL (1 RTT)
    execute() ─ack()───▶ pending ─┘        └─▶ each move's future resolved

Every task awaits its own move; the flusher sends whatever piled up during its last round
trip. Under light load a batch is one move, so latency stays one round trip; under heavy
load batches grow and round trips stop being the bottleneck. An ack is only queued after
its task's terminal move resolved, so sharing a pipeline with later moves keeps the order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial

from taskstore import Entry, Move, Moved, TaskQueue, TaskStore, TransitionRejected
from taskstore.topology import Pipe
from worker.metrics import count_moves

log = logging.getLogger(__name__)

MoveFuture = asyncio.Future[Moved | TransitionRejected]

# Round trips in flight at once. With one, the worker idles while Redis runs a batch and Redis
# idles while the worker builds the next. More overlap them once there is independent work to
# send, i.e. when the runner reads in bounded batches (measured with reads of 200 and 1000 slots:
# one in flight 8,600 tasks/s, three 10,500; see docs/performance.md). Order stays safe: whatever
# depends on a write (the ack after a terminal move, DONE after RUNNING) is queued only once that
# write resolved, so it always goes in a later round trip.
IN_FLIGHT = 3


class Batcher:
    def __init__(self, store: TaskStore, queue: TaskQueue) -> None:
        self.store = store
        self.queue = queue
        self._moves: list[tuple[Move, MoveFuture]] = []
        self._acks: list[Entry] = []
        self._caches: list[tuple[str, str]] = []
        self._also: list[Callable[[Pipe], None]] = []
        self._wake = asyncio.Event()
        self._closing = False

    def move(self, move: Move) -> MoveFuture:
        """Queue a move; the future resolves once it is written (or rejected)."""
        future: MoveFuture = asyncio.get_running_loop().create_future()
        self._moves.append((move, future))
        self._wake.set()
        return future

    def ack(self, entry: Entry) -> None:
        self._acks.append(entry)
        self._wake.set()

    def cache(self, signature: str, result_json: str) -> None:
        self._caches.append((signature, result_json))
        self._wake.set()

    def also(self, queue_commands: Callable[[Pipe], None]) -> None:
        """Queue further commands (a retry, a dead letter) into the next round trip, before its acks."""
        self._also.append(queue_commands)
        self._wake.set()

    def close(self) -> None:
        """Let `run` return once everything queued so far is written."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        in_flight: set[asyncio.Task[None]] = set()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._empty():
                while len(in_flight) >= IN_FLIGHT:
                    done, in_flight = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # a flush handles Redis errors itself; anything else is a bug
                in_flight.add(asyncio.create_task(self.flush()))
            if self._closing:
                await asyncio.gather(*in_flight)
                in_flight.clear()
                if self._empty():
                    return
                self._wake.set()

    async def flush(self) -> None:
        moves, self._moves = self._moves, []
        caches, self._caches = self._caches, []
        acks, self._acks = self._acks, []
        also, self._also = self._also, []
        if not (moves or caches or acks or also):
            return
        extras = partial(self._extras, caches, also, acks)
        try:
            results = await self.store.move_many([m for m, _ in moves], extras)
        except Exception as e:
            # Unwritten terminal states leave their entries unacknowledged: they are redelivered.
            log.warning("batch of %d moves, %d acks failed: %s", len(moves), len(acks), e)
            for _, future in moves:
                if not future.done():  # its waiter may have been cancelled meanwhile
                    future.set_exception(e)
            return
        count_moves(moves, results)
        for (_, future), result in zip(moves, results, strict=True):
            if not future.done():
                future.set_result(result)

    def _extras(
        self,
        caches: list[tuple[str, str]],
        also: list[Callable[[Pipe], None]],
        acks: list[Entry],
        pipe: Pipe,
    ) -> None:
        for signature, result_json in caches:
            self.store.queue_cache_write(pipe, signature, result_json)
        for queue_commands in also:
            queue_commands(pipe)
        self.queue.queue_ack(pipe, acks)

    def _empty(self) -> bool:
        return not (self._moves or self._acks or self._caches or self._also)
