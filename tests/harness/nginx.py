"""A private nginx for the test suite, running a site config from ``deploy/nginx``.

The server runs from the machine's own binary (Debian's ``nginx`` package), in a temporary
directory that holds its configuration, pid file, logs and temp paths, on a free port on
127.0.0.1 — never the system nginx the package may have started on port 80.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from tests.harness.proxy_process import ProxyProcess
from tests.harness.servers import ServerUnavailable

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "nginx"

# Everything nginx would otherwise write under /var: the process must not need root's paths.
_MAIN_CONF = """\
worker_processes 1;
events {{
    worker_connections 256;
}}
http {{
    access_log {base}/access.log;
    client_body_temp_path {base}/client_body;
    proxy_temp_path {base}/proxy;
    fastcgi_temp_path {base}/fastcgi;
    uwsgi_temp_path {base}/uwsgi;
    scgi_temp_path {base}/scgi;
    include {base}/site.conf;
}}
"""


def nginx_binary() -> str:
    """The nginx to run: ``KEYGATE_TEST_NGINX``, Debian's ``/usr/sbin/nginx``, or ``$PATH``."""
    explicit = os.environ.get("KEYGATE_TEST_NGINX")
    candidates = [explicit] if explicit else ["/usr/sbin/nginx", shutil.which("nginx")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServerUnavailable(
        "no nginx binary found; run `make servers` (installs Debian's nginx) "
        "or set KEYGATE_TEST_NGINX"
    )


def render(template: str, placeholders: dict[str, str]) -> str:
    """``template`` with every ``__NAME__`` replaced; a placeholder left over is an error."""
    text = template
    for name, value in placeholders.items():
        text = text.replace(f"__{name}__", value)
    for name in ("LISTEN", "KEYGATE", "APP"):
        if f"__{name}__" in text:
            raise ValueError(f"placeholder __{name}__ was not given a value")
    return text


class NginxServer(ProxyProcess):
    """One nginx master (and its worker) serving ``site`` on 127.0.0.1:``port``."""

    name = "nginx"
    log_name = "error.log"

    def __init__(self, base_dir: Path, site: str, *, port: int | None = None) -> None:
        """``site`` is a rendered server config listening on 127.0.0.1:``port``."""
        super().__init__(nginx_binary(), base_dir, site, port=port)

    def start(self) -> None:
        """Write the configuration and start nginx in the foreground; wait until it listens."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        # As root, nginx's workers run as `nobody`; they must be able to reach the temp paths.
        mode = self.base_dir.stat().st_mode
        self.base_dir.chmod(mode | stat.S_IRWXU | stat.S_IXGRP | stat.S_IXOTH)
        (self.base_dir / "site.conf").write_text(self.site)
        (self.base_dir / "nginx.conf").write_text(_MAIN_CONF.format(base=self.base_dir))
        self._spawn(
            [
                self.binary,
                "-p",
                str(self.base_dir),
                "-c",
                str(self.base_dir / "nginx.conf"),
                "-g",
                f"daemon off; pid {self.base_dir / 'nginx.pid'}; error_log stderr;",
            ]
        )
