"""Structured output: ask with a JSON Schema, validate, retry with the error fed back.

The backend constrains decoding with the schema where it can; the answer is then parsed
and validated (``validate`` raises ``ValueError`` on a bad one, pydantic's
``ValidationError`` included). A bad answer is shown back to the model with the error,
up to ``attempts`` times; then ``ModelOutputError`` carries the last raw text.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from naig.errors import ModelOutputError
from naig.llm.base import LLM, ChatMessage, Request

T = TypeVar("T")
RETRY_TEMPERATURE = 0.7
REASON_CHARS = 300
"""Longest reason a judge or expert may give: bounds a small model's rambling."""


async def ask(llm: LLM, messages: tuple[ChatMessage, ...], schema: dict[str, Any],
              validate: Callable[[Any], T], *, stage: str, seed: int, template_hash: str,
              temperature: float = 0.7, max_tokens: int = 1024, attempts: int = 3) -> T:
    history = messages
    raw = ""
    problem = ""
    for attempt in range(attempts):
        # a greedy answer that failed fails again the same way: sample on retries
        heat = temperature if attempt == 0 else max(temperature, RETRY_TEMPERATURE)
        request = Request(messages=history, schema=schema, temperature=heat,
                          max_tokens=max_tokens, seed=seed + attempt,
                          template_hash=template_hash, stage=stage)
        raw = (await llm.complete(request)).text
        try:
            return validate(json.loads(raw, strict=False))
        except (ValueError, TypeError) as e:  # JSONDecodeError and ValidationError are ValueErrors
            problem = _short(str(e))
        history = (*messages,
                   ChatMessage(role="assistant", content=raw[:2000]),
                   ChatMessage(role="user", content=f"That answer is invalid: {problem}\n"
                               "Answer again with valid JSON that fixes it."))
    raise ModelOutputError(f"{stage}: no valid answer after {attempts} attempts: {problem}",
                           raw=raw)


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
