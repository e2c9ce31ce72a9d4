"""Every sample on the reference pages runs against a live keygate and prints what the page shows.

cURL samples run in bash, Python samples with this interpreter, JavaScript samples with Node.
Each runs after the page's own setup block (its placeholders filled in with the live stack's
base URL and a real token), exactly as a reader would; samples that use the ``keygate`` CLI run
with an operator's environment instead. The output is then compared with the block the page
marks ``<!-- output: NAME -->``: JSON by keys and types, HTTP heads by status and header shape,
regular expressions by a full match.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.settings import GatewaySettings
from tests.docs.live import Live
from tests.docs.markdown_blocks import REFERENCE, RUNNERS, CodeBlock, code_blocks, section_text
from tests.docs.shapes import http_differences, json_differences

PAGES = sorted(REFERENCE.glob("*.md"))
BLOCKS = [block for page in PAGES for block in code_blocks(page)]
SAMPLES = [block for block in BLOCKS if block.is_sample]
RUNNABLE_LANGUAGES = {"bash", "sh", "shell", "python", "py", "javascript", "js"}
#: What a setup block holds and the page tells the reader to replace (their own instance): a
#: gateway on this machine at its default address, so the block works as written locally.
LOCAL_GATEWAY = f"http://{GatewaySettings().host}:{GatewaySettings().port}"
TOKEN_PLACEHOLDER = "<your-token>"
_EXPORT = re.compile(r'^export (?P<name>[A-Z_]+)="(?P<value>[^"]*)"$')
_CLI = re.compile(r"^\s*keygate\s", re.M)


def setup_block(page: Path) -> CodeBlock:
    """The page's one setup block: a shell block of ``export NAME="value"`` lines only."""
    found = [
        b
        for b in code_blocks(page)
        if b.language in RUNNABLE_LANGUAGES and not b.is_sample and b.title is None
    ]
    assert len(found) == 1, f"{page.name}: expected one setup block, found {len(found)}"
    return found[0]


def outputs(page: Path) -> dict[str, CodeBlock]:
    """The documented outputs of ``page`` by sample name."""
    marked = [b for b in code_blocks(page) if b.output_of]
    by_name = {b.output_of: b for b in marked if b.output_of}
    assert len(by_name) == len(marked), f"{page.name}: an output name is used twice"
    return by_name


def test_every_page_has_samples_and_nothing_runnable_escapes() -> None:
    """Each reference page has samples; every shell, Python or JS block is a sample or the setup."""
    assert PAGES, "no reference pages found"
    for page in PAGES:
        assert any(b.is_sample for b in code_blocks(page)), f"{page.name} has no samples"
        setup = setup_block(page)
        for line in setup.text.strip().splitlines():
            assert _EXPORT.match(line), f'{setup.where}: setup lines must be export NAME="…"'
    for block in BLOCKS:
        if block.language in RUNNABLE_LANGUAGES and not block.is_sample:
            assert block.title is None and _EXPORT.match(block.text.strip().splitlines()[0]), (
                f"{block.where}: a {block.language} block must be a sample (title a file name "
                f"ending in {', '.join(RUNNERS)}) or the page's setup block"
            )
        if block.is_sample:
            expected_language = {".sh": "bash", ".py": "python", ".mjs": "javascript"}
            assert block.language == expected_language[Path(block.title or "").suffix], (
                f"{block.where}: {block.title} must be a {block.language} block"
            )


def test_every_sample_has_a_documented_output_and_every_output_a_sample() -> None:
    """Samples and the outputs they are checked against pair up by name."""
    for page in PAGES:
        names = {b.sample_name for b in code_blocks(page) if b.is_sample}
        assert names == set(outputs(page)), f"{page.name}: samples {names} vs outputs"


def test_setup_block_uses_the_documented_base_url_and_token_placeholder() -> None:
    """The setup block's base URL is the local gateway's (``http://127.0.0.1:8080/api``), which
    the page tells the reader to replace, scheme included, with their instance; the token is a
    placeholder. The samples run with exactly that replacement made."""
    for page in PAGES:
        exports = dict(
            (m["name"], m["value"])
            for m in map(_EXPORT.match, setup_block(page).text.strip().splitlines())
            if m
        )
        assert exports == {
            "KEYGATE_BASE_URL": f"{LOCAL_GATEWAY}/api",
            "KEYGATE_TOKEN": TOKEN_PLACEHOLDER,
        }
        told = " ".join(section_text(page, "Code samples").split())
        assert f"replace `{LOCAL_GATEWAY}` with `https://<your-instance>`" in told


def _command(sample: CodeBlock, path: Path, setup: str | None) -> list[str]:
    runner = {"bash": "bash", "python": sys.executable, "node": "node"}[RUNNERS[Path(path).suffix]]
    if setup is None:
        return [runner, str(path)]
    # The reader's shell: run the setup block, then the sample with what it exported.
    return ["bash", "-euc", f'{setup}\nexec "$@"', "setup", runner, str(path)]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda b: f"{b.page.stem}-{b.title}")
async def test_sample_runs_against_a_live_stack_and_prints_the_documented_shape(
    sample: CodeBlock, live: Live, tmp_path: Path
) -> None:
    """The sample, run as written, succeeds and its output has the documented shape."""
    assert sample.title is not None
    path = tmp_path / sample.title
    path.write_text(sample.text, encoding="utf-8")
    if _CLI.search(sample.text):
        env, setup = live.operator_environment(), None
    else:
        env = live.base_environment()
        setup = (
            setup_block(sample.page)
            .text.replace(LOCAL_GATEWAY, live.gateway_url)
            .replace(TOKEN_PLACEHOLDER, live.token)
        )
    result = await asyncio.to_thread(
        subprocess.run,
        _command(sample, path, setup),
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{sample.where} failed:\n{result.stdout}\n{result.stderr}"
    expected = outputs(sample.page)[sample.sample_name]
    if expected.language == "json":
        problems = json_differences(json.loads(expected.text), json.loads(result.stdout))
    elif expected.language == "http":
        problems = http_differences(expected.text, result.stdout)
    elif expected.language == "regex":
        pattern = expected.text.strip()
        problems = [] if re.fullmatch(pattern, result.stdout.strip()) else [f"not {pattern}"]
    else:
        pytest.fail(f"{expected.where}: cannot compare output of language {expected.language!r}")
    assert not problems, f"{sample.where} printed {result.stdout!r}: {problems}"
