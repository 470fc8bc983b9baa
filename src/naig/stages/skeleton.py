"""Stage 1b, trajectory initialization: the coarse dialogue, subtask by subtask.

A subtask is written in parts, each one LLM answer:

- the opening: the user's request (carrying every value the calls need) and the first
  tool-calling step;
- each further step: the next calls, decoded under schemas whose entity arguments can
  take only values the dialogue has shown (``naig.grounding``), so a call cannot invent
  an ID and a tool that needs one waits until a result or the user gives it;
- the reply to the user.

Where tools are simulated, the model writes each call together with its result (the
paper's rule: calls and results are produced together) and the last step carries the
reply, so a subtask of ``s`` steps costs ``s`` answers. Where tools really execute, each
step is decoded after the previous step's real results are in the context, a call the
environment refuses is tried again with the refusal shown (an unplanned error never stays
in the data), and the reply is written from the real results, so it costs ``s + 1``.

A subtask one of whose parts finds no valid answer is undone and written again from its
request (``MethodSettings.subtask_tries``): the plan and the subtasks before it stand.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal

from naig.dialogue import Message, Subtask, made_calls
from naig.errors import ModelOutputError, PromptTooLong
from naig.grounding import (
    Seen,
    detail_items,
    entity_values,
    fresh,
    id_like,
    mislabeled,
    produces,
    shown,
    verb,
)
from naig.llm.structured import ask
from naig.prompts import instructions, render
from naig.stages.calls import (
    Parameters,
    RepeatedCall,
    calls_schema,
    check_call,
    existing,
    grounded,
    made,
    make_calls,
    named,
    replay,
    request_of,
    requested,
    require_new,
    values_before,
)
from naig.stages.checks import (
    ACTIONS,
    actions_grounded,
    as_said,
    claims_grounded,
    denials_grounded,
    foreknown,
    other_record,
    owed,
    quoted,
    repeated_call,
    results_reported,
    spoken,
    spoken_with,
    unsayable,
)
from naig.stages.draft import Draft
from naig.tools import Tool, leaves, logs_in, relative_path
from naig.transcript import describe, transcript

Part = Literal["open", "step", "reply"]

_TEXT = spoken()
REPLY_CHARS = 800
"""Longest reply the grammar lets the model write, so that its JSON closes before the
length limit: a small model listing an order's every field ran past it, and three
cut-off answers lost the dialogue (tau2:retail, 2026-11-29). A reply stopped at the bound
keeps its whole sentences (``_whole``)."""
_REPLY = spoken(REPLY_CHARS)


def _whole(text: str) -> str:
    """``text`` cut after its last whole sentence, where the bound stopped it inside one."""
    if len(text) < REPLY_CHARS - 1 or text.rstrip().endswith((".", "!", "?")):
        return text
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s)", text)]
    return text[:ends[-1]] if ends else text


def _schema(part: Part, tools: list[Tool], params: Parameters | None, *, results: bool,
            reply: bool, most: int) -> dict[str, Any]:
    props: dict[str, Any] = {}
    if part != "reply":
        props["calls"] = calls_schema(tools, with_result=results, params=params, most=most)
    if part == "open":  # after the call: a small model then states the values it used
        props["user"] = _TEXT
    if reply:
        props["reply"] = _REPLY
    return {"type": "object", "additionalProperties": False, "required": list(props),
            "properties": props}


def _spoken(d: Draft, answer: Any, *, alone: bool) -> dict[str, Any]:
    """The answer with its texts (``user``, ``reply``) in voice: tool names written as
    words, then nothing empty, out of voice or said before (``unsayable``).

    A reply that fails this beside calls (not ``alone``) is dropped, not the answer: the
    calls stand, and the reply is asked for on its own (``_subtask``). A small model that
    narrates ("The assistant has booked ...") in a long answer mostly speaks in a short
    one, and refusing the whole answer threw away good calls, and after three tries the
    dialogue."""
    if not isinstance(answer, dict):
        raise ValueError("expected a JSON object")
    names = [t.name for t in d.tools]
    raw: dict[str, Any] = {k: as_said(v, names, user=k == "user") if k in ("user", "reply")
                           and isinstance(v, str) else v for k, v in answer.items()}
    if isinstance(raw.get("reply"), str):
        raw["reply"] = _whole(raw["reply"])
    for key in ("user", "reply"):
        if key not in raw:
            continue
        why = "must not be empty" if not str(raw[key]).strip() else \
            unsayable(str(raw[key]), names, d.messages, user=key == "user")
        if why and key == "reply" and not alone:
            del raw[key]
        elif why:
            raise ValueError(f"'{key}' {why}: write only what is said")
    return raw


def _stated(d: Draft, part: Part, raw: dict[str, Any], by_name: dict[str, Tool]
            ) -> tuple[dict[str, Any], str]:
    """The answer with what its calls use and no request states added (``unstated``): to
    its own request (an opening), or under ``"_says"`` for the request that opened the
    subtask; and the dialogue's text with it, to check the calls against."""
    said = "\n".join([*(m.content or "" for m in d.messages), str(raw.get("user", ""))])
    says = ""
    for c in raw["calls"]:
        tool = by_name.get(str(c.get("name")))
        add = unstated(d, tool, c.get("arguments"), f"{said}\n{says}",
                       ids=part == "open") if tool else ""
        says = f"{says} {add}".strip()
    if part == "open" and says:
        raw = raw | {"user": f"{str(raw['user']).rstrip()} {says}"}
    elif says:
        raw = raw | {"_says": says}
    return raw, f"{said}\n{says}"


