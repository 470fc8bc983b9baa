"""`naig export` (openai, sharegpt) and `naig view` (one HTML page), on hand-made records."""

import json
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from naig.dialogue import (
    Check,
    EnvironmentInfo,
    FunctionCall,
    Message,
    Meta,
    Record,
    ToolCall,
    Verification,
)
from naig.export import (
    Unexportable,
    call_ids,
    export,
    to_hermes,
    to_hf,
    to_openai,
    to_sharegpt,
    to_swift,
)
from naig.viewer import render_html

from .conftest import TOOLS, good_dialogue, result


def _record(rid: str, messages: list[Message], passed: bool = True) -> Record:
    checks = [Check(name="roles_in_order", passed=True),
              Check(name="grounded_ids", passed=passed, detail="" if passed else "H-9 unstated")]
    return Record(id=rid, tools=[t.openai() for t in TOOLS], messages=messages,
                  meta=Meta(seed=1, model="scripted", config_hash="x",
                            environment=EnvironmentInfo(name="simulated"),
                            verification=Verification(passed=passed, checks=checks)))


def _parallel() -> list[Message]:
    calls = [ToolCall(id="call_1", function=FunctionCall(name="get_weather",
                                                         arguments='{"city": "Paris"}')),
             ToolCall(id="call_2", function=FunctionCall(name="get_weather",
                                                         arguments='{"city": "Rome"}'))]
    return [Message(role="system", content="Be brief."),
            Message(role="user", content="Weather in Paris and Rome?"),
            Message(role="assistant", tool_calls=calls),
            result("call_1", temperature=18), result("call_2", temperature=24),
            Message(role="assistant", content="Paris 18, Rome 24.")]


def test_openai_format_is_the_record_without_id_and_meta_and_with_portable_call_ids() -> None:
    r = _record("d-000001", _parallel())
    data = to_openai(r)
    assert set(data) == {"messages", "tools"}
    ids = call_ids(r)
    assert sorted(ids) == ["call_1", "call_2"] and len(set(ids.values())) == 2
    assert all(re.fullmatch(r"[a-zA-Z0-9]{9}", v) for v in ids.values())  # Mistral's rule
    original = json.loads(r.to_json())
    for m in original["messages"]:
        for c in m.get("tool_calls") or []:
            c["id"] = ids[c["id"]]
        if m.get("tool_call_id"):
            m["tool_call_id"] = ids[m["tool_call_id"]]
    assert data == {k: v for k, v in original.items() if k in data}
    assert call_ids(_record("d-000001", _parallel())) == ids  # the same on every export
    assert call_ids(_record("d-000002", _parallel())) != ids


def test_hf_format_gives_arguments_as_objects() -> None:
    data = to_hf(_record("d-000001", _parallel()))
    calls = [c for m in data["messages"] for c in m.get("tool_calls") or []]
    assert [c["function"]["arguments"] for c in calls] == [{"city": "Paris"}, {"city": "Rome"}]
    assert [m["tool_call_id"] for m in data["messages"] if m["role"] == "tool"] == [
        c["id"] for c in calls]


def _calls_and_results(record: Record) -> tuple[list[Any], list[str]]:
    calls = [{"name": c.function.name, "arguments": json.loads(c.function.arguments)}
             for m in record.messages for c in m.tool_calls or []]
    return calls, [m.content or "" for m in record.messages if m.role == "tool"]


def _thinking() -> list[Message]:
    messages = _parallel()
    messages[2] = messages[2].model_copy(update={"content": "Checking both cities."})
    return messages


