"""``naig export``: records into the formats fine-tuning frameworks read.

* ``openai``: ``{"messages", "tools"}``, OpenAI's chat fine-tuning format: the record
  without ``id`` and ``meta``, each call's ``arguments`` a JSON string as that API wants.
* ``hf``: the same with each call's ``arguments`` a JSON object, as chat templates
  (Qwen2.5, Llama 3.1, ...) and so ``apply_chat_template`` and TRL expect: given a string,
  they render the call's arguments as a quoted string.
* ``hermes``: NousResearch's Hermes function-calling layout (``<tool_call>`` and
  ``<tool_response>`` tags in ``conversations``).
* ``swift``: ms-swift's agent layout (``tool_call`` and ``tool_response`` roles).
* ``bfcl``: for dialogues made on BFCL's classes, BFCL multi-turn test entries (``question``,
  ``initial_config``, ``involved_classes``, ``path``) with ``ground_truth`` call strings per
  turn: fresh evaluation cases that BFCL's own checker runs.
* ``sharegpt``: LLaMA-Factory's ShareGPT format with tool roles: ``conversations`` of
  ``human`` / ``function_call`` / ``observation`` / ``gpt`` turns, ``system`` and ``tools``
  (a JSON string). A ``function_call`` value is ``{"name", "arguments"}`` (arguments as
  an object), or a list of them for parallel calls; their results become one
  ``observation`` (a JSON list where there are several), so that human/observation and
  gpt/function_call alternate as the format requires. A record that cannot alternate so
  (a rejected dialogue out of order, say) is skipped and named.

Call ids are rewritten to nine letters and digits (a hash of the record and the id), the
one form every common template accepts (Mistral's refuse any other), the same in a call
and in its result. Only kept dialogues are exported unless rejected ones are asked for.

Every exported line is a pure function of one record, so exporting is streaming and
order-preserving.
"""

from __future__ import annotations

import hashlib
import json
import re
import string
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from naig.contamination import benchmark_runs, copied
from naig.dedup import NearDuplicates
from naig.dialogue import Message, Record, ToolCall, context_key
from naig.envs import bfcl
from naig.errors import ConfigError
from naig.stages.checks import cited_turns
from naig.store import IMPORTED
from naig.tools import decoded

CALL_ID_CHARS = 9
_ALNUM = string.ascii_letters + string.digits
_PORTABLE = re.compile(f"[a-zA-Z0-9]{{{CALL_ID_CHARS}}}")


def call_ids(record: Record) -> dict[str, str]:
    """Each call id of ``record`` -> nine letters and digits, distinct within the record and
    the same on every export of it."""
    out: dict[str, str] = {}
    for m in record.messages:
        for c in m.tool_calls or []:
            if _PORTABLE.fullmatch(c.id) and c.id not in out.values():
                out[c.id] = c.id  # already portable: an export read back keeps its ids
            salt = 0
            while c.id not in out:
                n = int.from_bytes(hashlib.sha256(f"{record.id}/{c.id}/{salt}".encode()).digest())
                new = "".join(_ALNUM[(n >> (6 * i)) % len(_ALNUM)] for i in range(CALL_ID_CHARS))
                if new not in out.values():
                    out[c.id] = new
                salt += 1
    return out


def _messages(record: Record, *, objects: bool) -> list[dict[str, Any]]:
    ids = call_ids(record)
    out = []
    for m in record.messages:
        d = m.model_dump()
        for c in d.get("tool_calls") or []:
            c["id"] = ids.get(c["id"], c["id"])
            if objects:
                c["function"]["arguments"] = decoded(c["function"]["arguments"])
        if d.get("tool_call_id") is not None:
            d["tool_call_id"] = ids.get(d["tool_call_id"], d["tool_call_id"])
        out.append(d)
    return out


def to_openai(record: Record) -> dict[str, Any]:
    return {"messages": _messages(record, objects=False), "tools": record.tools}


def to_hf(record: Record) -> dict[str, Any]:
    """As ``to_openai``, with each call's arguments a JSON object."""
    return {"messages": _messages(record, objects=True), "tools": record.tools}