_THEN = re.compile(r"(?:,\s*|\s+)(?:and\s+)?(?:then|after that|afterwards)\b[^.!?;]*[.!?;]?",
                   re.IGNORECASE)
_CONTENT = re.compile(r"[a-z]{3,}")
_FILLER = frozenset({"the", "and", "for", "you", "are", "was", "with", "them", "that",
                     "thi", "then", "want", "would", "like", "some", "from", "into", "also",
                     "need", "please", "after", "afterward"})
"""Words that ask for nothing, as ``_content`` leaves them ("this" -> "thi")."""


def _content(text: str) -> set[str]:
    """The words of ``text`` that say what is asked (not "the", "want", "then")."""
    return {w.removesuffix("s") for w in _CONTENT.findall(text.lower())} - _FILLER


def ahead(text: str, goal: str, later: Sequence[str]) -> str:
    """``text``, a subtask's opening request, without the clauses that ask for a later
    subtask's work (", then book a seat on a flight for a passenger", where booking is
    the next subtask): a clause after "then" ("after that", "afterwards") that shares more words
    with a later goal than with its own ``goal``. Told "asking for this and nothing
    later", the small model asked for both in its first request, and the next request
    could only copy it (built-in at 3a9de5d, two dialogues of eight lost); the request is
    the user's, so code cuts what the plan puts later."""
    own = _content(goal)
    laters = [_content(g) for g in later]
    out = text
    for hit in reversed(list(_THEN.finditer(text))):
        words = _content(hit.group(0))
        ahead_of = max((len(words & g) for g in laters), default=0)
        if ahead_of >= 2 and ahead_of > len(words & own) \
                and len(_content(text[:hit.start()])) >= 2:
            end = hit.group(0)[-1] if hit.group(0)[-1] in ".!?;" else ""
            before = out[:hit.start()].rstrip()
            out = before + ("" if before.endswith((".", "!", "?")) else end) + out[hit.end():]
    return out


