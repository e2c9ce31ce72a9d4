"""A Redis Sentinel deployment on loopback: one primary, one replica, three sentinels.

Every process is a real ``redis-server`` on a free 127.0.0.1 port with its files under a
folder of the test's own; sentinels are ``redis-server <conf> --sentinel`` (they rewrite their
config file, so each has one). Quorum 2 and a one-second ``down-after-milliseconds`` make a
killed primary replaced within a few seconds. :class:`SentinelDeployment` is a context manager:
leaving it kills every process it started, whatever happened in between.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import time
from pathlib import Path
from types import TracebackType

from keygate_demo.server_process import ServerProcess, ServerUnavailable, free_port, wait_for_port

SERVICE = "keygate"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 3000


class RedisNode(ServerProcess):
    """One ``redis-server`` (data node or sentinel) started from a config file."""

    def __init__(self, base_dir: Path, name: str, config: str, *, sentinel: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise ServerUnavailable("no redis-server found; run `make servers`")
        self.binary = binary
        self.dir = base_dir / name
        self.name = name
        self.port = free_port()
        self.sentinel = sentinel
        self._config = config

    def start(self) -> None:
        """Write the config file and start; returns once the port accepts connections."""
        self.dir.mkdir(parents=True, exist_ok=True)
        conf = self.dir / "redis.conf"
        conf.write_text(
            f"port {self.port}\nbind 127.0.0.1\nprotected-mode no\ndir {self.dir}\n" + self._config
        )
        args = [self.binary, str(conf)] + (["--sentinel"] if self.sentinel else [])
        with open(self.dir / "redis.log", "ab") as log:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        wait_for_port(self.port)

    def kill(self) -> None:
        """SIGKILL (a crash) and reap; nothing is saved."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.resume()
            self.proc.kill()
        self._reap()


class SentinelDeployment:
    """Primary, replica and three sentinels monitoring them as :data:`SERVICE`."""

    def __init__(self, base_dir: Path) -> None:
        data = "save ''\nappendonly no\nreplica-announce-ip 127.0.0.1\n"
        self.primary = RedisNode(base_dir, "primary", data)
        self.replica = RedisNode(
            base_dir, "replica", data + f"replicaof 127.0.0.1 {self.primary.port}\n"
        )
        monitor = (
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary.port} {QUORUM}\n"
            f"sentinel down-after-milliseconds {SERVICE} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {SERVICE} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {SERVICE} 1\n"
            "sentinel announce-ip 127.0.0.1\n"
        )
        self.sentinels = [
            RedisNode(base_dir, f"sentinel-{i}", monitor, sentinel=True) for i in range(3)
        ]

    @property
    def nodes(self) -> list[RedisNode]:
        return [self.primary, self.replica, *self.sentinels]

    def url(self, db: int = 0) -> str:
        """``KEYGATE_REDIS_URL`` for this deployment."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/{db}"

    def __enter__(self) -> SentinelDeployment:
        try:
            for node in self.nodes:
                node.start()
            self.wait_until_settled()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Kill every process that was started (in any state)."""
        for node in self.nodes:
            node.kill()

    def wait_until_settled(self, within: float = 20.0) -> None:
        """Until the replica is in sync and every sentinel knows the replica and its peers,
        so that a failover can start as soon as the primary dies."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            waiting_for = self._unsettled()
            if not waiting_for:
                return
            time.sleep(0.1)
        stopped = [node.name for node in self.nodes if not node.running]
        raise ServerUnavailable(
            f"the Sentinel deployment did not settle in {within} s: {waiting_for}"
            + (f"; exited: {', '.join(stopped)}" if stopped else "")
        )

    def _unsettled(self) -> str:
        """What the deployment is still waiting for (``""``: nothing)."""
        info = _cli(self.replica.port, "INFO", "replication")
        if "master_link_status:up" not in info:
            return "the replica's link to the primary"
        for sentinel in self.sentinels:
            state = _fields(_cli(sentinel.port, "SENTINEL", "MASTER", SERVICE))
            if int(state.get("num-slaves", 0)) < 1 or int(state.get("num-other-sentinels", 0)) < 2:
                return f"{sentinel.name} to know the replica and two other sentinels ({state})"
        return ""

    def current_primary_port(self) -> int:
        """The primary's port as the first sentinel that answers reports it."""
        for sentinel in self.sentinels:
            with contextlib.suppress(subprocess.CalledProcessError):
                reply = _cli(sentinel.port, "SENTINEL", "GET-MASTER-ADDR-BY-NAME", SERVICE)
                return int(reply.split()[1])
        raise ServerUnavailable("no sentinel answers")


def _cli(port: int, *command: str) -> str:
    return subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
        capture_output=True,
        text=True,
        check=True,
        timeout=5,
    ).stdout


def _fields(reply: str) -> dict[str, str]:
    """A flat ``name value name value …`` reply (redis-cli prints one item a line)."""
    items = reply.split()
    return dict(zip(items[::2], items[1::2], strict=False))
