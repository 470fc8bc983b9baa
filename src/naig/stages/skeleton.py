"""Stage 1b, trajectory initialization: the coarse dialogue, subtask by subtask.

For each subtask one LLM answer holds the user's request (carrying every argument
value), the tool-calling steps with their calls and results written together, and the
assistant's closing reply. Turn types alternate strictly: call then results, reply then
user. The results in the dialogue are the environment's (a simulated environment takes
the written ones).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from naig.dialogue import Message, Subtask
from naig.llm.structured import ask
from naig.prompts import instructions, render
from naig.stages.calls import calls_schema, made, make_calls, require_new
from naig.stages.draft import Draft
from naig.transcript import transcript


def _schema(tools: list[Any], steps: int) -> dict[str, Any]:
    step = {"type": "object", "additionalProperties": False, "required": ["calls"],
            "properties": {"calls": calls_schema(tools, with_result=True)}}
    return {"type": "object", "additionalProperties": False,
            "required": ["user", "steps", "reply"],
            "properties": {"user": {"type": "string", "minLength": 1},
                           "steps": {"type": "array", "items": step,
                                     "minItems": steps, "maxItems": steps},
                           "reply": {"type": "string", "minLength": 1}}}


def _validate(steps: int, before: list[Message], *, strict: bool
              ) -> Callable[[Any], dict[str, Any]]:
    def check(raw: Any) -> dict[str, Any]:
        if not isinstance(raw, dict) or len(raw.get("steps", [])) != steps:
            raise ValueError(f"'steps' must have exactly {steps} items")
        if not str(raw.get("user", "")).strip() or not str(raw.get("reply", "")).strip():
            raise ValueError("'user' and 'reply' must not be empty")
        history = made(before)
        for k, step in enumerate(raw["steps"], 1):
            if not isinstance(step, dict) or not isinstance(step.get("calls"), list):
                raise ValueError(f'step {k} must be {{"calls": [...]}}')
            try:
                require_new(step["calls"], history, strict=strict)
            except ValueError as e:
                raise ValueError(f"step {k}: {e}; each step must do something new") from None
        return raw
    return check


async def _subtask(d: Draft, task: str, sub: Subtask) -> None:
    tools = [t for t in (d.tool(n) for n in sub.tools) if t is not None]
    history = transcript(d.messages)
    messages, digest = render("skeleton", system=d.env.system_prompt(), task=task,
                              history=history, goal=sub.goal, tools=sub.tools, steps=sub.steps)
    check = _validate(sub.steps, d.messages, strict=not d.env.executes)
    raw = await ask(d.llm, messages, _schema(tools, sub.steps), check,
                    stage="skeleton", seed=d.request_seed("skeleton"), template_hash=digest,
                    temperature=d.settings.temperature, max_tokens=400 + 250 * sub.steps,
                    attempts=d.settings.attempts_per_output,
                    instructions=instructions(messages, history, task, sub.goal))
    d.append(Message(role="user", content=raw["user"].strip()))
    for step in raw["steps"]:
        d.append(*await make_calls(d, step["calls"]))
    d.append(Message(role="assistant", content=raw["reply"].strip()))


async def skeleton(d: Draft) -> None:
    assert d.plan is not None, "plan before skeleton"
    for sub in d.plan.subtasks:
        await _subtask(d, d.plan.task, sub)