def _validate(d: Draft, part: Part, tools: list[Tool], repeated: list[str],
              later: Sequence[str] = (), goal: str = ""
              ) -> Callable[[Any], dict[str, Any] | None]:
    """Texts in voice (``_spoken``); calls that name an offered tool with valid arguments,
    whose entity arguments use values the dialogue (with the new user message) has shown,
    and that do something new; a request that states what they use (``_stated``).

    A call after the first that fails this is dropped with the calls after it (and a reply
    written with them, which may report them), rather than the answer refused: a small
    model often writes a whole subtask into one step, and its later calls need the
    results of the earlier ones, which a step must wait for. An answer whose first call
    only repeats one already made gives None and adds the tool to ``repeated``: asking
    again with the reason mostly gets the same call again, so the caller asks without
    that tool, or ends the steps."""
    names = [t.name for t in tools]
    by_name = {t.name: t for t in tools}

    def check(answer: Any) -> dict[str, Any] | None:
        raw = _spoken(d, answer, alone=part == "reply")
        if part == "open" and isinstance(raw.get("user"), str):
            raw["user"] = ahead(raw["user"], goal, later)
        if part == "reply":
            why = unfounded_reply(d, str(raw["reply"]))
            if why:
                raise ValueError(f"'reply' {why}: report only what the calls did and returned")
            return raw
        calls = raw.get("calls")
        if not isinstance(calls, list) or not calls or not all(isinstance(c, dict)
                                                                for c in calls):
            raise ValueError('"calls" must be a list of {"name": ..., "arguments": {...}}')
        raw, said = _stated(d, part, raw, by_name)
        if part == "open":
            known = d.env.vocabulary()
            wrong = mislabeled(str(raw["user"]), known) if known is not None else None
            if wrong:
                raise ValueError(f"'user' {wrong}: name each value as what it is")
            value = foreknown(str(raw["user"]), "\n".join(m.content or "" for m in d.messages),
                              [(c.get("arguments"), c.get("result")) for c in calls])
            if value is not None:
                raise ValueError(f"'user' states {value!r}, which only the result gives: the "
                                 "user cannot know it before the call")
        now = str(raw.get("user") or raw.get("_says") or "")
        values: list[Seen] = values_before(d, extra=[Message(role="user", content=now)]
                                           if now else [])
        history = made(d.messages)
        request = str(raw["user"]) if part == "open" else request_of(d)
        for n, c in enumerate(calls):
            try:
                check_call(by_name.get(str(c.get("name"))), c, d.tools, values, names,
                           said=said, user_states=part == "open")
                wrong = contradicted(request, c.get("arguments"))
                other = other_record(str(c.get("name")), c.get("arguments"),
                                     [*d.messages, Message(role="user", content=request)])
                if other:
                    wrong = f"{c.get('name')} {other}: act on the record the user names"
                if wrong:
                    raise ValueError(wrong)
                require_new([c], history, strict=not d.env.executes)
            except ValueError as e:
                if n == 0 and isinstance(e, RepeatedCall):
                    repeated.append(str(c.get("name")))
                    return None
                if n == 0:
                    raise
                return {k: v for k, v in raw.items() if k != "reply"} | {"calls": calls[:n]}
        return raw
    return check


async def _ask_part(d: Draft, task: str, sub: Subtask, part: Part, k: int, *,
                    tools: list[Tool], params: Parameters | None, reply: bool,
                    failed: list[str], repeated: list[str] | None = None,
                    missed: Sequence[str] = ()) -> dict[str, Any] | None:
    results = not d.env.executes
    opener = len(d.messages) if part == "open" else max(  # the request of this subtask
        (i for i, m in enumerate(d.messages) if m.role == "user"), default=0)
    hidden = _earlier_replies(d, opener) if reply else {}
    history = transcript(d.messages, hidden)
    messages, digest = render("skeleton", frame=d.frame, history=history, task=task,
                              goal=sub.goal, part=part, k=k, steps=sub.steps,
                              tools=[t.name for t in tools], real=d.env.executes,
                              results=results, reply=reply, failed=failed, since=opener,
                              hidden=bool(hidden), missed=missed,
                              ahead=_ahead_names(d, sub) if results and part != "reply" else [])
    schema = _schema(part, tools, params, results=results, reply=reply,
                     most=d.settings.calls_per_step)
    # A reply on its second chance gives one of the values it is owed (``checks.owed``)
    # by grammar: asked again after "I booked a hotel room and found hotels", told which
    # values its results returned, the small model wrote the same reply three times and
    # the dialogue was lost (built-in at 6d7b0c7; tau2:retail the same, after "(Nguyen,
    # 288 Elm Avenue, ...)"). On simulated tools the reply asked alone is that second
    # chance (the last step's answer carried one); where tools execute, every reply is
    # written alone, and its retries are.
    due = owed(d.messages) if part == "reply" else []
    bound = {**schema, "properties": {**schema["properties"],
                                      "reply": spoken_with(due, REPLY_CHARS)}} if due else None
    raw: dict[str, Any] | None = await ask(
        d.llm, messages, bound if bound and not d.env.executes else schema,
        _validate(d, part, tools, [] if repeated is None else repeated,
                  later=_later(d, sub), goal=sub.goal),
        stage="skeleton",
        seed=d.request_seed("skeleton"), template_hash=digest,
        temperature=d.settings.temperature, max_tokens=350 + 350 * (part != "reply"),
        attempts=d.settings.attempts_per_output,
        instructions=instructions(messages, history, task, sub.goal, *failed),
        retry_schema=bound)
    return raw


