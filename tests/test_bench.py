"""The benchmark core: counts that add up, same seeds for both methods, statistics on
hand-made dialogues, and the three renderings."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from rich.console import Console

from naig.bench import BenchReport, bench
from naig.config import MethodSettings, RunConfig
from naig.dialogue import Message, Usage
from naig.envs.registry import resolve
from naig.errors import ConfigError
from naig.stats import behaviours, corpus_stats, distinct_n
from naig.store import read_records
from naig.testing import ScriptedLLM, schema_example

from .conftest import call, good_dialogue, result

SMALL = MethodSettings(subtasks_min=2, subtasks_max=2, steps_min=1, steps_max=2,
                       refine_steps=2, mas_max_turns=3)


def _config(tmp_path: Path, **kw: object) -> RunConfig:
    base = {"tools": ("builtin",), "n": 3, "output": tmp_path / "bench.jsonl", "seed": 3,
            "settings": SMALL, "cache_path": tmp_path / "cache.sqlite"}
    return RunConfig(**(base | kw))  # type: ignore[arg-type]


def _bench(config: RunConfig, backend: ScriptedLLM, **kw: object) -> BenchReport:
    return asyncio.run(bench(config, backend, resolve("builtin"), **kw))  # type: ignore[arg-type]


def test_counts_are_the_sum_of_the_records_usage_and_of_what_the_model_was_sent(
        tmp_path: Path) -> None:
    backend = ScriptedLLM(respond=schema_example)
    report = _bench(_config(tmp_path), backend)  # cache=True in the config: bench ignores it
    assert list(report.results) == ["naig", "mas"]
    for name, r in report.results.items():
        written = read_records(r.outputs[0]) if r.outputs else []
        written += read_records(r.outputs[1]) if r.outputs and r.outputs[1].exists() else []
        assert r.attempted == len(r.records) == len(written) == 3
        # the records' usage, and the judge's calibration that is charged to no record
        usages = [x.meta.usage for x in r.records]
        calibration = r.usage.by_stage.get("calibrate")
        assert (name == "naig") == (calibration is not None)  # MAS has no judge
        usages += [Usage(by_stage={"calibrate": calibration}, **calibration.model_dump(
            exclude={"cost_usd"}))] if calibration else []
        assert r.usage.calls == sum(u.calls for u in usages) == r.run_usage.calls > 0
        assert r.usage.prompt_tokens == sum(u.prompt_tokens for u in usages) \
            == r.run_usage.prompt_tokens
        assert r.usage.completion_tokens == sum(u.completion_tokens for u in usages) \
            == r.run_usage.completion_tokens
        for stage, s in r.usage.by_stage.items():
            assert s.calls == sum(u.by_stage[stage].calls for u in usages
                                  if stage in u.by_stage)
        assert r.cache_hits == 0 and r.to_dict()["run_check"]["matches_records"]
        assert all(x.meta.method == name for x in r.records)
    # every request the model got is counted once, by the method that sent it
    assert len(backend.requests) == sum(r.usage.calls for r in report.results.values())
    sent = sum(sum(len(m.content) for m in q.messages) // 4 for q in backend.requests)
    assert sent == sum(r.usage.prompt_tokens for r in report.results.values())
    naig, mas = report.results["naig"], report.results["mas"]
    assert {"skeleton", "refine"} <= set(naig.usage.by_stage)
    assert {"user", "assistant"} <= set(mas.usage.by_stage)
    assert "skeleton" not in mas.usage.by_stage


def test_both_methods_get_the_same_seeds_tools_and_plan(tmp_path: Path) -> None:
    report = _bench(_config(tmp_path), ScriptedLLM(respond=schema_example))
    naig, mas = report.results["naig"].records, report.results["mas"].records
    for a, b in zip(naig, mas, strict=True):
        assert (a.id, a.meta.seed, a.tools) == (b.id, b.meta.seed, b.tools)
        assert a.meta.plan == b.meta.plan
    second = _bench(_config(tmp_path), ScriptedLLM(respond=schema_example), methods=("mas",))
    assert second.results["mas"].run_usage.calls == report.results["mas"].usage.calls


def test_renderings_and_headline(tmp_path: Path) -> None:
    report = _bench(_config(tmp_path), ScriptedLLM(respond=schema_example), attempts=2)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["attempts"] == 2 and set(data["methods"]) == {"naig", "mas"}
    naig, mas = report.results["naig"], report.results["mas"]
    head = report.headline()
    assert naig.kept and mas.kept
    expected = (naig.usage.calls / naig.kept) / (mas.usage.calls / mas.kept)
    assert head["calls"] == pytest.approx(expected)
    assert data["headline_naig_over_mas"]["calls"] == pytest.approx(expected)
    assert data["methods"]["mas"]["stats_over"] == "kept"
    md = report.to_markdown()
    assert "## Cost" in md and "## LLM work by stage" in md and "| naig | skeleton |" in md
    assert "## Headline" in md and "user_distinct_3" in md
    console = Console(record=True, width=160)
    console.print(report.rich())
    text = console.export_text()
    assert "calls / kept" in text and "chit_chat" in text


def test_with_nothing_kept_statistics_fall_back_to_all_and_say_so(tmp_path: Path) -> None:
    report = _bench(_config(tmp_path, n=2), ScriptedLLM(respond=lambda r: "not JSON"),
                    methods=("mas",))
    r = report.results["mas"]
    assert (r.attempted, r.kept) == (2, 0) and r.reasons == {"model_output": 2}
    assert r.stats_over == "all (none kept)" and r.stats.dialogues == 2
    assert r.per_kept()["calls"] is None and report.headline()["calls"] is None
    assert "all (none kept)" in report.to_markdown()


def test_an_unknown_method_fails_before_any_work(tmp_path: Path) -> None:
    backend = ScriptedLLM()
    with pytest.raises(ConfigError, match="unknown method"):
        _bench(_config(tmp_path), backend, methods=("naig", "nope"))
    assert not backend.requests


# ---- statistics on hand-made dialogues ------------------------------------------------

SYSTEM = Message(role="system", content="You are a helpful assistant.")


def _u(text: str) -> Message:
    return Message(role="user", content=text)


def _a(text: str) -> Message:
    return Message(role="assistant", content=text)


CLARIFY = [SYSTEM, _u("Book a hotel for me."), _a("Which hotel, and for how many nights?"),
           _u("H-1001, 2 nights."), call("call_1", "book_hotel", hotel_id="H-1001", nights=2),
           result("call_1", booking_id="B-1"), _a("Booked: B-1.")]
RECOVER = [SYSTEM, _u("Weather in Atlantis, or else Paris?"),
           call("call_1", "get_weather", city="Atlantis"), result("call_1", error="no such city"),
           call("call_2", "get_weather", city="Paris"), result("call_2", temperature=18),
           _a("Atlantis was not found; Paris is 18 degrees.")]
REFUSE_AND_CHAT = [SYSTEM, _u("Weather in Paris?"), call("call_1", "get_weather", city="Paris"),
                   result("call_1", temperature=18), _a("18 degrees."),
                   _u("Can you order me a taxi?"),
                   _a("I\u2019m sorry, I can't book taxis with my tools. Anything else?"),
                   _u("What a lovely city Paris is!"), _a("It is indeed, enjoy your stay.")]


def test_behaviours_are_found_by_their_shape() -> None:
    assert behaviours(CLARIFY) == {"clarification"}
    assert behaviours(RECOVER) == {"error_recovery"}
    assert behaviours(REFUSE_AND_CHAT) == {"refusal", "chit_chat"}
    assert behaviours(good_dialogue()) == set()
    # a question the user answers without any call following is chit-chat, not clarification
    assert behaviours([SYSTEM, _u("Hi!"), _a("Hello, how are you?"), _u("Fine."),
                       _a("Glad to hear it.")]) == {"chit_chat"}


def test_distinct_n_counts_unique_over_all_ngrams_within_messages() -> None:
    assert distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab
    assert distinct_n(["a b", "a b"], 2) == pytest.approx(1 / 2)
    assert distinct_n(["A, b c", "b c d"], 3) == pytest.approx(1.0)
    assert distinct_n(["one two"], 3) == 0.0  # no trigram at all
    assert distinct_n(["x y", "z"], 2) == 1.0  # no n-gram spans two messages


def test_corpus_statistics_over_hand_made_dialogues() -> None:
    s = corpus_stats([CLARIFY, RECOVER, REFUSE_AND_CHAT, good_dialogue()])
    assert s.dialogues == 4
    assert s.user_turns_per_dialogue == pytest.approx((2 + 1 + 3 + 1) / 4)
    assert s.calls_per_user_turn == pytest.approx((1 + 2 + 1 + 2) / 7)
    assert s.distinct_tools_per_dialogue == pytest.approx((1 + 1 + 1 + 2) / 4)
    assert s.distinct_tools == 2
    assert (s.clarification, s.error_recovery, s.refusal, s.chit_chat) == (0.25, 0.25, 0.25, 0.25)
    users = [m.content or "" for d in (CLARIFY, RECOVER, REFUSE_AND_CHAT, good_dialogue())
             for m in d if m.role == "user"]
    assert s.user_distinct_2 == pytest.approx(distinct_n(users, 2))
    assert 0 < s.assistant_distinct_3 <= 1
    assert corpus_stats([]).dialogues == 0
