"""MkDocs hook: the API page's reference, rendered at build time from the OpenAPI document the
package serves (``sms2fa_middleware.api.openapi.openapi_document``), so the page cannot drift
from the code. It replaces the ``<!-- openapi -->`` marker of ``api.md`` with Markdown tables
and the document itself as JSON; nothing is fetched (no CDN, no JavaScript)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- openapi -->"
METHODS = ("get", "post", "put", "patch", "delete")


def on_config(config: Any) -> Any:
    """Import the package from the checkout being built, ahead of any installed copy."""
    root = str(Path(config.config_file_path).resolve().parent)
    if root not in sys.path:
        sys.path.insert(0, root)
    return config


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if MARKER not in markdown:
        return markdown
    from sms2fa_middleware.api.openapi import openapi_document

    return markdown.replace(
        MARKER,
        render(
            openapi_document(
                api=True, challenge=True, enroll=True, browsers=True, recovery_codes=True
            )
        ),
    )


def render(document: dict[str, Any]) -> str:
    """The document as Markdown: one section per operation, then the JSON."""
    parts: list[str] = []
    for path, operations in document["paths"].items():
        for method in METHODS:
            if method in operations:
                parts.append(_operation(method, path, operations[method]))
    schemes = document.get("components", {}).get("securitySchemes", {})
    if schemes:
        rows = [
            f"| `{name}` | {scheme['type']} | {_cell(scheme.get('description', ''))} |"
            for name, scheme in schemes.items()
        ]
        parts.append(
            "### Security schemes\n\n| name | type | meaning |\n|---|---|---|\n" + "\n".join(rows)
        )
    text = json.dumps(document, indent=2, ensure_ascii=False)
    parts.append(f"### The document\n\n```json\n{text}\n```")
    return "\n\n".join(parts) + "\n"


def _operation(method: str, path: str, operation: dict[str, Any]) -> str:
    lines = [f"### `{method.upper()} {path}`", "", operation.get("summary", "")]
    if operation.get("description"):
        lines += ["", operation["description"]]
    parameters = operation.get("parameters", [])
    if parameters:
        lines += ["", "| parameter | in | type | required | description |", "|---|---|---|---|---|"]
        for parameter in parameters:
            lines.append(
                f"| `{parameter['name']}` | {parameter['in']} | "
                f"{_type(parameter.get('schema', {}))} | "
                f"{'yes' if parameter.get('required') else 'no'} | "
                f"{_cell(parameter.get('description', ''))} |"
            )
    body = operation.get("requestBody", {}).get("content", {}).get("application/json")
    if body:
        schema = body["schema"]
        required = set(schema.get("required", ()))
        lines += ["", "Request body (JSON):", ""]
        lines += ["| field | type | required | description |", "|---|---|---|---|"]
        for name, field in schema.get("properties", {}).items():
            lines.append(
                f"| `{name}` | {_type(field)} | {'yes' if name in required else 'no'} | "
                f"{_cell(field.get('description', ''))} |"
            )
    lines += ["", "| status | meaning | reason | body |", "|---|---|---|---|"]
    for status, response in operation.get("responses", {}).items():
        schema = response.get("content", {}).get("application/json", {}).get("schema", {})
        properties = schema.get("properties", {})
        reason = properties.get("reason", {})
        reasons = [reason["const"]] if "const" in reason else reason.get("enum", [])
        required = set(schema.get("required", ()))
        fields = ", ".join(f"`{name}`" if name in required else f"`{name}`?" for name in properties)
        lines.append(
            f"| {status} | {_cell(response.get('description', ''))} | "
            f"{', '.join(f'`{r}`' for r in reasons)} | {fields} |"
        )
    return "\n".join(lines)


def _type(schema: dict[str, Any]) -> str:
    """A schema in a few words: its type and its bounds."""
    if "const" in schema:
        return f"`{json.dumps(schema['const'])}`"
    if "enum" in schema:
        return " \\| ".join(f"`{json.dumps(v)}`" for v in schema["enum"])
    kind = schema.get("type", "any")
    text = " or ".join(kind) if isinstance(kind, list) else str(kind)
    bounds = [
        f"{label} {schema[key]}"
        for key, label in (
            ("minimum", "≥"),
            ("maximum", "≤"),
            ("minLength", "length ≥"),
            ("maxLength", "length ≤"),
        )
        if key in schema
    ]
    if "pattern" in schema:
        bounds.append(f"pattern `{schema['pattern']}`")
    if "format" in schema:
        bounds.append(schema["format"])
    return text + (f" ({', '.join(bounds)})" if bounds else "")


def _cell(text: str) -> str:
    """Text safe in a table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")
