"""Tools: a name, a description, a JSON-Schema for the arguments.

Accepts OpenAI-format tools (``{"type": "function", "function": {...}}`` or the bare
function object) and BFCL function docs, whose types ``dict``/``float``/``tuple``/``any``
are converted to JSON Schema.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from typing import Any, NamedTuple

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError
from pydantic import BaseModel, ConfigDict, Field

from naig.errors import ConfigError

_BFCL_TYPES = {"dict": "object", "float": "number", "tuple": "array", "int": "integer",
               "str": "string", "bool": "boolean", "list": "array"}


class Tool(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    description: str = ""
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})
    result_schema: dict[str, Any] | None = None
    """What a result looks like, where the source says (BFCL ``response``)."""
    family: str = ""
    """The domain or file the tool came from; sampling draws a dialogue's tools from one."""

    @property
    def summary(self) -> str:
        """The description without BFCL's preamble, the same for every tool of a class
        ("This tool belongs to the TwitterAPI, which provides ... Tool description:
        Comment on a tweet"): what prompts show. The data keeps the whole description."""
        head, said, rest = self.description.partition("Tool description:")
        return rest.strip() if said and head.lstrip().startswith("This tool belongs to") \
            else self.description.strip()

    def results(self) -> dict[str, Any]:
        """The schema a result must fit: the known one, else any JSON object."""
        return self.result_schema or {"type": "object"}

    def openai(self) -> dict[str, Any]:
        return {"type": "function", "function": {
            "name": self.name, "description": self.description, "parameters": self.parameters}}

    def validate_arguments(self, arguments: dict[str, Any]) -> list[str]:
        """Every way ``arguments`` breaks the parameter schema, as short messages."""
        validator = Draft202012Validator(self.parameters)
        return [_describe(e) for e in validator.iter_errors(arguments)]

    def empty_required(self, arguments: dict[str, Any]) -> str | None:
        """The first required parameter given an empty string, where most of the required
        strings are empty: a call made of no values (seen in kept tau2:retail data: an
        address changed to six empty strings), which the schema allows and no request
        means. One empty among values is a choice ("address2": "" for an address with no
        suite). Generation refuses it and ``schema_valid_arguments`` rejects it; the
        environment, the truth of what a call does, is not asked to."""
        strings = [k for k in self.parameters.get("required") or []
                   if isinstance(arguments.get(k), str)]
        empty = [k for k in strings if not arguments[k].strip()]
        return empty[0] if empty and 2 * len(empty) > len(strings) else None


SIMULATED_ITEMS = 5
"""Most items of a list in a result the model writes (a search returns a few)."""
SIMULATED_CHARS = 200
"""Longest string in a result the model writes: a small model can loop inside a string."""


def simulated_results(schema: Any) -> Any:
    """A result schema for results the model writes: every declared property required (but
    an ``error``: a result that must report one is no result), every list non-empty and
    short, every string bounded, so a search returns the IDs a later call needs and a
    looping model cannot fill the answer with one string."""
    if isinstance(schema, dict):
        out = {k: (v if k in ("enum", "const") else simulated_results(v))
               for k, v in schema.items()}
        if isinstance(out.get("properties"), dict) and out["properties"]:
            wanted = {k for k in out["properties"] if k.lower() not in ("error", "errors")}
            out["required"] = sorted(set(out.get("required") or []) | wanted)
        if out.get("type") == "array":
            out.setdefault("minItems", 1)
            out.setdefault("maxItems", max(out["minItems"], SIMULATED_ITEMS))
        if out.get("type") == "string" and "enum" not in out and "const" not in out:
            out.setdefault("maxLength", SIMULATED_CHARS)
        return out
    if isinstance(schema, list):
        return [simulated_results(v) for v in schema]
    return schema


def _describe(error: Any) -> str:
    where = "/".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else error.message


