"""The dialogue under construction, shared by the stages of one method.

A ``Draft`` holds the turns (messages with their refinement bookkeeping), the
dialogue's tools, environment, LLM, seed and random source. Stages edit it only through
``replace`` so the bookkeeping (selection counts, injection marks) follows the turns.
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass, field

from naig.config import MethodSettings, derive_seed
from naig.dialogue import Injection, Message, Plan, Refinement
from naig.envs.base import Environment
from naig.llm.base import LLM
from naig.prompts import render_text
from naig.stages.judge import JudgeMonitor
from naig.tools import Tool
from naig.transcript import tool_line


@dataclass
class Turn:
    message: Message
    selections: int = 0
    """How often refinement has masked this turn (its weight decays with each)."""
    injected: bool = False
    """Touched by a complexity injection: not injected again."""


@dataclass
class Draft:
    llm: LLM
    env: Environment
    tools: list[Tool]
    seed: int
    settings: MethodSettings
    judge: JudgeMonitor = field(default_factory=JudgeMonitor)
    """The refinement judge's record across the run (shared by its dialogues; counts only)."""
    judge_trusted: bool | None = None
    """Whether this dialogue may use the judge (None until first needed: the setting, or the
    run's calibration; False once it followed the position here)."""
    unavailable: list[Tool] = field(default_factory=list)
    """Tools of the pool the assistant does not have, for tool-awareness injections."""
    turns: list[Turn] = field(default_factory=list)
    plan: Plan | None = None
    injections: list[Injection] = field(default_factory=list)
    refinements: list[Refinement] = field(default_factory=list)
    rng: random.Random = field(init=False)
    _requests: int = 0
    _call_ids: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        if not self.turns:
            extra = self.env.system_prompt()
            text = render_text("system") + (f"\n\n{extra}" if extra else "")
            self.turns = [Turn(Message(role="system", content=text))]

    @property
    def messages(self) -> list[Message]:
        return [t.message for t in self.turns]

    @property
    def system(self) -> str:
        return self.turns[0].message.content or ""

    @functools.cached_property
    def frame(self) -> str:
        """The writer's view of this dialogue, the same for every generation request so
        that consecutive requests share their opening: the assistant's system message, the
        tools, and what exists in the start state."""
        return render_text("frame", system=self.system, tools=[tool_line(t) for t in self.tools],
                           state=self.start_state)

    @functools.cached_property
    def start_state(self) -> str:
        """What the planner is told of the start state (``Environment.state_summary``), as
        it was before any call: the user knows their own records from it."""
        return self.env.state_summary()

    def tool(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    def request_seed(self, label: str) -> int:
        """A fresh seed for the next LLM request, the same on every rerun."""
        self._requests += 1
        return derive_seed(self.seed, label, self._requests)

    def call_id(self) -> str:
        self._call_ids += 1
        return f"call_{self._call_ids}"

    def number_calls(self) -> None:
        """Renumber call ids ``call_1``, ``call_2``... in dialogue order (results follow)."""
        names: dict[str, str] = {}
        for t in self.turns:
            m = t.message
            if m.tool_calls:
                calls = []
                for c in m.tool_calls:
                    names[c.id] = f"call_{len(names) + 1}"
                    calls.append(c.model_copy(update={"id": names[c.id]}))
                t.message = m.model_copy(update={"tool_calls": calls})
            elif m.role == "tool" and m.tool_call_id in names:
                t.message = m.model_copy(update={"tool_call_id": names[m.tool_call_id]})

    def append(self, *messages: Message) -> None:
        self.turns += [Turn(m) for m in messages]

    def replace(self, at: int, count: int, messages: list[Message], *,
                keep: int | None = None, injected: bool = False) -> None:
        """Put ``messages`` in place of ``turns[at:at+count]``.

        ``keep`` names the index in ``messages`` that continues the turn at ``at`` (its
        selection count carries over); ``injected`` marks every new turn as injected.
        """
        new = [Turn(m, injected=injected) for m in messages]
        if keep is not None:
            old = self.turns[at]
            new[keep].selections = old.selections
            new[keep].injected = new[keep].injected or old.injected
        self.turns[at:at + count] = new

    def results_after(self, at: int) -> int:
        """How many tool messages follow the call at ``at``."""
        n = 0
        while at + 1 + n < len(self.turns) and self.turns[at + 1 + n].message.role == "tool":
            n += 1
        return n
