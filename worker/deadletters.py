"""`python -m worker dead-letters list|requeue ID|purge [--kind K]`: look after tasks that failed
for good. Each kind has its own dead letters; `--kind` picks them (the default kind otherwise).

A dead letter is a copy; its task stays FAILED, and the state machine lets nothing leave a
terminal state. So `requeue` submits a NEW task with the same request (new id, attempts from
zero; the queue limit is not applied, this is an operator's decision), prints the new id and
removes the dead letter. Clients that watched the old id see it stay FAILED.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from taskstore import TaskStore
from taskstore.deadletters import DeadLetter, DeadLetters
from taskstore.errors import CannotResubmit, DeadLetterNotFound
from taskstore.kinds import DEFAULT_KIND, is_kind
from taskstore.resubmit import requeue_dead_letter
from taskstore.topology import detect, make_client
from worker.loops import REDIS_DOWN
from worker.settings import WorkerSettings


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = commands.add_parser(
        "dead-letters", help="list, requeue or purge tasks that failed every attempt"
    )
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="one line per dead letter, oldest first")
    requeue = actions.add_parser("requeue", help="submit the request again as a new task; print its id")
    requeue.add_argument("id", help="the dead letter's ref (as listed), or the failed task's id")
    purge = actions.add_parser("purge", help="delete every dead letter")
    for action in (listing, requeue, purge):
        action.add_argument("--kind", type=_kind, default=DEFAULT_KIND, help="the kind's dead letters")


async def main(args: argparse.Namespace, settings: WorkerSettings) -> int:
    """Run one dead-letters action; the process exit code."""
    try:
        topology = await detect(settings.redis_url, settings.redis_cluster)
    except REDIS_DOWN as e:
        _err(f"cannot reach Redis at {settings.redis_url}: {e}")
        return 2
    redis = make_client(settings.redis_url, topology)
    keys = settings.keys_for(topology).of_kind(args.kind)
    letters = DeadLetters(redis, keys)
    try:
        if args.action == "list":
            return await _list(letters)
        if args.action == "requeue":
            store = TaskStore(redis, keys, result_ttl=settings.result_expiry, cache_ttl=settings.cache_ttl)
            return await _requeue(letters, store, args.id)
        _out(f"purged {await letters.purge()} dead letters")
        return 0
    except REDIS_DOWN as e:
        _err(f"cannot reach Redis at {settings.redis_url_for_logs}: {e}")
        return 2
    finally:
        await redis.aclose()


async def _list(letters: DeadLetters) -> int:
    found = await letters.list()
    for letter in found:
        _out(_line(letter))
    if not found:
        _err("no dead letters")
    return 0


async def _requeue(letters: DeadLetters, store: TaskStore, ident: str) -> int:
    try:
        requeued = await requeue_dead_letter(letters, store, ident)
    except (DeadLetterNotFound, CannotResubmit) as e:
        _err(f"{e}; purge it instead" if isinstance(e, CannotResubmit) else str(e))
        return 1
    submitted = requeued.submission
    _err(
        f"task {requeued.letter.task_id} requeued as a new task"
        + (" (answered from the cache)" if submitted.cached else "")
    )
    _out(submitted.task_id)
    return 0


def _kind(name: str) -> str:
    if not is_kind(name):
        raise argparse.ArgumentTypeError(f"bad kind name {name!r}")
    return name


def _line(letter: DeadLetter) -> str:
    when = datetime.fromtimestamp(letter.time, UTC).isoformat(timespec="seconds")
    request = letter.request if len(letter.request) <= 80 else letter.request[:77] + "..."
    fields = [
        letter.ref,
        when,
        letter.task_id,
        f"attempts={letter.attempts}",
        repr(letter.error),
        request,
    ]
    return "  ".join(fields)


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


def _err(text: str) -> None:
    sys.stderr.write(text + "\n")
