"""Data statistics of a set of dialogues, the same measure for every method.

Shape (user turns per dialogue, tool calls per user turn, distinct tools), lexical
diversity (distinct-n: unique n-grams over all n-grams of the corpus, n-grams taken
within one message) and the share of dialogues showing each behaviour. Behaviours are
found by heuristics on the messages alone, never from a method's own log, so both
methods are measured alike:

- clarification: the assistant asks a question (text with ``?``, not a refusal) before
  any call of the request it answers, and the user's answer leads to a call;
- error recovery: a tool result with an ``error`` key, then another call before the
  user speaks again;
- refusal: a text reply, with no call since the user spoke, that says it cannot;
- chit-chat: a user turn answered in text with no call in that exchange, that is
  neither a clarification question nor a refusal;
- unrecovered error: a tool result with an ``error`` key that no other call follows before
  the user speaks again (the error is the last word: where tools are real, a call that
  failed by accident rather than an error simulation, which always retries).

``refinement_stats`` reads the records' refinement log instead: what refinement and
repair tried, and on what evidence they kept a rewrite.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from naig.dialogue import Message, Refinement

_WORD = re.compile(r"\w+")
_REFUSAL = re.compile(
    r"\b(cannot|can't|can not|unable to|not able to|isn't something i can|"
    r"not something i can|(?:don't|do not) have (?:a |the |any )?(?:tool|way|access|ability)|"
    r"no (?:tool|way) to|not (?:available|supported) (?:to me|with))", re.IGNORECASE)
BEHAVIOURS = ("clarification", "error_recovery", "refusal", "chit_chat", "unrecovered_error")


@dataclass(frozen=True)
class CorpusStats:
    dialogues: int
    user_turns_per_dialogue: float
    calls_per_user_turn: float
    """All tool calls over all user turns of the corpus."""
    distinct_tools_per_dialogue: float
    distinct_tools: int
    """Different tools called anywhere in the corpus."""
    user_distinct_2: float
    user_distinct_3: float
    assistant_distinct_2: float
    assistant_distinct_3: float
    clarification: float
    """Share of dialogues (0 to 1) with each behaviour."""
    error_recovery: float
    refusal: float
    chit_chat: float
    unrecovered_error: float

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


def distinct_n(texts: Iterable[str], n: int) -> float:
    """Unique n-grams over all n-grams (lower-cased words), 0.0 where there are none."""
    grams: list[tuple[str, ...]] = []
    for text in texts:
        words = _WORD.findall(text.lower())
        grams += [tuple(words[k:k + n]) for k in range(len(words) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def _exchanges(messages: Sequence[Message]) -> list[list[Message]]:
    """The dialogue split at user messages: each a user turn and what answers it."""
    out: list[list[Message]] = []
    for m in messages:
        if m.role == "user":
            out.append([m])
        elif out and m.role != "system":
            out[-1].append(m)
    return out


def _text_replies(ex: list[Message]) -> list[Message]:
    return [m for m in ex if m.role == "assistant" and not m.tool_calls and m.content]


def _calls(ex: list[Message]) -> bool:
    return any(m.tool_calls for m in ex)


def _refuses(m: Message) -> bool:
    return bool(_REFUSAL.search((m.content or "").replace("\u2019", "'")))


def _asks(ex: list[Message], following: list[Message] | None) -> bool:
    """The exchange ends in a question, with no call before it, and the user's answer
    leads to a call."""
    replies = _text_replies(ex)
    return (bool(replies) and not _calls(ex) and "?" in (replies[-1].content or "")
            and following is not None and _calls(following))


def behaviours(messages: Sequence[Message]) -> set[str]:
    """The behaviours (``BEHAVIOURS``) one dialogue shows, by the module's heuristics."""
    found: set[str] = set()
    exchanges = _exchanges(messages)
    for k, ex in enumerate(exchanges):
        following = exchanges[k + 1] if k + 1 < len(exchanges) else None
        for i, m in enumerate(ex):
            if m.is_error:
                found.add("error_recovery" if _calls(ex[i + 1:]) else "unrecovered_error")
        replies = _text_replies(ex)
        refuses = not _calls(ex) and any(_refuses(m) for m in replies)
        if refuses:
            found.add("refusal")
        asks = not refuses and _asks(ex, following)
        if asks:
            found.add("clarification")
        if replies and not _calls(ex) and not asks and not refuses:
            found.add("chit_chat")
    return found


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def corpus_stats(dialogues: Sequence[Sequence[Message]]) -> CorpusStats:
    user_turns = [sum(m.role == "user" for m in d) for d in dialogues]
    calls = [sum(len(m.tool_calls or []) for m in d) for d in dialogues]
    used = [{c.function.name for m in d for c in m.tool_calls or []} for d in dialogues]
    users = [m.content or "" for d in dialogues for m in d if m.role == "user"]
    assistant = [m.content or "" for d in dialogues for m in d if m.role == "assistant"]
    shown = [behaviours(d) for d in dialogues]
    share = {b: _mean([float(b in s) for s in shown]) for b in BEHAVIOURS}
    return CorpusStats(
        dialogues=len(dialogues),
        user_turns_per_dialogue=_mean(user_turns),
        calls_per_user_turn=sum(calls) / sum(user_turns) if sum(user_turns) else 0.0,
        distinct_tools_per_dialogue=_mean([len(u) for u in used]),
        distinct_tools=len(set().union(*used)) if used else 0,
        user_distinct_2=distinct_n(users, 2), user_distinct_3=distinct_n(users, 3),
        assistant_distinct_2=distinct_n(assistant, 2),
        assistant_distinct_3=distinct_n(assistant, 3),
        **share)


def refinement_stats(refinements: Iterable[Refinement]) -> dict[str, int]:
    """What refinement and repair did, from the records' logs: turns masked; candidates
    written (a rewrite was produced); decided (it differed from the original); accepted,
    and on which evidence (a check it fixed, the judge in both orders); and the same for
    the repair rounds alone."""
    out = dict.fromkeys(("masked", "written", "decided", "accepted", "by_check", "by_judge",
                         "repair_rounds", "repair_accepted"), 0)
    for r in refinements:
        out["repair_rounds"] += r.repair
        for kept, reason in zip(r.kept, r.reasons, strict=False):
            out["masked"] += 1
            written = not reason.startswith("no valid candidate")
            out["written"] += written
            out["decided"] += written and reason != "candidate identical"
            if kept == "new":
                out["accepted"] += 1
                out["repair_accepted"] += r.repair
                out["by_check"] += reason.startswith("candidate fixes")
                out["by_judge"] += reason.startswith("judge preferred")
    return out


__all__ = ["BEHAVIOURS", "CorpusStats", "behaviours", "corpus_stats", "distinct_n",
           "refinement_stats"]
