"""Typed keys for what ``create_app`` puts on the application (see admin_ui.app)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from admin_ui.api_client import IntrospectorClient
from admin_ui.nonces import NonceStore
from admin_ui.settings import AdminUISettings

SETTINGS = web.AppKey("settings", AdminUISettings)
HTTP = web.AppKey("http", aiohttp.ClientSession)
CLIENT = web.AppKey("client", IntrospectorClient)
NONCES = web.AppKey("nonces", NonceStore)
#: Form-token keys: pages sign with the first; forms verify with any (the previous secret's
#: too, so forms rendered before a rotation still submit).
CSRF_KEYS = web.AppKey("csrf_keys", tuple[bytes, ...])
#: Static asset name → URL with its content hash, computed once at start-up.
ASSET_URLS = web.AppKey("asset_urls", dict[str, str])
