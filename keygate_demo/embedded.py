"""Private Postgres and Redis servers started from the machine's own binaries.

``make demo`` runs the stack on these when no ``KEYGATE_DATABASE_URL`` / ``KEYGATE_REDIS_URL`` is
given, keeping their data in a folder of its own; the test suite runs throwaway ones tuned for
speed. Each listens on a free port on 127.0.0.1 — never on the servers that may already use the
standard ports. They can be stopped, started, paused (SIGSTOP: the process holds its socket but
answers nothing, like a black-holed host) and resumed, which the fault tests use.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from keygate_demo.server_process import ServerProcess, ServerUnavailable, free_port, wait_for_port

# The port helpers and the error these servers raise belong to this module's interface too.
__all__ = [
    "PostgresServer",
    "RedisServer",
    "ServerUnavailable",
    "free_port",
    "postgres_bindir",
    "wait_for_port",
]


def postgres_bindir() -> Path:
    """Where initdb and postgres are: Debian's newest, else the PATH."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    raise ServerUnavailable(
        "no PostgreSQL server binaries (initdb) found; install Debian's `postgresql` package "
        "(`make servers` does, as root)"
    )


class PostgresServer(ServerProcess):
    """A private PostgreSQL cluster in ``base_dir``.

    ``durable=False`` (the test suite's choice) turns off fsync and friends: faster, and nothing
    there must survive a crash. A durable cluster keeps Postgres's defaults. The binaries come
    from ``bindir``, else from :func:`postgres_bindir`; ``settings`` override any of these
    (a replicated pair needs ``synchronous_commit=on``, for one).
    """

    def __init__(
        self,
        base_dir: Path,
        *,
        durable: bool = False,
        bindir: Path | None = None,
        settings: dict[str, str] | None = None,
    ) -> None:
        self.bindir = bindir or postgres_bindir()
        #: Server settings given last on the command line, so they win over the defaults here.
        self.settings = dict(settings or {})
        self.base_dir = base_dir
        self.data_dir = base_dir / "data"
        self.durable = durable
        self.port = free_port()
        self.user = "keygate"
        # Postgres refuses to run as root; as root, run it as the `postgres` system user.
        self._run_as: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise ServerUnavailable("running as root and there is no `postgres` user") from None
            self._run_as = "postgres"

    def _as_owner(self) -> dict[str, Any]:
        # Popen's user/group switch in the child itself, so our pid *is* postgres: signals
        # (SIGSTOP for a black-holed server, SIGINT to stop) reach it and not a wrapper.
        if not self._run_as:
            return {}
        return {"user": self._run_as, "group": self._run_as, "extra_groups": []}

    @property
    def initialised(self) -> bool:
        """Whether :meth:`init` has created the cluster already (in an earlier run, perhaps)."""
        return (self.data_dir / "PG_VERSION").exists()

    def init(self) -> None:
        """Create the cluster (once)."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        if self._run_as:
            shutil.chown(self.base_dir, user=self._run_as)
        try:
            subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.user,
                    "--auth=trust",
                    "--encoding=UTF8",
                    *([] if self.durable else ["--no-sync"]),
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=self.base_dir,
                **self._as_owner(),
            )
        except (subprocess.CalledProcessError, PermissionError) as exc:
            output = getattr(exc, "stderr", None) or str(exc)
            hint = (
                f" (Postgres runs as the `{self._run_as}` user here: every folder above "
                f"{self.base_dir} must be searchable by it)"
                if self._run_as
                else ""
            )
            raise ServerUnavailable(f"initdb failed{hint}:\n{output.strip()}") from None

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) on the same port and data."""
        fast = ["fsync=off", "synchronous_commit=off", "full_page_writes=off"]
        options = [
            *([] if self.durable else fast),
            "max_connections=300",
            "shared_buffers=64MB",
            *(f"{name}={value}" for name, value in self.settings.items()),
        ]
        log = open(self.base_dir / "postgres.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-h",
                "127.0.0.1",
                "-k",
                str(self.base_dir),
                *(arg for option in options for arg in ("-c", option)),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.base_dir,
            start_new_session=True,  # its own process group, so pause() reaches every backend
            **self._as_owner(),
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServerUnavailable(f"postgres exited; see {self.base_dir / 'postgres.log'}")
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise ServerUnavailable(f"postgres did not become ready in {timeout}s")

    def create_database(self, name: str) -> None:
        """Create database ``name`` unless it exists."""
        where = ["-h", "127.0.0.1", "-p", str(self.port), "-U", self.user]
        result = subprocess.run(
            [str(self.bindir / "createdb"), *where, name],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0 and "already exists" not in result.stderr:
            raise ServerUnavailable(f"createdb {name}: {result.stderr.strip()}")

    def stop(self) -> None:
        """Fast shutdown: open connections are terminated, as in a real outage."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.resume()
            os.kill(self.proc.pid, signal.SIGINT)
        self._reap()

    def url(self, database: str = "postgres") -> str:
        """A connection URL for ``database``."""
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"


class RedisServer(ServerProcess):
    """A private redis-server; it keeps nothing on disk unless ``durable``. With a
    ``password`` it requires AUTH (given in a config file of mode 0600, not on the command
    line)."""

    def __init__(self, base_dir: Path, *, durable: bool = False, password: str = "") -> None:
        binary = shutil.which("redis-server") or shutil.which("valkey-server")
        if binary is None:
            raise ServerUnavailable("no redis-server found; run `make servers`")
        self.binary = binary
        self.base_dir = base_dir
        self.durable = durable
        self.password = password
        self.port = free_port()

    def _config_file(self) -> list[str]:
        """The config file argument (requirepass) when there is a password."""
        if not self.password:
            return []
        path = self.base_dir / "redis.conf"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(f"requirepass {self.password}\n")
        return [str(path)]

    def start(self) -> None:
        """Start (or restart after :meth:`stop`) on the same port; empty unless durable."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.base_dir / "redis.log", "ab")  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [
                self.binary,
                *self._config_file(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "60 1" if self.durable else "",
                "--appendonly",
                "no",
                "--dir",
                str(self.base_dir),
                "--protected-mode",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()
        wait_for_port(self.port)

    def stop(self) -> None:
        """Kill the server (a crash); a durable one is asked to save and exit instead."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.resume()
            if self.durable:
                self.proc.terminate()  # redis saves its snapshot on SIGTERM
            else:
                self.proc.kill()
        self._reap()

    def url(self, db: int = 0) -> str:
        """A connection URL for logical database ``db`` (with the password, if any)."""
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"
