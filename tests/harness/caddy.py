"""A private Caddy for the test suite, running the site block from ``deploy/caddy``.

The server runs from the machine's own binary (Debian's ``caddy`` package), with its admin
endpoint off, automatic HTTPS off, bound to 127.0.0.1 on a free port, and with ``HOME`` and the
XDG directories in a temporary directory — never the system Caddy the package may have started
on port 80, and never its admin port 2019, which parallel tests would fight over.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.harness.proxy_process import ProxyProcess
from tests.harness.servers import ServerUnavailable

DEPLOY_DIR = Path(__file__).resolve().parents[2] / "deploy" / "caddy"

# What an operator's Caddyfile would say in its own global options; the recipe is a site block.
_GLOBAL_OPTIONS = """\
{
\tadmin off
\tauto_https off
\tdefault_bind 127.0.0.1
\tgrace_period 1s
}

"""


def caddy_binary() -> str:
    """The Caddy to run: ``KEYGATE_TEST_CADDY``, Debian's ``/usr/bin/caddy``, or ``$PATH``."""
    explicit = os.environ.get("KEYGATE_TEST_CADDY")
    candidates = [explicit] if explicit else ["/usr/bin/caddy", shutil.which("caddy")]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ServerUnavailable(
        "no caddy binary found; run `make servers` (installs Debian's caddy) "
        "or set KEYGATE_TEST_CADDY"
    )


def caddy_version() -> str:
    """``caddy version`` of the binary the tests run (reported, so a run names what it tested)."""
    result = subprocess.run(
        [caddy_binary(), "version"], capture_output=True, text=True, timeout=10, check=True
    )
    return result.stdout.strip()


class CaddyServer(ProxyProcess):
    """One Caddy process serving ``site`` (a rendered site block) on 127.0.0.1:``port``."""

    name = "caddy"
    log_name = "caddy.log"

    def __init__(self, base_dir: Path, site: str, *, port: int | None = None) -> None:
        """``site`` is a rendered site block whose address is ``http://:{port}``."""
        super().__init__(caddy_binary(), base_dir, site, port=port)

    def start(self) -> None:
        """Write the Caddyfile and run Caddy in the foreground; wait until it listens."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        caddyfile = self.base_dir / "Caddyfile"
        caddyfile.write_text(_GLOBAL_OPTIONS + self.site)
        base = str(self.base_dir)
        env = {**os.environ, "HOME": base, "XDG_DATA_HOME": base, "XDG_CONFIG_HOME": base}
        self._spawn(
            [self.binary, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
            env=env,
            cwd=base,
        )
