"""Stage 1a, task initialization: a task of m subtasks, each with its tools and steps.

``m`` and each subtask's step count are drawn before the LLM is asked (m from
[subtasks_min, subtasks_max], steps from [steps_min, steps_max]) and kept: a subtask may
call a tool again with new arguments (a call made again with the same ones is refused
where the steps are written).

Where the dialogue's tools show how data flows between them (a result field feeds another
tool's ID argument), code chooses each subtask's tools along that flow (``chains``: search
products, add one to the cart; then place the order, check its status) and the LLM writes
the task and the goals those tools achieve: structure from code, semantics from the
model. Elsewhere the LLM picks each subtask's tools too, and code orders them by what flow
it can see (``dependency_order``) and adds a source a tool needs where nothing earlier
produces it (``with_sources``), making sure the subtask has a step for it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from naig.dialogue import Plan, Subtask
from naig.errors import ModelOutputError, PromptTooLong
from naig.grounding import (
    candidates,
    chains,
    dependency_order,
    entity_names,
    mislabeled,
    verb,
    with_sources,
)
from naig.llm.structured import ask
from naig.prompts import render
from naig.stages.calls import named
from naig.stages.checks import ACTIONS, echoed, out_of_voice, unnamed
from naig.stages.draft import Draft
from naig.tools import Tool


def _schema(names: list[str], m: int, most_tools: int, *, pick: bool) -> dict[str, Any]:
    props: dict[str, Any] = {"goal": {"type": "string", "minLength": 1}}
    if pick:
        props["tools"] = {"type": "array", "items": {"enum": names}, "minItems": 1,
                          "maxItems": most_tools}
    subtask = {"type": "object", "additionalProperties": False, "required": list(props),
               "properties": props}
    return {"type": "object", "additionalProperties": False, "required": ["task", "subtasks"],
            "properties": {"task": {"type": "string", "minLength": 1},
                           "subtasks": {"type": "array", "items": subtask,
                                        "minItems": m, "maxItems": m}}}


def _family(tools: list[Tool]) -> list[Tool]:
    """The tools of the dialogue's family (the distractors left out)."""
    families = [t.family for t in tools]
    main = max(families, key=families.count)
    return [t for t in tools if t.family == main]


def _does(tool: Tool) -> str:
    """What a tool does, in words: its description's first sentence (the goals are the
    user's words, which never name a function), after BFCL's preamble (``Tool.summary``):
    shown the preamble's first sentence, the planner was told that every tool "belongs to
    the TwitterAPI" and copied that as a goal."""
    first = re.split(r"(?<=[.!?])\s", tool.summary, maxsplit=1)[0].rstrip(".")
    return (first[:1].lower() + first[1:]) if first else tool.name.replace("_", " ")


_GENERIC = frozenset({"the", "and", "for", "from", "with", "into", "that", "this", "its",
                      "their", "your", "given", "get", "find", "list", "user", "users",
                      "details", "information", "info", "data", "new", "one", "all", "by",
                      "id", "ids", "of", "to", "in", "on", "or", "an", "is", "are", "it"})


def _stems(text: str) -> set[str]:
    """The telling words of a text, cut to four letters (book, booking, booked) and split
    at case changes and underscores (``send_certificate``, ``getUserTweets``)."""
    spaced = re.sub(r"(?<=[a-z])(?=[A-Z])|_", " ", text)
    return {w[:4] for w in re.findall(r"[a-z]+", spaced.lower())
            if len(w) > 2 and w not in _GENERIC}


def _told(tools: Iterable[Tool]) -> set[str]:
    return {w for t in tools for w in _stems(f"{t.name} {_does(t)}")}


_SAID_AS: dict[str, frozenset[str]] = {
    verb: frozenset({*stems.split(), verb[:4]}) for verbs, stems in (
        ("cancel", ""), ("update modify change edit set", "upda modi chan edit swit swap repl"),
        ("book reserve", "book rese"), ("send", "give issu"),
        ("delete remove rm rmdir erase", "dele remo eras"),
        ("create add make mkdir touch", "crea add make"), ("mv move", "move rena"),
        ("rename", "chan"), ("cp copy", "copy dupl"), ("post", "twee publ shar"),
        ("retweet", "shar"), ("comment", "repl"), ("follow", ""), ("unfollow", "stop"),
        ("return", "refu"), ("exchange", "swap repl"),
        ("place order buy purchase", "plac orde buy purc"), ("transfer", "send move"),
        ("schedule", "book plan")) for verb in verbs.split()}
