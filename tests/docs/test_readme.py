"""The README works as written: its operator recipe, run in one shell, ends in a whoami 200.

Every ``bash`` block of README.md runs, in order, in one bash process, starting real ``keygate``
processes with the README's own commands. Only what a reader fills in is replaced: the example
database and Redis URLs by the test servers' (an empty database, as the README's
``CREATE DATABASE`` leaves it), and the ports 8080 (gateway), 8081 (introspector), 8082 (admin
UI) and 3000 (your app, here the demo app) by free ports, so that a keygate already running on
this machine is never touched. The ``sh`` blocks are what a reader runs once, as root or with
``make``: they are named below, and nothing else is skipped.

The demo's banner is checked here too, because the README quotes it: the quoted lines are the
banner's, and its ``/api/echo`` line, run against this recipe's gateway, shows the app the
token's identity.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from keygate_demo.run import DemoOptions, _banner
from tests.docs.live import BIN
from tests.docs.markdown_blocks import code_blocks
from tests.docs.shell_recipes import json_documents, run_recipe
from tests.harness.servers import free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
EXAMPLE_DATABASE_URL = "postgresql://keygate:secret@127.0.0.1:5432/keygate"
EXAMPLE_REDIS_URL = "redis://127.0.0.1:6379/0"
#: The blocks a reader runs once and the test does not: `make` targets and creating the role.
NOT_RUN = [
    "make demo\n",
    "make test\n",
    "make image-test\n",
    "sudo -u postgres psql -c \"CREATE ROLE keygate LOGIN PASSWORD 'secret'\""
    ' -c "CREATE DATABASE keygate OWNER keygate"\n',
]
PLACEHOLDER = "kg_readmeplaceholder"


def _banner_lines(gateway_port: int, token: str, data_dir: Path) -> list[str]:
    options = DemoOptions(data_dir=data_dir, gateway_port=gateway_port)
    return list(_banner(options, token, "member@demo.keygate.dev", reused=False))


def test_only_the_make_targets_and_the_role_are_not_run() -> None:
    """Every other shell block is bash, and so is run by the recipe test below."""
    shells = [b for b in code_blocks(README) if b.language in {"bash", "sh", "shell", "console"}]
    assert [b.text for b in shells if b.language != "bash"] == NOT_RUN
    # The role and database the README creates are the ones its URL names.
    assert "keygate:secret@" in EXAMPLE_DATABASE_URL and EXAMPLE_DATABASE_URL.endswith("/keygate")


def test_the_readme_quotes_the_demo_banner(tmp_path: Path) -> None:
    """The banner lines the README shows are the banner's, with the token elided."""
    quoted = next(b for b in code_blocks(README) if b.language == "text")
    banner = [
        line.replace(PLACEHOLDER, "kg_…") for line in _banner_lines(8080, PLACEHOLDER, tmp_path)
    ]
    missing = [line for line in quoted.text.splitlines() if line.strip() and line not in banner]
    assert not missing, missing
    assert any("/api/echo" in line for line in quoted.text.splitlines())


def _recipe(gateway_port: int, upstream_port: int, database_url: str, redis_url: str) -> str:
    """The README's bash blocks with the reader's substitutions made."""
    script = "\n".join(b.text for b in code_blocks(README) if b.language == "bash")
    for example in (EXAMPLE_DATABASE_URL, EXAMPLE_REDIS_URL, "127.0.0.1:8080", "127.0.0.1:3000"):
        assert example in script, example
    return (
        script.replace(EXAMPLE_DATABASE_URL, database_url)
        .replace(EXAMPLE_REDIS_URL, redis_url)
        .replace("127.0.0.1:8080", f"127.0.0.1:{gateway_port}")
        .replace("127.0.0.1:3000", f"127.0.0.1:{upstream_port}")
    )