def _ahead_names(d: Draft, sub: Subtask) -> list[str]:
    """The names the plan's later subtasks quote, not yet in the dialogue: a simulated
    result may hold them, so that the later request finds what it names (built-in at
    3a9de5d: events listed without 'Birthday Party', which the next subtask asked to
    delete, and the deletion took another event)."""
    said = "\n".join(m.content or "" for m in d.messages)
    return [q for goal in _later(d, sub) for q in dict.fromkeys(quoted(goal))
            if not shown(q, said)]


def _later(d: Draft, sub: Subtask) -> list[str]:
    """The goals of the plan's subtasks after ``sub``."""
    subs = d.plan.subtasks if d.plan else []
    at = next((i for i, s in enumerate(subs) if s is sub), len(subs))
    return [s.goal for s in subs[at + 1:]]


def contradicted(request: str, arguments: Any) -> str | None:
    """Why a call's arguments go against what its request states, if they do: the request
    names a parameter by its words and gives a value in its details ("Details: guest name
    Jane Smith", as ``unstated`` writes them, and the model after it), and the call fills
    that parameter with another ("John Doe"; built-in pool at d9e8d79, where
    the experts caught it after every stage had been paid for)."""
    if not isinstance(arguments, dict):
        return None
    stated_details = detail_items(request)
    for key, value in _pairs(arguments):
        label = _words(key).lower()
        if shown(value, request):
            continue
        for said in stated_details:
            stated = said[len(label):].strip()
            if said.lower().startswith(label + " ") and not shown(stated, value) \
                    and not shown(stated, value.replace("_", " ")):  # "window seat"
                return (f"{key} is {value!r}, but the request says {said!r}: use the value "
                        "the user gave")
    return None


def unfounded_reply(d: Draft, reply: str) -> str | None:
    """Why ``reply``, said next, claims what the dialogue does not show: an action no call
    since the request did, an ID no turn holds, nothing found where results found
    something, none of what the results returned (the rules ``actions_grounded``,
    ``claims_grounded``, ``denials_grounded`` and ``results_reported``, applied as the
    reply is written)."""
    messages = [*d.messages, Message(role="assistant", content=reply)]
    at = f"[{len(messages) - 1}] "
    claims = functools.partial(claims_grounded, known=d.env.vocabulary())
    for rule in (actions_grounded, claims, denials_grounded, results_reported):
        check = rule(messages, d.tools)
        if not check.passed and check.detail.startswith(at):
            return check.detail.removeprefix(at).replace("the reply ", "", 1)
    return None


def _earlier_replies(d: Draft, opener: int) -> dict[int, str]:
    """The replies of earlier subtasks, hidden where a reply is being written: a small
    model shown them writes one of them again ("repeats [6] word for word") instead of
    reporting this subtask's results."""
    return {i: "[HIDDEN]" for i, m in enumerate(d.messages[:opener])
            if m.role == "assistant" and not m.tool_calls}


_CODE_WORD = re.compile(r"^[a-z]+(_[a-z]+)+$")


def _words(name: str) -> str:
    """A parameter's name as words: ``order_id`` -> ``order ID``, ``item_ids`` -> ``item
    ID``, ``check_in`` -> ``check in``."""
    words = (name.removesuffix("s") if name.endswith("ids") else name).replace("_", " ")
    return words.removesuffix(" id") + " ID" if words.endswith(" id") else words


def unstated(d: Draft, tool: Tool, arguments: Any, said: str, *, ids: bool = True) -> str:
    """What the user's request must add so that it states every value a call uses that
    nothing in ``said`` shows ("The order ID is #W2002172. Details: passenger name John
    Doe."): the paper's rule that a subtask's opening request carries everything its calls
    need, kept by code where a small model leaves values out. IDs are added only with
    ``ids`` (a subtask's first call: a later step takes its IDs from what the dialogue
    shows) or for a log-in (the user's own account, asked for by a refusal), and where
    they may be brought in (they exist in the state, where it is known; any, on simulated
    tools); a value a call invents otherwise stays unstated, and is refused."""
    if not isinstance(arguments, dict):
        return ""
    known = d.env.vocabulary()
    bring = not d.env.executes or known is not None
    ids_of = {str(v) for _, _, v in entity_values(tool, d.tools, arguments)}
    ids_of |= set(id_like(arguments))
    sentences: list[str] = []
    details: list[str] = []
    for key, value in _pairs(arguments):
        if shown(value, said) or shown(value, "\n".join(sentences + details)) \
                or relative_path(value):  # "..": the assistant's way there, not the user's
            continue
        if value in ids_of:
            if (ids or logs_in(tool)) and bring and (known is None or value in known):
                sentences.append(f"The {_words(key)} is {value}.")
        else:
            # a code word is said as words ("window_seat"); a name as it is written: a
            # file ("test_results.json"), or one the state holds ("analyst_pro")
            word = _CODE_WORD.match(value) and (known is None or value not in known)
            said_as = value.replace("_", " ") if word else value
            details.append(f"{_words(key)} {said_as}")
    if details:
        sentences.append("Details: " + "; ".join(details) + ".")
    return " ".join(sentences)


