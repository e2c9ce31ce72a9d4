"""A reverse proxy (nginx, Caddy) the tests run in the foreground on 127.0.0.1, one per test."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.harness.servers import ServerUnavailable, free_port, wait_for_port


class ProxyProcess:
    """One proxy process serving ``site`` on 127.0.0.1:``port``; its output goes to
    ``log_file``. Subclasses write their configuration and call :meth:`_spawn`."""

    #: Named in errors, and the file in ``base_dir`` the process's output goes to.
    name = "proxy"
    log_name = "proxy.log"

    def __init__(self, binary: str, base_dir: Path, site: str, *, port: int | None) -> None:
        self.binary = binary
        self.base_dir = base_dir
        self.port = port or free_port()
        self.site = site
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The base URL clients use."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_file(self) -> Path:
        """What the process wrote (its stderr and stdout)."""
        return self.base_dir / self.log_name

    def _spawn(self, argv: list[str], **popen: Any) -> None:
        """Run ``argv`` in a session of its own; return once the port listens, else stop it
        and raise :class:`ServerUnavailable` with its log."""
        log = open(self.log_file, "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            argv, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **popen
        )
        log.close()
        deadline = time.monotonic() + 10.0
        while self.proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(ServerUnavailable):
                wait_for_port(self.port, timeout=0.2)
                return
        self.stop()
        raise ServerUnavailable(f"{self.name} did not start:\n{self.errors()}")

    def errors(self) -> str:
        """What the process logged so far."""
        with contextlib.suppress(OSError):
            return self.log_file.read_text(errors="replace")
        return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of its process group if it lingers."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
