"""The processes a benchmark run starts, and stops again: every one of them, by its own pid.

Postgres and Redis come from ``keygate_demo.embedded`` (the machine's binaries, throwaway data);
the upstream, keygate's services and nginx run as child processes in sessions of their own,
logging into the run's work folder.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from keygate_demo.embedded import ServerUnavailable, free_port, wait_for_port
from tests.harness.nginx import DEPLOY_DIR, nginx_binary, render

_NGINX_MAIN = """\
worker_processes {workers};
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    include {base}/site.conf;
}}
"""

_NGINX_PLAIN_SITE = """\
upstream bench_app {{
    server {app};
    keepalive {keepalive};
}}
server {{
    listen {listen};
    location / {{
        proxy_pass http://bench_app;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host $host;
        proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        proxy_set_header X-Forwarded-Proto $scheme;
    }}
}}
"""


@dataclass
class Service:
    """One child process listening on 127.0.0.1:``port``."""

    name: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        """Its base URL."""
        return f"http://127.0.0.1:{self.port}"

    def pids(self) -> list[int]:
        """The process and its direct children (nginx workers, gateway workers)."""
        found = [self.process.pid]
        for stat_file in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = stat_file.read_text()
                if int(text[text.rindex(")") + 2 :].split()[1]) == self.process.pid:
                    found.append(int(text.split(" ", 1)[0]))
        return found

    def rss_bytes(self) -> int:
        """Resident memory of the process and its direct children, in bytes."""
        total = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
        return total

    def cpu_seconds(self) -> float:
        """User plus system CPU time of the process and its direct children, in seconds."""
        ticks = 0
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                text = Path(f"/proc/{pid}/stat").read_text()
                fields = text[text.rindex(")") + 2 :].split()
                ticks += int(fields[11]) + int(fields[12])  # utime, stime
        return ticks / os.sysconf("SC_CLK_TCK")

    def tail(self, lines: int = 20) -> str:
        """The last lines of its log."""
        with contextlib.suppress(OSError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def stop(self) -> None:
        """SIGTERM, then SIGKILL to its process group if it lingers."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


@dataclass
class Processes:
    """Starts children in ``work_dir`` and remembers them so that :meth:`stop_all` ends each."""

    work_dir: Path
    env: dict[str, str]
    services: list[Service] = field(default_factory=list)

    def spawn(
        self, name: str, argv: list[str], port: int, env: dict[str, str] | None = None
    ) -> Service:
        """Start ``argv`` and wait until it accepts connections on ``port``."""
        log_path = self.work_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            process = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**self.env, **(env or {})},
                cwd=self.work_dir,
                start_new_session=True,
            )
        service = Service(name, port, process, log_path)
        self.services.append(service)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServerUnavailable(f"{name} exited:\n{service.tail()}")
            with contextlib.suppress(ServerUnavailable):
                wait_for_port(port, timeout=0.2)
                return service
        raise ServerUnavailable(f"{name} did not listen on {port}:\n{service.tail()}")

    def upstream(self) -> Service:
        """The fixed upstream app."""
        port = free_port()
        return self.spawn(
            "upstream", [sys.executable, "-m", "tests.bench.upstream", str(port)], port
        )

    def bare_relay(self, upstream_port: int, workers: int) -> Service:
        """:mod:`tests.bench.bare_relay` in front of the upstream, with ``workers`` processes."""
        port = free_port()
        argv = [sys.executable, "-m", "tests.bench.bare_relay", str(port), str(upstream_port)]
        return self.spawn("bare-relay", [*argv, str(workers)], port)

    def introspector(self, env: dict[str, str]) -> Service:
        """keygate's introspector (with the loop-lag probe)."""
        port = free_port()
        service = self.spawn(
            "introspector",
            [sys.executable, "-m", "tests.bench.probed_introspector"],
            port,
            {**env, "KEYGATE_INTROSPECTOR_PORT": str(port)},
        )
        wait_ready(service.url + "/healthz")
        return service

    def gateway(self, name: str, env: dict[str, str]) -> Service:
        """``keygate gateway`` with ``env`` on top of the run's environment."""
        port = free_port()
        service = self.spawn(
            name,
            [str(Path(sys.executable).with_name("keygate")), "gateway"],
            port,
            {**env, "KEYGATE_GATEWAY_PORT": str(port)},
        )
        wait_ready(service.url + "/_keygate/readyz")
        return service

    def nginx(self, name: str, site: str, port: int, workers: int) -> Service:
        """nginx from the machine's binary with a private prefix and ``site`` as its server."""
        base = self.work_dir / name
        base.mkdir(parents=True, exist_ok=True)
        # As root, nginx's workers run as `nobody`; they must reach the temp paths.
        base.chmod(base.stat().st_mode | stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH)
        (base / "site.conf").write_text(site)
        (base / "nginx.conf").write_text(_NGINX_MAIN.format(base=base, workers=workers))
        argv = [
            nginx_binary(),
            "-p",
            str(base),
            "-c",
            str(base / "nginx.conf"),
            "-g",
            f"daemon off; pid {base / 'nginx.pid'}; error_log stderr warn;",
        ]
        return self.spawn(name, argv, port)

    def stop(self, service: Service) -> None:
        """Stop one service now."""
        service.stop()
        with contextlib.suppress(ValueError):
            self.services.remove(service)

    def stop_all(self) -> None:
        """Stop every service, newest first."""
        for service in reversed(self.services):
            service.stop()
        self.services.clear()


def plain_proxy_site(listen_port: int, app_port: int, keepalive: int) -> str:
    """nginx as a plain reverse proxy in front of the upstream."""
    return _NGINX_PLAIN_SITE.format(
        listen=f"127.0.0.1:{listen_port}", app=f"127.0.0.1:{app_port}", keepalive=keepalive
    )


def forward_auth_site(listen_port: int, gateway_port: int, app_port: int, keepalive: int) -> str:
    """``deploy/nginx/keygate-forward-auth.conf`` as shipped, with ``keepalive`` idle upstream
    connections instead of 16, so that nginx does not reconnect under the benchmark's
    concurrency (a fair setting for the contender, not a change to what it does)."""
    template = (DEPLOY_DIR / "keygate-forward-auth.conf").read_text()
    template = template.replace("keepalive 16;", f"keepalive {keepalive};")
    return render(
        template,
        {
            "LISTEN": f"127.0.0.1:{listen_port}",
            "KEYGATE": f"127.0.0.1:{gateway_port}",
            "APP": f"127.0.0.1:{app_port}",
        },
    )


def wait_ready(url: str, timeout: float = 30.0) -> None:
    """Poll ``url`` until it answers 200."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - fixed http URL
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise ServerUnavailable(f"{url} not ready after {timeout}s: {last}")