"""An action a tool whose name starts with the key does, and the words (cut to four
letters) a user asks for it with: a goal must ask for each of its own tools' actions."""


def unasked(goal: str, tools: Iterable[Tool]) -> str | None:
    """The actions of ``tools`` (``_SAID_AS``, or the verb their description opens with, as
    the plan's prompt says it: "check out the cart" for ``place_order``) that ``goal`` does
    not ask for, if any: also where the planner picked the tools (on GorillaFileSystem it
    gave ``cp`` to "move the file" and ``rmdir`` to "compare the two documents")."""
    words = _stems(goal)
    left = [v for t in tools if (v := verb(t.name)) in _SAID_AS
            and not words & (_SAID_AS[v] | _stems(_does(t).split(" ")[0]))]
    return f"does not ask to {' or '.join(dict.fromkeys(left))}" if left else None


def about(goal: str, tools: Iterable[Tool], others: Iterable[Tool] = ()) -> str | None:
    """Why a goal does not ask for what its own tools do, if it does not: it speaks of none
    of them (no word of a tool's name or of its description's first sentence), or asks for
    what only a later subtask's tools do (the verbs their names start with; an earlier
    subtask's may be recalled). A small model asked for one goal per subtask wrote them one
    tool off ("send a certificate to the user who owns it" for the subtask that books and
    cancels) or put the whole task in the first ("search ... and add to my cart" for a
    search alone, whose reply then claimed the adding): the skeleton cannot write such a
    subtask."""
    own, words = _told(tools), _stems(goal)
    if not words & own:
        return "speaks of none of its tools"
    elsewhere = sorted(words & ({w for t in others for w in _stems(verb(t.name))} - own))
    return f"asks for what a later subtask does ({', '.join(elsewhere)})" if elsewhere else None


def overreach(goal: str, own: Iterable[Tool], pool: Iterable[Tool]) -> str | None:
    """A change ``goal`` asks for ("... and then retweet it") that a tool of the dialogue
    does but none of the subtask's own, if any: the subtask cannot make it, and its reply
    claimed it or the experts failed the dialogue (TwitterAPI: "post a tweet and then
    retweet it" for a subtask that posts and reads the tweet back). Only a verb asked for
    as such counts ("to retweet", "and cancel"), not a noun ("my posts")."""
    mine = {verb(t.name) for t in own}
    for v in dict.fromkeys(verb(t.name) for t in pool):
        if v in ACTIONS and v not in mine and re.search(
                rf"(^\W*|\b(to|and|then|also|please)\s+){re.escape(v)}\b", goal,
                re.IGNORECASE):
            return f"asks to {v}, which none of its tools does"
    return None


def asked(goal: str, tools: list[Tool]) -> list[Tool]:
    """The tools whose action ``goal`` asks for (``unasked``): a subtask keeps only those,
    and is written again where none is left (tau2:airline: "get the details of a user"
    for the subtask that cancels a reservation and changes its flights). Dropping a tool
    the goal never asked for keeps the plan and its drawn steps; asking again for the whole
    plan lost four of eight built-in attempts, the model giving the same goals again."""
    return [t for t in tools if unasked(goal, [t]) is None]


def fitted(goal: str, own: list[Tool], later: list[Tool], pool: Iterable[Tool]
           ) -> tuple[list[Tool], str | None]:
    """The tools code chose for a subtask (``own``) that ``goal`` asks for (``asked``),
    and why the goal does not fit them, if it does not: it speaks of none of them, asks
    for what only a ``later`` subtask does (``about``), asks for none of their actions,
    speaks of none of those it keeps (built-in at 34a30af: "add a quantity of the
    selected product to your cart" for ``place_order`` and ``get_order_status`` kept
    ``get_order_status`` alone, which then looked up order "1000"), or asks for a change
    no tool of theirs makes (``overreach``)."""
    kept = asked(goal, own)
    why = about(goal, own, later) or (about(goal, kept) if kept else unasked(goal, own)) \
        or overreach(goal, kept or own, pool)
    return kept, why


def unusable(d: Draft, goal: str, tools: Iterable[Tool]) -> str | None:
    """Why ``goal`` asks one of ``tools`` to act on records of the state that it cannot
    act on now, if it does: the environment's ``narrow`` leaves none of the values the
    goal names for the tool's argument (tau2:retail: cancel order #W2002172 with
    ``cancel_pending_order``, an order already delivered; offered no tool that could, the
    subtask drifted into ``calculate`` and was rejected)."""
    values = named(d, goal)
    for t in tools if values else []:
        top = t.parameters.get("properties") or {}
        props = {name: {"type": "string", "enum": options}
                 for name in sorted(entity_names(t, d.tools) & set(top))
                 if (options := candidates(name, "string", values))}
        if props and d.env.narrow(t.name, {"type": "object", "properties": props,
                                           "required": list(props)}) is None:
            shown = ", ".join(str(v) for p in props.values() for v in p["enum"])
            return f"asks to {_does(t)} with {shown}, which the state does not allow"
    return None


