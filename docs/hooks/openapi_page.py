"""MkDocs hook: renders docs/api/openapi.yaml as plain Markdown where a page asks for it.

A page containing ``<!-- openapi-reference -->`` gets, in its place, one section per tag with
every operation (method, path, server, authentication, parameters, request body, responses)
and then every schema as a table of fields. The result is static HTML: it needs no script, no
network and no server, so the reference reads the same online, offline and printed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MARKER = "<!-- openapi-reference -->"
SPEC = Path(__file__).resolve().parents[1] / "api" / "openapi.yaml"
METHODS = ("get", "post", "put", "patch", "delete")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Replace the marker with the rendered document."""
    if MARKER not in markdown:
        return markdown
    document = yaml.safe_load(SPEC.read_text(encoding="utf-8"))
    return markdown.replace(MARKER, render(document))


def render(document: dict[str, Any]) -> str:
    """The whole reference as Markdown."""
    out: list[str] = []
    operations = [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]
    for tag in document.get("tags", []):
        out += [f"## {tag['name']}", "", tag.get("description", ""), ""]
        for path, method, operation in operations:
            if tag["name"] in operation.get("tags", []):
                out += _operation(document, path, method, operation)
    out += ["## Schemas", ""]
    for name, schema in document["components"]["schemas"].items():
        out += _schema_section(document, name, schema)
    return "\n".join(out)


def _operation(document: dict[str, Any], path: str, method: str, op: dict[str, Any]) -> list[str]:
    item = document["paths"][path]
    servers = item.get("servers") or document["servers"]
    server = servers[0]["url"]
    for name, variable in servers[0].get("variables", {}).items():
        server = server.replace(f"{{{name}}}", variable["default"])
    out = [
        f"### {op['summary']}",
        "",
        f"`{method.upper()} {path}` on `{server}`",
        "",
        op.get("description", "").strip(),
        "",
        f"**Authentication:** {_security(document, op)}",
        "",
    ]
    parameters = [_resolve(document, p) for p in op.get("parameters", [])]
    if parameters:
        out += [
            "**Parameters**",
            "",
            "| Name | In | Type | Required | Description |",
            "|---|---|---|---|---|",
        ]
        for p in parameters:
            out.append(
                f"| `{p['name']}` | {p['in']} | {_type(p['schema'])} | "
                f"{'yes' if p.get('required') else 'no'} | {_cell(p.get('description', ''))} |"
            )
        out.append("")
    body = op.get("requestBody")
    if body:
        for media_type, content in body["content"].items():
            out += [f"**Request body** (`{media_type}`): {_type(content['schema'])}", ""]
            out += _fields(document, content["schema"])
    out += ["**Responses**", "", "| Status | Meaning | Body |", "|---|---|---|"]
    for status, response in op["responses"].items():
        response = _resolve(document, response)
        bodies = [
            f"{_type(c['schema'])} (`{media}`)" if "schema" in c else f"`{media}`"
            for media, c in response.get("content", {}).items()
        ]
        out.append(
            f"| `{status}` | {_cell(response['description'])} | {' or '.join(bodies) or '—'} |"
        )
    out.append("")
    return out


def _security(document: dict[str, Any], op: dict[str, Any]) -> str:
    requirements = op.get("security", document.get("security", []))
    names = [next(iter(r), None) for r in requirements]
    if not names:
        return "none"
    schemes = document["components"]["securitySchemes"]
    described = []
    for name in names:
        if name is None:
            described.append("none")
            continue
        scheme = schemes[name]
        if scheme["type"] == "http":
            described.append("`Authorization: Bearer <token>`")
        elif scheme["in"] == "cookie":
            described.append(f"the `{scheme['name']}` cookie")
        else:
            described.append(f"the `{scheme['name']}` header")
    return " or ".join(described)


def _schema_section(document: dict[str, Any], name: str, schema: dict[str, Any]) -> list[str]:
    out = [f"### {name} {{#schema-{name.lower()}}}", ""]
    if schema.get("description"):
        out += [schema["description"].strip(), ""]
    fields = _fields(document, schema)
    return out + (fields or [f"Type: {_type(schema, link=False)}", ""])


def _fields(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    """A table of an object schema's properties (following ``$ref`` and ``allOf``)."""
    properties: dict[str, Any] = {}
    required: set[str] = set()
    for part in _object_parts(document, schema):
        properties.update(part.get("properties", {}))
        required.update(part.get("required", []))
    if not properties:
        return []
    out = ["| Field | Type | Required | Description |", "|---|---|---|---|"]
    for field, value in properties.items():
        description = value.get("description", "")
        if "$ref" in value and not description:
            description = _resolve(document, value).get("description", "")
        out.append(
            f"| `{field}` | {_type(value)} | {'yes' if field in required else 'no'} | "
            f"{_cell(description)} |"
        )
    return [*out, ""]


def _object_parts(document: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    schema = _resolve(document, schema)
    parts = [schema]
    for sub in schema.get("allOf", []):
        parts += _object_parts(document, sub)
    return parts


def _resolve(document: dict[str, Any], value: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in value:
        target: Any = document
        for key in value["$ref"].removeprefix("#/").split("/"):
            target = target[key]
        value = target
    return value


def _type(schema: dict[str, Any], *, link: bool = True) -> str:
    """A short human spelling of a schema's type, linking to named schemas."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#schema-{name.lower()})" if link else name
    if "const" in schema:
        return f"`{schema['const']}`".replace("`True`", "`true`").replace("`False`", "`false`")
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "oneOf" in schema:
        return " or ".join(_type(s, link=link) for s in schema["oneOf"])
    if "allOf" in schema:
        return " and ".join(_type(s, link=link) for s in schema["allOf"])
    types = schema.get("type", "any")
    names = [types] if isinstance(types, str) else list(types)
    spelled = []
    for name in names:
        if name == "array":
            items = schema.get("items") or {}
            if "prefixItems" in items or "prefixItems" in schema:
                spelled.append("array of pairs")
            else:
                spelled.append(f"array of {_type(items, link=link)}")
        elif name == "string" and "format" in schema:
            spelled.append(f"string ({schema['format']})")
        else:
            spelled.append(name)
    return " \\| ".join(spelled)


def _cell(text: str) -> str:
    """Text that is safe inside a table cell: one line, pipes escaped."""
    return " ".join(text.split()).replace("|", "\\|")
