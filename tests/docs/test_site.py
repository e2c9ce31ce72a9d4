"""The documentation site builds strictly and works offline: nothing loads from another host."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from tests.docs.markdown_blocks import DOCS

ROOT = DOCS.parent
MKDOCS = Path(sys.executable).parent / "mkdocs"
#: Elements that make a browser fetch something when the page is shown (links to other sites
#: in the text are fine: they are only followed when clicked).
_LOADED_FROM_ELSEWHERE = re.compile(
    r"<(?:script|img|iframe|source|audio|video|embed)\b[^>]*\bsrc=[\"']?(?:https?:)?//"
    r"|<link\b(?=[^>]*\brel=[\"']?(?:stylesheet|preload|modulepreload|icon|manifest))"
    r"[^>]*\bhref=[\"']?(?:https?:)?//"
    r"|<object\b[^>]*\bdata=[\"']?(?:https?:)?//",
    re.IGNORECASE,
)
_CSS_FROM_ELSEWHERE = re.compile(r"url\(\s*[\"']?(?:https?:)?//|@import\s+[\"']?(?:https?:)?//")


def test_site_builds_strictly_and_loads_nothing_from_other_hosts(tmp_path: Path) -> None:
    """``mkdocs build --strict`` passes, and no page or stylesheet loads from another host."""
    site = tmp_path / "site"
    result = subprocess.run(
        [str(MKDOCS), "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    pages = list(site.rglob("*.html"))
    assert any(p.name.startswith("swagger-") for p in pages), "the API explorer was not built"
    offending = [
        f"{path.relative_to(site)}: {match.group()}"
        for path in pages
        for match in _LOADED_FROM_ELSEWHERE.finditer(path.read_text(encoding="utf-8"))
    ] + [
        f"{path.relative_to(site)}: {match.group()}"
        for path in site.rglob("*.css")
        for match in _CSS_FROM_ELSEWHERE.finditer(path.read_text(encoding="utf-8"))
    ]
    assert not offending, "\n".join(offending)
    reference = (site / "api" / "index.html").read_text(encoding="utf-8")
    assert "Who the credential belongs to" in reference, "the OpenAPI reference was not rendered"
