"""Grounding: the values that exist at a point of a dialogue, and call schemas that can
use only them.

An *entity argument* names something that must already exist: an ID, an order, a
reservation. Which parameters are entity arguments is read from the tools' schemas: a
parameter whose name ends like an identifier (``hotel_id``, ``item_ids``,
``flight_number``) or whose description names another tool it takes its value from
("Flight ID returned by search_flights").

The values an entity argument may take at a point are those the dialogue has shown so far
(``seen``): returned by an earlier tool result under a key that agrees with the parameter
(``hotel_id`` from ``hotels[].hotel_id``, ``order_id`` from ``orders``, any from a bare
``id``), or stated in the user's or the system's words. Where tools really execute, words
count only when they name something in the environment's state (its ``vocabulary``),
under a field that agrees with the parameter.

``ground`` turns a tool's parameter schema into one whose entity arguments are ``enum``s
of those values, so constrained decoding cannot invent an ID; a tool whose required entity
argument has no value yet cannot be called at that point. That also orders tools by the
data that flows between them: a consumer waits for its producer (``produces``).
"""

from __future__ import annotations

import copy
import json
import random
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from naig.dialogue import Message
from naig.tools import ID_NAME, Tool, leaves

Vocabulary = Mapping[str, frozenset[str]]
"""What exists in an environment's state: each value (as text) and the field names it
appears under."""

_ID_NAME = ID_NAME
_TOKEN = re.compile(r"#?[A-Za-z0-9][A-Za-z0-9_.:@#/+-]*[A-Za-z0-9]|\b\d\b")
_DATE = re.compile(r"^(\d{4}-\d{2}-\d{2}|\d{1,2}([/.])\d{1,2}\2\d{2,4})$")
"""A date, ISO or as people write it (12/07/2023, 12.07.2023): it names no record (MAS's
assistant once placed an order with ``cart_id="12/07/2023"``)."""
_TIME = re.compile(r"^\d{1,2}([:.]\d{2}\s*([ap]m)?|[ap]m)$", re.IGNORECASE)
_INTEGER = re.compile(r"^-?[0-9]+$")
_ORDINAL = re.compile(r"^\d+(st|nd|rd|th)$", re.IGNORECASE)


def _scalar_kind(schema: Mapping[str, Any]) -> str | None:
    """``string`` or ``integer`` for a parameter that can hold one entity, else None."""
    kind = schema.get("type")
    return kind if kind in ("string", "integer") else None


def _entity_kind(schema: Mapping[str, Any]) -> str | None:
    """The scalar kind of an entity-shaped parameter: a string or integer, or an array of
    them; None for anything else (objects are walked into, enums are already closed)."""
    if "enum" in schema or "const" in schema:
        return None
    kind = _scalar_kind(schema)
    if kind:
        return kind
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        items = schema["items"]
        if "enum" not in items and "const" not in items:
            return _scalar_kind(items)
    return None


def _names_producer(schema: Mapping[str, Any], tool: str) -> bool:
    return re.search(rf"\b{re.escape(tool)}\b", str(schema.get("description", ""))) is not None


def is_entity(name: str, schema: Mapping[str, Any], others: Iterable[str] = ()) -> bool:
    """Whether parameter ``name`` names an entity: identifier-shaped name, or a description
    that names one of the ``others`` tools (its producer)."""
    if _entity_kind(schema) is None:
        return False
    return bool(_ID_NAME.search(name)) or any(_names_producer(schema, t) for t in others)


