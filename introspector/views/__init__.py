"""HTTP handlers of the introspector, one module per resource.

``api_tokens`` (create, list, revoke), ``usage`` (a token's requests per minute),
``audit_events``, ``whoami``, ``introspect`` (RFC 7662, for the gateway), ``sessions`` (local
sign-in, for the admin UI) and ``health`` (probes and metrics); ``request_body`` reads bodies and
query parameters strictly. Routes are added in :func:`introspector.app.create_app`.
"""
