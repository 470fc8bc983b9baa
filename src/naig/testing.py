"""A scripted fake LLM for unit tests, shipped in the package.

``ScriptedLLM`` answers from a queue of texts or from a function of the request, records
every request it was sent, and fails loudly on a call it has no answer for. It is for
unit logic only: the evidence that a feature works is the end-to-end tier on a real model.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import re
from collections.abc import Callable, Iterable
from typing import Any

from naig.grounding import is_entity, scalars, verb
from naig.llm.base import LLM, Completion, Request
from naig.tools import decoded

Responder = Callable[[Request], "str | dict[str, Any] | list[Any]"]


class UnexpectedCall(AssertionError):
    """The scripted LLM was asked something it has no answer for."""


class ScriptedLLM(LLM):
    def __init__(self, answers: Iterable[str | dict[str, Any] | list[Any]] = (),
                 respond: Responder | None = None, name: str = "scripted:test",
                 delay: float = 0.0):
        self.name = name
        self._queue = list(answers)
        self._respond = respond
        self._delay = delay
        self.requests: list[Request] = []

    async def complete(self, request: Request) -> Completion:
        self.requests.append(request)
        if self._delay:
            await asyncio.sleep(self._delay)
        if self._queue:
            answer = self._queue.pop(0)
        elif self._respond is not None:
            answer = self._respond(request)
        else:
            last = request.messages[-1].content[:200]
            raise UnexpectedCall(f"no scripted answer for request #{len(self.requests)}: {last}")
        text = answer if isinstance(answer, str) else json.dumps(answer)
        prompt = sum(len(m.content) for m in request.messages) // 4
        return Completion(text=text, prompt_tokens=prompt, completion_tokens=len(text) // 4)

    def stages(self) -> list[str]:
        return [r.stage for r in self.requests]


def example(schema: dict[str, Any], salt: str = "") -> Any:
    """A small instance of ``schema``: the first branch, the first enum value, the fewest
    items (but an array of enum values lists the first distinct ones, as many as allowed),
    every declared property. Enough JSON Schema for naig's own request schemas.

    Strings are short words of letters drawn from ``salt`` and their position in the
    answer, so that two calls in one answer, or in answers to different prompts, differ
    (a dialogue that repeats a call is rejected); the same schema and salt give the same
    instance. A string property named like an identifier (``hotel_id``) gets digits too,
    as IDs have.
    """
    count = itertools.count()

    def word(low: int, high: int | None) -> str:
        digest = hashlib.sha256(f"{salt}/{next(count)}".encode()).digest()
        size = max(low, min(6, high if high is not None else 6), 1)
        text = "".join(chr(ord("a") + digest[k % len(digest)] % 26) for k in range(size))
        # a long string is several words, as a sentence is
        return " ".join(text[k:k + 5] for k in range(0, len(text), 5)) if size > 8 else text

    def build(node: dict[str, Any], name: str = "") -> Any:
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return node["enum"][0]
        for key in ("anyOf", "oneOf"):
            if key in node:
                return build(node[key][0])
        kind = node.get("type")
        if kind == "object" or "properties" in node:
            return {k: build(v, k) for k, v in node.get("properties", {}).items()}
        if kind == "array":
            items = node.get("items", {})
            if "enum" in items:  # distinct choices, as many as allowed (a plan's tools)
                most = node.get("maxItems", len(items["enum"]))
                return items["enum"][:max(1, node.get("minItems", 0), most)]
            return [build(items, name) for _ in range(max(1, node.get("minItems", 0)))]
        if kind == "integer":
            return int(node.get("minimum", 1))
        if kind == "number":
            return float(node.get("minimum", 1))
        if kind == "boolean":
            return True
        if kind == "string":
            text = word(node.get("minLength", 1), node.get("maxLength"))
            return text + str(len(text) * 7) if is_entity(name, node) else text
        return {}
    return build(schema)


def schema_example(request: Request) -> Any:
    """A responder that answers every structured request with ``example`` of its schema.

    Where one answer holds a user's message and the calls that follow it, the message
    states the calls' argument values, as a request must for its calls to be grounded."""
    if request.schema_ is None:
        return "ok"
    value = example(request.schema_, salt="\n".join(m.content for m in request.messages))
    if isinstance(value, dict) and isinstance(value.get("user"), str) \
            and isinstance(value.get("calls"), list):
        stated = [v for c in value["calls"] for v in scalars(c.get("arguments"))]
        value["user"] = " ".join([value["user"], *stated])
    if isinstance(value, dict) and isinstance(value.get("reply"), str):
        # a reply gives something each of its results returned: the calls' beside it, or
        # the transcript's results since its last user message
        results = [c.get("result") for c in value.get("calls") or [] if isinstance(c, dict)]
        if not results:
            prompt = "\n".join(m.content for m in request.messages)
            turns = re.findall(r"^\[\d+\] (user|tool result): (.+)$", prompt, re.M)
            opened = max((k for k, (who, _) in enumerate(turns) if who == "user"), default=-1)
            results = [decoded(x) for who, x in turns[opened + 1:] if who != "user"]
        passed = {v for c in value.get("calls") or [] if isinstance(c, dict)
                  for v in scalars(c.get("arguments"))}
        given = [next((v for v in scalars(r) if v not in passed), "") for r in results]
        value["reply"] = " ".join([value["reply"], *filter(None, given)])
    if isinstance(value, dict) and isinstance(value.get("subtasks"), list):
        # a plan's goals ask for what the prompt says each subtask's tools do
        prompt = "\n".join(m.content for m in request.messages)
        does = re.findall(r"^- Subtask \d+: (.+)\.$", prompt, re.M)
        for sub, says in zip(value["subtasks"], does, strict=False):
            if isinstance(sub, dict) and "goal" in sub:
                sub["goal"] = f"I want to {says} ({sub['goal']})"
        for sub in value["subtasks"] if not does else []:  # tools picked: their actions
            if isinstance(sub, dict) and "goal" in sub and isinstance(sub.get("tools"), list):
                acts = " and ".join(dict.fromkeys(verb(str(t)) for t in sub["tools"]))
                sub["goal"] = f"I want to {acts} ({sub['goal']})"
    return value

