"""What clients that never read cost the API: its sockets and the kernel's send queues over time.

    python tools/slow_readers.py --clients 200 --seconds 40
    python tools/slow_readers.py --server-root /tmp/before     # another build, to compare

One API process (SEND_TIMEOUT as set in the environment, default 10 s) and a task that reports
progress `--rate` times a second, written through taskstore as a worker would. N SSE clients
open its stream and never read. Their receive buffers are `--client-rcvbuf` bytes, as for a
client far away whose window stays small (on loopback the kernel would grow them to megabytes).
Every few seconds the tool prints the API process's sockets (/proc/<pid>/fd) and, from
`ss -tn`, its connections on its port, the bytes the kernel queues to send on them (Send-Q)
and the bytes its clients received but never read (their Recv-Q).
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path

from redis.asyncio import Redis

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskstore import Keys, Move, TaskStatus, TaskStore
from tools.bench_common import ROOT, api_child_at, redis_url
from tools.push_bench import more_files


def api_sockets(pid: int) -> int:
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            count += fd.readlink().name.startswith("socket:")
        except OSError:
            continue
    return count


def queued(port: int) -> tuple[int, int, int]:
    """From `ss -tn`: the API's connections on `port`, the bytes queued in the kernel to send
    on them (Send-Q), and the bytes received but unread by their clients (the clients' Recv-Q)."""

    def rows(side: str) -> list[list[str]]:
        out = subprocess.run(["ss", "-tnH", f"{side} = :{port}"], capture_output=True, text=True, check=True)
        return [line.split() for line in out.stdout.splitlines() if line.strip()]

    api, clients = rows("sport"), rows("dport")
    return len(api), sum(int(r[2]) for r in api), sum(int(r[1]) for r in clients)


async def never_reading(port: int, task_id: str, rcvbuf: int) -> socket.socket:
    sock = socket.socket()
    if rcvbuf:  # as a client far away, or on a slow link, whose window stays small
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    await loop.sock_sendall(sock, f"GET /tasks/{task_id}/events HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


async def chatter(store: TaskStore, task_id: str, rate: float, until: float, batch: int = 50) -> None:
    n = 0
    while time.monotonic() < until:
        moves = (
            Move(task_id, TaskStatus.RUNNING, {"progress": f"{(n + i) % 1000 / 1000}"}, "t")
            for i in range(batch)
        )
        await asyncio.gather(*(store.move(m) for m in moves))
        n += batch
        await asyncio.sleep(batch / rate)


async def run(redis: str, port: int, pid: int, args: argparse.Namespace) -> None:
    client = Redis.from_url(redis)
    store = TaskStore(client, Keys())
    task_id = (await store.submit("slow readers", {})).task_id
    await store.move(Move(task_id, TaskStatus.RUNNING, new_token="t", new_attempt=True))
    print(f"before the clients: API sockets {api_sockets(pid)}")
    clients = [await never_reading(port, task_id, args.client_rcvbuf) for _ in range(args.clients)]
    started = time.monotonic()
    talk = asyncio.create_task(chatter(store, task_id, args.rate, started + args.seconds))
    while (elapsed := time.monotonic() - started) <= args.seconds:
        conns, send_q, recv_q = queued(port)
        print(
            f"t={elapsed:4.1f} s  API sockets {api_sockets(pid):4}  API connections {conns:4}  "
            f"kernel: API Send-Q {send_q / 1e6:6.2f} MB, clients' Recv-Q {recv_q / 1e6:6.2f} MB"
        )
        await asyncio.sleep(args.every)
    await talk
    for sock in clients:
        sock.close()
    await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rate", type=float, default=2000.0, help="progress events a second")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    parser.add_argument(
        "--client-rcvbuf",
        type=int,
        default=65536,
        help="the clients' SO_RCVBUF (0: the kernel's autotuning, which on loopback absorbs megabytes)",
    )
    parser.add_argument("--server-root", type=Path, default=ROOT, help="run the API from this checkout")
    args = parser.parse_args()
    with more_files(), redis_url(None) as redis, api_child_at(args.server_root, redis, {}) as (url, api):
        asyncio.run(run(redis, int(url.rsplit(":", 1)[1]), api.pid, args))


if __name__ == "__main__":
    main()