@pytest.mark.parametrize("messages", [good_dialogue(), _parallel(), _thinking()])
def test_hermes_and_swift_rows_give_back_every_call_and_result_in_order(
        messages: list[Message]) -> None:
    record = _record("d-000001", messages)
    calls, results = _calls_and_results(record)
    hermes = to_hermes(record)
    turns = hermes["conversations"]
    assert turns[0]["from"] == "system" and "<tools>" in turns[0]["value"]
    assert json.loads(hermes["tools"]) == record.tools
    assert [t["from"] for t in turns[1:]].count("human") == sum(
        m.role == "user" for m in record.messages)
    text = "\n".join(t["value"] for t in turns if t["from"] == "gpt")
    assert [json.loads(x) for x in re.findall(r"<tool_call>\n(.*?)\n</tool_call>", text)] == calls
    observed = "\n".join(t["value"] for t in turns if t["from"] == "tool")
    assert re.findall(r"<tool_response>\n(.*?)\n</tool_response>", observed) == results
    assert all(m.content in text for m in record.messages if m.role == "assistant" and m.content)
    swift = to_swift(record)
    assert json.loads(swift["tools"]) == record.tools
    rows = swift["messages"]
    assert [json.loads(m["content"]) for m in rows if m["role"] == "tool_call"] == calls
    assert [m["content"] for m in rows if m["role"] == "tool_response"] == results
    spoken = [m.content for m in record.messages if m.role == "assistant" and m.content]
    assert [m["content"] for m in rows if m["role"] == "assistant"] == spoken


def test_bfcl_export_skips_and_names_dialogues_made_on_other_tools(tmp_path: Path) -> None:
    done = export([_record("d-000001", good_dialogue())], "bfcl", tmp_path / "b.jsonl")
    assert done.written == 0 and done.skipped == {"d-000001": "it was not made on BFCL's classes"}


def test_sharegpt_export_names_the_dialogues_whose_text_beside_calls_it_drops(
        tmp_path: Path) -> None:
    done = export([_record("d-000001", _thinking()), _record("d-000002", _parallel())],
                  "sharegpt", tmp_path / "ft.jsonl")
    assert done.written == 2 and done.lossy == ["d-000001"]
    assert export([_record("d-000001", _thinking())], "hermes", tmp_path / "h.jsonl").lossy == []


def _qwen_template() -> str:
    """The chat template in the embedded model's GGUF metadata: Qwen2.5's own."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from naig.errors import ConfigError
    from naig.llm.weights import model_path

    try:
        path = model_path("qwen2.5-coder-1.5b")
    except ConfigError as e:
        pytest.skip(str(e))
    model = llama_cpp.Llama(str(path), vocab_only=True, verbose=False)
    return str(model.metadata["tokenizer.chat_template"])


def _render(template: str, row: dict[str, Any]) -> str:
    """A row through transformers' ``apply_chat_template``, as TRL renders it."""
    tokenizers = pytest.importorskip("tokenizers")
    transformers = pytest.importorskip("transformers")
    vocab = tokenizers.Tokenizer(tokenizers.models.WordLevel({"<unk>": 0}, unk_token="<unk>"))
    tok = transformers.PreTrainedTokenizerFast(tokenizer_object=vocab)
    tok.chat_template = template
    return str(tok.apply_chat_template(row["messages"], tools=row["tools"], tokenize=False))


def test_hf_rows_render_every_call_argument_and_result_through_qwens_template() -> None:
    template = _qwen_template()
    for messages in (good_dialogue(), _parallel()):
        record = _record("d-000001", messages)
        text = _render(template, to_hf(record))
        calls = [c for m in record.messages for c in m.tool_calls or []]
        turns = text.split("<|im_end|>", 1)[1]  # after the system turn, which explains tags
        assert turns.count("<tool_call>") == len(calls)
        for c in calls:  # the arguments an object, exactly as the model must write them
            rendered = json.dumps({"name": c.function.name,
                                   "arguments": json.loads(c.function.arguments)},
                                  ensure_ascii=False)
            assert rendered in text, rendered
        results = [m.content or "" for m in record.messages if m.role == "tool"]
        assert turns.count("<tool_response>") == len(results)
        for r in results:
            assert f"<tool_response>\n{r}\n</tool_response>" in text
        for m in record.messages:
            if m.role in ("user", "assistant") and m.content:
                assert m.content in text
        for t in record.tools:
            assert json.dumps(t, ensure_ascii=False) in text
        quoted = _render(template, to_openai(record))  # why hf exists: a string is quoted
        assert '"arguments": "{' in quoted


