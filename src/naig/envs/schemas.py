"""JSON Schemas from outside sources (pydantic, MCP servers) made fit to embed.

A tool's parameter and result schemas are embedded under other schemas (the call schemas
of constrained decoding put them under ``properties``), where a ``$ref`` to the tool's own
``#/$defs/...`` would point at nothing; so local references are inlined. pydantic's
generated ``title`` on every property is noise in a prompt and is dropped.
"""

from __future__ import annotations

import copy
from typing import Any

_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
"""Keywords whose value maps names (not keywords) to schemas."""
_DATA = ("default", "enum", "const", "examples")
"""Keywords whose value is data, never a schema."""
_DEFS = ("$defs", "definitions")


def inline_refs(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``schema`` with every local ``$ref`` (``#/$defs/X``, ``#/definitions/X``)
    replaced by what it names, and the definitions dropped. A reference back into its own
    definition (a recursive type) becomes ``{}``: any value, one level down."""
    defs = {f"#/{key}/{name}": body for key in _DEFS
            for name, body in (schema.get(key) or {}).items()}
    if not defs:
        return copy.deepcopy(schema)

    def walk(node: Any, seen: frozenset[str]) -> Any:
        if isinstance(node, list):
            return [walk(v, seen) for v in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str) and ref in defs:
            if ref in seen:
                return {}
            rest = {k: walk(v, seen) for k, v in node.items() if k != "$ref"}
            return {**walk(defs[ref], seen | {ref}), **rest}
        out: dict[str, Any] = {}
        for key, value in node.items():
            if key in _DEFS:
                continue
            if key in _DATA:
                out[key] = copy.deepcopy(value)
            elif key in _NAMED and isinstance(value, dict):
                out[key] = {name: walk(v, seen) for name, v in value.items()}
            else:
                out[key] = walk(value, seen)
        return out

    result: dict[str, Any] = walk(schema, frozenset())
    return result


def drop_titles(schema: Any) -> Any:
    """A copy of ``schema`` without ``title`` keywords (a property named "title" stays)."""
    if isinstance(schema, list):
        return [drop_titles(v) for v in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key == "title":
            continue
        if key in _DATA:
            out[key] = copy.deepcopy(value)
        elif key in _NAMED and isinstance(value, dict):
            out[key] = {name: drop_titles(v) for name, v in value.items()}
        else:
            out[key] = drop_titles(value)
    return out


__all__ = ["drop_titles", "inline_refs"]
