"""KEYGATE_REDIS_URL: one server, Sentinel or Cluster, and a clear error for anything else."""

from __future__ import annotations

import pytest

from keygate_core.redis_connect import RedisAddress, Topology


def test_a_plain_url_is_one_server_used_as_given() -> None:
    address = RedisAddress.parse("rediss://:secret@cache.internal:6380/2")
    assert address.topology is Topology.SINGLE
    assert address.url == "rediss://:secret@cache.internal:6380/2"


def test_a_sentinel_url_names_sentinels_service_database_and_both_passwords() -> None:
    address = RedisAddress.parse(
        "rediss+sentinel://app:p%40ss@s1:26380,s2,[::1]:26381/cache/3?sentinel_password=sp"
    )
    assert address.topology is Topology.SENTINEL
    assert address.nodes == (("s1", 26380), ("s2", 26379), ("::1", 26381))
    assert (address.service, address.db) == ("cache", 3)
    assert (address.username, address.password) == ("app", "p@ss")
    assert address.sentinel_password == "sp"
    assert address.tls


def test_a_cluster_url_names_its_startup_nodes() -> None:
    address = RedisAddress.parse("redis+cluster://:pw@n1:7000,n2:7001,n3")
    assert address.topology is Topology.CLUSTER
    assert address.nodes == (("n1", 7000), ("n2", 7001), ("n3", 6379))
    assert (address.password, address.tls) == ("pw", False)


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://cache:6379", "expected a URL starting with redis://"),
        ("redis+sentinel://s1:26379", "name the Sentinel service"),
        ("redis+sentinel://s1:26379/cache/x", "'x' is not a database number"),
        ("redis+sentinel://s1:26379/cache?sentinel_pasword=x", "unknown option 'sentinel_pasword'"),
        ("redis+cluster://n1:7000/3", "only database 0"),
        ("redis+cluster://n1:port", "'port' is not a port"),
        ("redis+cluster://n1:7000,,n2", "names no host"),
        ("redis+cluster://:supersecret@", "names no host"),
    ],
)
def test_a_wrong_url_says_what_is_wrong_without_the_password(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=says) as caught:
        RedisAddress.parse(url)
    assert "supersecret" not in str(caught.value)
