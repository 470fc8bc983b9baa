"""Stage 3, rule-based checks: each a named function giving a verdict with a reason.

A check takes the dialogue's messages and tools and returns a ``Check``; it never
raises on a bad dialogue. ``RULES`` lists them in the order they run.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from naig.dialogue import Check, MadeCall, Message, made_calls
from naig.grounding import (
    Vocabulary,
    creates,
    id_like,
    mislabeled,
    record_kinds,
    reverses,
    scalars,
    shown,
    ungrounded,
    verb,
    vocabulary,
    when,
)
from naig.prompts import placeholders
from naig.tools import (
    ID_NAME,
    Tool,
    decoded,
    degenerate,
    leaves,
    out_of_bounds,
    parse_arguments,
    same_ends,
)

Rule = Callable[[list[Message], list[Tool]], Check]


def _ok(name: str) -> Check:
    return Check(name=name, passed=True)


def _fail(name: str, detail: str) -> Check:
    return Check(name=name, passed=False, detail=detail)


_CITED = re.compile(r"\[(\d+)\]|\bturns? (\d+)\b", re.IGNORECASE)


def cited_turns(detail: str) -> list[int]:
    """The turns a check's detail blames: a rule names its turn as ``[i]``, an expert
    cites turns in its reason ("[4]", "turn 4")."""
    return [int(hit.group(1) or hit.group(2)) for hit in _CITED.finditer(detail)]


def roles_in_order(messages: list[Message], tools: list[Tool]) -> Check:
    """System first, then a user; calls answered by tool results; text answered by a user;
    the dialogue ends with an assistant's text reply."""
    name = "roles_in_order"
    if not messages or messages[0].role != "system":
        return _fail(name, "the first message must be the system message")
    if len(messages) < 3 or messages[1].role != "user":
        return _fail(name, "the dialogue must open with a user message after the system")
    for i in range(1, len(messages)):
        m, prev = messages[i], messages[i - 1]
        if m.role == "system":
            return _fail(name, f"[{i}] a second system message")
        if m.role == "tool" and not (prev.role == "tool" or prev.tool_calls):
            return _fail(name, f"[{i}] a tool result that follows no call")
        if prev.tool_calls and m.role != "tool":
            return _fail(name, f"[{i}] the call at [{i - 1}] has no tool result after it")
        if m.role == "user" and prev.role not in ("system", "assistant"):
            return _fail(name, f"[{i}] a user message after a {prev.role} message")
        if m.role == "user" and prev.role == "assistant" and prev.tool_calls:
            return _fail(name, f"[{i}] a user message right after a call")
        if m.role == "assistant" and prev.role in ("assistant", "system"):
            return _fail(name, f"[{i}] two assistant turns in a row")
    last = messages[-1]
    if last.role != "assistant" or last.tool_calls:
        return _fail(name, "the dialogue must end with the assistant's text reply")
    return _ok(name)


def turns_nonempty(messages: list[Message], tools: list[Tool]) -> Check:
    for i, m in enumerate(messages):
        if m.role in ("system", "user", "tool") and not (m.content or "").strip():
            return _fail("turns_nonempty", f"[{i}] empty {m.role} message")
        if m.role == "assistant" and not m.tool_calls and not (m.content or "").strip():
            return _fail("turns_nonempty", f"[{i}] empty assistant reply")
    return _ok("turns_nonempty")


def tool_results_match_calls(messages: list[Message], tools: list[Tool]) -> Check:
    """Every call answered by exactly one result with its id, in order; no stray results."""
    name = "tool_results_match_calls"
    seen: set[str] = set()
    for i, m in enumerate(messages):
        if not m.tool_calls:
            continue
        ids = [c.id for c in m.tool_calls]
        if len(set(ids)) != len(ids) or seen & set(ids):
            return _fail(name, f"[{i}] call ids are not unique")
        seen |= set(ids)
        answers = [x.tool_call_id for x in messages[i + 1:i + 1 + len(ids)]]
        if answers != ids:
            return _fail(name, f"[{i}] calls {ids} are answered by {answers}")
    stray = [i for i, m in enumerate(messages) if m.role == "tool" and m.tool_call_id not in seen]
    if stray:
        return _fail(name, f"[{stray[0]}] a tool result for an unknown call id")
    return _ok(name)


def call_names_known(messages: list[Message], tools: list[Tool]) -> Check:
    names = {t.name for t in tools}
    for i, m in enumerate(messages):
        for c in m.tool_calls or []:
            if c.function.name not in names:
                return _fail("call_names_known",
                             f"[{i}] calls {c.function.name!r}, not a listed tool")
    return _ok("call_names_known")


def schema_valid_arguments(messages: list[Message], tools: list[Tool]) -> Check:
    """Arguments parse as a JSON object and validate against the tool's schema, and no
    required one is an empty string (``Tool.empty_required``)."""
    name = "schema_valid_arguments"
    by_name = {t.name: t for t in tools}
    for i, m in enumerate(messages):
        for c in m.tool_calls or []:
            tool = by_name.get(c.function.name)
            if tool is None:
                continue  # call_names_known reports it
            try:
                args = parse_arguments(c.function.arguments)
            except ValueError as e:
                return _fail(name, f"[{i}] {c.function.name}: arguments are not an object ({e})")
            problems = tool.validate_arguments(args)
            if problems:
                return _fail(name, f"[{i}] {c.function.name}: {problems[0]}")
            empty = tool.empty_required(args)
            if empty is not None:
                return _fail(name, f"[{i}] {c.function.name}: {empty!r} is required and empty")
    return _ok(name)


def values_wellformed(messages: list[Message], tools: list[Tool], *,
                      results: bool = True) -> Check:
    """No call argument or tool result holds a string no real value looks like (no letter
    or digit, or JSON structure inside it: a model that lost its place), no call sends
    something where it already is (``same_ends``: a flight from a city to itself), and no
    result breaks a bound its call set (``out_of_bounds``: a hotel over the call's highest
    price). Tool results are judged only where the model wrote them (``results``): what an
    executing environment returned is real, a file's JSON text included."""
    for i, m in enumerate(messages):
        texts = [c.function.arguments for c in m.tool_calls or []]
        texts += [m.content or ""] if m.role == "tool" and results else []
        for text in texts:
            try:
                value = json.loads(text)
            except ValueError:
                continue  # not JSON: the format checks report it
            junk = degenerate(value)
            if junk is not None:
                return _fail("values_wellformed", f"[{i}] holds {junk!r}, which is no value")
            nowhere = same_ends(value) if m.role == "assistant" else None
            if nowhere is not None:
                return _fail("values_wellformed", f"[{i}] {nowhere}")
    calls = {c.id: c.function.arguments for m in messages for c in m.tool_calls or []}
    for i, m in enumerate(messages):
        if m.role != "tool" or not results or m.tool_call_id not in calls:
            continue
        try:
            broken = out_of_bounds(json.loads(calls[m.tool_call_id]), json.loads(m.content or ""))
        except ValueError:
            continue
        if broken is not None:
            return _fail("values_wellformed", f"[{i}] the result's {broken}")
    return _ok("values_wellformed")


_CODE = re.compile(r"\b\w+\(\s*[{\[\"']|[{\[]\s*[\"']\w+[\"']\s*:|\(\s*\{\s*$|"
                   r"\b[a-z]+_\w+\(\s*\)|\[\s*\{|[\[{]\s*$|\b\w+\(\s*[a-z_]+\s*[:=]\s*\S")
"""Code in words: a call (``get_tweet("1")``, ``cart(product_id: 'x', quantity: 5)``, the
planner's goals on the built-in pool at 34a30af), JSON, a bracket left open."""
_VARIABLE = re.compile(r"\b(?:in|into|as|to) (?:a|the|another) variable\b|\bvariables? "
                       r"(?:named|called)\b", re.IGNORECASE)
"""A program's words in a person's mouth (a TwitterAPI plan: "store the results in a
variable named 'tweets_with_keyword'", at 8858cb6)."""
_NARRATION = re.compile(
    r"\bthe assistant\b|\bthe user('s)? (wants|wanted|asks|asked|says|said|needs|needed|is|"
    r"was|has|had|provides|provided|gives|gave|selects|selected|requests|requested|would|"
    r"will|can|could|should|must)\b|\b(told|informed|asked|notified|reminded|suggested to|"
    r"let) the user\b|\b(was|were) called with\b|\bthe (tool|function) (was|is|has been) "
    r"called\b|\bthe (tool|function|system) (also )?(found|returned|shows|showed|says|said|"
    r"reported|gave)\b|\bthe (tool|function)('s)? (call )?(results?|responses?|outputs?)\b|"
    r"\bas an ai( language)? model\b",
    re.IGNORECASE)
