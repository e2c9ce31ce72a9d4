"""The Quickstart works as written: its steps, run in order in one shell, end in a whoami answer.

Every ``bash`` block of the page runs, in order, in one bash process, with real ``keygate``
processes started by the page's own commands. Only what a reader would fill in is replaced: the
example database and Redis URLs by the test servers', and port 8080 by a free port (the
introspector's port is moved the same way, with its variables, so that a keygate already
running on this machine is never touched). The install step (``sh``) is what this suite's own
environment already did.
"""

from __future__ import annotations

import json
import os

from tests.docs.live import BIN
from tests.docs.markdown_blocks import DOCS, code_blocks
from tests.docs.shapes import json_differences
from tests.docs.shell_recipes import json_documents, run_recipe
from tests.harness.servers import free_port

PAGE = DOCS / "quickstart.md"
EXAMPLE_DATABASE_URL = "postgresql://keygate:secret@127.0.0.1:5432/keygate"
EXAMPLE_REDIS_URL = "redis://127.0.0.1:6379/0"


def test_only_the_install_step_is_not_run() -> None:
    """Every shell block but the one install step is bash, and so is run by the test below."""
    shells = [b for b in code_blocks(PAGE) if b.language in {"bash", "sh", "shell", "console"}]
    not_run = [b for b in shells if b.language != "bash"]
    assert [b.text for b in not_run] == [
        "python3 -m venv .venv && . .venv/bin/activate && pip install .\n"
    ]


async def test_quickstart_steps_end_in_a_successful_whoami(
    empty_database_url: str, redis_url: str
) -> None:
    """The page's commands take an empty database to a whoami answer shaped like the page's."""
    # They migrate, start both services, issue a token and call whoami.
    steps = [b.text for b in code_blocks(PAGE) if b.language == "bash"]
    script = "\n".join(steps)
    assert EXAMPLE_DATABASE_URL in script and EXAMPLE_REDIS_URL in script
    gateway_port, introspector_port = free_port(), free_port()
    script = (
        script.replace(EXAMPLE_DATABASE_URL, empty_database_url)
        .replace(EXAMPLE_REDIS_URL, redis_url)
        .replace("127.0.0.1:8080", f"127.0.0.1:{gateway_port}")
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "KEYGATE_GATEWAY_PORT": str(gateway_port),
            "KEYGATE_INTROSPECTOR_PORT": str(introspector_port),
            "KEYGATE_INTROSPECTOR_URL": f"http://127.0.0.1:{introspector_port}",
            "KEYGATE_LOG_LEVEL": "warning",
        }
    )
    result = await run_recipe(script, env)
    printed = json_documents(result.stdout)
    assert printed[0]["status"] == "ready", result.stdout
    documented = next(b for b in code_blocks(PAGE) if b.output_of == "whoami")
    whoami = printed[-1]
    assert whoami["email"] == "you@example.com"
    problems = json_differences(json.loads(documented.text), whoami)
    assert not problems, problems
