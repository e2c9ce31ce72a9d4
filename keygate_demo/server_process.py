"""A server run as a child process: free ports, waiting for one to listen, pausing, stopping.

The base of keygate's embedded Postgres and Redis (:mod:`keygate_demo.embedded`). A paused
server (SIGSTOP) still holds its socket but answers nothing, like a black-holed host; the fault
tests use that.
"""

from __future__ import annotations

import contextlib
import glob
import os
import signal
import socket
import subprocess
import time
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """A server binary is missing or the server would not start."""


#: Every port :func:`free_port` has handed out in this process.
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now, and that this process has
    not been given before.

    The kernel may hand the same free port to two ``bind(("127.0.0.1", 0))`` calls in a row
    once the first socket is closed; a caller choosing ports for several servers before
    starting any (a Sentinel deployment, a cluster) would then start two on one port, and the
    second would exit at once while the first answers for both.
    """
    while True:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port: int = sock.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def wait_for_port(port: int, timeout: float = 20.0) -> None:
    """Block until something accepts connections on 127.0.0.1:``port``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise ServerUnavailable(f"nothing is listening on 127.0.0.1:{port} after {timeout}s")


def _children(pid: int) -> list[int]:
    """Direct children of ``pid``, read from /proc."""
    found: list[int] = []
    for stat_file in glob.glob("/proc/[0-9]*/stat"):
        with contextlib.suppress(OSError):
            text = Path(stat_file).read_text()
            # Field 4 (ppid) follows the parenthesised command name, which may contain spaces.
            if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
                found.append(int(text.split(" ", 1)[0]))
    return found


class ServerProcess:
    """A server child process that can be paused, resumed and reaped."""

    proc: subprocess.Popen[bytes] | None = None

    def pause(self) -> None:
        """SIGSTOP to the server and all its children: the kernel still accepts connections,
        nothing answers them — a black-holed host."""
        assert self.proc is not None
        # The parent first, so it forks nothing new; Postgres puts every backend in a session
        # of its own (setsid), so a process-group signal would miss them.
        os.kill(self.proc.pid, signal.SIGSTOP)
        for child in _children(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGSTOP)

    def resume(self) -> None:
        """SIGCONT after :meth:`pause`."""
        assert self.proc is not None
        for child in _children(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGCONT)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGCONT)

    def _reap(self, timeout: float = 30.0) -> None:
        """Wait for the process asked to stop; kill it if it takes longer than ``timeout``."""
        assert self.proc is not None
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=timeout)
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    @property
    def running(self) -> bool:
        """Whether the process exists and has not exited (a paused one is running)."""
        return self.proc is not None and self.proc.poll() is None
