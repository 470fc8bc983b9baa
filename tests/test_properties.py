"""Property-based tests (hypothesis) of the parsers that read what users and models give:
tool files, JSON in a model's answer, call arguments, JSONL record files. Each holds for
every input hypothesis draws, within a bounded number of examples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from naig.errors import ConfigError
from naig.llm.structured import _json_in
from naig.pools import tools_from_text
from naig.store import IMPORTED, iter_records
from naig.tools import parse_arguments, tool_from_dict

BOUNDED = settings(max_examples=300, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                               max_size=4),
    max_leaves=20)
SCHEMA_WORDS = st.sampled_from(["type", "properties", "items", "$ref", "required", "enum",
                                "object", "string", "dict", "float", "any", "#", "#/$defs/a",
                                "$defs", "a", "parameters", "name", "function"])
SCHEMA_LIKE = st.recursive(
    SCHEMA_WORDS | st.integers(-2, 2) | st.booleans(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(SCHEMA_WORDS, inner,
                                                               max_size=4),
    max_leaves=25)


@BOUNDED
@given(st.text(max_size=200) | JSON.map(json.dumps))
def test_any_text_is_tools_or_a_config_error(text: str) -> None:
    try:
        tools = tools_from_text(text, "fuzz.json", "fuzz")
    except ConfigError as e:
        assert str(e).startswith("fuzz.json") and "\n" not in str(e)
    else:
        assert tools and len({t.name for t in tools}) == len(tools)


@BOUNDED
@given(st.text(min_size=1, max_size=12), SCHEMA_LIKE)
def test_any_schema_shaped_tool_is_a_tool_or_a_config_error(name: str, params: Any) -> None:
    try:
        tool = tool_from_dict({"name": name, "parameters": params}, "here")
    except ConfigError:
        return
    assert tool.parameters["type"] == "object"
    tool.validate_arguments({})  # a tool that loads can check arguments without a crash


@BOUNDED
@given(st.dictionaries(st.text(max_size=6), JSON, max_size=4),
       st.text(alphabet=st.characters(blacklist_characters="{}[]`\"\\"), max_size=30),
       st.text(alphabet=st.characters(blacklist_characters="{}[]`\"\\"), max_size=30))
def test_a_json_object_is_found_inside_any_prose(value: dict[str, Any], before: str,
                                                 after: str) -> None:
    assert _json_in(before + json.dumps(value) + after) == value


@BOUNDED
@given(st.text(max_size=100))
def test_any_answer_is_json_or_a_value_error(text: str) -> None:
    try:
        _json_in(text)
    except ValueError as e:
        assert str(e)


@BOUNDED
@given(st.text(max_size=60) | JSON.map(json.dumps))
def test_arguments_are_an_object_or_a_value_error(text: str) -> None:
    try:
        value = parse_arguments(text)
    except ValueError:
        return
    assert isinstance(value, dict)


@settings(max_examples=100, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(max_size=40) | JSON.map(lambda v: json.dumps(v).encode()),
                max_size=5))
def test_a_file_of_any_lines_yields_records_or_names_what_it_skipped(
        tmp_path: Path, lines: list[bytes]) -> None:
    path = tmp_path / "any.jsonl"
    path.write_bytes(b"\n".join(lines))
    skipped: list[str] = []
    try:
        records = list(iter_records(path, skipped))
    except ConfigError as e:
        assert "no naig record" in str(e) and skipped
        return
    # no line drawn here is a whole naig record; a {"messages": [...]} one reads as a plain
    # chat row
    assert all(r.meta.method == IMPORTED for r in records)
