"""The LLM layer's wrappers on the scripted LLM: structured retries, cache, accounting."""

import asyncio
from pathlib import Path
from typing import Any

import pytest

from naig.errors import ConfigError, ModelOutputError
from naig.llm.accounting import AccountedLLM, ledger
from naig.llm.base import Request, messages
from naig.llm.cache import CachedLLM
from naig.llm.structured import ask
from naig.testing import ScriptedLLM

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}


def _n(raw):  # type: ignore[no-untyped-def]
    if not isinstance(raw.get("n"), int):
        raise ValueError("'n' must be an integer")
    return raw["n"]


def test_a_bad_answer_is_retried_with_the_error_fed_back() -> None:
    llm = ScriptedLLM(["not json", {"n": "three"}, {"n": 3}])
    got = asyncio.run(ask(llm, messages(("user", "count")), SCHEMA, _n, stage="plan", seed=5,
                          template_hash="h", temperature=0.0))
    assert got == 3
    second = llm.requests[1]  # told what was wrong, not shown the answer (it would copy it)
    assert "refused" in second.messages[-1].content
    assert all("not json" not in m.content for m in second.messages)
    assert "'n' must be an integer" in llm.requests[2].messages[-1].content
    assert [r.seed for r in llm.requests] == [5, 6, 7]
    # a greedy request (a judge's, an expert's) stays greedy on retries: a verdict must not
    # be redrawn by chance; the error it is shown is what changes the answer
    assert [r.temperature for r in llm.requests] == [0.0, 0.0, 0.0]
    assert all(r.schema_ == SCHEMA for r in llm.requests)


def test_an_answer_of_the_wrong_shape_is_retried_not_a_crash() -> None:
    def strict(raw: Any) -> int:  # reads the answer without checking its shape first
        return int(raw["n"][0])

    llm = ScriptedLLM(['["a list"]', {"m": 1}, {"n": []}, {"n": [4]}])
    got = asyncio.run(ask(llm, messages(("user", "count")), SCHEMA, strict, stage="plan",
                          seed=0, template_hash="h", attempts=4))
    assert got == 4 and "the answer has no 'n'" in llm.requests[2].messages[-1].content


def test_a_model_that_never_answers_well_raises_with_the_raw_text() -> None:
    llm = ScriptedLLM(["{}", '{"n": "x"}', "garbage!"])
    with pytest.raises(ModelOutputError) as e:
        asyncio.run(ask(llm, messages(("user", "count")), SCHEMA, _n, stage="plan", seed=0,
                        template_hash="h"))
    assert e.value.raw == "garbage!" and "plan" in str(e.value)
    assert len(llm.requests) == 3


def test_the_same_invalid_answer_again_ends_the_retries() -> None:
    llm = ScriptedLLM(["{}", "{ }", '{"n": 3}'])  # the same answer, but for a space
    with pytest.raises(ModelOutputError, match="the same answer again"):
        asyncio.run(ask(llm, messages(("user", "count")), SCHEMA, _n, stage="plan", seed=0,
                        template_hash="h"))
    assert len(llm.requests) == 2  # no third call
    assert llm.requests[1].temperature == 1.0  # retries sample hotter


def _request(**kw: object) -> Request:
    base = {"messages": messages(("user", "hi")), "seed": 1, "template_hash": "t1"}
    return Request(**(base | kw))  # type: ignore[arg-type]


def test_cache_key_covers_what_shapes_an_answer() -> None:
    key = _request().key("local:m")
    assert key == _request(stage="refine").key("local:m")  # who asks does not matter
    for change in ({"seed": 2}, {"template_hash": "t2"}, {"temperature": 0.1},
                   {"max_tokens": 5}, {"schema": SCHEMA},
                   {"messages": messages(("user", "ho"))}):
        assert _request(**change).key("local:m") != key, change
    assert _request().key("openai:m") != key


def test_cache_serves_the_first_answer_with_its_first_usage(tmp_path: Path) -> None:
    inner = ScriptedLLM(["first"])
    cached = CachedLLM(inner, tmp_path / "c.sqlite")
    one = asyncio.run(cached.complete(_request()))
    two = asyncio.run(cached.complete(_request()))
    assert (one.text, two.text) == ("first", "first")
    assert not one.cached and two.cached
    assert (two.prompt_tokens, two.completion_tokens) == (one.prompt_tokens, one.completion_tokens)
    assert len(inner.requests) == 1
    reopened = CachedLLM(ScriptedLLM(), tmp_path / "c.sqlite")  # persists across processes
    assert asyncio.run(reopened.complete(_request())).text == "first"


def test_json_wrapped_in_prose_or_a_fence_is_read_without_a_retry() -> None:
    for text in ('Here it is: {"n": 4}. Anything else?', 'Sure!\n```json\n{"n": 4}\n```'):
        llm = ScriptedLLM([text])
        assert asyncio.run(ask(llm, messages(("user", "n?")), SCHEMA, _n, stage="t", seed=0,
                               template_hash="h")) == 4
        assert len(llm.requests) == 1