def _pairs(node: Any) -> list[tuple[str, str]]:
    """Every scalar in a call's arguments with the parameter it fills (booleans aside)."""
    return [(k, str(v)) for k, v in leaves(node)
            if v is not None and not isinstance(v, bool) and str(v) != ""]


def _amend_request(d: Draft, says: str) -> None:
    """Add ``says`` to the user's request that opened the subtask being written (details
    joining its details, if it has some)."""
    at = max(i for i, t in enumerate(d.turns) if t.message.role == "user")
    m = d.turns[at].message
    text = (m.content or "").rstrip()
    if says.startswith("Details: ") and re.search(r"Details: [^\n]*\.$", text):
        text = f"{text[:-1]}; {says.removeprefix('Details: ')}"
    else:
        text = f"{text} {says}"
    d.turns[at].message = m.model_copy(update={"content": text})


def _opening(d: Draft, tools: list[Tool], goal: str) -> Parameters | None:
    """The argument schemas of a subtask's first call: entity arguments take values the
    dialogue has shown, or new ones the user brings, which the user's message must then
    state (``_validate`` sees to it). Where the environment's state is known, those are
    what exists in the start state as the planner saw it (the user knows their own
    records), for an argument the dialogue has shown no value of yet (once a user's
    orders are listed, the next request names one of them); where tools are simulated, a
    fresh ID per argument (``fresh``); where tools execute on a state nobody described,
    the arguments are free (a refused call is asked again); so are they where no tool
    could be grounded, except where the state is known: there none of them can be called
    yet (``_step`` offers what feeds them; asked for a tweet where none exists, the model
    invented ID 123456 three times and the dialogue was lost, at 5cf4e91). What the
    subtask's ``goal`` names comes before anything else (the user's message is written
    with the call, from the goal)."""
    if d.env.vocabulary() is not None:
        known = [Message(role="system", content=d.start_state)]
        return grounded(d, tools, values_before(d, extra=known),
                        prefer=[named(d, goal), values_before(d)])
    if d.env.executes:
        return None
    new = [v for t in tools for v in fresh(t, d.tools, d.rng)]
    return grounded(d, tools, values_before(d) + new) or None


def _params(d: Draft, tools: list[Tool], part: Part, sub: Subtask) -> Parameters | None:
    """The argument schemas of a part's calls: the opening's (``_opening``), or a later
    step's, where an entity argument takes a value the subtask's request names if it
    names any of its kind (``requested``)."""
    if part == "open":
        return _opening(d, tools, sub.goal)
    return grounded(d, tools, prefer=[requested(d)])


