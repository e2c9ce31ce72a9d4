"""A real Redis Cluster for tests: three masters and three replicas on free 127.0.0.1 ports.

Each node is its own ``redis-server`` (nothing kept on disk but its ``nodes.conf``) with a short
``cluster-node-timeout``, so a killed master's replica takes over within a couple of seconds.
The cluster bus port is chosen free too (the default, port + 10000, may be taken), and every
node announces 127.0.0.1. ``redis-cli --cluster create`` assigns the slots and the replicas.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from tests.harness.servers import ServerUnavailable, free_port, wait_for_port

NODE_TIMEOUT_MS = 1000


@dataclass
class ClusterNode:
    """One ``redis-server`` of the cluster."""

    port: int
    bus_port: int
    base_dir: Path
    proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> redis.Redis:
        """A plain (non-cluster) client of this node alone, with short timeouts."""
        return redis.Redis(port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class RedisClusterServers:
    """Six nodes, three masters with one replica each, created by ``redis-cli --cluster``."""

    def __init__(self, base_dir: Path, masters: int = 3) -> None:
        binary = shutil.which("redis-server")
        cli = shutil.which("redis-cli")
        if binary is None or cli is None:
            raise ServerUnavailable("no redis-server / redis-cli found; run `make servers`")
        self.binary, self.cli = binary, cli
        self.nodes = [
            ClusterNode(free_port(), free_port(), base_dir / f"node-{i}")
            for i in range(masters * 2)
        ]

    @property
    def url(self) -> str:
        """``KEYGATE_REDIS_URL`` for the cluster: every node as a starting point."""
        return "redis+cluster://" + ",".join(n.address for n in self.nodes)

    def start(self) -> None:
        """Start every node, create the cluster and wait until it serves all slots."""
        for node in self.nodes:
            self._start_node(node)
        for node in self.nodes:
            wait_for_port(node.port)
        subprocess.run(
            [
                self.cli,
                "--cluster",
                "create",
                *(n.address for n in self.nodes),
                "--cluster-replicas",
                "1",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        self.wait_healthy()

    def _start_node(self, node: ClusterNode) -> None:
        node.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(node.base_dir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        node.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(node.port),
                "--bind",
                "127.0.0.1",
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                str(node.base_dir / "nodes.conf"),
                "--cluster-node-timeout",
                str(NODE_TIMEOUT_MS),
                "--cluster-port",
                str(node.bus_port),
                "--cluster-announce-ip",
                "127.0.0.1",
                "--repl-diskless-sync-delay",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(node.base_dir),
                "--protected-mode",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def stop(self) -> None:
        """Kill every node that still runs."""
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.kill()
            if node.proc is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    node.proc.wait(timeout=10)

    def kill(self, node: ClusterNode) -> None:
        """SIGKILL ``node``: a crash, nothing flushed."""
        assert node.proc is not None
        node.proc.kill()
        node.proc.wait(timeout=10)

    def masters(self) -> list[ClusterNode]:
        """The live nodes that serve slots as masters now, as the live nodes see it."""
        return [n for n in self.nodes if n.alive() and self._role(n) == "master"]

    def serving(self, slot: int) -> ClusterNode:
        """The master that serves ``slot`` now, as a live master sees it."""
        with self.masters()[0].client() as client:
            ranges = client.cluster("slots")
        for start, end, master, *_ in ranges:
            if start <= slot <= end:
                port = int(master[1])
                return next(n for n in self.nodes if n.port == port)
        raise AssertionError(f"nobody serves slot {slot}")

    def replica_of(self, master: ClusterNode) -> ClusterNode:
        """The live node that replicates ``master``."""
        for node in self.nodes:
            if node is not master and node.alive() and self._master_port(node) == master.port:
                return node
        raise AssertionError(f"no replica of {master.address}")

    def _role(self, node: ClusterNode) -> str:
        with node.client() as client:
            return str(client.info("replication")["role"])

    def _master_port(self, node: ClusterNode) -> int | None:
        with node.client() as client:
            info = client.info("replication")
        return int(info["master_port"]) if info["role"] == "slave" else None

    def wait_healthy(self, within: float = 30.0) -> None:
        """Until every live node reports ``cluster_state:ok`` and three masters serve slots."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError, OSError):
                states = []
                for node in self.nodes:
                    if node.alive():
                        with node.client() as client:
                            states.append(client.cluster("info")["cluster_state"])
                if all(s == "ok" for s in states) and len(self.masters()) == 3 and self._synced():
                    return
            time.sleep(0.1)
        raise AssertionError("the Redis Cluster did not become healthy")

    def _synced(self) -> bool:
        """Every live replica has its master link up (else it could not take over)."""
        for node in self.nodes:
            if node.alive():
                with node.client() as client:
                    info = client.info("replication")
                if info["role"] == "slave" and info["master_link_status"] != "up":
                    return False
        return True

    def keys_per_master(self, match: str = "*") -> dict[str, int]:
        """How many keys matching ``match`` every live master holds, by address (``DBSIZE``
        for all keys)."""
        counts = {}
        for node in self.masters():
            with node.client() as client:
                if match == "*":
                    counts[node.address] = int(client.dbsize())
                else:
                    counts[node.address] = sum(1 for _ in client.scan_iter(match, count=1000))
        return counts