"""Talk about the dialogue's parties ("The assistant confirms", "the user wants", "as an
AI language model", built-in at 7e413bc); a domain's own words ("the user ID") are not
narration."""


_NOTHING_SAID = re.compile(r"\b(details|value|id|name)s?:\s*(none|null|n/?a|undefined)\b",
                          re.IGNORECASE)
"""A field filled with nothing: "Details: None." (a request on GorillaFileSystem, imitating
the details code adds to requests)."""


_UNSPOKEN = r'"\\\x00-\x1f\[\]{}'
"""What a turn's text is decoded without: brackets and braces (a small model wrote JSON
and code as replies, ``[ {"content": ...``, and lost dialogues on it three tries in a
row), and the double quote, backslash and control characters, which inside the grammar's
JSON string could only end or escape it (quotes in text are single)."""


def spoken(most: int | None = None) -> dict[str, Any]:
    """The JSON Schema of what a speaker says: one or more characters (at most ``most``),
    none of ``_UNSPOKEN``."""
    count = f"{{1,{most}}}" if most else "+"
    return {"type": "string", "pattern": f"^[^{_UNSPOKEN}]{count}$"}


def spoken_with(values: Iterable[str], most: int) -> dict[str, Any]:
    """``spoken(most)`` that gives one of ``values`` (those a speaker can say: none of
    ``_UNSPOKEN``, at most 40 characters) somewhere in it as a word of its own;
    ``spoken(most)`` where there is none."""
    sayable = [v for v in dict.fromkeys(values)
               if 0 < len(v) <= 40 and not re.search(f"[{_UNSPOKEN}^]", v)]
    if not sayable:
        return spoken(most)
    side = f"[^{_UNSPOKEN}]{{0,{most // 2}}}"
    # a special character as a class of one: llama.cpp's grammar parser refuses the
    # escapes a regular expression would use ("\\." and "\\-" in a literal)
    either = "|".join(re.sub(r"([.$*+?()|])", r"[\1]", v) for v in sayable)
    # the value is a word of its own: a small model glues letters to it ("orB234567890")
    apart = f"[^{_UNSPOKEN}A-Za-z0-9]"
    return {"type": "string",
            "pattern": f"^({side}{apart})?({either})({apart}{side})?$"}


def out_of_voice(text: str, tools: Iterable[str] = ()) -> str | None:
    """Why ``text`` is not what a speaker says, if it is not: code or JSON in it, a turn
    that ends announcing what never comes ("the last 10 lines are:"), narration about "the
    user" or "the assistant", or the name of one of ``tools`` (people ask for things, not
    for functions). Generators refuse such text before it enters a dialogue;
    ``turns_in_voice`` rejects a dialogue that has it."""
    tools = list(tools)  # read twice below
    code = _CODE.search(text) or _VARIABLE.search(text)
    if code:
        return f"holds code, not words: {code.group(0)!r}"
    if text.rstrip().endswith(":"):  # a list a grammar's string could not hold
        return "stops at a colon before what it announces: say it in the sentence"
    empty = _NOTHING_SAID.search(text)
    if empty:
        return f"gives {empty.group(0)!r}, a placeholder: say it or leave it out"
    told = _NARRATION.search(text)
    if told:
        return (f"narrates {told.group(0)!r} instead of speaking (the speaker says 'I', to "
                "'you')")
    named = next((t for t in tools if "_" in t and re.search(rf"\b{re.escape(t)}\b", text)),
                 None)
    if named:
        return f"names the tool {named!r}; say what is wanted or done instead"
    spoken = next((t for t in tools if "_" in t and re.search(
        rf"\b{re.escape(t.replace('_', ' '))}\s+(function|tool|api|endpoint|request|call)\b|"
        rf"\b(call(s|ing|ed)?\s+(the\s+)?|(function|tool|api|endpoint)\s+)"
        rf"{re.escape(t.replace('_', ' '))}\b", text, re.IGNORECASE)), None)
    if spoken:  # "as inputs to the find user id by name zip function", "The tool add to cart"
        return f"speaks of the function {spoken!r}; say what is wanted or done instead"
    return None


def unnamed(text: str, tools: Iterable[str]) -> str:
    """``text`` with any tool's function name (and the quotes around it) written as words:
    "use `find_user_id_by_email`" becomes "use find user id by email". Generators apply it
    to what the model writes before ``out_of_voice`` judges it: a small model copies names
    from its prompt however it is asked not to."""
    for name in sorted((t for t in tools if "_" in t), key=len, reverse=True):
        text = re.sub(rf"[`'\"]?\b{re.escape(name)}\b(\(\))?[`'\"]?", name.replace("_", " "),
                      text)
    return text


def unsayable(text: str, tools: Iterable[str], earlier: list[Message], *,
              user: bool) -> str | None:
    """Why a generator must not put ``text`` into a dialogue whose turns so far are
    ``earlier``: the other party's words (``swapped``; ``user`` says whose turn it is),
    out of voice (``out_of_voice``), a repetition (``repeats``), or the prompts' own words
    (``echoed``), each of which verification would reject."""
    return (swapped(text, user=user) or out_of_voice(text, tools)
            or repeats(text, earlier, user=user)
            or echoed(text))


def echoed(text: str) -> str | None:
    """The prompts' words in ``text`` (a placeholder, "subtask"), if any."""
    hit = _ECHO.search(text)
    return f"copies the instructions' word {hit.group(0)!r}" if hit else None


_SERVICE = re.compile(
    r"\bhow (can|may|could) i (help|assist) you\b|\bfeel free to ask\b|"
    r"\bis there anything else (i|you)\b|\b(do|did) you have any (other|more|further) "
    r"questions\b|\bneed (any )?(further|more|other) (help|assistance)\b|"
    r"\bglad (i|we) could help\b|\bglad to (help|assist)\b|\b(glad|happy) to have been "
    r"(of )?(help|assistance|helpful|any help)\b|\bhappy to help\b|\bhappy to assist\b|"
    r"\byou'?re (very |most )?welcome\b|\bi (can'?t|cannot|am unable to) (help|assist) "
    r"(you )?with (that|this|your)\b|\bi can only (help|assist)\b|"
    r"\bwith (the|my) (available )?tools( (provided|available|i have))?\b|"
    r"\b(provide|give|tell|share|confirm)( me)? (your|the) (user ?(name|id)|id|email|zip|"
    r"(reservation|order|booking|account) (id|number))\b|\bour (policy|policies)\b|"
    r"\byour request (was|has been|is|could) (not )?(processed|received|denied|rejected)\b|"
    r"\b(glad|happy|hope) (that )?you (found|find) (the |this |that |my )?(information |"
    r"answer |details |help )?(useful|helpful)\b|\bi understand your (request|concern|"
    r"question|need)s?\b|\bi will (work on|look into|process|handle) (your|this|that)\b|"
    r"\bwould you like (me )?to (add|book|proceed|confirm|cancel|place|make|go ahead|buy|"
    r"purchase|reserve|update|change|modify|know|see|check)\b",
    re.IGNORECASE)
"""What only the assistant says: a user who says it has swapped roles (tau2:retail: "I
am glad you found the information useful!"; MAS's users on the built-in pool: "I
understand your request and will work on it", "Would you like to add 3 units?")."""
_CLIENT = re.compile(
    r"\bthat'?s all i (need|needed|wanted)\b|\bthanks? (you )?(so much )?for (your|the) "
    r"help\b|\byou'?ve been (very |really |so )?helpful\b|"
    r"(?<!hope )(?<!if )\byou (also )?(found|retrieved|fetched|looked up) (that|the|a|an)\b|"
    r"\byou(?:'ve| have) (?:now )?successfully\b|"
    r"\b(?:to|in|into|from|for|of) my (?:cart|order|booking|reservation|account|profile|"
    r"calendar|tweets?)\b|\bmy (?:(?:first|second|third|other|next|last|previous|earlier|"
    r"original|new) )?(?:request|question)s?\b|\bmy (?:cart|order|booking|reservation|account) "
    r"(?:id|number)s?\b|(?:^|(?<=[.!?] ))i(?: really)? want to\b",
    re.IGNORECASE)
"""What only the user says: an assistant who says it has swapped roles (or tells the user
that they found what its own calls found: "You found the details", kept on tau2:airline;
"You found that the file ... has been removed", kept on GorillaFileSystem; "you've
successfully commented on the tweet", kept on TwitterAPI; or that the user's records are
its own: "I added 2 units to my cart", built-in at 6d7b0c7; or the requests its own: "For my
second request to find hotels", built-in at 42a1dcc; or asks as the user: "I want to book a
seat on the flight ...", built-in at 7e413bc)."""