def _convert_bfcl_schema(node: Any) -> Any:
    if isinstance(node, dict):
        out = {k: _convert_bfcl_schema(v) for k, v in node.items()}
        t = out.get("type")
        if t == "any":
            out.pop("type")
        elif isinstance(t, str) and t in _BFCL_TYPES:
            out["type"] = _BFCL_TYPES[t]
        # BFCL puts "optional"/"default" hints beside properties; JSON Schema needs no change
        return out
    if isinstance(node, list):
        return [_convert_bfcl_schema(v) for v in node]
    return node


def _normalize_parameters(params: Any, where: str) -> dict[str, Any]:
    if params is None:
        return {"type": "object", "properties": {}}
    if not isinstance(params, dict):
        raise ConfigError(f"{where}: 'parameters' must be a JSON object")
    schema: dict[str, Any] = dict(_convert_bfcl_schema(copy.deepcopy(params)))
    _check_size(schema, where)
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as e:
        raise ConfigError(f"{where}: invalid JSON Schema in 'parameters': {e.message}") from None
    _check_refs(schema, schema, (), set(), where)
    schema = inline_refs(schema, where)
    schema.setdefault("type", "object")
    schema.setdefault("properties", {})
    if schema["type"] != "object":
        raise ConfigError(f"{where}: 'parameters' must have type 'object', got {schema['type']!r}")
    _check_size(schema, where)  # as every prompt shows it, references expanded
    return schema


def _check_size(params: dict[str, Any], where: str) -> None:
    size = len(json.dumps(params))
    if size > MAX_SCHEMA_CHARS:
        raise ConfigError(f"{where}: 'parameters' is {size:,} characters of JSON (references "
                          "expanded); every prompt shows the tools, so keep a tool's schema "
                          f"under {MAX_SCHEMA_CHARS:,}")


MAX_SCHEMA_CHARS = 20_000
"""Longest parameter schema accepted (as JSON): about 5,000 tokens, in every prompt that
shows the tool. The largest of BFCL's and tau2's tools take about 3,200."""


_NAMED = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
"""Keywords whose value maps names (not keywords) to schemas."""
_DATA = ("enum", "const", "default", "examples")
"""Keywords whose value is data, never a schema: nothing in it is expanded."""


def inline_refs(schema: dict[str, Any], where: str = "schema") -> dict[str, Any]:
    """A copy of ``schema`` with every local ``$ref`` replaced by what it points to
    (merged with the keywords beside it) and the root's ``$defs`` (``definitions``)
    dropped, for a schema ``_check_refs`` accepted. A grammar built from a call schema sees
    a tool's parameters nested under ``arguments``, where a ``#/$defs/...`` pointer no
    longer resolves (llama.cpp then silently decodes free JSON), and the grounding walk
    must see the entity arguments inside the definitions."""
    left = [MAX_SCHEMA_CHARS * 10]  # nodes to expand: references that multiply stop here

    def expand(node: Any) -> Any:
        if isinstance(node, list):
            return [expand(v) for v in node]
        if not isinstance(node, dict):
            return node
        left[0] -= 1
        if left[0] < 0:
            raise ConfigError(f"{where}: its references expand without end; inline them")
        rest = {k: (v if k in _DATA else
                    {n: expand(x) for n, x in v.items()} if k in _NAMED and isinstance(v, dict)
                    else expand(v)) for k, v in node.items() if k != "$ref"}
        ref = node.get("$ref")
        if not isinstance(ref, str):
            return rest
        target = expand(_pointed(ref, schema, where))
        return _merged(target, rest) if isinstance(target, dict) else (rest or target)
    out = expand(schema)
    for key in ("$defs", "definitions"):
        out.pop(key, None)
    return dict(out)


def _merged(target: dict[str, Any], beside: dict[str, Any]) -> dict[str, Any]:
    """A referenced schema with the keywords written beside the reference: both hold,
    so their properties are joined and their required lists too."""
    out = dict(target)
    for k, v in beside.items():
        if k == "properties" and isinstance(out.get(k), dict) and isinstance(v, dict):
            out[k] = {**out[k], **v}
        elif k == "required" and isinstance(out.get(k), list) and isinstance(v, list):
            out[k] = list(dict.fromkeys([*out[k], *v]))
        else:
            out[k] = v
    return out


