"""The refinement judge, and the measure of whether it is worth its calls.

The judge compares a candidate turn with the original and names the better one. A small
judge mostly names whichever version it is shown first (or second), whatever they say;
its choice then carries no signal, and every call spent on it is lost. So:

- **Decision table.** The candidate must win in both orders. The first call shows the two
  in a random order; if the judge picks the original, the candidate has lost and no second
  call is made. Only when it picks the candidate is the order swapped and asked again: the
  candidate wins if it is picked again; if not, the judge followed the position.
- **A canary per dialogue.** Before a dialogue's first judgement (with ``judge="auto"``)
  the judge is shown a pair whose answer is known: the dialogue's last reply against an
  earlier reply put in its place, in both orders (the first drawn, and the second asked
  only if the first went right). A judge that does not prefer the real reply both times
  carries no signal, and is not asked again in that dialogue; nor is one
  whose choice on a candidate followed the position. Refinement then spends calls only
  where a check gives evidence (``naig.stages.refine``). The test is the dialogue's own,
  so a record never depends on which dialogues ran before it, how many ran at once, or on
  which machine.
- **Reporting.** ``JudgeMonitor`` adds up, across a run, the canaries passed, the judge's
  calls and how often its choice survived swapping the order; the summary reports it and
  suggests ``--judge off`` for a judge that fails its canaries.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from naig.config import derive_seed
from naig.dialogue import Message
from naig.errors import ModelOutputError
from naig.llm.structured import REASON_CHARS, ask
from naig.prompts import render
from naig.transcript import describe, transcript

if TYPE_CHECKING:  # the draft holds the run's monitor: no import at run time
    from naig.stages.draft import Draft

_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["better", "reason"],
           "properties": {"better": {"enum": ["A", "B"]},
                          "reason": {"type": "string", "maxLength": REASON_CHARS}}}


def upper_bound(successes: int, n: int, z: float = 1.96) -> float:
    """Upper end of the Wilson score interval of a rate (1.0 with no trials)."""
    if n == 0:
        return 1.0
    p = successes / n
    centre = p + z * z / (2 * n)
    margin = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return (centre + margin) / (1 + z * z / n)


@dataclass
class JudgeMonitor:
    """The judge's record across a run: counts only, which decide nothing."""

    canaries: int = 0
    passed: int = 0
    """Canaries where the judge preferred the real reply in both orders."""
    calls: int = 0
    """Judge calls, canaries included."""
    pairs: int = 0
    """Candidate judgements asked in both orders."""
    kept: int = 0
    """Of those, the ones where the judge named the same version both times."""
    accepted: int = 0
    """Candidates the judge accepted."""

    @property
    def signal(self) -> bool:
        """False once the canaries show the judge follows the position (the upper end of
        the 95% interval of their pass rate below one half)."""
        return self.canaries < 4 or upper_bound(self.passed, self.canaries) >= 0.5

    def describe(self) -> str:
        if not self.calls:
            return "judge: not asked"
        out = (f"judge: {self.calls} calls; canaries passed {self.passed} of {self.canaries}; "
               f"choice survived swapping the order in {self.kept} of {self.pairs} "
               f"judgements; {self.accepted} candidates accepted")
        if not self.signal:
            out += " (it follows the position: --judge off saves its calls)"
        return out


def _show(messages: list[Message]) -> str:
    return " | ".join(describe(m) for m in messages)


async def _prefers(d: Draft, at: int, kind: str, first: list[Message],
                   second: list[Message]) -> bool:
    """One judge call: True when it prefers the version shown first (as A)."""
    messages, digest = render("judge", frame=d.frame,
                              transcript=transcript(d.messages, {at: "[TURN]"}), kind=kind,
                              a=_show(first), b=_show(second))
    raw = await ask(d.llm, messages, _SCHEMA, _answer, stage="refine",
                    seed=d.request_seed("judge"), template_hash=digest, temperature=0.0,
                    max_tokens=200, attempts=d.settings.attempts_per_output)
    d.judge.calls += 1
    return bool(raw["better"] == "A")


def _answer(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("better") not in ("A", "B"):
        raise ValueError('"better" must be "A" or "B"')
    return raw


async def _canary(d: Draft) -> bool:
    """Whether the judge prefers a real reply of the dialogue to a wrong one, in both
    orders. The wrong one is another reply of the same dialogue, out of its place: as
    fluent as the real one, so only reading the context tells them apart (a reply with its
    words shuffled, where the dialogue has a single reply)."""
    replies = [i for i, m in enumerate(d.messages) if m.role == "assistant"
               and not m.tool_calls and len(set((m.content or "").split())) >= 4]
    if not replies:
        return True  # nothing to test it on: trust it, as with judge="on"
    at = replies[-1]
    real = d.turns[at].message
    others = [d.messages[i].content for i in replies[:-1]
              if d.messages[i].content != real.content]
    if others:
        wrong = others[0] or ""
    else:
        words = (real.content or "").split()
        shuffled = words[:]
        while shuffled == words:
            d.rng.shuffle(shuffled)
        wrong = " ".join(shuffled)
    fake = real.model_copy(update={"content": wrong})
    # which order is asked first is drawn (from the dialogue's seed alone): a judge that
    # always names the same position then fails at the first call half the time, and the
    # second call is saved
    real_first = random.Random(derive_seed(d.seed, "canary order")).random() < 0.5
    orders = [([real], [fake], True), ([fake], [real], False)]
    try:
        ok = True
        for a, b, real_is_a in orders if real_first else orders[::-1]:
            if await _prefers(d, at, "assistant reply", a, b) != real_is_a:
                ok = False
                break
    except ModelOutputError:
        ok = False
    d.judge.canaries += 1
    d.judge.passed += ok
    return ok


async def trusted(d: Draft) -> bool:
    """Whether this dialogue may use the judge: by the setting, or by its canary."""
    if d.judge_trusted is None:
        setting = d.settings.judge
        d.judge_trusted = setting == "on" or (setting == "auto" and await _canary(d))
    return d.judge_trusted


async def judge(d: Draft, at: int, kind: str, original: list[Message],
                candidate: list[Message]) -> tuple[bool, str]:
    """Whether ``candidate`` is better than ``original`` at turn ``at``, and the evidence,
    by the decision table above (one call where the first decides, else two)."""
    try:
        new_first = d.rng.random() < 0.5
        a, b = (candidate, original) if new_first else (original, candidate)
        if await _prefers(d, at, kind, a, b) != new_first:
            return False, "judge preferred the original"
        flipped = await _prefers(d, at, kind, b, a) == new_first  # it named the original now
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


__all__ = ["JudgeMonitor", "judge", "trusted", "upper_bound"]
