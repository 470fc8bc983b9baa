"""The embedded model's grammar: every call schema naig decodes under, for every tool of
every shipped environment, is one llama.cpp's converter can express. Where it cannot,
llama-cpp-python used to decode free JSON without a word (tau2:airline's ``$defs``, a
result list whose item schema is ``{}``), and the small model wrote calls of any shape."""

from __future__ import annotations

import logging

import pytest

from naig.envs.registry import resolve
from naig.stages.calls import calls_schema, closed
from naig.tools import tool_from_dict

llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")

SPECS = [("builtin", None), ("tau2:airline", "tau2"), ("tau2:retail", "tau2"),
         ("bfcl:GorillaFileSystem,TwitterAPI,MessageAPI,TicketAPI,TradingBot,TravelAPI,"
          "VehicleControlAPI,MathAPI", "bfcl_eval")]


@pytest.mark.parametrize(("spec", "package"), SPECS)
def test_every_call_schema_of_a_shipped_environment_converts_to_a_grammar(
        spec: str, package: str | None) -> None:
    import json

    if package:
        pytest.importorskip(package)
    for tool in resolve(spec).pool:
        for with_result in (False, True):
            schema = calls_schema([tool], most=2, with_result=with_result)
            llama_grammar.json_schema_to_gbnf(json.dumps(schema))  # raises where it cannot


def test_refs_are_inlined_and_an_untyped_value_admits_any_json() -> None:
    tool = tool_from_dict({"name": "book", "parameters": {
        "type": "object", "$defs": {"Leg": {"type": "object", "properties": {
            "flight_number": {"type": "string"}}, "required": ["flight_number"]}},
        "properties": {"legs": {"type": "array", "items": {"$ref": "#/$defs/Leg"}},
                       "notes": {"type": "array", "items": {}}},
        "required": ["legs"]}}, "t")
    assert "$defs" not in tool.parameters
    assert tool.parameters["properties"]["legs"]["items"]["properties"] == {
        "flight_number": {"type": "string"}}
    notes = closed(tool.parameters)["properties"]["notes"]["items"]
    assert {b["type"] for b in notes["anyOf"]} == {"string", "number", "boolean", "object",
                                                   "array", "null"}


def test_a_schema_the_converter_cannot_express_is_said_in_the_log(
        caplog: pytest.LogCaptureFixture) -> None:
    import json

    from naig.llm.llamacpp import grammar_text

    with caplog.at_level(logging.WARNING):
        text = grammar_text(json.dumps({"type": "object", "properties": {
            "x": {"type": "array", "items": {"description": "no kind"}}}}))
    assert text == llama_grammar.JSON_GBNF
    assert "cannot decode under this schema" in caplog.text


def test_an_object_of_any_shape_beside_a_declared_one_is_not_decoded() -> None:
    """tau2's ``Passenger | dict``: the model took the free branch, wrote ``date_of_birth``,
    and the environment refused the call (``dob`` missing)."""
    passenger = {"type": "object", "properties": {"dob": {"type": "string"}},
                 "required": ["dob"]}
    schema = {"type": "object", "properties": {"passengers": {"type": "array", "items": {
        "anyOf": [passenger, {"type": "object", "additionalProperties": True}]}}}}
    items = closed(schema)["properties"]["passengers"]["items"]
    assert items["anyOf"] == [closed(passenger)]
    either = {"anyOf": [{"type": "string"}, {"type": "object"}]}  # nothing declared: kept
    assert closed(either) == either


def test_inlining_keeps_names_that_look_like_keywords_and_merges_what_is_beside_a_ref(
        ) -> None:
    tool = tool_from_dict({"name": "lookup", "parameters": {
        "$ref": "#/$defs/Query", "properties": {"limit": {"type": "integer"}},
        "required": ["limit"],
        "$defs": {"Query": {"type": "object", "required": ["definitions"], "properties": {
            "definitions": {"type": "string"},  # a parameter with a keyword's name
            "mode": {"enum": [{"$ref": "#/$defs/Query"}, "plain"]}}}}}}, "t")
    p = tool.parameters
    assert list(p["properties"]) == ["definitions", "mode", "limit"]
    assert p["required"] == ["definitions", "limit"] and "$defs" not in p
    assert p["properties"]["mode"]["enum"] == [{"$ref": "#/$defs/Query"}, "plain"]  # data


def test_true_schemas_item_lists_and_typed_maps_are_decodable() -> None:
    import json

    schema = {"type": "object", "properties": {
        "anything": True,
        "pair": {"type": "array", "items": [{"type": "string"}, {}]},
        "counts": {"anyOf": [{"type": "object", "properties": {"a": {"type": "integer"}}},
                             {"type": "object", "additionalProperties": {"type": "integer"}}]},
        "tags": {"additionalProperties": {"type": "string"}}}}
    out = closed(schema)
    assert "anyOf" in out["properties"]["anything"]
    assert "anyOf" in out["properties"]["pair"]["items"][1]
    assert len(out["properties"]["counts"]["anyOf"]) == 2  # a typed map is not "any shape"
    assert "anyOf" not in out["properties"]["tags"]  # a map of strings, not any value
    del schema["properties"]["pair"]  # an items list is draft 4's, refused in tool files
    llama_grammar.json_schema_to_gbnf(json.dumps(calls_schema(
        [tool_from_dict({"name": "f", "parameters": schema}, "t")], most=1)))


def test_what_a_speaker_says_is_decoded_without_code_and_stays_one_json_string() -> None:
    import json
    import re

    import jsonschema

    from naig.stages.checks import spoken

    text = spoken(800)
    for said in ("I found 2 tweets, IDs 0 and 1: 'Hello' and 'Bye'.", "Done!"):
        jsonschema.validate(said, text)
    for code in ('[ {"content": "Hello"}]', "tweets({", 'I said "hi"', "a\\b", "two\nlines", ""):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(code, text)
    gbnf = llama_grammar.json_schema_to_gbnf(json.dumps(
        {"type": "object", "properties": {"reply": text}, "required": ["reply"]}))
    # the grammar's character class bars what would end or escape the JSON string
    chars = re.search(r"^reply-1 ::= (\[.*\])$", gbnf, re.MULTILINE)
    assert chars is not None and chars.group(1).startswith('[^"\\\\')


def test_a_reply_owed_a_value_is_decoded_with_one_of_them_in_it() -> None:
    import json

    import jsonschema

    from naig.stages.checks import spoken_with

    owed = ["H-789", "B234567890", "1299.5", "Hotel XYZ", "a.b/c@d#e", 'say "x"']
    text = spoken_with(owed, 800)
    for said in ("I booked B234567890.", "Hotel XYZ costs 1299.5 a night.", "H-789",
                 "It costs $1299.5, booking B234567890", "(B234567890)"):
        jsonschema.validate(said, text)
    for said in ("I booked a hotel room.", "H789", "12995", 'say "x"', "orB234567890",
                 "I booked B2345678901.", "H-7890"):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(said, text)
    assert spoken_with(['say "x"'], 800) == spoken_with([], 800)  # nothing sayable: free
    gbnf = llama_grammar.json_schema_to_gbnf(json.dumps(
        {"type": "object", "properties": {"reply": text}, "required": ["reply"]}))
    llama_grammar.LlamaGrammar.from_string(gbnf, verbose=False)  # llama.cpp parses it
    assert '"B23456789"' in gbnf and '"a" [.] "b/c@d#"' in gbnf  # no escape llama refuses
