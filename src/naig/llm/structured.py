"""Structured output: ask with a JSON Schema, validate, retry with the error fed back.

The backend constrains decoding with the schema where it can; the answer is then parsed
and validated (``validate`` raises ``ValueError`` on a bad one, pydantic's
``ValidationError`` included). A bad answer is described to the model (what was wrong,
not the answer itself, which a small model would copy), up to ``attempts`` times; then
``ModelOutputError`` carries the last raw text.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from typing import Any, TypeVar

from naig.errors import ModelOutputError
from naig.llm.base import LLM, ChatMessage, Request
from naig.prompts import render

T = TypeVar("T")
RETRY_TEMPERATURE = 1.0
"""Retries sample hotter: a small model told what was wrong often writes the same again."""
REASON_CHARS = 300
"""Longest reason a judge or expert may give: bounds a small model's rambling."""


ECHO_WORDS = 6
"""An answer that repeats this many consecutive words of its instructions copied them."""


def _grams(text: str) -> list[tuple[str, ...]]:
    """Runs of ``ECHO_WORDS`` words, in the order they occur (a set would iterate in an
    order that changes with every process: the retry prompt, and so the cache key, too)."""
    words = re.findall(r"\w+", text.lower())
    return [tuple(words[i:i + ECHO_WORDS]) for i in range(len(words) - ECHO_WORDS + 1)]


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [s for v in node.values() for s in _strings(v)]
    if isinstance(node, list):
        return [s for v in node for s in _strings(v)]
    return [node] if isinstance(node, str) else []


def copied(value: Any, instructions: str) -> str | None:
    """The first run of words of ``instructions`` that a string in ``value`` repeats."""
    banned = set(_grams(instructions))
    for text in _strings(value):
        for gram in _grams(text):
            if gram in banned:
                return " ".join(gram)
    return None


async def ask(llm: LLM, messages: tuple[ChatMessage, ...], schema: dict[str, Any],
              validate: Callable[[Any], T], *, stage: str, seed: int, template_hash: str,
              temperature: float = 0.7, max_tokens: int = 1024, attempts: int = 3,
              instructions: str = "", retry_schema: dict[str, Any] | None = None) -> T:
    """Ask for JSON matching ``schema`` (``retry_schema`` after a refused answer, where
    given); ``validate`` turns it into the result.

    ``instructions`` is the prompt text the answer must not copy (a small model's habit):
    an answer repeating six of its words in a row is invalid and retried. An invalid
    answer given again word for word ends the retries: the model will not move.
    """
    history = messages
    raw = ""
    problem = ""
    refused: set[str] = set()
    limit = max_tokens
    for attempt in range(attempts):
        # a sampled answer that failed may fail again the same way: sample hotter on
        # retries; a greedy one (a judge's, an expert's) stays greedy, the error in view
        heat = max(temperature, RETRY_TEMPERATURE) if attempt and temperature > 0 \
            else temperature
        shape = retry_schema if attempt and retry_schema is not None else schema
        request = Request(messages=history, schema=shape, temperature=heat,
                          max_tokens=limit, seed=seed + attempt,
                          template_hash=template_hash, stage=stage)
        raw = (await llm.complete(request)).text
        if _form(raw) in refused:
            problem += " (the same answer again)"
            break
        try:
            value = _json_in(raw)
            _has_required(value, shape)
            echo = copied(value, instructions) if instructions else None
            if echo:
                raise ValueError(f"it copies the instructions ('{echo}'); write new content")
            return validate(value)
        # JSONDecodeError and ValidationError are ValueErrors; the lookup errors are a
        # validator reading an answer of the wrong shape: all are the model's, and retried
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
            problem = _short(str(e) if not isinstance(e, KeyError) else f"missing {e}")
            if isinstance(e, CutOff):  # what is asked may need more room (a passenger list)
                limit = min(2 * limit, 4 * max_tokens)
        refused.add(_form(raw))
        # the refused answer is described, not shown: a small model shown its own answer
        # writes it again
        history = (*messages, *render("retry", problem=problem)[0])
    raise ModelOutputError(f"{stage}: no valid answer after {attempt + 1} attempts: {problem}",
                           raw=raw)


def _has_required(value: Any, schema: dict[str, Any]) -> None:
    """An object answer must hold the keys its schema requires: a grammar enforces them,
    but an answer read out of prose or a cut-off one may not (a skeleton step without its
    "user" text crashed a benchmark)."""
    if schema.get("type") == "object" and isinstance(value, dict):
        missing = [k for k in schema.get("required") or [] if k not in value]
        if missing:
            raise ValueError(f"the answer has no {', '.join(repr(k) for k in missing)}")


_FENCED = re.compile(r"```(?:json)?\s*(.*?)```", re.DOTALL)


def _json_in(raw: str) -> Any:
    """The JSON of an answer: the whole text, else a fenced block in it, else its span from
    the first brace to the last (a model that wraps its JSON in prose, as hosted ones do
    without a grammar). An answer with none says how it failed: empty, cut off, or the
    parser's words."""
    if not raw.strip():
        raise ValueError("the answer was empty")
    try:
        return json.loads(raw, strict=False)
    except json.JSONDecodeError as e:
        first = e
    for inner in [m.group(1) for m in _FENCED.finditer(raw)] + [
            raw[raw.find("{"): raw.rfind("}") + 1]]:
        with contextlib.suppress(ValueError):
            if inner.strip():
                return json.loads(inner, strict=False)
    if _unclosed(raw):
        raise CutOff("the answer stops before its JSON ends (cut off at the length "
                     "limit?); write a shorter answer")
    raise first


class CutOff(ValueError):
    """An answer that opens JSON it never closes: the length limit cut it."""


def _unclosed(raw: str) -> bool:
    """Whether the text opens JSON it never closes: a string, an object or an array."""
    depth, quoted, escaped = 0, False, False
    for c in raw.strip():
        if quoted:
            escaped, quoted = (not escaped and c == "\\"), quoted and (escaped or c != '"')
        elif c == '"':
            quoted = True
        elif c in "{[":
            depth += 1
        elif c in "}]":
            depth -= 1
    return raw.lstrip()[:1] in ("{", "[") and (quoted or depth > 0)


def _form(raw: str) -> str:
    """An answer with its layout set aside: the same JSON written with other spacing is
    the same answer."""
    try:
        return json.dumps(json.loads(raw, strict=False), sort_keys=True)
    except ValueError:
        return "".join(raw.split())


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
