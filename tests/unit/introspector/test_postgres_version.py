"""``keygate migrate`` refuses a PostgreSQL older than the oldest one keygate is tested with."""

from __future__ import annotations

import pytest

from introspector.migrate import MIN_SERVER_VERSION_NUM, MigrationError, check_server_version


@pytest.mark.parametrize(
    ("version_num", "version", "accepted"),
    [
        pytest.param(120017, "12.17", False, id="12"),
        pytest.param(140011, "14.11", False, id="14"),
        pytest.param(150000, "15.0", True, id="15.0"),
        pytest.param(150020, "15.20 (Debian 15.20-0+deb12u1)", True, id="15-debian"),
        pytest.param(160002, "16.2", True, id="16"),
        pytest.param(170000, "17.0", True, id="17"),
    ],
)
def test_server_version_is_checked(version_num: int, version: str, accepted: bool) -> None:
    """server_version_num at or above the minimum passes; below it is refused naming both."""
    if accepted:
        check_server_version(version_num, version)
        return
    with pytest.raises(MigrationError) as refused:
        check_server_version(version_num, version)
    message = str(refused.value)
    assert f"PostgreSQL {MIN_SERVER_VERSION_NUM // 10000} or later" in message
    assert version in message
