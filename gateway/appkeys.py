"""Typed keys for what ``create_app`` configures and the resources it opens (see gateway.app)."""

from __future__ import annotations

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from gateway.access_log import AccessLog
from gateway.metrics import GatewayMetrics
from gateway.pipeline.authz import RouteTable
from gateway.pipeline.mutate import IdentityHeaderNames
from gateway.proxy import Pipeline
from gateway.revocations import RevocationListener
from gateway.settings import GatewaySettings
from gateway.token_cache import L1Cache
from gateway.usage import UsageRecorder

SETTINGS = web.AppKey("settings", GatewaySettings)
METRICS = web.AppKey("metrics", GatewayMetrics)
ACCESS_LOG = web.AppKey("access_log", AccessLog)
ROUTES = web.AppKey("routes", RouteTable)
HEADER_NAMES = web.AppKey("header_names", IdentityHeaderNames)
REDIS = web.AppKey("redis", aioredis.Redis)
HTTP = web.AppKey("http", aiohttp.ClientSession)
INTERNAL_HTTP = web.AppKey("internal_http", aiohttp.ClientSession)
L1 = web.AppKey("l1", L1Cache)
PIPELINE = web.AppKey("pipeline", Pipeline)
USAGE = web.AppKey("usage", UsageRecorder)
LISTENER = web.AppKey("listener", RevocationListener)