async def _step(d: Draft, task: str, sub: Subtask, part: Part, k: int, *, reply: bool
                ) -> dict[str, Any] | None:
    """One part with calls, executed; None when no tool can be called any more.

    A step offers the subtask's tools; one the environment refused, every tool (what it
    asks for first, like authenticating, is often no tool of the plan's) but the one just
    refused: told the refusal, a small model called it again the same way (TwitterAPI's
    post_tweet, three times, on "User not authenticated"), where something else must come
    first (authenticating, looking up what exists); a try after that may call it again.
    Offering only the plan's k-th tool at step k was measured and taken out: on
    GorillaFileSystem the small model then wrote '..' for cd and '/' for find, and the
    end-to-end run kept none.

    A call the environment refuses is undone (the dialogue is replayed from the start
    state) and the part asked again with the refusal shown, up to the attempts allowed."""
    listed = [t for t in (d.tool(n) for n in sub.tools) if t is not None]
    failed: list[str] = []
    repeated: list[str] = []
    refused_last = ""
    asked: list[Tool] = []  # what the last refusal asks to be done first
    refusals: list[str] = []  # the tools refused on the way, told to the caller
    for _ in range(d.settings.attempts_per_output):
        # after a refusal, any tool but the one refused: what the environment asks for
        # first ("authenticate before posting") is often no tool of the plan's
        skip = {*repeated, refused_last}
        own = [t for t in listed if t.name not in skip and not failed]
        # a step whose own tools only repeat calls ends the subtask: offered other tools,
        # it drifted into a later subtask's work (GorillaFileSystem: mkdir in a subtask
        # asked to go to a folder)
        if part == "step" and not failed and listed and not own:
            break
        # what the last refusal asks for ("Please authenticate"), where it can be called
        tools = [t for t in asked if t.name not in skip]
        params = existing(d, _params(d, tools, part, sub), tools) if tools else {}
        if params is not None and not params:
            tools = own or [t for t in [*listed, *d.tools] if t.name not in skip]
            tools = list({t.name: t for t in tools}.values())
            params = existing(d, _params(d, tools, part, sub), tools)
        if params is not None and not params:
            # none of this subtask's can be called in this state (cancel_pending_order on
            # delivered orders): a look-up that feeds them, to find out and say why; then
            # any tool that can (offered any tool at once, the small model answered
            # "cancel order #W2002172" with a calculator, tau2:retail)
            feeders = [t for t in d.tools if t.name not in skip
                       and any(produces(t, x) for x in listed)]
            for tools in (feeders, [t for t in d.tools if t.name not in skip]):
                if not tools:
                    continue
                params = existing(d, _params(d, tools, part, sub), tools)
                if params is None or params:
                    break
        if not tools or (params is not None and not params):
            break
        raw = await _ask_part(d, task, sub, part, k, tools=tools, params=params,
                              reply=reply, failed=failed, repeated=repeated)
        if raw is None:
            continue  # it only repeated a call: ask without that tool
        done = await make_calls(d, raw["calls"])
        refused = [m for m in done[1:] if m.is_error]
        again = None if refused else same_again(d.messages, done)
        if again is not None:  # executed, it only told what the dialogue already shows
            repeated.append(again)
            await replay(d)
            continue
        if not refused:
            if part == "open":
                d.append(Message(role="user", content=str(raw["user"]).strip()))
            elif raw.get("_says"):
                _amend_request(d, str(raw["_says"]))
            d.append(*done)
            if any(c.function.name in {t.name for t in asked} for c in done[0].tool_calls or []):
                refusals.remove(refused_last)  # done what it asked: the refused tool may run
            return raw | {"_refused": refusals}
        failed.append(f"{describe(done[0])} -> {refused[0].content}")
        refused_last = next(c.function.name for c in done[0].tool_calls or []
                            if c.id == refused[0].tool_call_id)
        refusals.append(refused_last)
        asked = asked_for(refused[0].content or "", d.tools)
        await replay(d)  # undo whatever the refused calls changed
    if part == "step" and not failed:
        return None  # nothing new to do: the subtask moves to its reply
    why = failed[-1] if failed else f"it only repeated calls already made ({repeated})" \
        if repeated else "no tool can be called in this state"
    raise ModelOutputError(f"skeleton: no try at a step worked: {why}")


_ASKS = re.compile(r"\bplease\s+(log\s+in|sign\s+in|[a-z]+)", re.IGNORECASE)


def asked_for(refusal: str, tools: Sequence[Tool]) -> list[Tool]:
    """The tools a refusal asks to be called first, by its instruction's verb ("Please
    authenticate before posting": ``authenticate_twitter``; "Please log in to ...":
    ``ticket_login``). Offered every other tool after TwitterAPI's "User not
    authenticated", the small model picked look-ups, and every post was refused."""
    hit = _ASKS.search(refusal)
    if hit is None:
        return []
    asked = re.sub(r"\s+", "", hit.group(1).lower())
    if len(asked) < 5:
        return []
    return [t for t in tools if any(len(w) >= 5 and w[:6] == asked[:6]
                                    for w in t.name.lower().split("_"))]


def same_again(messages: list[Message], done: list[Message]) -> str | None:
    """The tool of a call in ``done`` that repeats an earlier one (``repeated_call``, the
    rule ``no_repetition`` applied as the calls are made): on executing tools a call made
    again is allowed before it runs, since the state may have changed since; once its
    result is in and shows nothing new, the call is a repeat after all (a later subtask
    looking the user up again)."""
    calls = made_calls([*messages, *done])
    new = range(len(calls) - len(done[0].tool_calls or []), len(calls))
    return next((calls[n].key[0] for n in new if repeated_call(calls, n)), None)