class Unexportable(ValueError):
    """A record the format cannot express (it is skipped, and counted)."""


_SHAREGPT_ODD = ("human", "observation")
"""LLaMA-Factory's rule: these at positions 1, 3, ...; ``gpt``, ``function_call`` between."""


def to_sharegpt(record: Record) -> dict[str, Any]:
    """The record as a LLaMA-Factory ShareGPT sample. Text an assistant wrote beside its
    calls is dropped: a ``function_call`` turn holds only the calls."""
    system = ""
    turns: list[dict[str, str]] = []
    pending: list[Message] = []  # consecutive tool results, merged into one observation

    def flush() -> None:
        if not pending:
            return
        value = (pending[0].content or "") if len(pending) == 1 else json.dumps(
            [decoded(m.content) for m in pending], ensure_ascii=False)
        turns.append({"from": "observation", "value": value})
        pending.clear()

    for m in record.messages:
        if m.role == "tool":
            pending.append(m)
            continue
        flush()
        if m.role == "system":
            if turns or system:
                raise Unexportable("a system message after the first turn")
            system = m.content or ""
        elif m.role == "user":
            turns.append({"from": "human", "value": m.content or ""})
        elif m.tool_calls:
            calls = [_call(c) for c in m.tool_calls]
            turns.append({"from": "function_call", "value": json.dumps(
                calls[0] if len(calls) == 1 else calls, ensure_ascii=False)})
        else:
            turns.append({"from": "gpt", "value": m.content or ""})
    flush()
    for i, t in enumerate(turns):
        if (t["from"] in _SHAREGPT_ODD) != (i % 2 == 0):
            raise Unexportable(f"turn {i + 1} ({t['from']}) breaks the human/observation - "
                               "gpt/function_call alternation")
    if not turns or turns[-1]["from"] in _SHAREGPT_ODD:
        raise Unexportable("it does not end on an assistant turn")
    tools = [t.get("function", t) for t in record.tools]
    return {"conversations": turns, "system": system,
            "tools": json.dumps(tools, ensure_ascii=False)}


def _call(c: ToolCall) -> dict[str, Any]:
    """A call as the tag- and role-based formats write it: name, arguments as an object."""
    return {"name": c.function.name, "arguments": decoded(c.function.arguments)}


def _call_json(c: ToolCall) -> str:
    return json.dumps(_call(c), ensure_ascii=False)


HERMES_SYSTEM = (
    "You are a function calling AI model. You are provided with function signatures within "
    "<tools></tools> XML tags. You may call one or more functions to assist with the user "
    "query. Don't make assumptions about what values to plug into functions. Here are the "
    "available tools: <tools> {tools} </tools> For each function call return a json object "
    "with function name and arguments within <tool_call></tool_call> XML tags as follows:\n"
    "<tool_call>\n{{\"name\": <function-name>, \"arguments\": <args-dict>}}\n</tool_call>")
"""The system prompt of NousResearch's Hermes function-calling data and chat template."""


def to_hermes(record: Record) -> dict[str, Any]:
    """The record as Hermes function-calling data: ``conversations`` of ``system`` (the
    tools inside ``<tools>``, then the record's own system message), ``human``, ``gpt``
    (text, then each call as ``<tool_call>{"name", "arguments"}</tool_call>``) and
    ``tool`` turns (each result inside ``<tool_response>``; consecutive results in one
    turn), and ``tools`` (a JSON string)."""
    tools = json.dumps(record.tools, ensure_ascii=False)
    turns: list[dict[str, str]] = [{"from": "system", "value": HERMES_SYSTEM.format(tools=tools)}]
    for m in record.messages:
        if m.role == "system":
            turns[0]["value"] += f"\n\n{m.content or ''}"
        elif m.role == "user":
            turns.append({"from": "human", "value": m.content or ""})
        elif m.role == "tool":
            block = f"<tool_response>\n{m.content or ''}\n</tool_response>"
            if turns[-1]["from"] == "tool":
                turns[-1]["value"] += "\n" + block
            else:
                turns.append({"from": "tool", "value": block})
        else:
            parts = [m.content] if m.content else []
            parts += [f"<tool_call>\n{_call_json(c)}\n"
                      "</tool_call>" for c in m.tool_calls or []]
            turns.append({"from": "gpt", "value": "\n".join(parts)})
    return {"conversations": turns, "tools": tools}


