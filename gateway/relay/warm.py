"""The warm-token decision, compiled: what the stages decide for the common bearer request, in
one call.

Most bearer requests are alike: one ``Authorization: Bearer <token>`` whose token is warm in
the L1 cache, on a route with no scope and no workspace to check, and the token's limiter lease
still holds a token. For such a request the stages (:meth:`gateway.proxy.Pipeline.decide_now`)
run about twenty Python functions to find the identity and take one token; under load, with
the CPU's caches shared with the upstream and the client, that was most of what a bearer
request cost beyond a passthrough one (docs/performance.md). ``Warm.decide`` (in
``_plain.c``) does the same in C, on the Python objects' own state:

- :meth:`~gateway.pipeline.authn.bearer.BearerAuthenticator.authenticate_now`'s one-step
  reading of the value, and :meth:`~gateway.token_cache.L1Cache.exact`: the entry for the
  token's public id, still valid by the cache's clock (and within
  :data:`~gateway.token_cache.UNHEARD_TTL_SECONDS` while revocations are not heard), its MAC
  equal to the token's (compared in constant time); the entry moves to the end of the LRU;
- the identity the authenticator made for that entry's result (its memo);
- :meth:`~gateway.pipeline.limit.RedisTokenBucket.take_now`: one token from the live lease of
  the token's bucket (:meth:`~gateway.pipeline.limit_lease.LeaseBook.take`), the demand count
  and the LRU order of the lease book, the :class:`~gateway.pipeline.limit.RateDecision` it
  reports and its header lines (:func:`~gateway.pipeline.limit.rate_limit_lines`);
- the counts: an L1 hit, a token authenticated, a request allowed and the token's usage
  minute, kept in C until the metrics batch drains them (:meth:`CompiledWarm.drain`), at most
  :data:`~gateway.metric_batch.FLUSH_SECONDS` later, like every other count of the batch (the
  usage recorder drains them too before each of its flushes, the last one at shutdown).

Anything else — another value, a token's first request (the stages make its identity), a cold
or refused token, a wrong secret, a route with a scope or a workspace, a lease that is empty,
expired or denying, a limit that changed — is ``None`` before any effect, and the stages
decide as before. The Python stages stay the reference: ``tests/unit/gateway/test_relay_warm.py``
runs the same requests both ways on twin states and compares every outcome and effect.
"""

from __future__ import annotations

from gateway.identity import AuthMethod
from gateway.pipeline.authn.bearer import BearerAuthenticator
from gateway.pipeline.limit import RateDecision, RedisTokenBucket
from gateway.proxy import Pipeline
from gateway.relay._plain import Warm
from gateway.token_cache import UNHEARD_TTL_SECONDS, L1Cache
from gateway.usage import UsageRecorder
from keygate_core.token_format import PREFIX, PUBLIC_ID_LENGTH, TOKEN_LENGTH


class CompiledWarm:
    """``Warm`` over one gateway's cache, authenticator, lease book and counts."""

    def __init__(
        self,
        cache: L1Cache,
        authenticator: BearerAuthenticator,
        limiter: RedisTokenBucket,
        pipeline: Pipeline,
    ) -> None:
        metrics = pipeline.metrics
        self._batch = metrics.batch
        self._usage: UsageRecorder | None = pipeline.usage
        book = limiter._book
        # The objects' own state, read and written by the compiled decision as their methods
        # do (the module docstring lists which).
        self._warm = Warm(
            cache=cache,
            entries=cache._entries,
            keyed=cache._keyed,
            identities=authenticator._identities,
            states=book._states,
            decision=RateDecision,
            batch=self._batch,
            usage=self._usage is not None,
            lease_seconds=book._lease_seconds,
            unheard_seconds=UNHEARD_TTL_SECONDS,
            id_start=len(PREFIX),
            id_length=PUBLIC_ID_LENGTH,
            token_length=TOKEN_LENGTH,
            default_limit=pipeline.settings.rate_limit_per_minute,
        )
        #: ``decide(value, now)``: see ``Warm.decide``.
        self.decide = self._warm.decide
        #: What each decided request adds to: an L1 hit, a token authenticated, allowed.
        self._children = (
            metrics.labels(metrics.l1_lookups, "hit"),
            metrics.labels(metrics.auth_decisions, AuthMethod.TOKEN.value, "ok"),
            metrics.labels(metrics.ratelimit_decisions, "allowed"),
        )
        self._batch.add_drain(self.drain)
        if self._usage is not None:
            self._usage.add_source(self.drain)

    @classmethod
    def of(cls, pipeline: Pipeline) -> CompiledWarm | None:
        """The compiled decision for ``pipeline``, or ``None`` when its stages are not the
        ones it stands for: the bearer authenticator first, the Redis limiter with leases."""
        bearer = pipeline.chain[0] if pipeline.chain else None
        limiter = pipeline.limiter
        if not isinstance(bearer, BearerAuthenticator) or not isinstance(limiter, RedisTokenBucket):
            return None
        return cls(bearer._cache, bearer, limiter, pipeline)

    def drain(self) -> None:
        """Hand the counts of the requests decided since the last drain to the metrics batch
        and the usage recorder (each calls this at each of its flushes)."""
        decided, usage = self._warm.drain()
        if decided:
            for child in self._children:
                self._batch.count(child, decided)
        if self._usage is not None:
            for (token_id, minute), requests in usage.items():
                self._usage.add(token_id, minute, requests)
