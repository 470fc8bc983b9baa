"""``naig export``: records into the formats fine-tuning frameworks read.

* ``openai``: ``{"messages", "tools"}``, OpenAI's chat fine-tuning format (also read by
  TRL, Axolotl and LLaMA-Factory's ``openai`` formatting); the record without ``id`` and
  ``meta``.
* ``sharegpt``: LLaMA-Factory's ShareGPT format with tool roles: ``conversations`` of
  ``human`` / ``function_call`` / ``observation`` / ``gpt`` turns, ``system`` and ``tools``
  (a JSON string). A ``function_call`` value is ``{"name", "arguments"}`` (arguments as
  an object), or a list of them for parallel calls; their results become one
  ``observation`` (a JSON list where there are several), so that human/observation and
  gpt/function_call alternate as the format requires.

Every exported line is a pure function of one record, so exporting is streaming and
order-preserving.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from naig.dialogue import Message, Record
from naig.errors import ConfigError


def to_openai(record: Record) -> dict[str, Any]:
    return {"messages": [m.model_dump() for m in record.messages], "tools": record.tools}


def _result(text: str | None) -> Any:
    try:
        return json.loads(text or "")
    except ValueError:
        return text


def to_sharegpt(record: Record) -> dict[str, Any]:
    system = ""
    turns: list[dict[str, str]] = []
    pending: list[Message] = []  # consecutive tool results, merged into one observation

    def flush() -> None:
        if not pending:
            return
        value = (pending[0].content or "") if len(pending) == 1 else json.dumps(
            [_result(m.content) for m in pending], ensure_ascii=False)
        turns.append({"from": "observation", "value": value})
        pending.clear()

    for m in record.messages:
        if m.role == "tool":
            pending.append(m)
            continue
        flush()
        if m.role == "system":
            system = m.content or ""
        elif m.role == "user":
            turns.append({"from": "human", "value": m.content or ""})
        elif m.tool_calls:
            calls = [{"name": c.function.name, "arguments": _result(c.function.arguments)}
                     for c in m.tool_calls]
            turns.append({"from": "function_call", "value": json.dumps(
                calls[0] if len(calls) == 1 else calls, ensure_ascii=False)})
        else:
            turns.append({"from": "gpt", "value": m.content or ""})
    flush()
    tools = [t.get("function", t) for t in record.tools]
    return {"conversations": turns, "system": system,
            "tools": json.dumps(tools, ensure_ascii=False)}


FORMATS: dict[str, Callable[[Record], dict[str, Any]]] = {
    "openai": to_openai, "sharegpt": to_sharegpt}


def converter(name: str) -> Callable[[Record], dict[str, Any]]:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown export format {name!r}; use one of: "
                          + ", ".join(FORMATS)) from None


def export(records: Iterable[Record], fmt: str, output: Path) -> int:
    """Write ``records`` in format ``fmt`` as JSONL; returns how many were written.

    The file is written beside ``output`` and moved into place at the end, so a bad
    record half-way leaves no half-written export behind.
    """
    convert = converter(fmt)
    output.parent.mkdir(parents=True, exist_ok=True)
    part = output.with_name(output.name + ".part")
    count = 0
    try:
        with part.open("w", encoding="utf-8") as f:
            for record in records:
                f.write(json.dumps(convert(record), ensure_ascii=False) + "\n")
                count += 1
        part.replace(output)
    finally:
        part.unlink(missing_ok=True)
    return count


__all__ = ["FORMATS", "converter", "export", "to_openai", "to_sharegpt"]
