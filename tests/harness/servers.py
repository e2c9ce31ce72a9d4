"""The test suite's throwaway Postgres and Redis servers (fast, nothing kept on disk).

They are keygate's embedded servers (the ones ``make demo`` uses) in their non-durable form;
this module is where the tests import them from.
"""

from keygate_demo.embedded import (
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    free_port,
    wait_for_port,
)

__all__ = ["PostgresServer", "RedisServer", "ServerUnavailable", "free_port", "wait_for_port"]