_YOURS = re.compile(r"\b(to|in|into|from|for|of) my (cart|orders?|bookings?|reservations?|"
                    r"account|profile|calendar|tweets?)\b|\bmy ((?:(?:first|second|third|other|"
                    r"next|last|previous|earlier|original|new) )?(?:request|question)s?|"
                    r"(?:cart|order|booking|reservation|account) (?:id|number)s?)\b",
                    re.IGNORECASE)


def addressed(text: str) -> str:
    """An assistant's ``text`` with the user's records and requests given back to the
    user: "added to my cart" becomes "added to your cart", "For my second request" "For
    your second request", "My booking ID" "Your booking ID". Generators apply it to a reply
    before ``swapped`` judges it: a small model echoes the request's "my" (built-in at
    6fd7c24 and 67b6bdc: a reply said "to my cart" three times and the dialogue was lost;
    at 3a9de5d, "My booking ID is 56789")."""
    def yours(hit: re.Match[str]) -> str:
        said = f"{hit.group(1)} your {hit.group(2)}" if hit.group(1) else f"your {hit.group(3)}"
        return said[0].upper() + said[1:] if hit.group(0)[0].isupper() else said
    return _YOURS.sub(yours, text)


def as_said(text: str, tools: Iterable[str], *, user: bool) -> str:
    """``text`` as its speaker says it, the step every generator applies to what the model
    writes before ``unsayable`` judges it: tool names as words (``unnamed``), and in the
    assistant's words, the user's records given back to the user (``addressed``)."""
    text = unnamed(text, tools)
    return text if user else addressed(text)


def swapped(text: str, *, user: bool) -> str | None:
    """How ``text`` is the other party's line, if it is: a user who offers help, an
    assistant who thanks for it."""
    found = (_SERVICE if user else _CLIENT).search(text)
    if found is None:
        return None
    speaker, other = ("user", "assistant") if user else ("assistant", "user")
    return f"the {speaker} speaks as the {other}: {found.group(0)!r}"


def turns_in_voice(messages: list[Message], tools: list[Tool]) -> Check:
    """Each text turn is what its speaker says: no code or JSON (``search_products({``),
    no narration about "the user" or "the assistant" (a small model describing the
    dialogue instead of writing it), no tool named by its function name, no user who
    speaks as the assistant ("How can I assist you?", "Do you have any other questions?")
    and no assistant who speaks as the user ("That's all I need")."""
    names = [t.name for t in tools]
    for i, m in enumerate(messages):
        if m.role not in ("user", "assistant") or not m.content:
            continue
        why = out_of_voice(m.content, names) or swapped(m.content, user=m.role == "user")
        if why:
            return _fail("turns_in_voice", f"[{i}] {why}")
    return _ok("turns_in_voice")


_WORD = re.compile(r"\w+")


def repeats(text: str, earlier: list[Message], *, user: bool = False) -> str | None:
    """How ``text`` repeats an earlier user or assistant turn word for word, if it does:
    the same turn again (over 20 characters), or an earlier one (over 40) inside it, but
    not where a tool result holds that turn too: then it is data, quoted (a tweet's text
    the user gave, posted, and the reply reports: TwitterAPI). A user's turn (``user``)
    also may not copy a run of ``PARROT_WORDS`` words of a request: the user asking again
    for what was asked ("I want to reserve a hotel room in San Francisco for May ..."
    twice, in kept built-in data), nor of ``ECHO_REPLY`` of a reply (an injected user
    turn, "You found a hotel room reservation for May 16th in San Francisco with booking
    ID 98765. The total cost is $500.", from the reply that reported the booking; a user
    who says yes to a question may repeat its fourteen words); a reply, of ``ECHO_REPLY``
    words of a request (it may restate what it did)."""
    said = " ".join(text.lower().split())
    data = [" ".join((m.content or "").lower().split()) for m in earlier if m.role == "tool"]
    for j, m in enumerate(earlier):
        if m.role not in ("user", "assistant") or not m.content:
            continue
        before = " ".join(m.content.lower().split())
        if len(said) > 20 and said == before:
            return f"repeats [{j}] word for word"
        if len(before) > 40 and before in said and not any(before in x for x in data):
            return f"repeats [{j}] word for word within it"
        size = _COPIES.get((user, m.role))
        run = _shared_run(said, before, size) if size else None
        if run and not any(run in " ".join(_WORD.findall(x)) for x in data):
            return f"copies [{j}]: '{run}'"
    return None


PARROT_WORDS = 12
"""A user's turn that shares this many consecutive words with an earlier request copies
it."""
ECHO_REPLY = 16
"""A reply that shares this many with a request gives it back: "You can find user id by
email and modify the default address of a user. Details: email ..." (kept on tau2:retail
at 7d3a929). A confirmation restates fewer ("I was able to add 2 units of the Lenovo
ThinkPad X1 Carbon laptop to your cart": 12); of the replies in this project's benchmark
data that share 16 or more, nearly all speak as the user, copy the policy or give the
request back."""


_COPIES = {(True, "user"): PARROT_WORDS, (True, "assistant"): ECHO_REPLY,
           (False, "user"): ECHO_REPLY}
"""The words in a row that copy a turn: (said by the user, the turn's role) -> count."""


def _shared_run(text: str, other: str, size: int) -> str | None:
    """The first run of ``size`` words ``text`` shares with ``other``, if any."""
    words, others = _WORD.findall(text), " " + " ".join(_WORD.findall(other)) + " "
    for k in range(len(words) - size + 1):
        run = " ".join(words[k:k + size])
        if f" {run} " in others:
            return run
    return None


def no_repetition(messages: list[Message], tools: list[Tool]) -> Check:
    """No repeated turns, no degenerate text (a phrase looping within a turn), no call
    made again with the same arguments after it succeeded: right after it, or later with
    the same result (a call repeated after the state changed, ``ls`` after ``mkdir``,
    gets a new result and is fine)."""
    name = "no_repetition"
    for i, m in enumerate(messages):
        if m.role in ("user", "assistant") and m.content:
            why = repeats(m.content, messages[:i], user=m.role == "user")
            if why:
                return _fail(name, f"[{i}] {why}")
    texts = [(i, " ".join((m.content or "").lower().split())) for i, m in enumerate(messages)
             if m.role in ("user", "assistant") and m.content]
    for i, t in texts:
        words = _WORD.findall(t)
        grams = Counter(tuple(words[k:k + 4]) for k in range(len(words) - 3))
        if grams:
            gram, count = grams.most_common(1)[0]
            if count >= 3 and count * 4 > len(words) * 0.3:
                return _fail(name, f"[{i}] loops on {' '.join(gram)!r} ({count} times)")
    calls = made_calls(messages)
    for n in range(len(calls)):
        why = repeated_call(calls, n)
        if why:
            return _fail(name, f"[{calls[n].at}] {why}")
    return _ok(name)


_NOTHING = frozenset({"null", "[]", "{}", '""', "true", "false", ""})


def repeated_call(calls: list[MadeCall], n: int) -> str | None:
    """Why ``calls[n]`` repeats an earlier call with the same arguments, if it does: in
    the same turn, right after that call succeeded, or later with the same result (a call
    repeated after the state changed, ``ls`` after ``mkdir``, gets a new result). A
    look-up that returns just what another look-up returned learns nothing either
    (tau2:retail: the user's ID looked up by email after it was found by name); one that
    reads back what a change returned checks the change, and may."""
    at, key, result = calls[n]
    for back, (j, earlier, earlier_result) in enumerate(reversed(calls[:n]), 1):
        if earlier != key and result is not None and result == earlier_result \
                and not {verb(key[0]), verb(earlier[0])} & ACTIONS \
                and result.strip() not in _NOTHING:
            return f"{key[0]} learns nothing new: it returned what {earlier[0]} at [{j}] did"
        if earlier != key:
            continue
        if j == at:
            return f"the same call twice in one turn: {key[0]}"
        if earlier_result is not None and (back == 1 or earlier_result == result):
            why = "right after it" if back == 1 else "with the same result"
            return f"repeats the call {key[0]} made at [{j}], which succeeded ({why})"
    return _undone(calls, n)


def _undone(calls: list[MadeCall], n: int) -> str | None:
    """Why ``calls[n]`` undoes what an earlier call of the dialogue made, on the same
    values, if it does (``rmdir(" Archives")`` after ``mkdir(" Archives")``, kept on
    GorillaFileSystem at d9e8d79 as the answer to "delete the Archives directory"): the
    two together do nothing."""
    def values(key: tuple[str, str]) -> set[str]:
        try:
            return set(scalars(parse_arguments(key[1])))
        except ValueError:
            return set()
    undoing = values(calls[n].key)
    for j, earlier, earlier_result in calls[:n]:
        if earlier_result is not None and reverses(earlier[0], calls[n].key[0]) and undoing \
                and undoing <= values(earlier):
            return f"{calls[n].key[0]} undoes {earlier[0]} at [{j}] on the same values"
    return None