def to_swift(record: Record) -> dict[str, Any]:
    """The record in ms-swift's agent layout: ``messages`` with ``tool_call`` (one per
    call, ``{"name", "arguments"}``) and ``tool_response`` roles, text an assistant wrote
    beside its calls as an ``assistant`` message before them, and ``tools`` as a JSON
    string."""
    messages: list[dict[str, str]] = []
    for m in record.messages:
        if m.role == "tool":
            messages.append({"role": "tool_response", "content": m.content or ""})
            continue
        if m.content or not m.tool_calls:
            messages.append({"role": m.role, "content": m.content or ""})
        messages += [{"role": "tool_call",
                      "content": _call_json(c)}
                     for c in m.tool_calls or []]
    return {"messages": messages, "tools": json.dumps(record.tools, ensure_ascii=False)}


def call_string(name: str, arguments: dict[str, Any]) -> str:
    """A call as BFCL writes its ground truth: ``cd(folder='document')``."""
    return f"{name}({', '.join(f'{k}={v!r}' for k, v in arguments.items())})"


def to_bfcl(record: Record) -> dict[str, Any]:
    """A dialogue made on BFCL's classes as a BFCL multi-turn test entry (``id``,
    ``question``, ``initial_config``, ``path``, ``involved_classes``) and its
    ``ground_truth``: per turn, the calls that succeeded, as call strings. A user message
    the assistant answered without a call joins the next turn's question (a clarification's
    question and answer); turns after the last call are left out."""
    env = record.meta.environment
    state = env.initial_state
    if not env.name.startswith("bfcl:") or not isinstance(state.get("initial_config"), dict):
        raise Unexportable("it was not made on BFCL's classes")
    owners = bfcl.owners()
    results = {m.tool_call_id: m for m in record.messages if m.role == "tool"}
    question: list[list[dict[str, str]]] = []
    truth: list[list[str]] = []
    asked: list[dict[str, str]] = []
    path: list[str] = []
    for m in record.messages:
        if m.role == "user":
            asked.append({"role": "user", "content": m.content or ""})
            continue
        done = [c for c in m.tool_calls or []
                if not _failed(results.get(c.id))]
        if not done:
            continue
        if asked:
            question.append(asked)
            truth.append([])
            asked = []
        if not truth:
            raise Unexportable("a call comes before any user message")
        for c in done:
            truth[-1].append(call_string(c.function.name, decoded(c.function.arguments)))
            path.append(f"{owners.get(c.function.name, '?')}.{c.function.name}")
    if not truth:
        raise Unexportable("it has no call that succeeded")
    classes = list(state.get("classes") or state["initial_config"])
    return {"id": f"multi_turn_naig_{record.id}", "question": question,
            "initial_config": state["initial_config"], "path": path,
            "involved_classes": classes, "ground_truth": truth}


def _failed(result: Message | None) -> bool:
    value = decoded(result.content) if result is not None else None
    return result is None or (isinstance(value, dict) and "error" in value)


def _text_beside_calls(record: Record) -> bool:
    return any(m.content and m.tool_calls for m in record.messages)


def to_dpo(record: Record) -> list[dict[str, Any]]:
    """The record's preference pairs (``meta.refinements[].pairs``) as TRL's conversational
    preference rows: ``prompt`` (the turns before), ``chosen`` and ``rejected`` (the two
    versions of the assistant turn, with their calls' results), ``tools``; arguments as
    objects. A pair whose context the dialogue no longer opens with (a later step rewrote
    an earlier turn) is left out."""
    rows = []
    for step in record.meta.refinements:
        for pair in step.pairs:
            prompt = record.messages[:pair.at]
            if len(prompt) != pair.at or context_key(prompt) != pair.context:
                continue
            chosen, rejected = (_continued(record, prompt, side)
                                for side in (pair.chosen, pair.rejected))
            rows.append({"prompt": chosen[:pair.at], "chosen": chosen[pair.at:],
                         "rejected": rejected[pair.at:], "tools": record.tools})
    return rows