def _check_refs(node: Any, root: dict[str, Any], expanding: tuple[str, ...], done: set[str],
                where: str) -> None:
    """Refuse a ``$ref`` that points outside the schema, nowhere, or back into its own
    expansion: the model's grammar and naig's own walks expand every reference. ``done``
    holds the references already checked, so each is expanded once."""
    if isinstance(node, list):
        for v in node:
            _check_refs(v, root, expanding, done, where)
        return
    if not isinstance(node, dict):
        return
    ref = node.get("$ref")
    if isinstance(ref, str) and ref not in done:
        if ref in expanding:
            raise ConfigError(f"{where}: recursive $ref {ref!r} in 'parameters'; naig expands "
                              "every reference, so give the nesting a fixed depth")
        _check_refs(_pointed(ref, root, where), root, (*expanding, ref), done, where)
        done.add(ref)
    for k, v in node.items():
        if k != "$ref" and k not in _DATA:  # data may hold anything, a "$ref" key too
            _check_refs(v, root, expanding, done, where)


def _pointed(ref: str, root: dict[str, Any], where: str) -> Any:
    if not ref.startswith("#"):
        raise ConfigError(f"{where}: $ref {ref!r} points outside the tool's schema; inline "
                          "it or put it under '$defs'")
    node: Any = root
    for part in [p for p in ref[1:].split("/") if p]:
        key = part.replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
            node = node[int(key)]
        else:
            raise ConfigError(f"{where}: $ref {ref!r} points to nothing in 'parameters'")
    return node


_NAME = re.compile(r"[A-Za-z0-9_.\-]{1,64}")
"""Tool names OpenAI's API takes (``^[a-zA-Z0-9_-]{1,64}$``), and dots, which BFCL's
function docs use (``math.factorial``)."""