def test_sharegpt_roles_alternate_and_parallel_calls_merge() -> None:
    single = to_sharegpt(_record("d-000001", good_dialogue()))
    assert single["system"] == "You are a helpful assistant."
    assert [t["from"] for t in single["conversations"]] == [
        "human", "function_call", "observation", "function_call", "observation", "gpt"]
    first = json.loads(single["conversations"][1]["value"])
    assert first == {"name": "get_weather", "arguments": {"city": "Paris"}}
    assert json.loads(single["conversations"][2]["value"]) == {"temperature": 18,
                                                              "conditions": "sunny"}
    assert [t["name"] for t in json.loads(single["tools"])] == ["get_weather", "book_hotel"]

    par = to_sharegpt(_record("d-000002", _parallel()))
    roles = [t["from"] for t in par["conversations"]]
    assert roles == ["human", "function_call", "observation", "gpt"]
    # LLaMA-Factory's rule: human/observation at odd positions, gpt/function_call at even
    assert all((r in ("human", "observation")) == (i % 2 == 0) for i, r in enumerate(roles))
    calls = json.loads(par["conversations"][1]["value"])
    assert [c["arguments"]["city"] for c in calls] == ["Paris", "Rome"]
    assert json.loads(par["conversations"][2]["value"]) == [{"temperature": 18},
                                                           {"temperature": 24}]


@pytest.mark.parametrize(("edit", "why"), [
    (lambda m: m[:1] + m[2:], "turn 1 (function_call)"),           # no user turn first
    (lambda m: [*m[:2], *m[3:]], "turn 2 (observation)"),          # a result with no call
    (lambda m: m[:-1], "does not end on an assistant turn"),
    (lambda m: [*m[:2], m[0], *m[2:]], "a system message after the first turn"),
])
def test_sharegpt_refuses_what_it_cannot_express(
        edit: Callable[[list[Message]], list[Message]], why: str, tmp_path: Path) -> None:
    broken = _record("d-000002", edit(good_dialogue()))
    with pytest.raises(Unexportable, match=re.escape(why)):
        to_sharegpt(broken)
    done = export([_record("d-000001", good_dialogue()), broken], "sharegpt",
                  tmp_path / "ft.jsonl")
    assert done.written == 1 and list(done.skipped) == ["d-000002"]
    assert len((tmp_path / "ft.jsonl").read_text().splitlines()) == 1


def test_view_escapes_text_and_shows_verdicts() -> None:
    evil = good_dialogue()
    evil[1] = Message(role="user", content="<script>alert(1)</script> book H-9")
    page = render_html([("out.jsonl", [_record("d-000001", good_dialogue()),
                                       _record("d-000002", evil, passed=False)])],
                       title="out.jsonl")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "2 dialogues: 1 kept, 1 rejected" in page
    assert "grounded_ids: H-9 unstated" in page
    assert "book_hotel(" in page and "&#34;hotel_id&#34;: &#34;H-1001&#34;" in page
    thinking = good_dialogue()
    thinking[2] = thinking[2].model_copy(update={"content": "Checking the weather first."})
    page = render_html([("t", [_record("d-000003", thinking)])], title="t")
    assert "Checking the weather first." in page and "get_weather(" in page


