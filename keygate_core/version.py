"""keygate's version: pyproject.toml's, read from the installed package's metadata."""

from __future__ import annotations

from importlib.metadata import version

#: Reported by ``keygate --version`` and by the services' ``/healthz``.
VERSION = version("keygate")
