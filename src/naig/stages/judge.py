"""The refinement judge, and the measure of whether it is worth its calls.

The judge compares a candidate turn with the original and names the better one. A small
judge mostly names whichever version it is shown first (or second), whatever they say;
its choice then carries no signal, and every call spent on it is lost. So:

- **Decision table.** The candidate must win in both orders. The first call shows the two
  in a random order; if the judge picks the original, the candidate has lost and no second
  call is made. Only when it picks the candidate is the order swapped and asked again: the
  candidate wins if it is picked again; if not, the judge followed the position, and (with
  ``judge="auto"``) it is not asked again in that dialogue.
- **Calibration, once per run.** Before the run's first judgement (with ``judge="auto"``)
  the judge is shown known pairs (``data/judge_calibration.json``: a dialogue's real last
  reply against a fluent one its context makes wrong), each in both orders, the first
  drawn from a fixed seed; it stops at the first wrong answer. A judge that does not pass
  every pair carries no signal and is asked nothing in the run: refinement then spends
  calls only where a check gives evidence (``naig.stages.refine``). The pairs, seeds and
  model fix the outcome, so a record never depends on which dialogues ran before it, how
  many ran at once, or on which machine; only which dialogue's usage carries the
  calibration's few calls does.
- **Reporting.** ``JudgeMonitor`` adds up, across a run, the calibration, the judge's
  calls and how often its choice survived swapping the order; the summary reports it.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from naig.config import derive_seed
from naig.dialogue import Message
from naig.errors import ModelOutputError
from naig.llm.accounting import Ledger, ledger
from naig.llm.structured import REASON_CHARS, ask
from naig.prompts import render, render_text
from naig.tools import tool_from_dict
from naig.transcript import describe, tool_line, transcript

if TYPE_CHECKING:  # the draft holds the run's monitor: no import at run time
    from naig.llm.base import LLM
    from naig.stages.draft import Draft

_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["better", "reason"],
           "properties": {"better": {"enum": ["A", "B"]},
                          "reason": {"type": "string", "maxLength": REASON_CHARS}}}


@dataclass
class JudgeMonitor:
    """The judge's record across a run: its calibration, and counts that decide nothing."""

    known_pairs: int = 0
    """Known pairs the calibration asked."""
    passed: int = 0
    """Of those, the ones where the judge preferred the real reply in both orders."""
    calibrated: bool | None = None
    """The calibration's outcome (None until asked): whether the run may use the judge."""
    calls: int = 0
    """Judge calls, the calibration's included."""
    pairs: int = 0
    """Candidate judgements asked in both orders."""
    kept: int = 0
    """Of those, the ones where the judge named the same version both times."""
    accepted: int = 0
    """Candidates the judge accepted."""
    spent: Ledger = field(default_factory=Ledger, repr=False, compare=False)
    """The calibration's LLM work: the run's, charged to no dialogue's record (records stay
    the same whichever dialogue asked first, on one machine or on many)."""
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock, repr=False, compare=False)

    @property
    def signal(self) -> bool:
        """False once the calibration shows the judge follows the position."""
        return self.calibrated is not False

    def describe(self) -> str:
        if not self.calls:
            return "judge: not asked"
        out = (f"judge: {self.calls} calls; calibration passed {self.passed} of "
               f"{self.known_pairs} known pairs")
        if not self.signal:
            return out + " (it follows the position: not asked in this run)"
        return (out + f"; choice survived swapping the order in {self.kept} of {self.pairs} "
                f"judgements; {self.accepted} candidates accepted")

    async def calibrate(self, llm: LLM, attempts: int) -> bool:
        """Whether the run may use the judge: asked once, by the first dialogue that needs
        it (the others wait for the outcome)."""
        async with self._lock:
            if self.calibrated is None:
                with ledger(self.spent):  # every call, an interrupted calibration's too
                    self.calibrated = await _calibration(self, llm, attempts)
            return self.calibrated

    def __getstate__(self) -> dict[str, Any]:
        """Without the lock, which may be bound to an event loop (a Ray shard sends its
        summary, monitor included, to the driver)."""
        return {k: v for k, v in vars(self).items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        vars(self).update(state)
        self._lock = asyncio.Lock()


def _show(messages: list[Message]) -> str:
    return " | ".join(describe(m) for m in messages)


async def _prefers(llm: LLM, frame: str, context: list[Message], at: int, kind: str,
                   first: list[Message], second: list[Message], *, seed: int,
                   attempts: int, stage: str = "refine") -> bool:
    """One judge call: True when it prefers the version shown first (as A)."""
    messages, digest = render("judge", frame=frame, transcript=transcript(context, {at: "[TURN]"}),
                              kind=kind, a=_show(first), b=_show(second))
    raw = await ask(llm, messages, _SCHEMA, _answer, stage=stage, seed=seed,
                    template_hash=digest, temperature=0.0, max_tokens=200, attempts=attempts)
    return bool(raw["better"] == "A")


def _answer(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("better") not in ("A", "B"):
        raise ValueError('"better" must be "A" or "B"')
    return raw


def calibration_cases() -> tuple[str, list[dict[str, Any]]]:
    """The known pairs: the system message they share, and each case's tools, messages
    (the last one the real reply) and wrong reply."""
    raw = json.loads(resources.files("naig.data").joinpath("judge_calibration.json")
                     .read_text("utf-8"))
    return raw["system"], raw["cases"]


async def _calibration(monitor: JudgeMonitor, llm: LLM, attempts: int) -> bool:
    """Whether the judge prefers each known pair's real reply in both orders (the first
    order drawn from a fixed seed, so a judge that always names one position mostly fails
    at its first or second call); stops at the first wrong answer."""
    system, cases = calibration_cases()
    monitor.known_pairs = monitor.passed = 0  # an interrupted calibration starts again
    for k, case in enumerate(cases):
        tools = [tool_from_dict(t, f"judge calibration case {k}") for t in case["tools"]]
        frame = render_text("frame", system=system, tools=[tool_line(t) for t in tools],
                            state="")
        context = [Message(role="system", content=system),
                   *(Message.model_validate(m) for m in case["messages"])]
        at = len(context) - 1
        real = context[at]
        fake = real.model_copy(update={"content": case["wrong"]})
        orders = [([real], [fake], True), ([fake], [real], False)]
        if random.Random(derive_seed(0, "judge calibration", k)).random() < 0.5:
            orders.reverse()
        monitor.known_pairs += 1
        for n, (a, b, real_is_a) in enumerate(orders):
            monitor.calls += 1
            try:
                right = await _prefers(llm, frame, context, at, "assistant reply", a, b,
                                       seed=derive_seed(0, "judge calibration", k, n),
                                       attempts=attempts, stage="calibrate") == real_is_a
            except ModelOutputError:
                right = False
            if not right:
                return False
        monitor.passed += 1
    return True


async def trusted(d: Draft) -> bool:
    """Whether this dialogue may use the judge: by the setting, or by the run's calibration
    (and not where it followed the position in this dialogue already)."""
    if d.judge_trusted is None:
        setting = d.settings.judge
        d.judge_trusted = setting == "on" or (
            setting == "auto" and await d.judge.calibrate(d.llm, d.settings.attempts_per_output))
    return d.judge_trusted


async def judge(d: Draft, at: int, kind: str, original: list[Message],
                candidate: list[Message]) -> tuple[bool, str]:
    """Whether ``candidate`` is better than ``original`` at turn ``at``, and the evidence,
    by the decision table above (one call where the first decides, else two)."""
    async def prefers(first: list[Message], second: list[Message]) -> bool:
        d.judge.calls += 1
        return await _prefers(d.llm, d.frame, d.messages, at, kind, first, second,
                              seed=d.request_seed("judge"),
                              attempts=d.settings.attempts_per_output)
    try:
        new_first = d.rng.random() < 0.5
        a, b = (candidate, original) if new_first else (original, candidate)
        if await prefers(a, b) != new_first:
            return False, "judge preferred the original"
        flipped = await prefers(b, a) == new_first  # it named the original now
    except ModelOutputError as e:
        return False, f"no valid judgement: {e}"
    d.judge.pairs += 1
    d.judge.kept += not flipped
    if flipped:
        if d.settings.judge == "auto":
            d.judge_trusted = False  # it followed the position here: not asked again
        return False, "judge's preference followed position: kept the original"
    d.judge.accepted += 1
    return True, "judge preferred the candidate in both orders"


__all__ = ["JudgeMonitor", "calibration_cases", "judge", "trusted"]