def test_the_page_views_several_files_with_an_overview_and_a_search_box() -> None:
    kept = [_record("d-000001", good_dialogue()), _record("d-000002", _parallel())]
    rejected = [_record("d-000003", good_dialogue(), passed=False)]
    page = render_html([("run.jsonl", kept), ("run.rejected.jsonl", rejected)],
                       title="run.jsonl, run.rejected.jsonl")
    assert "3 dialogues: 2 kept, 1 rejected" in page
    # the overview: each file with its kept share, the failed checks and tools as bars
    assert "<td>run.jsonl</td><td>2</td><td>2 (100%)</td>" in page
    assert "<td>run.rejected.jsonl</td><td>1</td><td>0 (0%)</td>" in page
    assert 'title="grounded_ids"' in page and 'title="get_weather"' in page
    assert 'id="search"' in page and 'id="run.rejected.jsonl:d-000003"' in page
    assert "<script src" not in page and "http" not in page.split("<body>")[1]  # offline


def _naig(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "naig.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120)


def test_cli_export_and_view(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(_record(f"d-{i:06d}", m).to_json() + "\n"
                           for i, m in enumerate([good_dialogue(), _parallel()])))
    p = _naig("export", str(src), "--format", "sharegpt", "-o", "ft/data.jsonl", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    lines = (tmp_path / "ft" / "data.jsonl").read_text().splitlines()
    assert len(lines) == 2 and "conversations" in json.loads(lines[0])
    with src.open("a") as f:  # a record sharegpt cannot express: skipped and named
        f.write(_record("d-000009", good_dialogue()[:-1]).to_json() + "\n")
        f.write(_record("d-000010", good_dialogue(), passed=False).to_json() + "\n")
    p = _naig("export", str(src), "--format", "sharegpt", "-o", "ft/data.jsonl", cwd=tmp_path)
    assert p.returncode == 0 and "2 dialogues written" in p.stdout, p.stderr
    assert "skipped 1" in p.stderr and "d-000009" in p.stderr
    assert "left out 1 rejected dialogue(s)" in p.stderr
    p = _naig("export", str(src), "--format", "hf", "--include-rejected", "-o", "all.jsonl",
              cwd=tmp_path)
    assert p.returncode == 0 and "4 dialogues written" in p.stdout, p.stderr
    p = _naig("view", str(src), "all.jsonl", "-o", "report.html", cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    page = (tmp_path / "report.html").read_text()
    assert 'id="in.jsonl:d-000001"' in page and 'id="all.jsonl:all:1"' in page  # an export


def test_cli_export_and_view_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(_record("d-000001", good_dialogue()).to_json() + "\n{not a record\n")
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(b"\xff\xfe not utf-8\n")
    good = tmp_path / "good.jsonl"
    good.write_text(_record("d-000001", good_dialogue()).to_json() + "\n")
    (tmp_path / "adir").mkdir()
    cases = [(("export", str(latin), "-o", "x.jsonl"), "latin.jsonl:1"),
             (("view", str(latin), "-o", "x.html"), "latin.jsonl:1"),
             (("export", str(good), "-o", "adir"), "cannot write adir"),
             (("view", str(good), "-o", "adir"), "cannot write adir"),
             (("export", str(bad), "--format", "alpaca"), "unknown export format"),
             (("view", "missing.jsonl"), "does not exist")]
    for args, words in cases:
        p = _naig(*args, cwd=tmp_path)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and words in lines[0], p.stderr
    assert not (tmp_path / "x.jsonl").exists() and not (tmp_path / "x.html").exists()
    assert not list(tmp_path.glob("*.part"))


def test_a_line_that_is_no_record_is_skipped_and_named_not_the_whole_file(tmp_path: Path
                                                                          ) -> None:
    mixed = tmp_path / "mixed.jsonl"
    extra = json.loads(_record("d-000002", good_dialogue()).to_json()) | {"surprise": 1}
    mixed.write_text(_record("d-000001", good_dialogue()).to_json() + "\n{not a record\n"
                     + json.dumps(extra) + "\n" + _record("d-000003", _parallel()).to_json()
                     + "\n")
    for args in (("export", str(mixed), "-o", "x.jsonl"), ("view", str(mixed), "-o", "x.html"),
                 ("verify", str(mixed))):
        p = _naig(*args, cwd=tmp_path)
        assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
        assert "skipped 2 line(s)" in p.stderr and "mixed.jsonl:2" in p.stderr, p.stderr
        assert "mixed.jsonl:3" in p.stderr
    assert len((tmp_path / "x.jsonl").read_text().splitlines()) == 2


def test_plain_chat_files_are_read_back_converted_checked_and_viewed(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(_record(f"d-{i:06d}", m).to_json() + "\n"
                           for i, m in enumerate([good_dialogue(), _parallel()])))
    for fmt in ("openai", "hf"):
        p = _naig("export", str(src), "--format", fmt, "-o", f"{fmt}.jsonl", cwd=tmp_path)
        assert p.returncode == 0, p.stderr
    p = _naig("export", "openai.jsonl", "--format", "hf", "-o", "again.jsonl", cwd=tmp_path)
    assert p.returncode == 0 and "2 dialogues written" in p.stdout, p.stderr
    assert (tmp_path / "again.jsonl").read_text() == (tmp_path / "hf.jsonl").read_text()
    p = _naig("verify", "hf.jsonl", cwd=tmp_path)
    assert p.returncode == 0 and "2 of 2 passed" in p.stdout, p.stdout + p.stderr
    p = _naig("view", "openai.jsonl", "-o", "page.html", cwd=tmp_path)
    assert p.returncode == 0 and "get_weather(" in (tmp_path / "page.html").read_text()


def test_sharegpt_files_are_read_back_whole_parallel_calls_included(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_text("".join(_record(f"d-{i:06d}", m).to_json() + "\n"
                           for i, m in enumerate([good_dialogue(), _parallel()])))
    for args in (("export", str(src), "--format", "sharegpt", "-o", "share.jsonl"),
                 ("export", str(src), "--format", "openai", "-o", "direct.jsonl"),
                 ("export", "share.jsonl", "--format", "openai", "-o", "back.jsonl")):
        p = _naig(*args, cwd=tmp_path)
        assert p.returncode == 0 and "2 dialogues written" in p.stdout, p.stdout + p.stderr
    # every call, argument and result (two results of parallel calls in one observation)
    # comes back where it was
    def ids_aside(name: str) -> str:  # call ids are drawn from the record's own id
        return re.sub(r'"(id|tool_call_id)": "[A-Za-z0-9]{9}"', r'"\1": "-"',
                      (tmp_path / name).read_text())
    assert ids_aside("back.jsonl") == ids_aside("direct.jsonl")
    p = _naig("verify", "share.jsonl", cwd=tmp_path)
    assert p.returncode == 0 and "2 of 2 passed" in p.stdout, p.stdout + p.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"conversations": [{"from": "robot", "value": "hi"}]}) + "\n"
                   + (tmp_path / "share.jsonl").read_text())
    p = _naig("export", str(bad), "-o", "x.jsonl", cwd=tmp_path)
    assert p.returncode == 0 and "unknown ShareGPT role 'robot'" in p.stderr, p.stderr


def test_export_reports_dialogues_that_repeat_a_benchmarks_test_task(tmp_path: Path) -> None:
    pytest.importorskip("bfcl_eval")
    pytest.importorskip("tau2")
    leaked = good_dialogue()
    leaked[1] = Message(role="user", content="Move 'final_report.pdf' within document "
                        "directory to 'temp' directory in document. Make sure to create the "
                        "directory")  # BFCL multi_turn_base_0's first question
    done = export([_record("d-000001", good_dialogue()), _record("d-000002", leaked)],
                  "openai", tmp_path / "x.jsonl")
    assert done.benchmarks == ("BFCL", "tau2") and list(done.copied) == ["d-000002"]
    assert done.copied["d-000002"].startswith("BFCL: 'move final report pdf within document")
    p = _naig("export", str(tmp_path / "x.jsonl"), "-o", "y.jsonl", cwd=tmp_path)
    assert p.returncode == 0 and "1 of 2 dialogue(s) repeat BFCL and tau2" in p.stderr, p.stderr


def test_dedup_leaves_out_near_duplicates_and_keeps_the_first(tmp_path: Path) -> None:
    pytest.importorskip("datasketch")
    again = good_dialogue()  # the same dialogue, one word of the reply changed
    again[-1] = Message(role="assistant", content=(again[-1].content or "").replace(
        "sunny", "clear"))
    records = [_record("d-000001", good_dialogue()), _record("d-000002", _parallel()),
               _record("d-000003", again), _record("d-000004", good_dialogue())]
    done = export(records, "hf", tmp_path / "x.jsonl", dedup=True)
    assert done.written == 2 and done.duplicates == {"d-000003": "d-000001",
                                                     "d-000004": "d-000001"}
    assert export(records, "hf", tmp_path / "y.jsonl").written == 4  # only when asked


def test_cli_habits_version_short_help_short_model_and_standard_output(tmp_path: Path) -> None:
    p = _naig("--version", cwd=tmp_path)
    assert p.returncode == 0 and re.fullmatch(r"naig \d+\.\d+\.\d+\n", p.stdout), p.stdout
    p = _naig("export", "-h", cwd=tmp_path)
    assert p.returncode == 0 and "--include-rejected" in p.stdout
    assert "-m" in _naig("generate", "-h", cwd=tmp_path).stdout
    src = tmp_path / "in.jsonl"
    src.write_text(_record("d-000001", good_dialogue()).to_json() + "\n")
    p = _naig("export", str(src), "-f", "hf", "-o", "-", cwd=tmp_path)
    assert p.returncode == 0 and "1 dialogues written to -" in p.stderr
    (row,) = [json.loads(line) for line in p.stdout.splitlines()]
    assert set(row) == {"messages", "tools"}
    p = _naig("view", str(src), "-o", "-", cwd=tmp_path)
    assert p.returncode == 0 and p.stdout.startswith("<!doctype html>")


def _no_nulls(value: Any) -> Any:
    """A value read from Parquet without the nulls a struct column adds for keys a row lacks."""
    if isinstance(value, dict):
        return {k: _no_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_no_nulls(v) for v in value]
    return value


@pytest.mark.parametrize("fmt", ["openai", "hf", "sharegpt", "hermes", "swift"])
def test_a_parquet_export_loads_in_datasets_with_every_call_and_result(
        tmp_path: Path, fmt: str) -> None:
    datasets = pytest.importorskip("datasets")
    from naig.export import FREE_FORM, parquet_value

    records = [_record("d-000001", good_dialogue()), _record("d-000002", _parallel())]
    export(records, fmt, tmp_path / "x.jsonl")
    done = export(records, fmt, tmp_path / "x.parquet")
    assert done.written == 2
    want = [json.loads(line) for line in (tmp_path / "x.jsonl").read_text().splitlines()]
    rows = datasets.load_dataset("parquet", data_files=str(tmp_path / "x.parquet"),
                                 split="train").to_list()
    assert len(rows) == 2  # no row dropped
    for got, row in zip(rows, want, strict=True):
        assert _no_nulls(got) == _no_nulls(parquet_value(row))  # every field, in order

        def decoded(value: Any, key: str = "") -> Any:  # free-form text back to objects
            if key in FREE_FORM and isinstance(value, str):
                return json.loads(value)
            if isinstance(value, dict):
                return {k: decoded(v, k) for k, v in value.items()}
            return [decoded(v, key) for v in value] if isinstance(value, list) else value
        assert decoded(_no_nulls(got)) == decoded(_no_nulls(row))


def test_preference_pairs_export_as_dpo_rows_where_their_context_still_holds(
        tmp_path: Path) -> None:
    from naig.dialogue import Pair, Refinement, context_key

    from .conftest import call, result

    m = good_dialogue()
    worse_call = [call("call_9", "book_hotel", hotel_id="H-1001", nights=3),
                  result("call_9", error="no room for 3 nights")]
    pairs = [Pair(at=4, context=context_key(m[:4]), chosen=m[4:6], rejected=worse_call,
                  evidence="the environment refuses the candidate's call"),
             Pair(at=6, context=context_key(m[:6]), chosen=[m[6]], evidence="candidate fixes x",
                  rejected=[Message(role="assistant", content="Booked B-78.")]),
             Pair(at=6, context="0" * 16, chosen=[m[6]], rejected=[m[6]], evidence="stale")]
    record = _record("d-000001", m)
    record.meta.refinements = [Refinement(step=1, masked=[4, 6], kept=["original", "new"],
                                          pairs=pairs)]
    src = tmp_path / "in.jsonl"
    src.write_text(record.to_json() + "\n" + _record("d-000002", _parallel()).to_json() + "\n")
    p = _naig("export", str(src), "-f", "dpo", "-o", "pairs.jsonl", cwd=tmp_path)
    assert p.returncode == 0 and "2 preference pairs written" in p.stdout, p.stdout + p.stderr
    assert "d-000002" in p.stderr  # a dialogue without pairs is named, not an error
    first, second = (json.loads(x) for x in (tmp_path / "pairs.jsonl").read_text().splitlines())
    # the call pair: same prompt (the first call and its result), two versions of the call
    assert [x["role"] for x in first["prompt"]] == ["system", "user", "assistant", "tool"]
    chosen, rejected = first["chosen"], first["rejected"]
    assert chosen[0]["tool_calls"][0]["function"]["arguments"] == {"hotel_id": "H-1001",
                                                                   "nights": 2}
    assert rejected[0]["tool_calls"][0]["function"]["arguments"]["nights"] == 3
    assert rejected[1]["tool_call_id"] == rejected[0]["tool_calls"][0]["id"]  # paired
    prompt_ids = {c["id"] for x in first["prompt"] for c in x.get("tool_calls") or []}
    assert not prompt_ids & {rejected[0]["tool_calls"][0]["id"]}
    assert second["chosen"] == [{"role": "assistant", "content": m[6].content}]
    assert second["rejected"][0]["content"] == "Booked B-78." and first["tools"]
    # as TRL renders a preference row: prompt + each side through the model's template
    template = _qwen_template()
    for side in ("chosen", "rejected"):
        text = _render(template, {"messages": first["prompt"] + first[side],
                                  "tools": first["tools"]})
        nights = first[side][0]["tool_calls"][0]["function"]["arguments"]["nights"]
        turns = text.split("<|im_end|>", 1)[1]  # after the system turn, which explains tags
        assert f'"nights": {nights}' in turns and turns.count("<tool_call>") == 2


def test_weights_leave_out_the_turns_a_failed_check_blames(tmp_path: Path) -> None:
    bad = _record("d-000002", good_dialogue(), passed=False)
    bad.meta.verification.checks[1].detail = "[6] the reply names 'B-78'"  # type: ignore[union-attr]
    src = tmp_path / "in.jsonl"
    src.write_text(_record("d-000001", good_dialogue()).to_json() + "\n" + bad.to_json() + "\n")
    p = _naig("export", str(src), "--include-rejected", "--weights", "-o", "w.jsonl",
              cwd=tmp_path)
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x) for x in (tmp_path / "w.jsonl").read_text().splitlines()]
    weights = [[m.get("weight") for m in r["messages"]] for r in rows]
    assert weights[0] == [None, None, 1, None, 1, None, 1]  # assistant turns only, all 1
    assert weights[1] == [None, None, 1, None, 1, None, 0]  # the blamed reply: 0
    p = _naig("export", str(src), "--weights", "-f", "sharegpt", "-o", "x.jsonl", cwd=tmp_path)
    assert p.returncode == 2 and "--weights goes with --format openai or hf" in p.stderr