def off_plan(d: Draft, sub: Subtask, since: int) -> str | None:
    """Why the calls made from message ``since`` on do nothing the subtask asks for, if
    they do not: none of them is one of its tools, or one that feeds one (a lookup first).
    Offered any tool after a refusal, the small model answered a request to change a
    reservation's passengers with ``list_all_airports``, and one to cancel an order with
    ``calculate("2 + 3")`` (tau2); the experts rejected both dialogues, after every later
    stage had been paid for."""
    listed = [t for t in (d.tool(n) for n in sub.tools) if t is not None]
    useful = {*sub.tools, *(t.name for t in d.tools if any(produces(t, x) for x in listed))}
    called = {c.key[0] for c in made_calls(d.messages[since:]) if c.result is not None}
    return None if not called or called & useful else \
        f"its calls ({', '.join(sorted(called))}) do none of what it asks ({', '.join(sub.tools)})"


def undone(d: Draft, sub: Subtask, since: int) -> list[str]:
    """The subtask's tools that change something (``ACTIONS``: cancel, modify, mkdir) and
    that no successful call from message ``since`` on made. Its reply, asked for then,
    mostly claimed the change anyway ("I have successfully modified") and was refused
    three times, losing the dialogue (6 of the skeleton's failures, tau2 and
    GorillaFileSystem, 2026-11-28)."""
    called = {c.key[0] for c in made_calls(d.messages[since:]) if c.result is not None}
    return [n for n in sub.tools if n not in called and verb(n) in ACTIONS]


async def _subtask(d: Draft, task: str, sub: Subtask) -> None:
    """The subtask's parts in order. Where its drawn steps all went to what comes first
    and none to its own tools (``cd`` before ``rmdir``, a lookup after a refusal), or
    none to the change it asks for (a lookup, and no ``modify``), it gets one step more,
    offered those tools; a subtask that still did none of what it asks is not done."""
    inline = not d.env.executes  # simulated: the last step's answer carries the reply
    since = len(d.messages)
    raw = await _step(d, task, sub, "open", 1, reply=inline and sub.steps == 1)
    refused = list(raw["_refused"]) if raw else []
    taken = 1
    for k in range(2, sub.steps + 1):
        try:
            step = await _step(d, task, sub, "step", k, reply=inline and k == sub.steps)
        except ModelOutputError:
            step = None  # a later step that never works: the subtask ends here
        if step is None:
            break
        raw, taken = step, k
        refused += step["_refused"]
    left = [n for n in undone(d, sub, since) if n not in refused]  # refused: not again
    if (off_plan(d, sub, since) or left) and taken == sub.steps:
        more = sub.model_copy(update={"steps": sub.steps + 1, "tools": left or sub.tools})
        try:
            step = await _step(d, task, more, "step", more.steps, reply=inline)
        except ModelOutputError:
            step = None
        raw = step or raw
    why = off_plan(d, sub, since)
    if why:
        raise ModelOutputError(f"skeleton: the subtask is not done: {why}")
    if raw is None or "reply" not in raw or unfounded_reply(d, str(raw["reply"])):
        tools = [t for t in (d.tool(n) for n in sub.tools) if t is not None]
        # what was asked and not done, told in words: the reply says so and why
        missed = [t.name.replace("_", " ") for t in tools if t.name in undone(d, sub, since)]
        raw = await _ask_part(d, task, sub, "reply", 0, tools=tools, params=None, reply=True,
                              failed=[], missed=missed)
    assert raw is not None  # a reply is always an answer
    d.append(Message(role="assistant", content=str(raw["reply"]).strip()))


async def skeleton(d: Draft) -> None:
    assert d.plan is not None, "plan before skeleton"
    for sub in d.plan.subtasks:
        start = len(d.turns)
        for attempt in range(1, d.settings.subtask_tries + 1):
            try:
                await _subtask(d, d.plan.task, sub)
                break
            except ModelOutputError as e:
                if attempt == d.settings.subtask_tries or isinstance(e, PromptTooLong):
                    raise
                del d.turns[start:]  # written again from its request, on fresh seeds
                if d.env.executes:
                    await replay(d)  # undo what its calls changed
