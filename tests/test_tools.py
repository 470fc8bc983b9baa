import json
import random

import pytest

from naig.errors import ConfigError
from naig.pools import Sampling, load_builtin, load_file, sample
from naig.tools import tool_from_dict


def test_bfcl_types_become_json_schema() -> None:
    tool = tool_from_dict({"name": "mv", "description": "Move.", "parameters": {
        "type": "dict", "properties": {
            "source": {"type": "string"}, "ratio": {"type": "float"},
            "pair": {"type": "tuple", "items": {"type": "float"}},
            "anything": {"type": "any"}},
        "required": ["source"]}}, "doc")
    props = tool.parameters["properties"]
    assert tool.parameters["type"] == "object"
    assert props["ratio"]["type"] == "number"
    assert props["pair"] == {"type": "array", "items": {"type": "number"}}
    assert "type" not in props["anything"]
    assert tool.validate_arguments({"source": "a", "ratio": 0.5}) == []
    assert tool.validate_arguments({"ratio": "x"})  # required missing, wrong type


def test_malformed_schema_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid JSON Schema"):
        tool_from_dict({"name": "f", "parameters": {"type": "object",
                                                    "properties": {"a": {"type": 5}}}}, "t")
    with pytest.raises(ConfigError, match="non-empty string 'name'"):
        tool_from_dict({"description": "no name"}, "t")


def test_pool_files_in_every_format(tmp_path) -> None:
    fn = {"name": "f", "parameters": {"type": "object", "properties": {}}}
    (tmp_path / "a.json").write_text(json.dumps([{"type": "function", "function": fn}]))
    (tmp_path / "b.json").write_text(json.dumps({"tools": [fn]}))
    (tmp_path / "c.jsonl").write_text(json.dumps(fn) + "\n" + json.dumps({**fn, "name": "g"}))
    assert [t.name for t in load_file(tmp_path / "a.json")] == ["f"]
    assert [t.name for t in load_file(tmp_path / "b.json")] == ["f"]
    assert [t.name for t in load_file(tmp_path / "c.jsonl")] == ["f", "g"]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not JSON"):
        load_file(tmp_path / "bad.json")


def test_sampling_draws_one_family_plus_distractors() -> None:
    pool = load_builtin()
    for seed in range(50):
        tools = sample(pool, random.Random(seed), Sampling(3, 8, 3))
        families = [t.family for t in tools]
        main = max(set(families), key=families.count)
        assert families.count(main) >= 3
        assert len(families) - families.count(main) <= 3
        assert len({t.name for t in tools}) == len(tools)
