"""keygate's services as the demo's child processes, and everything the demo stops at the end.

Each service is a ``keygate <command>`` process of the demo's own interpreter, logging to a file
of its own in the data folder, in a session of its own so that Ctrl-C reaches only the demo,
which then stops them in order: the services newest first, the embedded Redis and Postgres last.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from keygate_demo.embedded import PostgresServer, RedisServer, ServerUnavailable, wait_for_port

STOP_GRACE_SECONDS = 20


class DemoFailed(Exception):
    """The demo could not start; the message says why and what to do."""


def keygate_command() -> str:
    """The ``keygate`` command next to this interpreter (the venv's)."""
    return str(Path(sys.executable).with_name("keygate"))


@dataclass
class Service:
    """One running ``keygate <name>`` and its log file."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 15) -> str:
        """The last ``lines`` of the log, for a message that says why it stopped."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_until_listening(self, timeout: float = 60.0) -> None:
        """Block until the service accepts connections; :class:`DemoFailed` if it exits."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise DemoFailed(
                    f"`keygate {self.name}` exited with {self.process.returncode}:\n{self.tail()}"
                )
            with contextlib.suppress(ServerUnavailable):
                wait_for_port(self.port, timeout=0.5)
                return
        raise DemoFailed(f"`keygate {self.name}` is not listening on port {self.port}")


@dataclass
class DemoStack:
    """What the demo started, in order: the embedded servers (if any), then the services."""

    services: list[Service] = field(default_factory=list)
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None

    def spawn(self, name: str, port: int, env: dict[str, str], logs: Path) -> None:
        """Start ``keygate name`` with ``env``, appending its output to ``logs/<name>.log``."""
        logs.mkdir(exist_ok=True)
        log_path = logs / f"{name}.log"
        args = [keygate_command(), name]
        if name == "demo-upstream":
            args += ["--host", "127.0.0.1", "--port", str(port)]
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                args,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
            )
        self.services.append(Service(name, port, process, log_path))

    def check_running(self) -> None:
        """:class:`DemoFailed`, with the log's last lines, when a service has stopped."""
        for service in self.services:
            if service.process.poll() is not None:
                raise DemoFailed(
                    f"`keygate {service.name}` stopped unexpectedly "
                    f"({service.process.returncode}):\n{service.tail()}"
                )

    def stop(self) -> list[str]:
        """Stop everything, newest first; the services that did not exit cleanly."""
        unclean: list[str] = []
        for service in reversed(self.services):
            process = service.process
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
                try:
                    process.wait(STOP_GRACE_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            if process.returncode != 0:
                unclean.append(f"{service.name} exited with {process.returncode}")
        self.services.clear()
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()
        return unclean