def grounded_ids(messages: list[Message], tools: list[Tool]) -> Check:
    """Rule-detectable hallucination: every entity argument value (``naig.grounding``: a
    parameter named like an identifier, ``user_id: "mia_li"`` included, or one whose
    description names its producer) and every other ID-like value (letters with digits)
    must appear earlier in the dialogue."""
    name = "grounded_ids"
    by_name = {t.name: t for t in tools}
    for i, m in enumerate(messages):
        for c in m.tool_calls or []:
            try:
                args = parse_arguments(c.function.arguments)
            except ValueError:
                continue
            earlier = "\n".join(x.content or "" for x in messages[:i])
            tool = by_name.get(c.function.name)
            loose = ungrounded(tool, tools, args, earlier) if tool is not None else None
            loose = loose or next((v for v in id_like(args) if v not in earlier), None)
            if loose is not None:
                return _fail(name, f"[{i}] {c.function.name} uses {loose!r}, which appears "
                                   "nowhere earlier in the dialogue")
            other = other_record(c.function.name, args, messages[:i])
            if other is not None:
                return _fail(name, f"[{i}] {c.function.name} {other}")
    return _ok(name)


_QUOTED = re.compile(r"(?<!\w)'([^']{3,60}?)'(?!\w)|(?<!\w)\"([^\"]{3,60}?)\"(?!\w)|"
                     r"\u201c([^\u201d]{3,60}?)\u201d")


def _records(node: Any, above: str = "", out: list[tuple[set[str], str]] | None = None
             ) -> list[tuple[set[str], str]]:
    """Each JSON object in ``node`` with the IDs it holds under ID-named fields and the
    names that speak of it: every string in it, and the strings of the objects it lies
    within (``above``): an item's variant is named by its product's name."""
    out = [] if out is None else out
    if isinstance(node, dict):
        ids = {str(v) for k, v in node.items() if ID_NAME.search(str(k))
               and isinstance(v, (str, int)) and not isinstance(v, bool)}
        own = " | ".join(v for v in node.values() if isinstance(v, str))
        out.append((ids, f"{above} | {' | '.join(scalars(node))}"))
        above = f"{above} | {own}"
    for child in node.values() if isinstance(node, dict) else node \
            if isinstance(node, list) else ():
        _records(child, above, out)
    return out


def quoted(text: str) -> list[str]:
    """The names ``text`` quotes ('Birthday Party', "MacBook Pro"), IDs aside."""
    return [q for hit in _QUOTED.finditer(text) for q in hit.groups() if q and not id_like(q)]


def other_record(name: str, arguments: Any, earlier: list[Message]) -> str | None:
    """How a call that changes something (``ACTIONS``) acts on another record than the one
    its request names, if it does: the request (the last user message) quotes a name
    ('Birthday Party') that no call passed, and the records whose IDs its arguments take
    have names (``_records``), of which that is none (an exchange of the 'Water Bottle'
    paid by a card: the item is named, the card need not be). Built-in at 3a9de5d kept
    ``delete_event(event_id="1234")``, event 1234 being "Meeting with John", for "remove
    the event with title 'Birthday Party'", which no event had."""
    if verb(name) not in ACTIONS:
        return None
    request = next((x.content or "" for x in reversed(earlier) if x.role == "user"), "")
    passed = " ".join(c.function.arguments for x in earlier for c in x.tool_calls or [])
    names = [q for q in quoted(request) if not shown(q, passed)]
    if not names:
        return None
    records = [r for x in earlier if x.role == "tool" and not x.is_error
               for r in _records(decoded(x.content))]
    values = {str(v) for k, v in leaves(arguments) if ID_NAME.search(k) and v is not None}
    taken = [(value, said) for value in sorted(values) for ids, said in records
             if value in ids and re.search("[A-Za-z]", said.replace(value, ""))]
    if not taken or any(shown(q, said) for _, said in taken for q in names):
        return None  # one of them is what the request names (an item, paid by a card)
    return f"acts on {taken[0][0]}, but the request names {names[0]!r}, which it is not"


_FAILURE = re.compile(
    r"\b(sorry|unfortunately|unable|can ?not|can't|couldn't|could not|wasn't|was not|"
    r"isn't|is not|aren't|doesn't|does not|didn't|did not|no such|not found|not available|"
    r"unavailable|failed|fails|error|invalid|problem|issue|denied|refused|won't|cannot)\b",
    re.IGNORECASE)


def errors_acknowledged(messages: list[Message], tools: list[Tool]) -> Check:
    """A reply that follows a refused call, with no call tried in between, says it
    failed: it never reports what the tools did not return (a flight status "Flying"
    right after ``{"error": "Flight AA123 not found"}``)."""
    pending: int | None = None
    for i, m in enumerate(messages):
        if m.role == "tool":
            pending = i if m.is_error else pending
        elif m.role == "assistant" and m.tool_calls:
            pending = None  # tried again: its own results decide
        elif m.role == "assistant" and pending is not None:
            if not _FAILURE.search(m.content or ""):
                return _fail("errors_acknowledged",
                             f"[{i}] the reply does not say that the call answered at "
                             f"[{pending}] failed")
            pending = None
        elif m.role == "user":
            pending = None
    return _ok("errors_acknowledged")


_ID_TOKEN = re.compile(r"#?\b(?=[A-Za-z0-9_-]*\d)(?=[A-Za-z0-9_-]*[A-Za-z])"
                       r"[A-Za-z0-9][A-Za-z0-9_-]{3,}\b")
_FOUND_ID = re.compile(r"\bfound (?:the |a |an |your )?(?:\w+ )?(?:with |whose )?(?:the )?"
                       r"(?:id|number)\s*(?:is\s*|of\s*|:\s*)?['\"`#]?"
                       r"([A-Za-z0-9_-]*\d[A-Za-z0-9_-]*)\b",
                       re.IGNORECASE)
"""A reply that says it found a record by its ID ("I found the tweet with ID 1234"): only
a result can show that the ID exists (TwitterAPI, kept: the user said 1234, the post
returned 0)."""
_LONG_NUMBER = re.compile(r"(?<![$€£¥\d.,])\b\d{5,}\b(?![.,]\d)")
"""A number of five digits or more, not an amount: a zip code, an item or phone number
(tau2:retail: a reply gave the user's zip 76180 after a look-up that returned only the
user's ID)."""