@pytest.mark.parametrize(("bad", "said"), [
    ("", "the answer was empty"),
    ('{"n": 4, "note": "a long answer that the length cap cut', "cut off at the length limit"),
    ("no JSON here at all", "Expecting value"),
])
def test_an_empty_or_cut_off_answer_is_retried_saying_what_went_wrong(bad: str, said: str
                                                                       ) -> None:
    llm = ScriptedLLM([bad, '{"n": 2}'])
    assert asyncio.run(ask(llm, messages(("user", "n?")), SCHEMA, _n, stage="t", seed=0,
                           template_hash="h")) == 2
    assert said in llm.requests[1].messages[-1].content


def test_an_answer_cut_off_at_the_length_limit_is_asked_again_with_more_room() -> None:
    cut = '{"n": 4, "note": "a long answer that the length cap cut'
    llm = ScriptedLLM([cut, cut + " again", cut + " once more", '{"n": 2}'])
    assert asyncio.run(ask(llm, messages(("user", "n?")), SCHEMA, _n, stage="t", seed=0,
                           template_hash="h", max_tokens=100, attempts=4)) == 2
    assert [r.max_tokens for r in llm.requests] == [100, 200, 400, 400]
    llm = ScriptedLLM(["no JSON here at all", '{"n": 2}'])  # other failures: the same room
    asyncio.run(ask(llm, messages(("user", "n?")), SCHEMA, _n, stage="t", seed=0,
                    template_hash="h", max_tokens=100))
    assert [r.max_tokens for r in llm.requests] == [100, 100]


def test_a_cache_file_that_is_no_database_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "c.sqlite").write_bytes(b"not a database, just bytes " * 100)
    with pytest.raises(ConfigError, match=r"cannot use the response cache .*--no-cache"):
        CachedLLM(ScriptedLLM(), tmp_path / "c.sqlite")


def test_an_answer_the_cache_cannot_store_is_still_used(tmp_path: Path) -> None:
    cached = CachedLLM(ScriptedLLM(["answer", "again"]), tmp_path / "c.sqlite")
    cached._db.execute("PRAGMA query_only=ON")  # every write now fails, as on a full disk
    assert asyncio.run(cached.complete(_request())).text == "answer"
    assert asyncio.run(cached.complete(_request())).text == "again"  # nothing was stored
    assert cached.unwritten == 2


def test_accounting_charges_the_current_dialogue_by_stage(tmp_path: Path) -> None:
    llm = AccountedLLM(CachedLLM(ScriptedLLM(["a", "b"]), tmp_path / "c.sqlite"))

    async def go():  # type: ignore[no-untyped-def]
        with ledger() as book:
            await llm.complete(_request(stage="plan"))
            await llm.complete(_request(stage="verify", seed=9))
            await llm.complete(_request(stage="plan"))  # a cache hit
        return book

    book = asyncio.run(go())
    usage = book.usage()
    assert usage.calls == 3 and usage.by_stage["plan"].calls == 2
    assert llm.totals.new.usage().calls == 2 and llm.totals.cached.usage().calls == 1


def test_an_answer_that_copies_its_instructions_is_retried() -> None:
    words = "Write the user's own words: a natural request that states every value"
    llm = ScriptedLLM([{"n": 1, "text": "a natural request that states every value here"},
                       {"n": 2, "text": "Please book two nights in Paris."}])
    got = asyncio.run(ask(llm, messages(("user", words)), SCHEMA, _n, stage="refine", seed=0,
                          template_hash="h", instructions=words))
    assert got == 2
    assert "copies the instructions" in llm.requests[1].messages[-1].content


def test_the_copy_report_is_the_same_in_every_process() -> None:
    """The retry prompt quotes the copied words; it must not depend on hash seeds."""
    import subprocess
    import sys

    code = ("from naig.llm.structured import copied; print(copied({'t': 'one two three four "
            "five six seven eight nine ten'}, 'one two three four five six seven eight nine "
            "ten eleven'))")
    outs = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={"PYTHONHASHSEED": str(seed), "PATH": ""}).stdout
            for seed in range(6)}
    assert outs == {"one two three four five six\n"}


def test_an_answer_without_a_required_key_is_retried_not_passed_on() -> None:
    schema = {"type": "object", "required": ["calls", "user"],
              "properties": {"calls": {"type": "array"}, "user": {"type": "string"}}}
    llm = ScriptedLLM([{"calls": [1]}, {"calls": [1], "user": "Hi"}])
    got = asyncio.run(ask(llm, messages(("user", "go")), schema, lambda v: v, stage="t",
                          seed=1, template_hash="h"))
    assert got == {"calls": [1], "user": "Hi"} and len(llm.requests) == 2
    assert "the answer has no 'user'" in llm.requests[1].messages[-1].content