def tool_from_dict(raw: Any, where: str, family: str = "") -> Tool:
    """Build a tool from an OpenAI-format tool, a bare function object or a BFCL doc."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: a tool must be a JSON object")
    fn = raw.get("function", raw) if raw.get("type") == "function" else raw
    if not isinstance(fn, dict) or not isinstance(fn.get("name"), str) or not fn["name"]:
        raise ConfigError(f"{where}: a tool needs a non-empty string 'name'")
    name = fn["name"]
    if not _NAME.fullmatch(name):
        raise ConfigError(f"{where}: the tool name {name!r} is not one chat APIs and templates "
                          "accept; use letters, digits, '_', '-' or '.', at most 64")
    result = fn.get("response")
    return Tool(
        name=name,
        description=str(fn.get("description", "")),
        parameters=_normalize_parameters(fn.get("parameters"), f"{where} ({name})"),
        result_schema=_result_schema(result, f"{where} ({name})"),
        family=family,
    )


def _result_schema(result: Any, where: str) -> dict[str, Any] | None:
    """A documented result schema, references expanded where they all resolve (else kept
    as written: it only shapes simulated results and the grounding's data flow)."""
    if not isinstance(result, dict):
        return None
    schema: dict[str, Any] = _convert_bfcl_schema(copy.deepcopy(result))
    try:
        _check_refs(schema, schema, (), set(), where)
        return inline_refs(schema, where)
    except ConfigError:
        return schema


_JSON_INSIDE = re.compile(r"[}\]]\s*[,}\]]|[{\[]\s*\"|\"\s*:")
_PLACEHOLDER = re.compile(r"\b(placeholder|lorem ipsum|xxx+|to be generated|tbd)\b|"
                          r"^\s*(\{\{?\s*\w+\s*\}\}?|<\w+>|\$\{\w+\})\s*$", re.IGNORECASE)
"""A value that stands in for one: the word, or a template's slot, the whole value
("{estimated_eta}", a simulated result on the built-in pool at 7e413bc)."""
_PATH = re.compile(r"(\.\.?|~)?(/\.\.?)*/?")


def relative_path(value: str) -> bool:
    """Whether ``value`` is a path made only of dots and slashes: ``..`` (the parent
    folder), ``../..``, ``/``, ``.``; a real value with no letter in it (GorillaFileSystem's
    ``cd`` takes ``..``), which no user states. Not ``...``."""
    return bool(value.strip()) and _PATH.fullmatch(value.strip()) is not None


_SECRET = re.compile(r"password|secret", re.IGNORECASE)


def logs_in(tool: Tool) -> bool:
    """Whether ``tool`` logs in: it takes a password or a secret (``authenticate_twitter``,
    ``ticket_login``); its arguments are the account's, which the user states."""
    return any(_SECRET.search(p) for p in tool.parameters.get("properties") or {})


ID_NAME = re.compile(r"(^|_)(id|ids|uuid|number|numbers)$", re.IGNORECASE)
"""A parameter or field named like an identifier: ``hotel_id``, ``item_ids``,
``flight_number``. (Not ``*_code``: a currency or country code names no record.)"""


_FILLER = frozenset({"new", "your", "my", "his", "her", "their", "the", "a", "an", "some",
                     "example", "sample", "dummy", "user", "user's", "customer", "customer's"})
"""Words that dress a parameter's own name up as its value: "new zip", "your username"."""


def restates(key: str, value: str) -> bool:
    """Whether ``value`` only names its own parameter ``key``, dressed up as a value ("new
    zip" for ``zip``, "your_username" for ``username``, "new address 1" for ``address1``):
    a placeholder. Seen in kept tau2:retail data, an address changed to "new address 1,
    new city, new zip"; a value that is the bare name ("city") is left to the schema."""
    words = re.findall(r"[a-z0-9']+", value.lower().replace("_", " "))
    rest = [w for w in words if w not in _FILLER]
    if words and not rest and {"example", "sample", "dummy"} & set(words):
        return True  # "example_user" (TwitterAPI): nothing but filler
    name = re.sub(r"[^a-z0-9]", "", key.lower())
    return bool(name) and 0 < len(rest) < len(words) <= 5 and "".join(rest) == name


def degenerate(value: Any, key: str = "") -> str | None:
    """The first string in a JSON value that no real value looks like, if any: one with
    no letter or digit (but a path such as ``..``), with JSON structure inside it (a small
    model that lost its place writes ``"}] }, { "`` into a string), a placeholder ("This is
    a placeholder for the booking ID", "new zip" for a zip: ``restates``), or a sentence
    where an ID belongs (a ``*_id`` field holds one token)."""
    if isinstance(value, dict):
        return next((d for k, v in value.items() if (d := degenerate(v, str(k))) is not None),
                    None)
    if isinstance(value, list):
        return next((d for v in value if (d := degenerate(v, key)) is not None), None)
    if isinstance(value, str) and value.strip() and (
            (not any(c.isalnum() for c in value) and not relative_path(value))
            or _JSON_INSIDE.search(value)
            or _PLACEHOLDER.search(value) or restates(key, value)
            or (ID_NAME.search(key) and len(value.split()) > 2)):
        return value
    return None


_WHERE = r"(_?(city|airport|code|station|location|address|place|path|dir|directory|file|"\
         r"folder|account|user|id|name))?$"
"""What two ends of a route or a transfer may be (a date range that starts and ends on one
day is no fault: dates are not ends here)."""
_START = re.compile(rf"^(origin|from|source|src|sender){_WHERE}", re.IGNORECASE)
_END = re.compile(rf"^(destination|dest|to|target|dst|recipient|receiver){_WHERE}",
                  re.IGNORECASE)


def same_ends(arguments: Any) -> str | None:
    """Why a call's arguments go nowhere, if they do: the same value at both ends of a
    route or a transfer (built-in at 9345868: ``search_flights(origin="San Francisco",
    destination="San Francisco")``, kept; a move of a file onto itself)."""
    if not isinstance(arguments, dict):
        return None
    said = {k: v.strip().lower() for k, v in arguments.items() if isinstance(v, str) and v.strip()}
    for start in (k for k in said if _START.match(k)):
        end = next((k for k in said if _END.match(k) and said[k] == said[start]), None)
        if end is not None:
            return (f"{start} and {end} are both {arguments[end]!r}: a route or transfer "
                    "needs two ends")
    return None


_BOUND = re.compile(r"^(?:(max|min)(?:imum)?_(\w+)|(\w+?)_(max|min)(?:imum)?)$", re.IGNORECASE)


def leaves(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """Every scalar in a JSON value, with the field it sits under (a list's items sit
    under the list's field)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from leaves(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from leaves(v, key)
    else:
        yield key, node


def _numbers(node: Any) -> Iterator[tuple[str, float]]:
    """Every number in a JSON value, with the field it sits under."""
    return ((k, float(v)) for k, v in leaves(node)
            if isinstance(v, int | float) and not isinstance(v, bool))


class Bound(NamedTuple):
    """A bound a call sets on its results: ``max_price_usd: 500`` is ``price`` at most 500."""

    name: str
    field: str
    """The first word of the bounded field (``price``), matched against result fields."""
    most: bool
    value: float


def _bounds(arguments: Any) -> list[Bound]:
    """The bounds a call's arguments set (``max_*``, ``*_max``, ``min_*``, ``*_min``)."""
    out = []
    for name, value in (arguments.items() if isinstance(arguments, dict) else ()):
        hit = _BOUND.match(str(name))
        if hit and not isinstance(value, bool) and isinstance(value, int | float):
            field = (hit.group(2) or hit.group(3)).lower().split("_")[0]
            out.append(Bound(str(name), field, (hit.group(1) or hit.group(4)).lower() == "max",
                             value))
    return out


def out_of_bounds(arguments: Any, result: Any) -> str | None:
    """A number in a written result that breaks a bound its call set, if any: a price over
    the call's ``max_price`` (``max_price_usd`` bounds ``price_usd``; ``min_rating``,
    ``rating``). Only results the model writes are judged: an environment's are true."""
    for b in _bounds(arguments):
        for key, value in _numbers(result):
            if b.field in key.lower().split("_") and (value > b.value if b.most
                                                      else value < b.value):
                return f"{key} {value:g} breaks the call's {b.name} {b.value:g}"
    return None


def bounded(schema: Any, arguments: Any) -> Any:
    """A result schema with the bounds a call set written in (``max_price: 500`` makes
    every ``price`` field's ``maximum`` 500), so that a result written after its call is
    decoded within them (``out_of_bounds``); the simulated environment's results are.
    Unchanged where the call sets none."""
    limits = _bounds(arguments)

    def walk(node: Any, key: str) -> Any:
        if isinstance(node, list):
            return [walk(v, key) for v in node]
        if not isinstance(node, dict):
            return node
        out = {k: walk(v, str(k)) if k in ("items", "anyOf", "oneOf", "allOf") else v
               for k, v in node.items()}
        if isinstance(node.get("properties"), dict):
            out["properties"] = {k: walk(v, str(k)) for k, v in node["properties"].items()}
        if node.get("type") in ("number", "integer"):
            for b in limits:
                if b.field in key.lower().split("_"):
                    out["maximum" if b.most else "minimum"] = b.value
        return out
    return walk(schema, "") if limits else schema


def decoded(text: str | None) -> Any:
    """``text`` as the JSON value it holds, or as itself where it holds none (a plain-text
    tool result)."""
    try:
        return json.loads(text or "")
    except ValueError:
        return text


def parse_arguments(text: str) -> dict[str, Any]:
    """Decode a call's JSON arguments; anything but a JSON object is an error."""
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError("arguments must be a JSON object")
    return value