def _continued(record: Record, prompt: list[Message], turn: list[Message]
               ) -> list[dict[str, Any]]:
    """``prompt`` and one version of the turn after it, in the ``hf`` layout; the turn's
    call ids renamed first so they cannot meet the prompt's (the same export ids for the
    prompt on both sides)."""
    names = {c.id: f"pair_{k}" for k, c in enumerate(
        c for m in turn for c in m.tool_calls or [])}
    renamed = [m.model_copy(update={
        "tool_calls": [c.model_copy(update={"id": names[c.id]}) for c in m.tool_calls]
        if m.tool_calls else None,
        "tool_call_id": names.get(m.tool_call_id or "", m.tool_call_id)}) for m in turn]
    return _messages(record.model_copy(update={"messages": [*prompt, *renamed]}),
                     objects=True)


@dataclass(frozen=True)
class Format:
    convert: Callable[[Record], dict[str, Any] | list[dict[str, Any]]]
    """One row per record, or several (none: the record is skipped)."""
    about: str
    loses: Callable[[Record], bool] | None = None
    """Whether the format drops part of a record it still writes (named in the summary)."""


FORMATS: dict[str, Format] = {
    "openai": Format(to_openai, "OpenAI's fine-tuning layout, arguments as JSON strings"),
    "hf": Format(to_hf, "messages and tools with arguments as objects (chat templates, TRL)"),
    "sharegpt": Format(to_sharegpt, "LLaMA-Factory's ShareGPT with tool roles",
                       _text_beside_calls),
    "hermes": Format(to_hermes, "Hermes function-calling conversations"),
    "swift": Format(to_swift, "ms-swift's agent layout"),
    "bfcl": Format(to_bfcl, "BFCL multi-turn test entries with their ground truth (made on "
                   "BFCL's classes)"),
    "dpo": Format(to_dpo, "preference pairs from refinement and repair (TRL's DPO rows: "
                  "prompt, chosen, rejected)"),
}


def converter(name: str) -> Format:
    try:
        return FORMATS[name]
    except KeyError:
        raise ConfigError(f"unknown export format {name!r}; use one of: "
                          + ", ".join(FORMATS)) from None


@dataclass
class Exported:
    written: int = 0
    skipped: dict[str, str] = field(default_factory=dict)
    """Record id -> why the format cannot express it."""
    rejected: int = 0
    """Rejected dialogues left out (all of them unless asked for)."""
    duplicates: dict[str, str] = field(default_factory=dict)
    """Record id -> the earlier record it nearly repeats (left out, with ``dedup``)."""
    copied: dict[str, str] = field(default_factory=dict)
    """Record id -> the run of words a user turn shares with a benchmark's test task."""
    benchmarks: tuple[str, ...] = ()
    """The benchmarks whose test tasks were checked for copies."""
    lossy: list[str] = field(default_factory=list)
    """Ids of records written with a part the format cannot hold (sharegpt: text an
    assistant wrote beside its calls)."""


def kept(record: Record) -> bool:
    """Whether verification kept the record; a row read from a plain chat file, which has no
    verdict, counts as kept (exporting it again converts a file, rejecting nothing)."""
    v = record.meta.verification
    return (v is not None and v.passed) or record.meta.method == IMPORTED


WEIGHTED = ("openai", "hf")
"""The formats that can carry a per-turn training weight (OpenAI's fine-tuning ``weight``;
Axolotl reads it with ``message_field_training: weight``)."""


def blamed(record: Record) -> set[int]:
    """The turns the record's failed checks blame (``[i]`` in a rule's detail, "turn i"
    in an expert's reason)."""
    v = record.meta.verification
    return {at for c in (v.failed if v else []) for at in cited_turns(c.detail)}


