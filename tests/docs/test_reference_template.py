"""Every reference page follows the locked template of docs/reference-contributing.md.

Purpose sentence, then Overview, Request details, Code samples, Example response and Common
errors, in that order, each holding what the template says it holds.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from keygate_core.token_format import SCANNER_REGEX
from tests.docs.markdown_blocks import (
    DOCS,
    REFERENCE,
    code_blocks,
    headings,
    section_text,
    table_rows,
)
from tests.docs.shapes import is_pretty_json

PAGES = sorted(REFERENCE.glob("*.md"), key=lambda p: p.name)
TEMPLATE = ["Overview", "Request details", "Code samples", "Example response", "Common errors"]
GUIDE = DOCS / "reference-contributing.md"


def _prose(markdown: str) -> str:
    """Text without code spans and link targets, where sentence ends can be counted."""
    markdown = re.sub(r"`[^`]*`", "CODE", markdown)
    return re.sub(r"\]\([^)]*\)", "]", markdown)


def _paragraphs(markdown: str) -> list[str]:
    return [p.strip() for p in re.split(r"\n\s*\n", markdown) if p.strip()]


@pytest.fixture(params=PAGES, ids=lambda p: p.stem)
def page(request: pytest.FixtureRequest) -> Path:
    """One reference page."""
    path: Path = request.param
    return path


def test_the_guide_states_the_template_the_tests_enforce() -> None:
    """The contributing guide lists the same sections, in the same order, as these tests."""
    text = GUIDE.read_text(encoding="utf-8")
    listed = re.findall(r"^\d+\. \*\*(.+?)\*\*", text, re.M)
    assert listed == ["Purpose", *TEMPLATE], listed


def test_sections_are_exactly_the_template_in_order(page: Path) -> None:
    """One H1, then the five H2 sections of the template and no others."""
    assert len(headings(page, 1)) == 1
    assert headings(page, 2) == TEMPLATE


def test_purpose_is_one_sentence(page: Path) -> None:
    """The first paragraph after the title is a single sentence."""
    text = page.read_text(encoding="utf-8")
    purpose = _paragraphs(text.split("\n", 1)[1].split("\n## ", 1)[0])
    assert len(purpose) == 1, "only the purpose sentence goes between the title and Overview"
    sentence = _prose(purpose[0])
    assert sentence.endswith(".") and len(re.findall(r"[.!?](\s|$)", sentence)) == 1, sentence


def test_overview_is_one_or_two_paragraphs(page: Path) -> None:
    """Overview is prose: one or two paragraphs, no headings, lists, tables or code."""
    paragraphs = _paragraphs(section_text(page, "Overview"))
    assert 1 <= len(paragraphs) <= 2, f"{len(paragraphs)} paragraphs"
    for paragraph in paragraphs:
        assert not re.match(r"(#|[-*] |\d+\. |\||```)", paragraph), paragraph[:40]


def test_request_details_name_the_headers_verbatim(page: Path) -> None:
    """Request details give the base URL and a header table with exact names in code spans."""
    details = section_text(page, "Request details")
    assert "`https://<your-instance>/api`" in details
    rows = table_rows(details[details.index("| Header |") :])
    names = [row[0] for row in rows[1:]]
    assert all(re.fullmatch(r"`[A-Za-z0-9-]+`", name) for name in names), names
    assert {"`Authorization`", "`Content-Type`"} <= set(names)


def test_code_samples_come_in_curl_python_and_javascript(page: Path) -> None:
    """Code samples has tabs cURL, Python and JavaScript, each holding one sample."""
    samples = section_text(page, "Code samples")
    assert re.findall(r'^=== "(.+)"$', samples, re.M) == ["cURL", "Python", "JavaScript"]
    in_section = [b for b in code_blocks(page) if b.section == "Code samples" and b.is_sample]
    suffixes = sorted(Path(b.title or "").suffix for b in in_section)
    assert suffixes == [".mjs", ".py", ".sh"], suffixes
    assert all("$KEYGATE_TOKEN" in b.text or "KEYGATE_TOKEN" in b.text for b in in_section)


def test_example_response_is_one_pretty_printed_json_document(page: Path) -> None:
    """Example response holds exactly one JSON block, indented by two spaces, marked output."""
    blocks = [b for b in code_blocks(page) if b.section == "Example response"]
    assert [b.language for b in blocks] == ["json"]
    assert blocks[0].output_of, "mark it <!-- output: NAME --> so the samples are checked"
    assert is_pretty_json(blocks[0].text), "pretty-print it: json.dumps(body, indent=2)"
    json.loads(blocks[0].text)


def test_common_errors_table_has_the_template_columns(page: Path) -> None:
    """Common errors is a Status / Meaning / Cause / Fix table, one row per status and reason."""
    rows = table_rows(section_text(page, "Common errors"))
    assert rows[0] == ["Status", "Meaning", "Cause", "Fix"]
    keys = [(row[0], row[1].split(":")[0]) for row in rows[1:]]
    assert len(keys) == len(set(keys)), "one row per status and reason"
    assert all(re.fullmatch(r"`[1-5][0-9]{2}`", status) for status, _ in keys)


def test_documented_token_regex_is_the_one_in_the_code() -> None:
    """The secret-scanning regex on the Authentication page is SCANNER_REGEX."""
    regexes = [b.text.strip() for b in code_blocks(REFERENCE / "authentication.md")]
    assert SCANNER_REGEX in regexes
