"""keygate admin UI: server-rendered pages where people create, list and revoke API keys."""
