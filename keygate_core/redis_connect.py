"""Opening Redis in the topology ``KEYGATE_REDIS_URL`` names: one server, Sentinel or Cluster.

- ``redis://`` / ``rediss://`` / ``unix://``: one server (redis-py's own URL form).
- ``redis+sentinel://[user:password@]host:port[,host:port…]/service[/db]``: a primary found
  through Sentinel; every connection asks the sentinels for the current primary, so a failover
  needs no restart. ``?sentinel_password=…`` (and ``sentinel_username``) when the sentinels
  require AUTH of their own.
- ``redis+cluster://[user:password@]host:port[,host:port…]``: Redis Cluster; the addresses are
  where the client starts discovering the cluster's nodes and slots.

``rediss+sentinel`` and ``rediss+cluster`` use TLS. The same parser checks the setting at
startup, so a typo is a settings error that names ``KEYGATE_REDIS_URL``, never a crash later.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qs, unquote

import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool
from redis.backoff import NoBackoff

#: Schemes ``KEYGATE_REDIS_URL`` accepts.
SCHEMES = (
    "redis",
    "rediss",
    "unix",
    "redis+sentinel",
    "rediss+sentinel",
    "redis+cluster",
    "rediss+cluster",
)


class Topology(enum.Enum):
    """How keygate reaches Redis."""

    SINGLE = "single"
    SENTINEL = "sentinel"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class RedisAddress:
    """A parsed ``KEYGATE_REDIS_URL``."""

    topology: Topology
    #: The URL as given (used as is for one server).
    url: str
    nodes: tuple[tuple[str, int], ...] = ()
    service: str = ""
    db: int = 0
    username: str | None = None
    password: str | None = None
    tls: bool = False
    sentinel_username: str | None = None
    sentinel_password: str | None = None

    @classmethod
    def parse(cls, text: str) -> RedisAddress:
        """The address ``text`` names; ``ValueError`` says what is wrong (never the password)."""
        scheme, sep, rest = text.partition("://")
        if not sep or scheme not in SCHEMES:
            raise ValueError(
                f"expected a URL starting with {' or '.join(s + '://' for s in SCHEMES)}"
            )
        if scheme in ("redis", "rediss", "unix"):
            if not rest:
                raise ValueError("the URL names no host")
            return cls(Topology.SINGLE, text)
        rest, _, query = rest.partition("?")
        userinfo, at, hosts_and_path = rest.rpartition("@")
        hosts, _, path = (hosts_and_path if at else rest).partition("/")
        username, password = _credentials(userinfo) if at else (None, None)
        options = {key: values[-1] for key, values in parse_qs(query).items()}
        unknown = sorted(set(options) - {"sentinel_username", "sentinel_password"})
        if unknown:
            raise ValueError(f"unknown option {unknown[0]!r} in the URL")
        topology = Topology.SENTINEL if scheme.endswith("+sentinel") else Topology.CLUSTER
        segments = [unquote(s) for s in path.split("/") if s]
        service, db = _path(topology, segments)
        if topology is Topology.CLUSTER and options:
            raise ValueError("sentinel options only apply to redis+sentinel:// URLs")
        return cls(
            topology,
            text,
            nodes=_nodes(hosts, default_port=26379 if topology is Topology.SENTINEL else 6379),
            service=service,
            db=db,
            username=username,
            password=password,
            tls=scheme.startswith("rediss"),
            sentinel_username=options.get("sentinel_username"),
            sentinel_password=options.get("sentinel_password"),
        )


def open_redis(
    url: str, *, timeout: float | None, connect_timeout: float, max_connections: int | None = None
) -> aioredis.Redis:
    """A client for ``url``. Nothing connects until the first command.

    ``timeout`` bounds each command (``None`` for a connection that blocks on reads, such as a
    subscriber). ``max_connections`` makes the pool bounded and blocking: past it, a command
    waits up to ``connect_timeout`` for a free connection instead of opening another.
    """
    address = RedisAddress.parse(url)
    sockets: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout}
    if address.topology is Topology.SINGLE:
        if max_connections is None:
            return aioredis.Redis.from_url(url, **sockets)
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=connect_timeout, **sockets
        )
        return aioredis.Redis.from_pool(pool)
    if address.topology is Topology.SENTINEL:
        return _open_sentinel(address, timeout, connect_timeout, max_connections)
    cluster = aioredis.RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
        max_connections=max_connections or 100,
        ssl=address.tls,
        socket_timeout=timeout,
        socket_connect_timeout=connect_timeout,
        username=address.username,
        password=address.password,
        # One immediate retry: redis-py's default (three, with backoff, and 0.25 s more after
        # each CLUSTERDOWN) holds a command for seconds while a master fails over, past the
        # callers' own timeouts; they have fallbacks (Postgres, the local bucket) for failures.
        retry=Retry(NoBackoff(), retries=1),
    )
    # RedisCluster speaks the same commands as Redis and routes each by its key's slot; keygate
    # uses only commands both have, so the rest of the code is written against one type.
    return cast(aioredis.Redis, cluster)


def _open_sentinel(
    address: RedisAddress,
    timeout: float | None,
    connect_timeout: float,
    max_connections: int | None,
) -> aioredis.Redis:
    """A client of the primary the sentinels name; it asks them again on every new connection."""
    sockets: dict[str, Any] = {"socket_timeout": timeout, "socket_connect_timeout": connect_timeout}
    auth: dict[str, Any] = {"username": address.username, "password": address.password}
    # A sentinel's answer is never worth waiting for without bound, even for a client that
    # blocks on reads (a subscriber): discovery moves on to the next sentinel only when one
    # fails, so an unbounded wait on a frozen sentinel would never reach the others.
    asking = {**sockets, "socket_timeout": timeout or connect_timeout}
    sentinel = Sentinel(
        address.nodes,
        sentinel_kwargs={
            **asking,
            "username": address.sentinel_username,
            "password": address.sentinel_password,
            "ssl": address.tls,
        },
        **sockets,
        **auth,
        db=address.db,
        ssl=address.tls,
    )
    if max_connections is None:
        return cast(aioredis.Redis, sentinel.master_for(address.service))
    client = sentinel.master_for(
        address.service,
        connection_pool_class=_BlockingSentinelPool,
        max_connections=max_connections,
        timeout=connect_timeout,
    )
    return cast(aioredis.Redis, client)


async def refresh_topology(client: aioredis.Redis) -> None:
    """Ask a Redis Cluster again which node serves which slot (a no-op for other topologies).

    redis-py refreshes its slot map when a command meets MOVED or a dead node, but a client that
    only subscribes (the gateway's revocation listener) never sends such a command: after a
    failover it would keep dialling the dead master. Calling this before re-subscribing makes
    it follow the replica that took over.
    """
    if isinstance(client, aioredis.RedisCluster):
        await client.nodes_manager.initialize()


class _BlockingSentinelPool(SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """Sentinel's pool (asks for the primary on every connect) with the blocking pool's bound:
    past ``max_connections`` a command waits for a free connection instead of failing."""


def _credentials(userinfo: str) -> tuple[str | None, str | None]:
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None, unquote(password) if colon else None)


def _nodes(hosts: str, *, default_port: int) -> tuple[tuple[str, int], ...]:
    nodes = []
    for item in hosts.split(","):
        host, port = _host_port(item.strip(), default_port)
        nodes.append((host, port))
    return tuple(nodes)


def _host_port(item: str, default_port: int) -> tuple[str, int]:
    if not item:
        raise ValueError("the URL names no host")
    if item.startswith("["):
        host, _, tail = item[1:].partition("]")
        port_text = tail.removeprefix(":")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise ValueError("the URL names no host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"{port_text!r} is not a port")
    return host, int(port_text)


def _path(topology: Topology, segments: list[str]) -> tuple[str, int]:
    """(service, db) from the URL's path."""
    if topology is Topology.CLUSTER:
        if segments not in ([], ["0"]):
            raise ValueError("Redis Cluster has only database 0; leave the path empty")
        return "", 0
    if not segments or len(segments) > 2:
        raise ValueError(
            "name the Sentinel service in the path: redis+sentinel://host:port/service"
        )
    db_text = segments[1] if len(segments) == 2 else "0"
    if not db_text.isdigit():
        raise ValueError(f"{db_text!r} is not a database number")
    return segments[0], int(db_text)