_NUMBERS = {w: n for n, w in enumerate((
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve"))}
_COUNT = re.compile(r"\b(?:found|are|were|has|have|had|returned|retrieved|shows?|lists?|"
                    r"contains?|holds?)\s+(?:only\s+|exactly\s+|a total of\s+)?(\d+|"
                    + "|".join(_NUMBERS) + r")\s+(?:[a-z]+\s+)?[a-z]+s\b", re.IGNORECASE)
"""A count a reply gives of things found ("I found three tweets", "there are 2 hotels")."""


def _sizes(node: Any) -> Iterator[int]:
    """The lengths of every list in a JSON value."""
    if isinstance(node, list):
        yield len(node)
    for child in node.values() if isinstance(node, dict) else node \
            if isinstance(node, list) else ():
        yield from _sizes(child)


def _counted(text: str, earlier: str, results: list[Message]) -> str | None:
    """A count in ``text`` that nothing earlier gives, if any: no earlier turn, call or
    result writes the number, and no result holds a list of that many (TwitterAPI: "I
    found three tweets" over a search that returned one)."""
    sizes: set[int] = set()
    for m in results:
        try:
            sizes.update(_sizes(json.loads(m.content or "")))
        except ValueError:
            continue
    for hit in _COUNT.finditer(text):
        word = hit.group(1).lower()
        n = _NUMBERS.get(word, int(word) if word.isdigit() else -1)
        if n not in sizes and not re.search(rf"(?<![\d.]){n}(?![\d])|\b{word}\b", earlier,
                                            re.IGNORECASE):
            return hit.group(0)
    return None


_AMOUNT = re.compile(r"[$€£¥]\s?(\d[\d,]*(?:\.\d+)?)|\b(\d[\d,]*(?:\.\d+)?)\s?"
                     r"(?:dollars|usd|eur|euros|gbp)\b|\b(\d+)\s+(?:units?\s+|items?\s+|"
                     r"pieces?\s+|seats?\s+|copies\s+)?(?:(?:left\s+)?in stock|left|remaining)\b|"
                     r"\b(?:stock|quantity|inventory)(?:\s+(?:level|count))?(?:\s+(?:of|is)\s+|\s*:\s*|\s+)"
                     r"(\d+)\b",
                     re.IGNORECASE)
"""A price or a stock a reply gives ("$90", "250 dollars", "3 in stock", "stock 5")."""
_FIGURE = re.compile(r"(?<![\w.])\d[\d,]*(?:\.\d+)?")
_SENTENCE = re.compile(r"(?<=[.!?;])\s+")
_QUANTITY = re.compile(r"^[$€£¥]?\s?-?\d[\d,]*(?:\.\d+)?\s?[A-Za-z]{0,5}$")
"""A value that is a number (``100``, ``"$90"``, ``"90 USD"``), not an ID with digits."""
_Object = tuple[set[str], set[float], tuple[int, ...]]


def _figures(text: str) -> set[float]:
    """The numbers written in ``text``."""
    out = set()
    for hit in _FIGURE.finditer(text):
        try:
            out.add(round(float(hit.group(0).replace(",", "")), 2))
        except ValueError:
            continue
    return out


def _objects(node: Any, within: tuple[int, ...] = (), out: list[_Object] | None = None
             ) -> list[_Object]:
    """Each JSON object in ``node``: the strings it holds as its own values, every number
    under it (numbers written as text included: ``"price": "$100"``), and the objects it
    lies within (their places in the list)."""
    out = [] if out is None else out
    if isinstance(node, dict):
        own = {v for v in node.values() if isinstance(v, str)}
        own |= {x for v in node.values() if isinstance(v, list) for x in v if isinstance(x, str)}
        numbers = {n for v in scalars(node) if _QUANTITY.match(v) for n in _figures(v)}
        out.append(({v for v in own if len(v) > 2 and re.search("[A-Za-z]", v)}, numbers,
                    within))
        within = (*within, len(out) - 1)
    for child in node.values() if isinstance(node, dict) else node \
            if isinstance(node, list) else ():
        _objects(child, within, out)
    return out


def _held(objects: list[_Object], sentence: str) -> set[float] | None:
    """The numbers of the records ``sentence`` names, the innermost where one lies within
    another ("Booked B-77: room R-10 costs ..." is held to R-10, not to the booking that
    lists every room); None where it names none."""
    named = {i for i, (own, _, _) in enumerate(objects) if any(shown(v, sentence) for v in own)}
    outer = {j for i in named for j in objects[i][2]}
    inner = named - outer
    return set().union(*(objects[i][1] for i in inner)) if inner else None


def _misvalued(text: str, earlier: str, told: str, results: list[Message]) -> str | None:
    """A price or stock in ``text`` (``_AMOUNT``) that the dialogue does not give for what
    the sentence speaks of, if any. A sentence that names a record a result returned (an
    ID, a name) gives only numbers that record holds, the user or a call stated (``told``),
    or, for a price, a sum or product of those with another number of the dialogue (a
    total); one that names none gives only numbers written somewhere ``earlier``
    (built-in at 6fd7c24: "F1234 with a price of $90" over a search that priced F1234 at
    $100 and another flight at $90; "3 in stock" over results that gave no stock)."""
    objects: list[_Object] = []
    for m in results:
        _objects(decoded(m.content), (), objects)
    anywhere, stated = _figures(earlier), _figures(told)
    terms = (anywhere | stated) - {0, 1}  # a total is no price times 1, nor plus 0
    for sentence in _SENTENCE.split(text):
        amounts = list(_AMOUNT.finditer(sentence))
        if not amounts:
            continue
        held = _held(objects, sentence)
        base = (anywhere if held is None else held) | stated
        for hit in amounts:
            figure = next(g for g in hit.groups() if g is not None)
            n = round(float(figure.replace(",", "")), 2)
            priced = hit.group(3) is None and hit.group(4) is None  # a stock is not summed
            if n in base or priced and any(round(a + b, 2) == n or round(a * b, 2) == n
                                           for a in base - {0, 1} for b in terms):
                continue
            return hit.group(0).strip()
    return None


RECORDS = frozenset({"booking", "reservation", "order", "appointment", "ticket"})
"""Kinds of record a reply may speak of whether or not a tool of the dialogue names them:
the small model calls what it did "your booking" (a calendar event, a cart; built-in at
3a9de5d)."""
_WORD_HIT = re.compile(r"[A-Za-z]+")


def _written(messages: list[Message]) -> Vocabulary:
    """What the calls of ``messages`` passed and their results returned: each value with
    the fields it was given under."""
    return vocabulary([decoded(x.content) for x in messages if x.role == "tool"]
                      + [decoded(c.function.arguments) for x in messages
                         for c in x.tool_calls or []])


def _akin(word: str, other: str) -> bool:
    """Whether two words share their root: ``booking`` and ``book``, ``reservation`` and
    ``reserve``."""
    n = len(os.path.commonprefix([word, other]))
    return n >= 4 and n >= min(len(word), len(other)) - 3


def _unheard(text: str, kinds: frozenset[str], earlier: list[Message]) -> str | None:
    """A kind of record (``kinds``) that ``text`` speaks of and that nothing before it
    does: no user's words or policy, no tool called, no field or value a call passed or a
    result returned ("Your booking 'Birthday Party' has been removed" after ``delete_event``;
    "I found a booking for March 15th" after ``list_events``; built-in at 3a9de5d). A
    kind counts where it is spoken of as a record (after "your", "the", "a"; before an ID),
    not "in alphabetical order" or "the order of the lines". The assistant's own earlier
    words are claims, not sources."""
    sources = []
    for x in earlier:
        if x.role in ("system", "user"):  # a domain's policy speaks of its records
            sources.append(x.content or "")
        elif x.role == "tool":
            sources += [f"{key} {value}" for key, value in leaves(decoded(x.content))]
        for c in x.tool_calls or []:  # a call's tool and the fields it fills
            sources += [c.function.name, *(k for k, _ in leaves(decoded(c.function.arguments)))]
    heard = {w.lower() for w in _WORD_HIT.findall(" ".join(sources))}
    for hit in _WORD_HIT.finditer(text):
        word = hit.group(0).lower()
        kind = word if word in kinds else word[:-1] if word[:-1] in kinds else None
        if kind is not None and _as_record(text, hit) \
                and not any(_akin(kind, h) for h in heard):
            return word
    return None


def _as_record(text: str, hit: re.Match[str]) -> bool:
    """Whether the word ``hit`` is spoken of as a record: after "your", "the", "a" or
    before an ID ("order 5521"), and not "the order of the lines"."""
    before, after = text[:hit.start()], text[hit.end():]
    return bool(_AS_RECORD.search(before) or _NAMED.match(after)) and not _OF.match(after)


_AS_RECORD = re.compile(r"\b(?:your|my|the|a|an|new|this|that)\s+$", re.IGNORECASE)
_NAMED = re.compile(r"\s+(?:id|number|no\.|#|[\w-]*\d)", re.IGNORECASE)
_OF = re.compile(r"\s+of\b", re.IGNORECASE)


def statuses(known: Vocabulary | None) -> frozenset[str]:
    """The values the state holds under a ``status`` field (tau2: pending, delivered,
    landed), lower-cased; none where the state is not known."""
    return frozenset(v.lower() for v, keys in (known or {}).items()
                     if any(k.lower() == "status" or k.lower().endswith("_status")
                            for k in keys) and len(v) > 2)


def _status_claim(text: str, states: frozenset[str], earlier: str) -> str | None:
    """A status ``text`` gives a record ("two pending orders", "the order is delivered")
    that nothing earlier shows, if any (tau2:retail: "they have two pending orders" after a
    look-up that gave no status; both were delivered)."""
    if not states:
        return None
    names = "|".join(re.escape(x) for x in sorted(states, key=len, reverse=True))
    claim = re.compile(rf"\b({names})\s+(orders?|reservations?|flights?|items?|bookings?)\b|"
                       rf"\b(?:is|are|was|were|been|status|currently|still)\s+(?:now\s+)?"
                       rf"['\"]?({names})\b", re.IGNORECASE)
    for hit in claim.finditer(text):
        word = (hit.group(1) or hit.group(3)).lower()
        if word not in earlier.lower():
            return hit.group(0)
    return None


def claims_grounded(messages: list[Message], tools: list[Tool], *,
                    known: Vocabulary | None = None) -> Check:
    """The assistant's replies claim only IDs that exist and counts that the dialogue
    gives: every ID-like token in a reply (letters and digits, like a booking or order
    number) appears earlier in the dialogue, and so does every count of things found, or
    a result holds that many (``_counted``); every price or stock it gives is the one the
    dialogue gives for what it names (``_misvalued``); every value it calls a kind of
    record is of that kind where the state or the calls give it (``mislabeled``: "the
    order ID C5678" for a ``cart_id``); every kind of record it speaks of, something
    before it speaks of (``_unheard``); and, where the state is ``known``, every status it
    gives a record (``_status_claim``). Where tools really execute, earlier results are
    the state, so a claimed ID exists."""
    states = statuses(known)
    kinds = record_kinds(tools) | RECORDS
    for i, m in enumerate(messages):
        if m.role != "assistant" or m.tool_calls or not m.content:
            continue
        earlier = "\n".join(x.content or "" for x in messages[:i])
        earlier += "\n".join(c.function.arguments for x in messages[:i] for c in x.tool_calls or [])
        for token in [*_ID_TOKEN.findall(m.content), *_LONG_NUMBER.findall(m.content)]:
            if token.lstrip("#") not in earlier:
                return _fail("claims_grounded", f"[{i}] the reply names {token!r}, which no "
                                                "earlier turn or tool result contains")
        count = _counted(m.content, earlier, [x for x in messages[:i] if x.role == "tool"])
        if count is not None:
            return _fail("claims_grounded", f"[{i}] the reply says {count!r}, but no earlier "
                                            "turn or tool result gives that many")
        told = "\n".join(x.content or "" for x in messages[:i] if x.role in ("user", "tool"))
        told_or_asked = "\n".join([*(x.content or "" for x in messages[:i] if x.role == "user"),
                                   *(c.function.arguments for x in messages[:i]
                                     for c in x.tool_calls or [])])
        found = _FOUND_ID.search(m.content)
        results = "\n".join(x.content or "" for x in messages[:i] if x.role == "tool")
        if found and not shown(found.group(1).strip("'\"`#.,"), results):
            return _fail("claims_grounded", f"[{i}] the reply says {found.group(0)!r}, but no "
                                            "earlier result returned that ID")
        wrong = mislabeled(m.content, known) if known else None
        wrong = wrong or mislabeled(m.content, _written(messages[:i]), kinds)
        if wrong is not None:
            return _fail("claims_grounded", f"[{i}] the reply {wrong}")
        kind = _unheard(m.content, kinds, messages[:i])
        if kind is not None:
            return _fail("claims_grounded", f"[{i}] the reply speaks of {kind!r}, which no "
                                            "call, result or request of the dialogue does")
        value = _misvalued(m.content, earlier, told_or_asked,
                           [x for x in messages[:i] if x.role == "tool"])
        if value is not None:
            return _fail("claims_grounded", f"[{i}] the reply says {value!r}, but no earlier "
                                            "turn or tool result gives that for what it names")
        status = _status_claim(m.content, states, told)  # the policy names every status
        if status is not None:
            return _fail("claims_grounded", f"[{i}] the reply says {status!r}, but no earlier "
                                            "turn or tool result gives that status")
    return _ok("claims_grounded")


_DONE_BY: dict[str, tuple[str, ...]] = {
    "removed": ("remove", "delete", "rm", "rmdir", "cancel", "unfollow"),
    "deleted": ("delete", "remove", "rm", "rmdir"),
    "cancelled": ("cancel",), "canceled": ("cancel",),
    "booked": ("book", "reserve"), "reserved": ("book", "reserve"),
    "added": ("add", "create", "post", "place"), "created": ("create", "add", "mkdir", "touch"),
    "placed": ("place", "order"), "ordered": ("place", "order"),
    "updated": ("update", "modify", "edit", "set", "change"),
    "modified": ("update", "modify", "edit", "set", "change"),
    "changed": ("update", "modify", "edit", "set", "change"),
    "sent": ("send", "post"), "posted": ("post", "send"), "scheduled": ("schedule", "create"),
    "moved": ("mv", "move"), "copied": ("cp", "copy"), "renamed": ("mv", "rename"),
    "returned": ("return",), "exchanged": ("exchange",), "transferred": ("transfer",),
    "retweeted": ("retweet",), "commented": ("comment",), "compared": ("diff", "compare"),
    "sorted": ("sort",)}
"""An action a reply may claim, and the verbs a tool's name starts with that do it."""
ACTIONS = frozenset(v for verbs in _DONE_BY.values() for v in verbs)
"""The verbs of tools that change something: what a reply may claim was done."""
_CLAIM = re.compile(r"\b(?:has been|have been|is now|was|were|is|are|i've|i have|i|you've|"
                    r"you have|you|we've|we have|we|and)\s+"
                    r"(?:successfully\s+|now\s+|also\s+|just\s+)?(" + "|".join(_DONE_BY)
                    + r")\b", re.IGNORECASE)
_BASE = {"remove": "removed", "delete": "deleted", "cancel": "cancelled", "book": "booked",
         "reserve": "reserved", "add": "added", "create": "created", "place": "placed",
         "update": "updated", "modify": "modified", "change": "changed", "send": "sent",
         "post": "posted", "schedule": "scheduled", "move": "moved", "copy": "copied",
         "rename": "renamed", "return": "returned", "exchange": "exchanged",
         "transfer": "transferred", "retweet": "retweeted", "comment": "commented",
         "compare": "compared", "sort": "sorted"}
_DID = re.compile(r"\b(?:was able to|were able to|managed to|i successfully|i have successfully)"
                  r"\s+(?:successfully\s+)?(" + "|".join(_BASE) + r")\b", re.IGNORECASE)
"""A claim made with the plain verb: "I was able to successfully copy the file" after a
call that moved it (GorillaFileSystem)."""


_BARE = re.compile(r"(?:^|(?<=[.!;] ))(" + "|".join(_DONE_BY) + r")\b(?:\s+(?:it|them|"
                   r"successfully|a|an)\b|(?:\s+\w+){0,3}\s*(?:[.!]|$))", re.IGNORECASE)
"""A claim that opens its sentence with the verb ("Added to cart.", after a search alone:
built-in at 34a30af; "Added it", "Booked a room"), not a description ("Scheduled for
Monday: Team sync", "Sent to your home address", "Changed your mind?")."""


def _action(hit: re.Match[str]) -> str:
    """The action a claim (``_claims``) says was done, as ``_DONE_BY`` names it."""
    word = hit.group(1).lower()
    return _BASE.get(word, word)


def _claims(text: str) -> list[re.Match[str]]:
    return sorted((*_CLAIM.finditer(text), *_DID.finditer(text), *_BARE.finditer(text)),
                  key=lambda hit: hit.start())


def claimed(text: str) -> str | None:
    """The first action ``text`` says was done ("I have added it to your cart"), if any."""
    hits = _claims(text)
    return hits[0].group(0) if hits else None


def _replies(messages: list[Message]) -> Iterator[tuple[int, Message, list[Message]]]:
    """Each text reply of the assistant, with its index and the messages since the user
    message it answers (that message included)."""
    opened = 0
    for i, m in enumerate(messages):
        if m.role == "user":
            opened = i
        elif m.role == "assistant" and not m.tool_calls and m.content:
            yield i, m, messages[opened:i]


_PROMISE = re.compile(r"\b(?:i will|i'll|let me|i am going to|i'm going to)\s+(?:now\s+|also\s+|"
                      r"then\s+|proceed to\s+|go ahead and\s+)*(" + "|".join(_BASE) +
                      r"|get|retrieve|fetch|look up|look into|check|search|find|list|show)\b",
                      re.IGNORECASE)
"""A reply announcing what it is about to do ("I will now modify the address", "Now, I
will proceed to get the details")."""


_CONFIRMED = re.compile(r"\b(booking|reservation|order|purchase|appointment)s? (has been|have "
                        r"been|is|was|are|were) (now )?confirmed\b", re.IGNORECASE)
_MAKES = frozenset({"book", "reserve", "place", "order", "create", "schedule", "purchase",
                    "buy", "update", "modify", "change", "exchange", "return", "cancel"})
"""A reply that says a booking or order is confirmed needs a call since the request that
made or changed one ("Your booking has been confirmed." after a comment on a tweet, kept
on TwitterAPI)."""


def actions_grounded(messages: list[Message], tools: list[Tool]) -> Check:
    """A reply claims only actions a call since the request did ("I have cancelled your
    booking" after a cancel call that succeeded), or that a result since then reports (a
    status ``cancelled``, ``"deleted": true``): seen in kept data, "I confirmed that the
    event has been removed" after no call that removes anything. It claims them for the
    assistant, not the user (``_YOU_DID``). Nor does a reply that
    ends the assistant's turn announce a change it then never makes ("I will now modify
    the default address", tau2:retail), unless it asks the user first (it ends with "?")."""
    for i, m, since in _replies(messages):
        confirmed = _CONFIRMED.search(m.content or "")
        if confirmed and not {verb(c.function.name) for x in since
                              for c in x.tool_calls or []} & _MAKES:
            return _fail("actions_grounded", f"[{i}] the reply says {confirmed.group(0)!r}, "
                                             "but no call since the request made one")
        promise = _PROMISE.search(m.content or "")
        if promise and not (m.content or "").rstrip().endswith("?"):
            return _fail("actions_grounded", f"[{i}] the reply says {promise.group(0)!r} and "
                                             "stops: make the change, or ask before it")
        failed = {x.tool_call_id for x in since if x.is_error}
        verbs = {verb(c.function.name)
                 for x in since for c in x.tool_calls or [] if c.id not in failed}
        results = " ".join((x.content or "").lower() for x in since
                           if x.role == "tool" and not x.is_error)
        hits = _claims(m.content or "")
        ids = {v for x in messages[:i] for v in _record_ids(x)}
        done = " ".join(f"{c.function.arguments} {x.content or ''}" for x in since
                        for c in x.tool_calls or []) + " " + results
        answers = {x.tool_call_id: x.content or "" for x in since if x.role == "tool"}
        for hit in hits:
            action = _action(hit)
            acted = " ".join(f"{c.function.arguments} {answers.get(c.id, '')}" for x in since
                             for c in x.tool_calls or []
                             if c.id not in failed and verb(c.function.name) in _DONE_BY[action])
            other = _other(m.content or "", hit, done, ids, acted or done)
            if other:
                return _fail("actions_grounded", f"[{i}] the reply says {other!r} was "
                                                 f"{hit.group(1).lower()}, but no call since "
                                                 "the request acted on it")
            if not verbs & set(_DONE_BY[action]) and action not in results:
                return _fail("actions_grounded", f"[{i}] the reply says {hit.group(0)!r}, "
                                                 "but no call since the request did that")
            if _YOU_DID.match(hit.group(0)) and verbs & set(_DONE_BY[action]):
                return _fail("actions_grounded", f"[{i}] the reply says {hit.group(0)!r}, "
                                                 "but the assistant's call did that: say 'I'")
    return _ok("actions_grounded")


_STOP = re.compile(r"[.!?](?=\s|$)")
_CLAUSE = re.compile(r"[.!?;](?=\s|$)")
_FILE = re.compile(r"(?<![\w.-])[\w-]+\.[a-z][a-z0-9]{1,4}\b", re.IGNORECASE)


def _other(text: str, hit: re.Match[str], done: str, ids: set[str], acted: str
           ) -> str | None:
    """A file that the sentence of a claimed action names and no call since the request
    took or returned (``done``), or a record's ID of ``ids`` that the clause names and no
    call doing that action took or returned (``acted``): GorillaFileSystem kept "The
    previous_report.pdf file was moved" after ``mv`` of the folder ``archive`` (at
    28a581f and 8858cb6); built-in at 67b6bdc kept "the event 'Birthday Party' with ID
    5678 ... removed" after ``delete_event(event_id="1234")``."""
    def around(stops: re.Pattern[str]) -> str:
        bounds = [0, *(x.end() for x in stops.finditer(text)), len(text)]
        return text[max(b for b in bounds if b <= hit.start()):
                    min(b for b in bounds if b > hit.start())]
    files = (f for f in _FILE.findall(around(_STOP)) if not shown(f, done))
    clause = around(_CLAUSE)
    records = (v for v in sorted(ids) if shown(v, clause) and not shown(v, acted))
    return next(files, None) or next(records, None)


def _record_ids(message: Message) -> Iterator[str]:
    """The values a message's calls pass, or its result holds, under an ID-named field
    (``event_id``, ``id``), of three characters or more."""
    texts = [c.function.arguments for c in message.tool_calls or []]
    texts += [message.content or ""] if message.role == "tool" else []
    yield from (str(v) for text in texts for k, v in leaves(decoded(text))
                if ID_NAME.search(k) and isinstance(v, (str, int))
                and not isinstance(v, bool) and len(str(v)) > 2)


_YOU_DID = re.compile(r"you(?:'ve| have)?\b", re.IGNORECASE)
"""A reply that gives the user what the assistant's own call did ("You have removed the
event", kept built-in data at b92bfe0; "I found that you booked a seat", at d9e8d79);
said of what no call did, it is the user's own past ("You have placed two orders", read
from their record)."""


_DENIAL = re.compile(r"\b(couldn'?t|could not|did not|didn'?t|was unable to|unable to|"
                     r"cannot|can'?t) find\b|\bnot found\b|\bno (\w+ )?(results|matches)\b|"
                     r"\bfound no (\w+ )?\w+ (with|matching|named|under|by|on|from|between)\b|"
                     r"\binability to find\b|\bno suitable \w+|"
                     r"\bthere (is|are|was|were) (currently )?no (\w+ )?(records?|results?|"
                     r"matches)\b|\bno (\w+ )?\w+ (is |are |were )?(currently )?available\b",
                     re.IGNORECASE)
"""A reply that says nothing was found or nothing is available (built-in at 42a1dcc: "there
are currently no hotels available" right after a search that returned one)."""
_REFUSED = re.compile(r"\b(?:was|were|has been|have been|got) (?:denied|rejected|declined|"
                      r"unsuccessful)\b|\bunsuccessful\b|\b(?:could not|couldn'?t|was unable to|"
                      r"were unable to|unable to) (?:complete|book|add|place|process|reserve|"
                      r"cancel|delete|remove|update|send|post)\b", re.IGNORECASE)
"""A reply that says its change failed (built-in at 67b6bdc: "Your request to book a seat
on the flight F1234 ... was denied" after ``{"booking_id": "J5678", "status":
"confirmed"}``)."""
_EMPTY = re.compile(r"\[\s*\]|\{\s*\}|\bnull\b|\bfalse\b|\bnot found\b|:\s*0\b|\"\"",
                    re.IGNORECASE)


_FOUND = re.compile(r"\bi (?:have |also |just )?found (?!no\b|nothing\b|none\b|0\b|zero\b|"
                    r"that\b|out\b)\w+", re.IGNORECASE)
_BLANK = re.compile(r"^\s*(\[\s*\]|\{\s*\}|null|\"\")?\s*$")


def denials_grounded(messages: list[Message], tools: list[Tool]) -> Check:
    """A reply says nothing was found only where a result since the request came back
    empty or failed: seen in kept data, "I did not find Mia Santos's user id" right after
    the call that found it, and a repair that answered a placed order with "I couldn't
    find any products". Nor does it say it found something where every result came back
    empty (TwitterAPI: "I found 1 tweet containing 'AI'. The tweet ID is 0" after a search
    that returned ``[]``, at 5cf4e91)."""
    for i, m, since in _replies(messages):
        results = [x for x in since if x.role == "tool"]
        denial = _DENIAL.search(m.content or "")
        about = _about(m.content or "", denial, since) if denial else results
        if denial and about and not any(x.is_error or _EMPTY.search(x.content or "")
                                        for x in about):
            return _fail("denials_grounded", f"[{i}] the reply says {denial.group(0)!r}, but "
                                             "every result since the request found something")
        refused = _REFUSED.search(m.content or "")
        if refused and results and not any(x.is_error or _BLANK.match(x.content or "")
                                           for x in results):
            return _fail("denials_grounded", f"[{i}] the reply says {refused.group(0)!r}, but "
                                             "every call since the request succeeded")
        found = _FOUND.search(m.content or "")
        if found and results and all(_BLANK.match(x.content or "") for x in results):
            return _fail("denials_grounded", f"[{i}] the reply says {found.group(0)!r}, but "
                                             "every result since the request came back empty")
    return _ok("denials_grounded")


def _about(text: str, denial: re.Match[str], since: list[Message]) -> list[Message]:
    """The results since the request of the look-ups (no tool that changes something)
    whose names speak of what ``denial`` says was not found ("no flights on May 16th":
    ``search_flights``), or all of them where no name does (built-in at 67b6bdc kept "I
    found no flights" after a search that found two, because a booking since had
    failed)."""
    window = text[denial.start():denial.end() + 40].lower()
    answers = {x.tool_call_id: x for x in since if x.role == "tool"}
    about = [answers[c.id] for x in since for c in x.tool_calls or [] if c.id in answers
             and verb(c.function.name) not in ACTIONS
             and any(re.search(rf"\b{re.escape(part)}(s|es)?\b", window)
                     for part in c.function.name.lower().split("_")[1:] if len(part) > 3)]
    return about or list(answers.values())


_STATUS = frozenset({"ok", "okay", "success", "successful", "succeeded", "yes", "no", "true",
                     "false", "done", "none", "null"})
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _news(result: Message, passed: str) -> list[str]:
    """What a successful ``result`` returned that the dialogue had not shown (``passed``:
    its call's arguments, the request and the turns before it): what a reply can report.
    A single digit (a tweet ID 0, an item count), a bare status ("OK", "success"), a date
    or a time (said in many ways) does not count, nor does a true or false: "I have posted
    your tweet" reports enough."""
    out = []
    for v in scalars(decoded(result.content)):
        plain = v.strip()
        if plain and not re.fullmatch(r"-?\d(\.0+)?", plain) and plain.lower() not in _STATUS \
                and not when(plain) and not shown(v, passed):
            out.append(v)
    return out


_FLAT = frozenset({"with", "that", "this", "from", "have", "your", "been", "were", "what",
                   "which", "there", "their", "into", "about"})


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]{4,}", text.lower())) - _FLAT


def _reports(value: str, text: str, asked: set[str]) -> bool:
    """Whether ``text`` gives ``value``: as written, a number by its value (1,299.50 for
    1299.5, 19 for 18.6), or, for words (a status message, a file's content, a tweet), one
    of its words of four letters or more that the request and the calls' arguments
    (``asked``) do not hold ("Comment added successfully": "I have added your comment";
    not "hotel" from "Hotel XYZ" after "book a hotel room")."""
    if shown(value, text):
        return True
    if _NUMBER.fullmatch(value.strip()):
        number = float(value)
        return any(abs(n - number) < 0.005 or n == round(number) for n in _figures(text))
    return len(value.split()) > 1 and bool((_words(value) - asked) & _words(text))


def _owed(messages: list[Message], i: int, since: list[Message]) -> tuple[list[str], set[str]]:
    """What a reply at ``i`` (answering the request that opens ``since``) must give one
    of, and the words the request and arguments hold; nothing is owed where a result since
    the request (or since a reply already said) returned nothing new."""
    said = " ".join([*(x.content or "" for x in messages[:i - len(since)]),
                     *(x.content or "" for x in since if x.role != "tool")])
    since = _unreplied(since)
    arguments = {c.id: " ".join(scalars(decoded(c.function.arguments)))
                 for x in since for c in x.tool_calls or []}
    news = [_news(x, f"{arguments.get(x.tool_call_id or '', '')} {said}") for x in since
            if x.role == "tool" and not x.is_error]
    asked = _words(" ".join([*arguments.values(), said]))
    return ([v for vs in news for v in vs] if news and all(news) else []), asked


def _unreplied(since: list[Message]) -> list[Message]:
    """``since`` after its last text reply, if it has one: a reply already said what came
    back before it."""
    replied = [k for k, x in enumerate(since) if x.role == "assistant" and x.content
               and not x.tool_calls]
    return since[replied[-1] + 1:] if replied else since


def _unreported(text: str, since: list[Message], said: str, asked: set[str]
                ) -> tuple[str, list[str]] | None:
    """A change a call made since the request (its tool's verb one of ``ACTIONS``, its
    result no error) that ``text`` neither gives a value of (``_news``) nor claims by its
    verb ("booked", "added"): the tool's name and what new it returned. Built-in at 7e413bc
    kept a reply that told the user about flights and left out the hotel its call had
    just booked (B789, $465)."""
    since = _unreplied(since)
    results = {x.tool_call_id: x for x in since if x.role == "tool" and not x.is_error}
    verbs = {v for hit in _claims(text) for v in _DONE_BY[_action(hit)]}
    for x in since:
        for c in x.tool_calls or []:
            result = results.get(c.id)
            if result is None or verb(c.function.name) not in ACTIONS \
                    or verb(c.function.name) in verbs:
                continue
            passed = " ".join(scalars(decoded(c.function.arguments)))
            news = _news(result, f"{passed} {said}")  # none: nothing new to tell
            if news and not any(_reports(v, text, asked) for v in news):
                return c.function.name, news
    return None


def owed(messages: list[Message]) -> list[str]:
    """What the assistant's next reply must give one of (``results_reported``): what the
    change a call made returned, where one did and returned something new (a reply must
    tell it, ``_unreported``), else what any result returned."""
    opened = max((k for k, m in enumerate(messages) if m.role == "user"), default=0)
    news, asked = _owed(messages, len(messages), messages[opened:])
    said = " ".join(x.content or "" for x in messages if x.role != "tool")
    change = _unreported("", messages[opened:], said, asked)
    return change[1] if change else news


def results_reported(messages: list[Message], tools: list[Tool]) -> Check:
    """A reply that follows successful calls gives the user something their results
    returned, unless it asks a question or a result returned nothing new (``null``, ``[]``,
    what the call passed or the dialogue said: the reply may be saying so), and it tells
    each change a call made (``_unreported``). The built-in
    run at d9e8d79 answered a product's details and stock with "I have not added any
    products to your cart yet", and a booking with "I'm glad I could help" (both rejected
    by the experts after every stage was paid for; applied as the reply is written, it is
    written again, and where it is written alone, its grammar holds one of the values)."""
    for i, m, since in _replies(messages):
        text = m.content or ""
        news, asked = _owed(messages, i, since)
        if news and text.strip() and "?" not in text \
                and not any(_reports(v, text, asked) for v in news):
            some = ", ".join(dict.fromkeys(v[:40] for v in news[:4]))
            return _fail("results_reported", f"[{i}] the reply gives none of what the results "
                                             f"since the request returned ({some})")
        said = " ".join(x.content or "" for x in messages[:i] if x.role != "tool")
        change = _unreported(text, since, said, asked) \
            if text.strip() and "?" not in text else None
        if change is not None:
            tool, made = change
            return _fail("results_reported", f"[{i}] the reply does not tell what {tool} "
                                             f"did ({', '.join(v[:40] for v in made[:3])})")
    return _ok("results_reported")


_SPECIFIC = re.compile(r"^-?\d+\.\d+$|\d{3,}")


def foreknown(user: str, before: str, calls: Iterable[tuple[Any, Any]],
              known: Vocabulary | None = None) -> str | None:
    """A value a user's message states that only the results of the calls answering it
    give (a cart total, an order ID the assistant is yet to create), and that neither an
    earlier turn (``before``) nor those calls' arguments show: words written after the
    results, which no user could know. ``calls`` are (arguments, result) pairs; only IDs
    and specific numbers count (a decimal, three digits or more). A value that exists in
    the start state (``known``, where an environment's state is known) is a record the
    user may hold, as tau2's users know their zip code and order IDs."""
    passed = " ".join(str(v) for arguments, _ in calls for v in scalars(arguments))
    for _, output in calls:
        for value in scalars(output):
            if (id_like(value) or _SPECIFIC.search(value)) and shown(value, user) \
                    and not shown(value, before) and not shown(value, passed) \
                    and (known is None or value not in known):
                return value
    return None


def users_know_no_results(messages: list[Message], tools: list[Tool], *,
                          known: Vocabulary | None = None) -> Check:
    """A user states nothing that only a later result of their request gives, or of a
    later request's call that makes a record (seen in kept data: a user asking to check
    out "a cart with a total of $2999.97" before the cart was filled; in rejected built-in
    data, a user who told the assistant "booking ID 98765" that a booking of the next
    request returned). What exists in the start state (``known``) the user may know, and
    what a call passes is not only a result's; a later look-up may return what the user
    said (their loyalty number)."""
    users = [i for i, m in enumerate(messages) if m.role == "user"]
    for at, end in zip(users, [*users[1:], len(messages)][:len(users)], strict=True):
        results = {m.tool_call_id: decoded(m.content) for m in messages[at:] if m.role == "tool"}
        calls = [(decoded(c.function.arguments), results.get(c.id))
                 for j, m in enumerate(messages[at:], at) for c in m.tool_calls or []
                 if j < end or creates(c.function.name)]  # later: what only a call makes
        before = "\n".join(m.content or "" for m in messages[:at])
        value = foreknown(messages[at].content or "", before, calls, known)
        if value is not None:
            return _fail("users_know_no_results",
                         f"[{at}] the user states {value!r}, which only a later result gives")
    return _ok("users_know_no_results")


ECHO_WORDS = ("subtask", "tool-calling step", "user's message", "user's overall task",
              '"recovery"')
"""The prompts' own vocabulary, which no speaker of a dialogue uses (a test keeps each in
the prompt text naig sends); with the templates' placeholders, the echo check's words."""
_ECHO = re.compile("|".join([*(re.escape(p) for p in sorted(placeholders())),
                             *(rf"\b{re.escape(w)}s?\b" if w[0].isalpha() else re.escape(w)
                               for w in ECHO_WORDS)]), re.IGNORECASE)


def no_instruction_echo(messages: list[Message], tools: list[Tool]) -> Check:
    """No text copied from naig's own instructions or worked examples into the dialogue."""
    for i, m in enumerate(messages[1:], 1):
        texts = [m.content or ""] if m.role in ("user", "assistant") else []
        texts += [c.function.arguments for c in m.tool_calls or []]
        for text in texts:
            why = echoed(text)
            if why:
                return _fail("no_instruction_echo", f"[{i}] {why}")
    return _ok("no_instruction_echo")


RULES: tuple[Rule, ...] = (roles_in_order, turns_nonempty, tool_results_match_calls,
                           call_names_known, schema_valid_arguments, values_wellformed,
                           turns_in_voice, no_repetition,
                           grounded_ids, claims_grounded, actions_grounded,
                           users_know_no_results, denials_grounded, results_reported,
                           errors_acknowledged, no_instruction_echo)
