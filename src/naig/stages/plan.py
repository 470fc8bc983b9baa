"""Stage 1a, task initialization: a task of m subtasks, each with its tools and steps.

``m`` and each subtask's step count are drawn before the LLM is asked (m from
[subtasks_min, subtasks_max], steps from [steps_min, steps_max]) and kept: a subtask may
call a tool again with new arguments (a call made again with the same ones is refused
where the steps are written). The LLM writes the goals and picks the tools; code orders
each subtask's tools by the data that flows between them (``dependency_order``: a search
before the booking that needs its ID) and adds a source a tool needs where nothing
earlier produces it (``with_sources``), with a step to call it.
"""

from __future__ import annotations

from typing import Any

from naig.dialogue import Plan, Subtask
from naig.grounding import dependency_order, with_sources
from naig.llm.structured import ask
from naig.prompts import render
from naig.stages.draft import Draft


def _schema(names: list[str], m: int, most_tools: int) -> dict[str, Any]:
    subtask = {"type": "object", "additionalProperties": False, "required": ["goal", "tools"],
               "properties": {"goal": {"type": "string"},
                              "tools": {"type": "array", "items": {"enum": names},
                                        "minItems": 1, "maxItems": most_tools}}}
    return {"type": "object", "additionalProperties": False, "required": ["task", "subtasks"],
            "properties": {"task": {"type": "string"},
                           "subtasks": {"type": "array", "items": subtask,
                                        "minItems": m, "maxItems": m}}}


async def plan(d: Draft) -> Plan:
    s = d.settings
    m = d.rng.randint(s.subtasks_min, max(s.subtasks_min, s.subtasks_max))
    steps = [d.rng.randint(s.steps_min, max(s.steps_min, s.steps_max)) for _ in range(m)]
    names = [t.name for t in d.tools]
    by_name = {t.name: t for t in d.tools}

    def validate(raw: Any) -> Plan:
        subtasks = raw["subtasks"]
        if len(subtasks) != m:
            raise ValueError(f"'subtasks' must have exactly {m} items")
        out: list[Subtask] = []
        for sub, n in zip(subtasks, steps, strict=True):
            unknown = [t for t in sub["tools"] if t not in names]
            if unknown:
                raise ValueError(f"unknown tools {unknown}; use only {names}")
            if not str(sub["goal"]).strip():
                raise ValueError("every subtask needs a goal")
            listed = dependency_order(list(dict.fromkeys(sub["tools"])), by_name)
            earlier = [t for s in out for t in s.tools]
            tools = with_sources(listed, earlier, by_name)
            added = len(tools) - len(listed)  # a source added: a step to call it
            out.append(Subtask(goal=sub["goal"], tools=tools, steps=max(n, 1 + added)))
        return Plan(task=str(raw["task"]), subtasks=out)

    messages, digest = render("plan", frame=d.frame, state=d.env.state_summary(),
                              subtasks=[{"steps": n} for n in steps])
    result = await ask(d.llm, messages, _schema(names, m, max(steps)), validate, stage="plan",
                       seed=d.request_seed("plan"), template_hash=digest,
                       temperature=s.temperature, attempts=s.attempts_per_output)
    d.plan = result
    return result