def with_weights(row: dict[str, Any], record: Record) -> dict[str, Any]:
    """``row`` (openai or hf) with ``"weight"`` on each assistant message: 0 where a failed
    check blames the turn (it is not trained on), else 1."""
    flagged = blamed(record)
    messages = [m | {"weight": int(i not in flagged)} if m["role"] == "assistant" else m
                for i, m in enumerate(row["messages"])]
    return row | {"messages": messages}


def export(records: Iterable[Record], fmt: str, output: Path, *,
           include_rejected: bool = False, dedup: bool = False,
           weights: bool = False) -> Exported:
    """Write ``records`` in format ``fmt`` as JSONL (as Parquet where ``output`` ends in
    ``.parquet``), skipping (and naming) those the format cannot express; rejected
    dialogues are left out (and counted) unless ``include_rejected``; with ``dedup``, a
    dialogue that nearly repeats one written before it is left out too (and named with the
    one it repeats); with ``weights``, each assistant turn carries a training weight
    (``with_weights``).

    The file is written beside ``output`` and moved into place at the end, so a bad
    record half-way leaves no half-written export behind; ``-`` streams to standard output.
    """
    form = converter(fmt)
    if weights and fmt not in WEIGHTED:
        raise ConfigError(f"--weights goes with --format {' or '.join(WEIGHTED)}, not {fmt}")
    if weights:
        form = Format(lambda r: with_weights(to_hf(r) if fmt == "hf" else to_openai(r), r),
                      form.about, form.loses)
    done = Exported(benchmarks=benchmark_runs()[1])
    rows = _rows(records, form, done, NearDuplicates() if dedup else None, include_rejected)
    if output == Path("-"):
        for row in rows:
            sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")
        return done
    part = output.with_name(output.name + ".part")
    try:
        output.parent.mkdir(parents=True, exist_ok=True)
        if output.suffix == ".parquet":
            _write_parquet(rows, part)
        else:
            with part.open("w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row, ensure_ascii=False) + "\n")
        part.replace(output)
    except OSError as e:
        raise ConfigError(f"cannot write {output}: {e.strerror or e}") from None
    finally:
        part.unlink(missing_ok=True)
    return done


def _rows(records: Iterable[Record], form: Format, done: Exported,
          twins: NearDuplicates | None, include_rejected: bool) -> Iterator[dict[str, Any]]:
    for record in records:
        if not include_rejected and not kept(record):
            done.rejected += 1
            continue
        try:
            out = form.convert(record)
        except Unexportable as e:
            done.skipped[record.id] = str(e)
            continue
        rows = out if isinstance(out, list) else [out]
        if not rows:
            done.skipped[record.id] = "it holds nothing this format writes"
            continue
        if twins is not None and (first := twins.earlier(record)) is not None:
            done.duplicates[record.id] = first
            continue
        if form.loses is not None and form.loses(record):
            done.lossy.append(record.id)
        if (run := copied(record)) is not None:
            done.copied[record.id] = run
        done.written += len(rows)
        yield from rows


FREE_FORM = ("tools", "arguments", "initial_config")
"""Fields whose objects differ in shape from row to row (a tool's parameters, a call's
arguments, a BFCL class's state). Parquet holds them as JSON text: a column has one type,
and objects of different shapes would each gain the others' keys as nulls."""


def parquet_value(value: Any, key: str = "") -> Any:
    """A row's value as a Parquet column holds it: ``FREE_FORM`` fields as JSON text."""
    if key in FREE_FORM and not isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return {k: parquet_value(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [parquet_value(v, key) for v in value]
    return value


def _write_parquet(rows: Iterable[dict[str, Any]], path: Path) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ConfigError("a .parquet export needs pyarrow: pip install 'naig[parquet]'"
                          ) from None
    pq.write_table(pa.Table.from_pylist([parquet_value(r) for r in rows]), path)


__all__ = ["CALL_ID_CHARS", "FORMATS", "FREE_FORM", "WEIGHTED", "Exported", "Format",
           "Unexportable", "blamed", "call_ids", "call_string", "converter", "export", "kept",
           "parquet_value", "to_bfcl", "to_dpo", "to_hermes", "to_hf", "to_openai",
           "to_sharegpt", "to_swift", "with_weights"]
