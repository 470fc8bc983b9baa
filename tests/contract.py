"""The record contract of DESIGN.md, as assertions over a written record."""

from __future__ import annotations

import json

from jsonschema import Draft202012Validator

from naig.dialogue import Record

STAGES = {"naig": {"plan", "skeleton"}, "mas": {"plan", "user", "assistant"}}
"""LLM stages every kept dialogue of a method went through."""


def assert_contract(record: Record, *, kept: bool, method: str = "naig") -> None:
    data = json.loads(record.to_json())
    assert set(data) == {"id", "tools", "messages", "meta"}
    tools = {t["function"]["name"]: t["function"] for t in data["tools"]}
    assert tools and all(t["type"] == "function" for t in data["tools"])
    msgs = data["messages"]
    assert msgs[0]["role"] == "system"
    answered = set()
    for i, m in enumerate(msgs):
        assert m["role"] in ("system", "user", "assistant", "tool")
        assert "content" in m
        for c in m.get("tool_calls", []):
            fn = c["function"]
            assert fn["name"] in tools, fn["name"]
            args = json.loads(fn["arguments"])
            errors = list(Draft202012Validator(tools[fn["name"]]["parameters"]).iter_errors(args))
            assert not errors, (i, fn, errors[0].message)
            answered.add(c["id"])
        if m["role"] == "tool":
            assert m["tool_call_id"] in answered
    meta = record.meta
    assert meta.method == method and meta.model and meta.config_hash
    assert meta.environment.name
    usage = meta.usage
    assert usage.calls == sum(u.calls for u in usage.by_stage.values())
    assert usage.prompt_tokens == sum(u.prompt_tokens for u in usage.by_stage.values())
    if kept:
        assert meta.error is None and meta.plan is not None
        assert meta.verification is not None and meta.verification.passed
        assert STAGES[method] <= set(usage.by_stage)
        names = [c.name for c in meta.verification.checks]
        assert "schema_valid_arguments" in names and "replay" in names
        assert msgs[-1]["role"] == "assistant" and msgs[-1]["content"]
    else:
        v = meta.verification
        assert meta.error or (v is not None and not v.passed and all(
            c.detail for c in v.checks if not c.passed))
