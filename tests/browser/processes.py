"""keygate services as child processes for the browser tests: started, awaited, stopped.

Each runs as ``keygate <command>`` with its output in a log file, is awaited until it accepts
connections (or explains why it never will), and is stopped with SIGTERM, after which it must
exit with status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.harness.ui_stack import KEYGATE

START_TIMEOUT = 30.0


@dataclass
class ServiceProcess:
    """One ``keygate <name>`` child process listening on ``port``, its output in ``log``."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def log_tail(self) -> str:
        """The end of what the process wrote, for failure messages."""
        with contextlib.suppress(OSError):
            return self.log.read_text(errors="replace")[-3000:]
        return ""


def spawn_service(name: str, env: dict[str, str], port: int, logs: Path) -> ServiceProcess:
    """Start ``keygate <name>`` with ``env``; its output goes to ``<logs>/<name>.log``."""
    log = logs / f"{name}.log"
    # A file, not a pipe: a chatty service must never block on a full pipe mid-test.
    with log.open("wb") as sink:
        process = subprocess.Popen([KEYGATE, name], env=env, stdout=sink, stderr=subprocess.STDOUT)
    return ServiceProcess(name, port, process, log)


async def wait_listening(service: ServiceProcess) -> str | None:
    """None once ``service`` accepts connections, else why it never will."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_TIMEOUT
    while loop.time() < deadline:
        if service.process.poll() is not None:
            output = service.log_tail()
            if f"invalid choice: '{service.name}'" in output:
                return (
                    f"`keygate {service.name}` is not available: the keygate CLI has no "
                    f"{service.name} command (is its service missing or not wired into "
                    f"keygate_cli/main.py?)\n{output}"
                )
            return (
                f"`keygate {service.name}` exited with status {service.process.returncode} "
                f"before listening on 127.0.0.1:{service.port}:\n{output}"
            )
        with contextlib.suppress(OSError):
            _, writer = await asyncio.open_connection("127.0.0.1", service.port)
            writer.close()
            await writer.wait_closed()
            return None
        await asyncio.sleep(0.05)
    return (
        f"`keygate {service.name}` is not listening on 127.0.0.1:{service.port} after "
        f"{START_TIMEOUT}s:\n{service.log_tail()}"
    )


async def stop_services(services: list[ServiceProcess]) -> list[str]:
    """SIGTERM everything; the services that did not stop cleanly, with their output."""
    for service in services:
        if service.process.poll() is None:
            service.process.send_signal(signal.SIGTERM)
    unclean: list[str] = []
    for service in services:
        try:
            await asyncio.to_thread(service.process.wait, 20)
        except subprocess.TimeoutExpired:
            service.process.kill()
            await asyncio.to_thread(service.process.wait)
        if service.process.returncode != 0:
            unclean.append(
                f"`keygate {service.name}` ended with status {service.process.returncode}:\n"
                f"{service.log_tail()}"
            )
    return unclean