async def plan(d: Draft) -> Plan:
    s = d.settings
    m = d.rng.randint(s.subtasks_min, max(s.subtasks_min, s.subtasks_max))
    steps = [d.rng.randint(s.steps_min, max(s.steps_min, s.steps_max)) for _ in range(m)]
    names = [t.name for t in d.tools]
    by_name = {t.name: t for t in d.tools}
    chosen = chains(_family(d.tools), steps, d.rng)
    known = d.env.vocabulary()

    def validate(raw: Any) -> Plan:
        subtasks = raw["subtasks"]
        if len(subtasks) != m:
            raise ValueError(f"'subtasks' must have exactly {m} items")
        out: list[Subtask] = []
        for k, (sub, n) in enumerate(zip(subtasks, steps, strict=True)):
            if not str(sub["goal"]).strip():
                raise ValueError("every subtask needs a goal")
            goal = unnamed(str(sub["goal"]), names)
            why = out_of_voice(goal, names) or echoed(goal) or (  # "obtained in subtask 1"
                mislabeled(goal, known) if known is not None else None)
            if why:
                raise ValueError(f"subtask {k + 1}'s goal {why}: say what the user wants")
            if chosen is not None:
                own = [by_name[t] for t in chosen[k]]
                kept, why = fitted(goal, own, [by_name[t] for c in chosen[k + 1:] for t in c],
                                   d.tools)
                if why:
                    raise ValueError(f"subtask {k + 1}'s goal {why}: it must ask for what "
                                     f"its own tools do: {'; then '.join(_does(t) for t in own)}")
                why = unusable(d, goal, kept)
                if why:
                    raise ValueError(f"subtask {k + 1}'s goal {why}: name records it can act on")
                out.append(Subtask(goal=goal, tools=[t.name for t in kept], steps=n))
                continue
            unknown = [t for t in sub["tools"] if t not in names]
            if unknown:
                raise ValueError(f"unknown tools {unknown}; use only {names}")
            picked = [by_name[t] for t in dict.fromkeys(sub["tools"])]
            kept = asked(goal, picked)
            if not kept:
                raise ValueError(f"subtask {k + 1}'s goal {unasked(goal, picked)}: list the "
                                 "tools that do what it asks for, or ask for what they do")
            why = about(goal, kept) or overreach(goal, kept, d.tools)
            if why:
                raise ValueError(f"subtask {k + 1}'s goal {why}: list the tool that does it, "
                                 "or leave it out")
            why = unusable(d, goal, kept)
            if why:
                raise ValueError(f"subtask {k + 1}'s goal {why}: name records it can act on")
            listed = dependency_order([t.name for t in kept], by_name)
            earlier = [t for s in out for t in s.tools]
            tools = with_sources(listed, earlier, by_name)
            added = len(tools) - len(listed)  # a source added: a step to call it
            out.append(Subtask(goal=goal, tools=tools, steps=max(n, 1 + added)))
        task = unnamed(str(raw["task"]), names)
        if out_of_voice(task, names) or echoed(task):  # seen: the whole prompt, as the task
            task = " ".join(x.goal.rstrip(".") + "." for x in out)  # the goals say it
        return Plan(task=task, subtasks=out)

    async def ask_plan(chosen: list[list[str]] | None) -> Plan:
        shown = [{"steps": n, "tools": chosen[k] if chosen else [],
                  "does": [_does(by_name[t]) for t in chosen[k]] if chosen else []}
                 for k, n in enumerate(steps)]
        messages, digest = render("plan", frame=d.frame, state=d.start_state,
                                  subtasks=shown)
        schema = _schema(names, m, max(steps), pick=chosen is None)
        return await ask(d.llm, messages, schema, validate, stage="plan",
                         seed=d.request_seed("plan"), template_hash=digest,
                         temperature=s.temperature, attempts=s.attempts_per_output)

    try:
        result = await ask_plan(chosen)
    except PromptTooLong:
        raise
    except ModelOutputError:  # a plan never written is drawn again once: other tools
        chosen = chains(_family(d.tools), steps, d.rng)  # ``validate`` reads it too
        result = await ask_plan(chosen)
    d.plan = result
    return result
