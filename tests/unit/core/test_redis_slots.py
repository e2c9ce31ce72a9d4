"""Every multi-key Redis operation keygate makes stays within one Redis Cluster slot.

Redis Cluster refuses a script, a transaction or a multi-key command whose keys hash to
different slots (CROSSSLOT). The keys of one token, session or address share a hash tag, so
they share a slot; these tests check that with redis-py's own ``key_slot``, and read keygate's
source to check that no script, transaction or multi-key command ever combines keys of two tags.
Pipelines without a transaction may span slots: redis-py's cluster client splits them per node.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from redis.crc import key_slot

from gateway.pipeline.limit_redis import LEASE_LUA
from keygate_core import redis_keys

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("gateway", "introspector", "keygate_core", "admin_ui", "keygate_cli", "keygate_demo")
MULTI_KEY = {"mget", "delete", "unlink", "exists", "touch", "rename", "sunion", "sinter"}
#: The one multi-key command: one token's per-minute usage counters (all ``{<token id>}``).
MULTI_KEY_ALLOWED = {("introspector/views/usage.py", "mget")}


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_a_tokens_usage_minutes_share_one_slot() -> None:
    """The usage view reads a day of one token's minutes with one MGET: one slot."""
    slots = {slot(redis_keys.usage_key("tok-1", minute)) for minute in range(24 * 60)}
    assert len(slots) == 1


def test_an_accounts_login_counters_share_one_slot() -> None:
    """An account's failed-login counter per address sits in the account's slot."""
    account = redis_keys.failed_login_key("digest")
    assert slot(account) == slot(redis_keys.failed_login_key("digest", "203.0.113.7"))


@pytest.mark.parametrize(
    "build",
    [
        redis_keys.token_key,
        redis_keys.rate_limit_key,
        redis_keys.failed_token_key,
        redis_keys.failed_address_key,
        redis_keys.failed_device_key,
        redis_keys.login_address_key,
        redis_keys.token_create_key,
        redis_keys.user_sessions_key,
    ],
)
def test_keys_are_hash_tagged_on_their_subject(build: object) -> None:
    """Each key is tagged on its subject alone: its slot is the subject's slot."""
    assert callable(build)
    assert slot(build("subject-42")) == slot("{subject-42}")


def test_the_lease_script_touches_one_key() -> None:
    """The limiter's script names only KEYS[1] (one bucket, one slot)."""
    assert set(re.findall(r"KEYS\[(\d+)\]", LEASE_LUA)) == {"1"}


def _calls() -> list[tuple[str, ast.Call, str]]:
    found = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                    found.append((str(path.relative_to(ROOT)), node, node.func.attr))
    return found


def test_no_transaction_and_scripts_take_one_key() -> None:
    """Every pipeline is non-transactional, and every EVALSHA/EVAL names exactly one key."""
    for where, call, name in _calls():
        if name == "pipeline":
            keywords = {k.arg: k.value for k in call.keywords}
            value = keywords.get("transaction")
            assert isinstance(value, ast.Constant) and value.value is False, where
        if name in ("evalsha", "eval", "evalsha_ro", "eval_ro"):
            numkeys = call.args[1]
            assert isinstance(numkeys, ast.Constant) and numkeys.value == 1, where


def test_multi_key_commands_are_known() -> None:
    """A command given several keys appears only where its keys share one tag."""
    for where, call, name in _calls():
        many = len(call.args) > 1 or any(
            isinstance(a, ast.Starred | ast.List | ast.ListComp) for a in call.args
        )
        if name in MULTI_KEY and many:
            assert (where, name) in MULTI_KEY_ALLOWED, f"{where}: {name} with several keys"