def _entity_params(tool: Tool, others: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """The entity arguments of ``tool`` at any depth of its parameters, with their schemas."""
    out: list[tuple[str, dict[str, Any]]] = []

    def walk(node: Mapping[str, Any]) -> None:
        for name, sub in (node.get("properties") or {}).items():
            if not isinstance(sub, dict):
                continue
            if is_entity(name, sub, others):
                out.append((name, sub))
            elif sub.get("type") == "object":
                walk(sub)
            elif sub.get("type") == "array" and isinstance(sub.get("items"), dict):
                walk(sub["items"])
    walk(tool.parameters)
    return out


def entity_names(tool: Tool, tools: Iterable[Tool]) -> set[str]:
    """Names of the entity arguments of ``tool``, at any depth of its parameters."""
    return {name for name, _ in _entity_params(tool, [t.name for t in tools
                                                      if t.name != tool.name])}


def _stem(name: str) -> str:
    """``hotel_id`` -> ``hotel``, ``orders`` -> ``order``, ``addresses`` -> ``address``,
    ``status`` -> ``status``, ``id`` -> ``""``."""
    s = _ID_NAME.sub("", name.lower()).strip("_")
    if s.endswith(("sses", "shes", "ches", "xes")):
        return s[:-2]
    if s.endswith(("ss", "us", "is")) or len(s) <= 3:
        return s
    return s.removesuffix("s")


def related(key: str, name: str) -> bool:
    """Whether a value found under ``key`` can fill parameter ``name``: the same thing once
    identifier suffixes and plurals are set aside, whole words only (``orders`` fills
    ``order_id``, ``item_id`` fills ``new_item_ids``; ``border`` fills no ``order_id``), or
    a bare ``id`` (or a bare result, with no key at all)."""
    a, b = _stem(key), _stem(name)
    if key.lower() == name.lower():
        return True
    if not a:
        return key.lower() in ("", "id", "ids", "uuid")
    return bool(b) and (a == b or a.endswith("_" + b) or b.endswith("_" + a))


@dataclass(frozen=True)
class Seen:
    """A value the dialogue has shown."""

    value: str | int
    key: str
    """The result field it came under; ``""`` for a bare result or for words."""
    said: bool
    """Stated in words (the user's or the system message's) rather than returned by a
    tool."""


def _leaves(node: Any, key: str = "") -> Iterable[tuple[str, str | int]]:
    """Every string and integer in a JSON value, with the field it sits under. An ID used
    as a map key sits under the map (``payment_methods.{credit_card_1}``), and so does
    what is inside it; a bare ``id`` sits under what holds it (the ``id`` of each of
    ``hotels`` is a hotel's)."""
    if isinstance(node, dict):
        for k, v in node.items():
            name = str(k)
            if _TOKEN.fullmatch(name) and any(c.isdigit() for c in name):
                yield key, name
                name = key
            elif name.lower() in ("id", "ids") and key:
                name = key
            yield from _leaves(v, name)
    elif isinstance(node, list):
        for v in node:
            yield from _leaves(v, key)
    elif isinstance(node, bool) or node is None:
        return
    elif isinstance(node, float) and node.is_integer():
        yield key, int(node)  # 1200.0 is the 1200 a user writes
    elif isinstance(node, int) or (isinstance(node, str) and 0 < len(node) <= 80):
        yield key, node


_CAPS = re.compile(r"^[A-Z][A-Z0-9]{4,}$")
"""An all-capitals word of five or more: tau2:airline's reservation IDs, many without a
digit ("IWKGVL"); a token only where the state has it."""


def when(token: str) -> bool:
    """Whether ``token`` is a date or a time as people write it (2024-05-16, 10:30 am)."""
    return bool(_DATE.match(token) or _TIME.match(token))


def _tokens(text: str, caps: bool = False) -> Iterable[str]:
    """The identifier-like tokens of ``text`` (with a digit, ``_``, ``@`` or ``#``; with
    ``caps``, all-capitals words too)."""
    for hit in _TOKEN.finditer(text):
        if hit.start() > 0 and text[hit.start() - 1] in "$€£¥":
            continue  # an amount, not an ID
        token = hit.group(0).rstrip(".")
        if _DATE.match(token) or _TIME.match(token) or _ORDINAL.match(token):
            continue  # a date, a time, "5th": no entity
        if any(c.isdigit() for c in token) or any(c in token for c in "_@#") \
                or (caps and _CAPS.match(token)):
            yield token


_DETAILS = re.compile(r"\bDetails: ([^\n]*?)\.?$", re.MULTILINE)


def detail_items(text: str) -> list[str]:
    """The items of ``text``'s "Details: label value; label value." sentences, as the
    skeleton writes them (``skeleton.unstated``)."""
    return [x.strip() for hit in _DETAILS.finditer(text) for x in hit.group(1).split(";")]


_NAMING = re.compile(r"^ids?$|\b(number|no|reference|ref|code|key|account|name|username|"
                     r"handle|email)$")
"""A label that names a record without saying of what ("id", "booking reference")."""


def _labels(text: str) -> dict[str, str]:
    """The parameter each token of a request's details is stated for, as the skeleton
    writes them ("Details: max price 1000; sort price low": 1000 is a ``max_price``,
    "product id P-1" a ``product_id``), where the token is not said outside the details
    too. A label that names without saying what ("booking reference B-77", "account
    mia_li") leaves the token to any parameter of its kind."""
    out: dict[str, str] = {}
    for item in detail_items(text):
        tokens, start = set(_tokens(item)), 0
        for found in _TOKEN.finditer(item):  # each value after its own label
            token = found.group(0).rstrip(".")
            if token not in tokens:
                continue  # a word of a label
            label, start = item[start:found.start()].strip().lower(), found.end()
            if re.fullmatch(r"[a-z]+( [a-z]+)*", label) and not _NAMING.search(label):
                out.setdefault(token, label.replace(" ", "_"))
    elsewhere = _DETAILS.sub("", text)
    return {t: label for t, label in out.items() if not shown(t, elsewhere)}


def seen(messages: Iterable[Message], vocabulary: Vocabulary | None = None) -> list[Seen]:
    """Every value ``messages`` show, in order of first appearance.

    Tool results give their JSON leaves with their keys; the user's and the system's words
    give identifier-like tokens (with a digit, ``_``, ``@`` or ``#``), and where
    ``vocabulary`` is given, only tokens that exist in it, keyed by the fields they exist
    under; elsewhere a token of a request's details is keyed by the parameter it was
    stated for (``_labels``: the built-in run at d9e8d79 looked up order "1000" from
    "Details: max price 1000"). The assistant's words are claims, not sources.
    """
    out: dict[tuple[str | int, str, bool], Seen] = {}
    for m in messages:
        if m.role == "tool":
            try:
                value = json.loads(m.content or "")
            except ValueError:
                value = m.content
            if isinstance(value, dict) and "error" in value:
                continue  # an error names what does not exist
            for key, leaf in _leaves(value):
                # a bare result ("mia_li_3668") takes the fields the state has it under
                keys = sorted(vocabulary.get(str(leaf), ())) if vocabulary and not key else []
                for k in keys or [key]:
                    out.setdefault((leaf, k, False), Seen(leaf, k, False))
        elif m.content and m.role in ("system", "user"):
            labels = _labels(m.content) if vocabulary is None else {}
            for token in _tokens(m.content, caps=vocabulary is not None):
                keys = [labels.get(token, "")] if vocabulary is None \
                    else sorted(vocabulary.get(token, ()))
                for key in keys:
                    out.setdefault((token, key, True), Seen(token, key, True))
    return list(out.values())


def candidates(name: str, kind: str, values: Iterable[Seen]) -> list[str | int]:
    """The values an entity argument ``name`` of ``kind`` may take: results under a related
    key, and words (under a related field of the state, where one is known). Words with no
    known field take the keys results showed the same value under: a product ID the user
    repeats is no cart ID."""
    values = list(values)
    typed: dict[str, set[str]] = {}
    for v in values:
        if not v.said and v.key:
            typed.setdefault(str(v.value), set()).add(v.key)
    out: list[str | int] = []
    for v in values:
        if v.key and not related(v.key, name):
            continue
        keys = typed.get(str(v.value), set()) if v.said and not v.key else set()
        if keys and not any(related(k, name) for k in keys):
            continue
        if v.said and not v.key and isinstance(v.value, str) and _INTEGER.match(v.value) \
                and kind == "string" and len(v.value) < 3:
            continue  # "2 nights" names no entity
        value: str | int | None = v.value
        if kind == "integer":
            value = int(v.value) if _INTEGER.match(str(v.value)) else None
        elif isinstance(v.value, int):
            value = str(v.value)
        if value is not None and value not in out:
            out.append(value)
    return out


def _inner(schema: dict[str, Any]) -> dict[str, Any]:
    """The object schema inside a parameter: itself, or its array's items; else empty."""
    if schema.get("type") == "array" and isinstance(schema.get("items"), dict):
        return schema["items"]  # type: ignore[no-any-return]
    return schema if schema.get("type") == "object" else {}


def _restrict(props: dict[str, Any], name: str, options: list[str | int]) -> bool:
    """Make entity argument ``name`` an ``enum`` of ``options``; False when there are none."""
    if not options:
        return False
    sub = props[name]
    if sub.get("type") == "array":
        props[name] = {**sub, "items": {**sub["items"], "enum": options}}
    else:
        props[name] = {k: v for k, v in sub.items() if k not in ("type", "format", "pattern")}
        props[name]["enum"] = options
    return True


def ground(tool: Tool, tools: Iterable[Tool], values: list[Seen],
           prefer: Sequence[list[Seen]] = ()) -> dict[str, Any] | None:
    """``tool``'s parameter schema with every entity argument an ``enum`` of the values it
    may take now; None when a required entity argument has none (it cannot be called yet).
    An optional entity argument with no value is left out. An argument takes the values
    of the first list in ``prefer`` that has any for it, and ``values`` only where none
    has: what the subtask's request names first (asked about reservation I45O37, the small
    model looked up IWKGVL, another of the user's), then what the dialogue has shown (once
    a user's orders are listed, the next request names one of them, not another
    customer's), then what exists in the state."""
    others = [t.name for t in tools if t.name != tool.name]

    def walk(node: dict[str, Any]) -> bool:
        props = node.get("properties")
        if not isinstance(props, dict):
            return True
        required = set(node.get("required") or [])
        for name, sub in list(props.items()):
            if not isinstance(sub, dict):
                continue
            if is_entity(name, sub, others):
                kind = _entity_kind(sub) or "string"
                options = next((o for tier in prefer if (o := candidates(name, kind, tier))),
                               None)
                ok = _restrict(props, name, options or candidates(name, kind, values))
            else:
                ok = walk(_inner(sub))
            if not ok:
                if name in required:
                    return False
                del props[name]
        return True

    schema = copy.deepcopy(tool.parameters)
    return schema if walk(schema) else None


def entity_values(tool: Tool, tools: Iterable[Tool], arguments: Mapping[str, Any]
                   ) -> Iterable[tuple[str, str, str | int]]:
    """Every entity argument value of a call: (parameter name, its kind, the value)."""
    kinds = {name: _entity_kind(schema) or "string"
             for name, schema in _entity_params(tool, [t.name for t in tools
                                                       if t.name != tool.name])}
    return ((key, kinds[key], v) for key, v in leaves(dict(arguments))
            if key in kinds and isinstance(v, str | int) and not isinstance(v, bool))


def ungrounded(tool: Tool, tools: Iterable[Tool], arguments: Mapping[str, Any],
               earlier: str) -> str | None:
    """The first entity argument value of a call that ``earlier`` (the dialogue's text
    before it) never shows, if any."""
    return next((str(v) for _, _, v in entity_values(tool, tools, arguments)
                 if str(v) not in earlier), None)


def unfounded(tool: Tool, tools: Iterable[Tool], arguments: Mapping[str, Any],
              values: list[Seen]) -> tuple[str, str | int] | None:
    """The first entity argument of a call whose value is not among those it may take
    (``candidates``), as (parameter, value); None when all are."""
    for name, kind, value in entity_values(tool, tools, arguments):
        if value not in candidates(name, kind, values):
            return name, value
    return None


_CREATES = frozenset({"add", "book", "buy", "create", "make", "mkdir", "new", "open", "order",
                      "place", "post", "purchase", "register", "reserve", "schedule", "send",
                      "submit", "touch", "upload", "write"})
_UNDOES = frozenset({"cancel", "delete", "discard", "drop", "erase", "remove", "revoke", "rm",
                     "rmdir", "unbook", "undo", "unfollow", "unsubscribe", "void"})


def creates(name: str) -> bool:
    """Whether the tool ``name`` makes a record (``book_hotel``, ``post_tweet``, ``mkdir``)."""
    return verb(name) in _CREATES


def verb(name: str) -> str:
    """The first word of a tool's name, lower case: ``book`` for ``book_hotel`` and
    ``bookHotel``."""
    return re.split(r"[_\-\s]|(?<=[a-z])(?=[A-Z])", name)[0].lower()


def undoes(producer: Tool, consumer: Tool) -> bool:
    """Whether ``consumer`` undoes what ``producer`` makes (``cancel_booking`` after
    ``book_hotel``, ``rmdir`` after ``mkdir``), by the verbs their names start with. Such a
    consumer takes what the user brings (a booking made before the dialogue), never what
    the dialogue just made: a task that books and at once cancels teaches nothing."""
    return reverses(producer.name, consumer.name)


def reverses(producer: str, consumer: str) -> bool:
    """``undoes`` by tool name."""
    return verb(producer) in _CREATES and verb(consumer) in _UNDOES


def feeds(producer: Tool, consumer: Tool) -> set[str]:
    """The entity arguments of ``consumer`` that ``producer``'s results can carry a value
    for: a result field related to the argument, the argument's description naming the
    producer, or the producer named for it (``find_user_id_by_email`` yields a
    ``user_id``). None where the consumer undoes what the producer makes (``undoes``), and
    where the producer undoes something: what a cancellation returns is gone, and a plan
    that cancelled a reservation and then changed its flights (seen on tau2:airline, where
    ``cancel_reservation`` returns the reservation) got goals that asked for neither."""
    if producer.name == consumer.name or undoes(producer, consumer) \
            or verb(producer.name) in _UNDOES:
        return set()
    fields = set(_fields(producer.result_schema or {}))
    return {name for name, schema in _entity_params(consumer, [producer.name])
            if _names_producer(schema, producer.name) or _named_for(producer.name, name)
            or any(related(f, name) for f in fields)}


def _named_for(tool: str, name: str) -> bool:
    """Whether ``tool``'s name says it yields ``name``: ``find_user_id_by_email`` and
    ``user_id``, as whole words (a bare ``id`` is in every ``*_id`` tool)."""
    return "_" in name and re.search(rf"(^|_){re.escape(name)}(_|$)", tool) is not None


def produces(producer: Tool, consumer: Tool) -> bool:
    """Whether ``producer``'s results can feed one of ``consumer``'s entity arguments."""
    return bool(feeds(producer, consumer))


def _fields(schema: Any, parent: str = "") -> Iterable[str]:
    """The field names a result schema promises values under. A bare ``id`` is named by
    what holds it (the ``id`` of each of ``hotels`` is a hotel's); a map keyed by IDs
    (``payment_methods: {"credit_card_1": {...}}``) yields its own name."""
    if not isinstance(schema, dict):
        return
    for k, v in (schema.get("properties") or {}).items():
        if isinstance(v, dict) and (_scalar_kind(v) or _entity_kind(v)):
            yield parent if k.lower() in ("id", "ids") and parent else k
        yield from _fields(v, k)
    if isinstance(schema.get("additionalProperties"), dict):
        if parent:
            yield parent
        yield from _fields(schema["additionalProperties"], parent)
    if isinstance(schema.get("items"), dict):
        yield from _fields(schema["items"], parent)


def schema_of(value: Any) -> dict[str, Any]:
    """A JSON Schema describing one observed value, as a result schema for a tool that
    documents none: objects by their fields, a map keyed by IDs as a map, a list by its
    first item."""
    if isinstance(value, dict):
        if value and all(any(c.isdigit() for c in str(k)) for k in value):
            return {"type": "object", "additionalProperties": schema_of(next(iter(
                value.values())))}
        return {"type": "object", "properties": {k: schema_of(v) for k, v in value.items()}}
    if isinstance(value, list):
        return {"type": "array", "items": schema_of(value[0]) if value else {}}
    if isinstance(value, bool):
        return {"type": "boolean"}
    if isinstance(value, int):
        return {"type": "integer"}
    if isinstance(value, float):
        return {"type": "number"}
    return {"type": "string"} if isinstance(value, str) else {}


def probe_arguments(tool: Tool, known: Vocabulary) -> dict[str, Any] | None:
    """Arguments that let ``tool`` run once on a start state whose ``known`` vocabulary is
    given, to see what its results hold: each required argument takes the first value
    the state has under a field of its name (any related one, for an entity), or an
    enum's first value. None where a required argument cannot be filled so."""
    props = tool.parameters.get("properties") or {}
    by_field: dict[str, list[str]] = {}
    for text, fields in known.items():
        for f in fields:
            by_field.setdefault(f, []).append(text)
    out: dict[str, Any] = {}
    for name in tool.parameters.get("required") or []:
        schema = props.get(name) or {}
        if "enum" in schema:
            out[name] = schema["enum"][0]
            continue
        kind = _entity_kind(schema)
        entity = is_entity(name, schema)
        fits = sorted(v for f, vs in by_field.items() if f == name or (entity and f and
                                                                      related(f, name))
                      for v in vs)
        if kind is None or not fits:
            return None
        value: Any = int(fits[0]) if kind == "integer" and _INTEGER.match(fits[0]) else fits[0]
        out[name] = [value] if schema.get("type") == "array" else value
    return out


def dependency_order(names: list[str], tools: Mapping[str, Tool]) -> list[str]:
    """``names`` reordered so that a tool producing a value another consumes comes first;
    otherwise the given order is kept."""
    left = list(names)
    out: list[str] = []
    while left:
        ready = [n for n in left if not any(
            m != n and n in tools and m in tools and produces(tools[m], tools[n])
            and not produces(tools[n], tools[m]) for m in left)]
        pick = ready[0] if ready else left[0]
        out.append(pick)
        left.remove(pick)
    return out


def _needs(tool: Tool) -> list[str]:
    """The required entity arguments of ``tool`` (top level)."""
    required = set(tool.parameters.get("required") or [])
    return [name for name, _ in _entity_params(tool, []) if name in required]


def with_sources(names: list[str], before: Iterable[str], tools: Mapping[str, Tool]
                 ) -> list[str]:
    """A subtask's tools with, ahead of a tool whose required entity argument nothing so far
    produces (neither this list nor ``before``, the tools of earlier subtasks), one tool of
    the dialogue that produces it and can itself be served: it needs nothing, or only what
    is produced already. (Book a flight: search flights first. Cancel a booking: nothing is
    added, since booking needs a search too; the user states the booking's ID.)"""
    out: list[str] = []
    done = [n for n in before if n in tools]
    for name in names:
        tool = tools.get(name)
        have = [tools[n] for n in [*done, *out]]
        if tool is not None and _needs(tool) and not any(produces(t, tool) for t in have):
            source = next((t for t in tools.values() if t.name not in out and produces(t, tool)
                           and all(any(need in feeds(h, t) for h in have)
                                   for need in _needs(t))), None)
            if source is not None:
                out.append(source.name)
        if name not in out:
            out.append(name)
    return out


def fresh(tool: Tool, tools: Iterable[Tool], rng: random.Random) -> list[Seen]:
    """A new value for each entity argument of ``tool`` (``HOT-48213`` for a ``hotel_id``,
    a number for an integer one): what a user may bring to a dialogue whose tools are
    simulated (a booking made elsewhere), offered beside the values already shown so that
    even a new ID is one constrained decoding writes whole."""
    out = []
    for name, schema in _entity_params(tool, [t.name for t in tools if t.name != tool.name]):
        if _entity_kind(schema) == "integer":
            out.append(Seen(rng.randint(100, 9999), name, False))
        else:
            prefix = (_stem(name) or "id")[:3].upper()
            out.append(Seen(f"{prefix}-{rng.randint(10000, 99999)}", name, False))
    return out


def chains(tools: list[Tool], steps: list[int], rng: random.Random) -> list[list[str]] | None:
    """Each subtask's tools, chosen along the data that flows between them: a chain
    starts at a tool whose results feed another (one whose needs are met, where there is
    one: nothing earlier must produce what it takes) and goes on to a tool that consumes
    what the chain produced; tools not used yet come first. None where no tool produces
    what another needs (the data flow is unknown: the planner chooses)."""
    flows = {(a.name, b.name) for a in tools for b in tools if produces(a, b)}
    if not flows:
        return None
    by = {t.name: t for t in tools}
    fed = {b for _, b in flows}
    feeding = {a for a, _ in flows}

    fill = {(a, b): feeds(by[a], by[b]) for a, b in flows}

    def servable(name: str, have: list[str]) -> bool:
        """Every required entity argument is fed by a tool already called, or by none of
        the dialogue's tools (the user brings it)."""
        fed_by = [fill[(h, name)] for h in have if (h, name) in fill]
        return all(any(need in f for f in fed_by)
                   or not any(need in f for (_, b), f in fill.items() if b == name)
                   for need in _needs(by[name]))

    def pick(*pools: list[str]) -> str | None:
        """From the first pool that has one: a tool not used yet, else any."""
        for pool in pools:
            unused = [n for n in pool if n not in done]
            if unused or pool:
                return rng.choice(unused or pool)
        return None

    done: list[str] = []
    out: list[list[str]] = []
    for count in steps:
        chain: list[str] = []
        while len(chain) < count:
            ready = [n for n in by if n not in chain and servable(n, [*done, *chain])]
            after = [n for n in ready if chain and (chain[-1], n) in flows]
            in_flow = [n for n in ready if n in fed or n in feeding]
            # a later subtask goes on from what earlier ones found; a chain otherwise
            # starts where data flows from (if nothing there can be served, the user
            # brings the ID it needs: their own user or reservation ID)
            onward = [n for n in ready if any((h, n) in flows for h in done)] \
                if not chain else []
            starts = ([n for n in ready if n in feeding]
                      or sorted(n for n in feeding if n not in chain)) if not chain else []
            choice = pick(after, onward, starts, in_flow, ready)
            if choice is None:
                break
            chain.append(choice)
        out.append(chain or [rng.choice(sorted(by))])
        done += out[-1]
    return out


_ID_VALUE = re.compile(r"^(?=.*\d)[A-Za-z0-9][A-Za-z0-9_\-]{2,}$")


def id_like(node: Any, key: str = "") -> list[str]:
    """The strings in a call's arguments that look like IDs (letters or digits with a
    digit in them, like ``UA1234`` or a zip code), whatever their parameter: a value no
    one gave, where a tool wants an identifier. An ISO date only under an ID-named key."""
    if isinstance(node, dict):
        return [v for k, x in node.items() for v in id_like(x, str(k))]
    if isinstance(node, list):
        return [v for x in node for v in id_like(x, key)]
    if isinstance(node, str) and _ID_VALUE.match(node) \
            and (_ID_NAME.search(key) or not _DATE.match(node)):
        return [node]
    return []


def shown(value: str, text: str) -> bool:
    """Whether ``text`` holds ``value`` as a whole (case and spacing aside): "2" is not
    in "2024", "H-1" not in "H-12"."""
    value = " ".join(value.split())
    if not value:
        return True
    pattern = rf"(?<![\w-]){re.escape(value)}(?![\w-])"
    return re.search(pattern, " ".join(text.split()), re.IGNORECASE) is not None


def scalars(node: Any) -> list[str]:
    """Every string and number in a JSON value, as text, in order."""
    if isinstance(node, dict):
        return [v for x in node.values() for v in scalars(x)]
    if isinstance(node, list):
        return [v for x in node for v in scalars(x)]
    return [] if node is None or isinstance(node, bool) else [str(node)]


_LABELED = re.compile(r"\b([A-Za-z]+)\s+(?:with\s+)?(?:the\s+)?(?:(?:id|ID|number|no\.?|#)\s+)?"
                      r"(?:is\s+)?"
                      r"(#?[A-Za-z0-9][\w#-]*\d[\w-]*|[A-Z][A-Z0-9]{4,}\b)")


def _a(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def mislabeled(text: str, known: Vocabulary, kinds: Iterable[str] | None = None
               ) -> str | None:
    """Why ``text`` calls a value of the state by another kind's name, if it does: "flight
    DE23CA" where DE23CA is a reservation (the planner wrote that on tau2:airline, the
    request copied it, and the call looked up the status of another flight). A word is a
    kind where it is one of ``kinds``, or else what a field of the state names (``flight``
    for ``flight_number``); a value is of that kind where one of the fields it exists
    under has the word in it."""
    kinds = set(kinds) if kinds is not None else \
        {_stem(k) for keys in known.values() for k in keys} - {""}
    for hit in _LABELED.finditer(text):
        word, value = _stem(hit.group(1)), hit.group(2).rstrip(".")
        keys = known.get(value)
        if not keys or word not in kinds:
            continue
        if not any(word in _stem(k).split("_") for k in keys):
            what = " or ".join(sorted({_stem(k) for k in keys} - {""})) or "value"
            return f"calls {value} a {word}, but it is {_a(what)} {what}"
    return None


def record_kinds(tools: Iterable[Tool]) -> frozenset[str]:
    """The kinds of record ``tools`` name by an ID, in their parameters or results:
    ``hotel`` for ``hotel_id``, ``order`` for ``order_id``, ``booking`` for
    ``booking_id``."""
    names = [n for t in tools for n in [*(t.parameters.get("properties") or {}),
                                        *_fields(t.results())]]
    return frozenset(_stem(n) for n in names if _ID_NAME.search(n)) - {""}


def vocabulary(state: Any) -> dict[str, frozenset[str]]:
    """The vocabulary of a JSON-like state: every string (up to 80 characters), integer and
    identifier-like map key, with the fields it appears under."""
    found: dict[str, set[str]] = {}
    for key, leaf in _leaves(state):
        found.setdefault(str(leaf), set()).add(key)
    return {k: frozenset(v) for k, v in found.items()}


__all__ = ["Seen", "Vocabulary", "candidates", "chains", "dependency_order", "entity_names",
           "entity_values", "feeds", "fresh", "ground", "id_like", "is_entity", "mislabeled",
           "probe_arguments", "produces", "record_kinds", "related", "scalars", "schema_of",
           "seen", "shown", "undoes", "unfounded", "ungrounded", "vocabulary",
           "with_sources"]
