"""The OpenAPI document describes every HTTP endpoint, and the live services answer as it says.

Schemathesis generates requests from the document (valid ones and invalid ones) and sends them
to a running gateway and introspector; every answer must be documented: no 5xx, a documented
status code, content type and headers, and a body that matches the schema.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import pytest
import schemathesis
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from admin_ui.app import create_app as create_admin_ui
from admin_ui.settings import AdminUISettings
from gateway.app import create_app as create_gateway
from gateway.settings import GatewaySettings
from introspector.app import create_app as create_introspector
from introspector.models import Role
from introspector.settings import IntrospectorSettings
from keygate_cli.settings import load_settings
from tests.docs.markdown_blocks import DOCS, REFERENCE, code_blocks
from tests.harness.stack import INTERNAL_SECRET, StartStack

OPENAPI = DOCS / "api" / "openapi.yaml"
DOCUMENT: dict[str, Any] = yaml.safe_load(OPENAPI.read_text(encoding="utf-8"))
INTERNAL_TAG = "Introspector (internal)"
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Gateway routes that are not API endpoints: the admin UI's HTML pages, proxied, and the
#: catch-alls (unknown /_keygate/ paths answer 404; everything else is the application).
NOT_API = {"/_keygate/login", "/_keygate/logout", "/_keygate/static/{}", "/_keygate/{}", "/{}"}
#: Fuzzed requests per operation and generation mode.
EXAMPLES = 25


def _template(path: str) -> str:
    """``/a/{token_id}`` and ``/a/{id}`` are the same route: ``/a/{}``."""
    return re.sub(r"\{[^}]*\}", "{}", path)


def documented_routes() -> set[tuple[str, str]]:
    """(METHOD, path template) of every operation in the document."""
    return {
        (method.upper(), _template(path))
        for path, item in DOCUMENT["paths"].items()
        for method in item
        if method in {"get", "post", "put", "patch", "delete"}
    }


def served_routes() -> set[tuple[str, str]]:
    """(METHOD, path template) of every route the three services register."""
    env = {"KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET}
    apps = [
        create_introspector(load_settings(IntrospectorSettings, env)),
        create_gateway(load_settings(GatewaySettings, env)),
    ]
    routes: set[tuple[str, str]] = set()
    for app in apps:
        for route in app.router.routes():
            if route.method == "HEAD" or route.resource is None:
                continue
            path = _template(route.resource.canonical)
            if path not in NOT_API:
                # "*" routes (forward auth answers any method) are documented as GET.
                routes.add(("GET" if route.method == "*" else route.method, path))
    return routes


def test_document_is_valid_openapi_3_1() -> None:
    """The document validates as OpenAPI 3.1."""
    assert DOCUMENT["openapi"].startswith("3.1")
    validate(DOCUMENT)


def test_every_served_route_is_documented_and_nothing_else() -> None:
    """Each route of the introspector and the gateway has an operation, and vice versa."""
    assert documented_routes() == served_routes()


def test_admin_ui_serves_no_api_route() -> None:
    """The admin UI's routes are pages under /settings/api-keys and /_keygate/: not API."""
    app = create_admin_ui(
        load_settings(AdminUISettings, {"KEYGATE_INTERNAL_SECRET": INTERNAL_SECRET})
    )
    paths = {r.resource.canonical for r in app.router.routes() if r.resource is not None}
    assert all(p.startswith(("/settings/api-keys", "/_keygate/")) for p in paths), paths


def _validator(ref: str) -> Draft202012Validator:
    """A JSON Schema 2020-12 validator for the schema at ``ref`` in the document."""
    registry: Registry[Any] = Registry().with_resource(
        "urn:keygate:openapi", Resource.from_contents(DOCUMENT, default_specification=DRAFT202012)
    )
    return Draft202012Validator(
        {"$ref": f"urn:keygate:openapi{ref}"},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )


def test_examples_in_the_document_match_their_schemas() -> None:
    """Every schema-level ``example`` and request-body example validates."""
    for name, schema in DOCUMENT["components"]["schemas"].items():
        if "example" in schema:
            _validator(f"#/components/schemas/{name}").validate(schema["example"])
    body = DOCUMENT["paths"]["/api/platform/internal/api-tokens"]["post"]["requestBody"]
    _validator("#/components/schemas/CreateTokenRequest").validate(
        body["content"]["application/json"]["example"]
    )


def test_reference_page_examples_match_the_document() -> None:
    """The whoami example on the Authentication page is a valid WhoAmI response."""
    examples = [b for b in code_blocks(REFERENCE / "authentication.md") if b.output_of == "whoami"]
    assert len(examples) == 1
    _validator("#/components/schemas/WhoAmI").validate(json.loads(examples[0].text))


def _runner(operation: Any, mode: Any, base_url: str, headers: dict[str, str]) -> Any:
    """A Hypothesis test that sends ``operation``'s generated cases and checks the answers."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, headers=headers, checks=CHECKS)

    return run


def _fuzz(schema: Any, targets: dict[str, tuple[str, dict[str, str]]]) -> list[str]:
    """Run every operation against its target; the failures, one line each."""
    failures: list[str] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        tags = operation.definition.raw.get("tags", [])
        base_url, headers = targets["internal" if INTERNAL_TAG in tags else "gateway"]
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            try:
                _runner(operation, mode, base_url, headers)()
            except Unsatisfiable:
                # Nothing in this operation can be made invalid (no body, no constrained
                # parameter): there is no negative case to send.
                continue
            except Exception as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    return failures


@pytest.mark.slow
async def test_live_services_answer_as_the_document_says(start_stack: StartStack) -> None:
    """Generated requests to a running gateway and introspector get only documented answers."""
    stack = await start_stack(
        {
            "KEYGATE_EDITION": "enterprise",
            # Fuzzing creates many tokens: cheap hashing keeps it fast (never in production).
            "KEYGATE_ALLOW_WEAK_ARGON2": "true",
            "KEYGATE_ARGON2_MEMORY_KIB": "1024",
            "KEYGATE_ARGON2_TIME_COST": "1",
        },
        KEYGATE_RATE_LIMIT_PER_MINUTE="1000000",
    )
    admin = await stack.introspector.user("admin@example.com", admin=True)
    await stack.introspector.workspace("Acme", {admin: Role.ADMIN})
    created = await stack.introspector.create_ok(admin, scope="ORGANIZATION", name="fuzz")
    gateway = str(stack.gateway.make_url("")).rstrip("/")
    introspector = str(stack.introspector.client.make_url("")).rstrip("/")
    schema = schemathesis.openapi.from_dict(DOCUMENT)
    targets = {
        "gateway": (gateway, {"Authorization": f"Bearer {created['token']}"}),
        "internal": (introspector, {"X-Keygate-Internal-Secret": INTERNAL_SECRET}),
    }
    # Schemathesis is synchronous; the services run on this event loop, so it gets a thread.
    failures = await asyncio.to_thread(_fuzz, schema, targets)
    assert not failures, "\n\n".join(failures)
