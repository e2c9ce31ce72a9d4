"""Each service's section of docs/configuration.md names every variable that service reads.

A variable has its row in one section; the gateway's and the admin UI's sections name the
shared ones they also read in an "also reads" sentence. A reader setting, say, the gateway's
log level looks in the gateway's section, so a variable the gateway reads but its section does
not name reads as "not for the gateway".
"""

from __future__ import annotations

import re

import pytest

from admin_ui.settings import AdminUISettings
from gateway.settings import GatewaySettings
from keygate_core.envconfig import specs
from tests.docs.markdown_blocks import DOCS, section_text

PAGE = DOCS / "configuration.md"


@pytest.mark.parametrize(
    ("section", "settings"),
    [("Gateway", GatewaySettings), ("Admin UI", AdminUISettings)],
    ids=["gateway", "admin-ui"],
)
def test_a_service_section_names_every_variable_the_service_reads(
    section: str, settings: type
) -> None:
    """Rows or the "also reads" sentence: every variable of the service's settings is named."""
    named = set(re.findall(r"`(KEYGATE_[A-Z0-9_]+)`", section_text(PAGE, section)))
    missing = sorted({spec.env for spec in specs(settings)} - named)
    assert not missing, f"the {section} section does not name {missing}"
