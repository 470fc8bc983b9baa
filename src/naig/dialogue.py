"""The data model: a dialogue and the record it is written as.

Wire form (one JSON object per line) is documented in DESIGN.md: ``messages`` and
``tools`` are exactly what OpenAI-style fine-tuning accepts; everything of ours lives
under ``meta``. Every model here forbids unknown fields and round-trips through JSON.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FunctionCall(_Model):
    name: str
    arguments: str
    """JSON-encoded arguments, as in the OpenAI wire format."""


class ToolCall(_Model):
    id: str
    type: Literal["function"] = "function"
    function: FunctionCall


class Message(_Model):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None

    @model_serializer(mode="wrap")
    def _wire(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # OpenAI's wire form: ``content`` is always present (null beside tool calls);
        # ``tool_calls`` and ``tool_call_id`` only where they apply.
        data: dict[str, Any] = handler(self)
        data["content"] = self.content
        for key in ("tool_calls", "tool_call_id"):
            if data.get(key) is None:
                data.pop(key, None)
        return data

    @property
    def is_call(self) -> bool:
        return self.role == "assistant" and bool(self.tool_calls)

    @property
    def is_error(self) -> bool:
        """A tool result that reports an error (a JSON object with an ``error`` key)."""
        if self.role != "tool":
            return False
        try:
            value = json.loads(self.content or "")
        except ValueError:
            return False
        return isinstance(value, dict) and "error" in value


def call_key(name: str, arguments: Any) -> tuple[str, str]:
    """What makes two calls the same call: the tool and the arguments (as JSON text or
    decoded), key order aside."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return name, arguments
    return name, json.dumps(arguments, sort_keys=True, separators=(",", ":"))


class MadeCall(NamedTuple):
    at: int
    """Index of the message that made the call."""
    key: tuple[str, str]
    """``call_key``: what makes two calls the same call."""
    result: str | None
    """The result's content; None where it was an error or is missing."""


def made_calls(messages: list[Message]) -> list[MadeCall]:
    """Every call in ``messages``, in order, with its result where it succeeded."""
    results = {m.tool_call_id: m for m in messages if m.role == "tool"}
    out = []
    for i, m in enumerate(messages):
        for c in m.tool_calls or []:
            r = results.get(c.id)
            out.append(MadeCall(i, call_key(c.function.name, c.function.arguments),
                                None if r is None or r.is_error else r.content))
    return out


class Subtask(_Model):
    goal: str
    tools: list[str]
    steps: int


class Plan(_Model):
    task: str
    subtasks: list[Subtask]


class Injection(_Model):
    type: Literal["clarification", "tool_awareness", "error_simulation", "non_function_calling"]
    at: int
    """Index in ``messages`` of the turn that was rewritten."""
    added: int
    """How many turns the injection added."""


def context_key(messages: list[Message]) -> str:
    """What a preference pair's context is, call ids aside (they are renumbered at the end):
    a short hash of each message's role, text and calls."""
    shown = [[m.role, m.content, [[c.function.name, c.function.arguments]
                                  for c in m.tool_calls or []]] for m in messages]
    return hashlib.sha256(json.dumps(shown).encode()).hexdigest()[:16]


class Pair(_Model):
    """Two versions of one assistant turn in the same context, ranked by evidence (a check
    the rewrite fixed or broke, an expert asked again, the judge in both orders): data for
    preference tuning (``naig export -f dpo``)."""

    at: int
    """The turn's index in the dialogue as it was when decided."""
    context: str
    """``context_key`` of the turns before it then: the pair is exported only where the
    final dialogue still opens the same way."""
    chosen: list[Message]
    rejected: list[Message]
    """Each: the assistant turn, with its calls' results where it made calls."""
    evidence: str


class Refinement(_Model):
    step: int
    masked: list[int]
    kept: list[Literal["new", "original"]]
    reasons: list[str] = Field(default_factory=list)
    """Per masked turn, the evidence for what was kept: the check a candidate fixed or
    broke, the judge's verdict (in both orders where it was asked twice), or why none."""
    repair: bool = False
    """A repair round after a failed verification, aimed at the turns its checks blamed."""
    pairs: list[Pair] = Field(default_factory=list)
    """The assistant turns of this step decided on evidence, as preference pairs."""


class Check(_Model):
    name: str
    passed: bool
    detail: str = ""


class Verification(_Model):
    passed: bool
    checks: list[Check]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]


class StageUsage(_Model):
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    """Of the prompt tokens, those served from the model's prefix cache (not evaluated
    again; priced at the cached-input price where one is known)."""
    seconds: float = 0.0
    cost_usd: float = 0.0
    """At the model's price in the run's price table (0 for local models)."""

    def add(self, other: StageUsage) -> None:
        self.calls += other.calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cached_prompt_tokens += other.cached_prompt_tokens
        self.seconds += other.seconds
        self.cost_usd += other.cost_usd


class Usage(StageUsage):
    by_stage: dict[str, StageUsage] = Field(default_factory=dict)


class EnvironmentInfo(_Model):
    name: str
    initial_state: dict[str, Any] = Field(default_factory=dict)


class Meta(_Model):
    method: str = "naig"
    seed: int
    model: str
    config_hash: str
    environment: EnvironmentInfo
    plan: Plan | None = None
    injections: list[Injection] = Field(default_factory=list)
    refinements: list[Refinement] = Field(default_factory=list)
    verification: Verification | None = None
    usage: Usage = Field(default_factory=Usage)
    error: str | None = None
    """Why the dialogue could not be produced at all (the model never gave a valid turn)."""


class Record(_Model):
    """One dialogue as written to the output: a JSONL line."""

    id: str
    tools: list[dict[str, Any]]
    messages: list[Message]
    meta: Meta

    def to_json(self) -> str:
        return self.model_dump_json(exclude_none=True)

    @classmethod
    def from_json(cls, line: str) -> Record:
        return cls.model_validate_json(line)