def _environment(ports: dict[str, int]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    env.update(
        {
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "KEYGATE_GATEWAY_PORT": str(ports["gateway"]),
            "KEYGATE_INTROSPECTOR_PORT": str(ports["introspector"]),
            "KEYGATE_INTROSPECTOR_URL": f"http://127.0.0.1:{ports['introspector']}",
            "KEYGATE_ADMIN_UI_PORT": str(ports["admin_ui"]),
            "KEYGATE_ADMIN_UI_URL": f"http://127.0.0.1:{ports['admin_ui']}",
            "KEYGATE_LOG_LEVEL": "warning",
        }
    )
    return env


async def test_the_operator_recipe_ends_in_a_whoami_200(
    empty_database_url: str, redis_url: str, tmp_path: Path
) -> None:
    """Migrate, create a person and a token, start the three services: whoami answers 200.

    Then the demo banner's ``/api/echo`` line, with that token, shows the app its identity,
    and the admin UI's sign-in page answers through the gateway.
    """
    ports = {name: free_port() for name in ("gateway", "introspector", "admin_ui", "upstream")}
    gateway = f"http://127.0.0.1:{ports['gateway']}"
    recipe = _recipe(ports["gateway"], ports["upstream"], empty_database_url, redis_url)
    echo_line = next(
        line.strip()
        for line in _banner_lines(ports["gateway"], PLACEHOLDER, tmp_path)
        if "/api/echo" in line
    )
    env = _environment(ports) | {"BANNER_ECHO": echo_line}
    # The app the README's gateway protects, and what this test runs after the README's lines.
    before = f"keygate demo-upstream --host 127.0.0.1 --port {ports['upstream']} &\n"
    after = (
        "\n" + 'eval "${BANNER_ECHO//' + PLACEHOLDER + '/$TOKEN}"\n'
        f"curl -fsS --retry 30 --retry-connrefused --retry-delay 1 -o /dev/null "
        f"-w 'login page %{{http_code}}\\n' {gateway}/_keygate/login\n"
    )
    result = await run_recipe(before + recipe + after, env, cwd=tmp_path)
    printed = json_documents(result.stdout)
    assert printed[0]["status"] == "ready", result.stdout
    whoami = next(d for d in printed if "authMethod" in d)
    assert whoami["email"] == "dev@example.com"
    assert whoami["authMethod"] == "token"
    assert [w["name"] for w in whoami["workspaces"]] == ["Acme"]
    seen = next(d for d in printed if "identity" in d)
    assert seen["identity"]["X-Keygate-User-Email"] == "dev@example.com"
    assert seen["identity"]["X-Keygate-Auth-Method"] == "token"
    assert "login page 200" in result.stdout


def _make_commands(*environ: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYGATE_")}
    for item in environ:
        name, value = item.split("=", 1)
        env[name] = value
    dry = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return dry.stdout


def test_make_demo_installs_only_the_servers_it_runs() -> None:
    """A URL you set means no server package for it (the README's "bring your own servers")."""
    assert "ensure-packages.sh postgresql redis-server" in _make_commands()
    redis_only = _make_commands("KEYGATE_REDIS_URL=redis://127.0.0.1:1/0")
    assert re.search(r"ensure-packages\.sh postgresql\s*$", redis_only, re.M), redis_only
    both = _make_commands(
        "KEYGATE_REDIS_URL=redis://127.0.0.1:1/0", "KEYGATE_DATABASE_URL=postgresql://x@y/z"
    )
    # (The compiler and Python headers every install needs are asked for either way.)
    assert not re.search(r"ensure-packages\.sh .*(postgresql|redis-server)", both), both


def test_every_phony_make_target_exists() -> None:
    """`make <name>` for a name in .PHONY does something (it must have a rule)."""
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    phony = {
        name for line in re.findall(r"^\.PHONY:(.*)$", makefile, re.M) for name in line.split()
    }
    rules = set(re.findall(r"^([A-Za-z][\w-]*):(?!=)", makefile, re.M))
    assert phony and phony <= rules, sorted(phony - rules)
