import json

import pytest
from pydantic import ValidationError

from naig.dialogue import EnvironmentInfo, Message, Meta, Record

from .conftest import good_dialogue


def record() -> Record:
    return Record(id="d-000001", tools=[{"type": "function", "function": {"name": "f"}}],
                  messages=good_dialogue(),
                  meta=Meta(seed=1, model="local:m", config_hash="abc",
                            environment=EnvironmentInfo(name="builtin")))


def test_record_round_trips_through_json() -> None:
    r = record()
    assert Record.from_json(r.to_json()) == r


def test_wire_form_is_openai_messages() -> None:
    data = json.loads(record().to_json())
    call = data["messages"][2]
    assert call["content"] is None and call["tool_calls"][0]["type"] == "function"
    assert "tool_call_id" not in call
    assert set(data["messages"][3]) == {"role", "tool_call_id", "content"}
    assert set(data["messages"][1]) == {"role", "content"}


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        Message.model_validate({"role": "user", "content": "hi", "name": "x"})
