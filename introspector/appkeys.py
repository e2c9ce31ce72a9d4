"""Typed keys for the resources ``create_app`` opens (see introspector.app)."""

from __future__ import annotations

import asyncpg
import redis.asyncio as aioredis
from aiohttp import web

from introspector.attempts import FailedAttempts
from introspector.creation_limits import CreationGate, CreationLimits
from introspector.hashing import SecretHasher
from introspector.introspection import TokenIntrospector
from introspector.last_used import LastUsedRecorder
from introspector.metrics import IntrospectorMetrics
from introspector.revocation import RevocationAnnouncer
from introspector.sessions import SessionStore
from introspector.settings import IntrospectorSettings

SETTINGS = web.AppKey("settings", IntrospectorSettings)
METRICS = web.AppKey("metrics", IntrospectorMetrics)
POOL = web.AppKey("pool", asyncpg.Pool)
REDIS = web.AppKey("redis", aioredis.Redis)
HASHER = web.AppKey("hasher", SecretHasher)
ATTEMPTS = web.AppKey("attempts", FailedAttempts)
INTROSPECTOR = web.AppKey("introspector", TokenIntrospector)
ANNOUNCER = web.AppKey("announcer", RevocationAnnouncer)
LAST_USED = web.AppKey("last_used", LastUsedRecorder)
SESSIONS = web.AppKey("sessions", SessionStore)
CREATION_LIMITS = web.AppKey("creation_limits", CreationLimits)
CREATION_GATE = web.AppKey("creation_gate", CreationGate)
