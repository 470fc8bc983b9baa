"""The BFCL environment against the bfcl-eval package itself: real calls on real state,
errors as results, reset, isolation, and the package's gold call sequences replaying to
the package's own results."""

from __future__ import annotations

import ast
import asyncio
import copy
import decimal
import importlib
import inspect
import json
import sys
from functools import cache
from importlib import resources
from typing import Any

import pytest

pytest.importorskip("bfcl_eval")

from naig.dialogue import EnvironmentInfo, FunctionCall, Message, ToolCall  # noqa: E402
from naig.envs import bfcl  # noqa: E402
from naig.envs.base import ToolResult  # noqa: E402
from naig.envs.registry import resolve  # noqa: E402
from naig.errors import ConfigError  # noqa: E402
from naig.stages.verify import replay_check  # noqa: E402
from naig.testing import ScriptedLLM  # noqa: E402

BACKENDS = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code."
MODULES = {"GorillaFileSystem": "gorilla_file_system", "MathAPI": "math_api",
           "MessageAPI": "message_api", "TwitterAPI": "posting_api", "TicketAPI": "ticket_api",
           "TradingBot": "trading_bot", "TravelAPI": "travel_booking",
           "VehicleControlAPI": "vehicle_control"}


def _lines(*path: str) -> list[dict[str, Any]]:
    text = resources.files("bfcl_eval").joinpath("data", *path).read_text("utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@cache
def scenarios() -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in _lines("BFCL_v4_multi_turn_base.json")}


@cache
def gold() -> dict[str, list[list[str]]]:
    return {r["id"]: r["ground_truth"]
            for r in _lines("possible_answer", "BFCL_v4_multi_turn_base.json")}


def direct(cls: str, config: dict[str, Any]) -> Any:
    """The package's class, instantiated and loaded the way BFCL's own executor does."""
    instance = getattr(importlib.import_module(BACKENDS + MODULES[cls]), cls)()
    if hasattr(instance, "_load_scenario"):
        instance._load_scenario(copy.deepcopy(config), long_context=False)
    return instance


def parse_call(text: str, instance: Any) -> tuple[str, dict[str, Any]]:
    """``cd(folder='x')`` -> ("cd", {"folder": "x"}), literals only; positional arguments
    are named by the method's signature."""
    node = ast.parse(text, mode="eval").body
    assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name), text
    params = list(inspect.signature(getattr(instance, node.func.id)).parameters)
    arguments = {params[i]: ast.literal_eval(a) for i, a in enumerate(node.args)}
    arguments.update({k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg})
    return node.func.id, arguments


def env_for(classes: list[str], config: dict[str, Any]) -> bfcl.BfclEnvironment:
    return bfcl.BfclEnvironment(bfcl.pool(classes), {c: config.get(c, {}) for c in classes},
                                name="bfcl:" + ",".join(classes))


def call(env: bfcl.BfclEnvironment, name: str, /, **arguments: Any) -> ToolResult:
    return asyncio.run(env.call(FunctionCall(name=name, arguments=json.dumps(arguments))))


def content(result: ToolResult) -> Any:
    return json.loads(result.content)


def public_state(instance: Any) -> dict[str, Any]:
    return {k: v for k, v in vars(instance).items() if not k.startswith("_")}


def test_pool_is_the_128_documented_tools_with_their_class_as_family() -> None:
    tools = bfcl.pool(list(bfcl.CLASSES))
    assert len(tools) == 128 == len({t.name for t in tools})
    assert {t.family for t in tools} == set(bfcl.CLASSES)
    cd = next(t for t in tools if t.name == "cd")
    assert cd.parameters["type"] == "object" and cd.parameters["required"] == ["folder"]
    assert all(t.parameters["type"] == "object" for t in tools)


def test_every_pooled_tool_is_a_public_method_of_its_class() -> None:
    for tool in bfcl.pool(list(bfcl.CLASSES)):
        instance = direct(tool.family, {})
        assert not tool.name.startswith("_") and callable(getattr(instance, tool.name)), tool


def test_file_system_runs_real_calls_on_scenario_state() -> None:
    config = scenarios()["multi_turn_base_0"]["initial_config"]
    env = env_for(["GorillaFileSystem"], config)
    assert content(call(env, "ls")) == {"current_directory_content": ["document", "archive"]}
    assert not call(env, "cd", folder="document").error
    assert content(call(env, "pwd")) == {"current_working_directory": "/workspace/document"}
    assert not call(env, "mkdir", dir_name="temp").error
    assert not call(env, "mv", source="final_report.pdf", destination="temp").error
    assert content(call(env, "ls")) == {"current_directory_content": ["previous_report.pdf",
                                                                      "temp"]}
    assert call(env, "cat", file_name="final_report.pdf").error  # it moved
    summary = env.state_summary()
    assert "final_report.pdf" in summary and "document/" in summary
    assert "/workspace" in summary


def test_twitter_state_carries_across_calls() -> None:
    config = scenarios()["multi_turn_base_0"]["initial_config"]
    env = env_for(["TwitterAPI"], config)
    login = call(env, "authenticate_twitter", username="analyst_pro", password="Kj8#mP9$vL2")
    assert content(login) == {"authentication_status": True}
    posted = content(call(env, "post_tweet", content="hello", tags=["#a"]))
    assert posted["id"] == 3 and posted["username"] == "analyst_pro"
    assert content(call(env, "get_tweet", tweet_id=3))["content"] == "hello"


@pytest.mark.parametrize("cls", bfcl.CLASSES)
def test_each_class_runs_the_first_gold_turn_of_a_scenario(cls: str) -> None:
    entry = next(r for r in scenarios().values() if cls in r["involved_classes"]
                 and any(_owner(c) == cls for turn in gold()[r["id"]] for c in turn))
    classes = [c for c in bfcl.CLASSES if c in entry["involved_classes"]]
    env = env_for(classes, entry["initial_config"])
    ran = 0
    for text in (c for turn in gold()[entry["id"]] for c in turn):
        owner = _owner(text)
        name, arguments = parse_call(text, env.instances[owner])
        result = call(env, name, **arguments)
        if owner == cls:
            assert not result.content.startswith('{"error": "invalid arguments'), text
            ran += 1
            break
    assert ran == 1


def _owner(text: str) -> str:
    return bfcl.owners()[text.split("(", 1)[0].strip()]


def test_unknown_tools_and_invalid_arguments_are_error_results() -> None:
    env = env_for(["GorillaFileSystem"], scenarios()["multi_turn_base_0"]["initial_config"])
    unknown = call(env, "rm_rf", path="/")
    assert unknown.error and "unknown tool" in content(unknown)["error"]
    other_class = call(env, "post_tweet", content="x")  # a real tool, not in this environment
    assert other_class.error
    wrong_type = call(env, "cd", folder=3)
    assert wrong_type.error and "invalid arguments" in content(wrong_type)["error"]
    missing = call(env, "cd")
    assert missing.error and "folder" in content(missing)["error"]
    not_json = asyncio.run(env.call(FunctionCall(name="cd", arguments="{folder: x")))
    assert not_json.error
    raised = call(env, "ls", no_such_parameter=True)  # passes the schema, the method raises
    assert raised.error and "TypeError" in content(raised)["error"]
    refused = call(env, "cd", folder="nowhere")  # BFCL's own error dict
    assert refused.error and "No such file" in content(refused)["error"]
    assert content(call(env, "pwd")) == {"current_working_directory": "/workspace"}


def test_runaway_math_is_refused_and_global_numeric_state_is_kept() -> None:
    import mpmath

    env = env_for(["MathAPI"], {})
    dps, prec = mpmath.mp.dps, decimal.getcontext().prec
    assert call(env, "power", base=7, exponent=10**9).error
    assert call(env, "logarithm", value=10, base=2, precision=10**7).error
    assert content(call(env, "power", base=2, exponent=10)) == {"result": 1024}
    assert content(call(env, "square_root", number=2, precision=40)) == {
        "result": "1.414213562373095048801688724209698078570"}
    assert content(call(env, "logarithm", value=100, base=10, precision=20)) == {"result": "2.0"}
    assert (mpmath.mp.dps, decimal.getcontext().prec) == (dps, prec)


def test_reset_restores_the_start_state_and_the_record_is_not_mutated() -> None:
    config = scenarios()["multi_turn_base_0"]["initial_config"]
    env = env_for(["GorillaFileSystem", "TwitterAPI"], config)
    before = env.info()
    call(env, "mkdir", dir_name="fresh")
    call(env, "cd", folder="fresh")
    call(env, "authenticate_twitter", username="analyst_pro", password="Kj8#mP9$vL2")
    call(env, "post_tweet", content="x")
    assert "fresh" in content(call(env, "pwd"))["current_working_directory"]
    assert env.info() == before
    asyncio.run(env.reset())
    assert content(call(env, "ls")) == {"current_directory_content": ["document", "archive"]}
    assert call(env, "get_tweet", tweet_id=3).error
    assert config == scenarios()["multi_turn_base_0"]["initial_config"]


def test_environments_never_share_state() -> None:
    config = scenarios()["multi_turn_base_0"]["initial_config"]
    a = env_for(["GorillaFileSystem"], config)
    b = env_for(["GorillaFileSystem"], config)
    call(a, "cd", folder="document")
    call(a, "echo", content="new text", file_name="final_report.pdf")
    call(b, "cd", folder="document")
    assert "final report content" in content(call(b, "cat", file_name="final_report.pdf"))[
        "file_content"]
    s1 = bfcl.choose_state(["MessageAPI"], 11)
    bfcl.BfclEnvironment([], s1["initial_config"], name="x")
    s1["initial_config"]["MessageAPI"]["inbox"] = "mutated"
    assert bfcl.choose_state(["MessageAPI"], 11)["initial_config"]["MessageAPI"] != \
        s1["initial_config"]["MessageAPI"]


def test_choose_state_is_seeded_and_takes_each_config_from_a_real_scenario() -> None:
    classes = ["GorillaFileSystem", "TradingBot", "MathAPI"]  # no scenario has all three
    state = bfcl.choose_state(classes, 5)
    assert state == bfcl.choose_state(classes, 5)
    assert state["classes"] == classes and set(state["initial_config"]) == set(classes)
    for cls, entry_id in state["scenarios"].items():
        entry = scenarios()[entry_id]
        assert cls in entry["involved_classes"]
        config = entry["initial_config"].get(cls, {})
        assert state["initial_config"][cls] == {**state["initial_config"][cls], **config}
    seen = {json.dumps(bfcl.choose_state(["TwitterAPI"], s)["initial_config"]) for s in range(8)}
    assert len(seen) > 1


def test_registry_builds_seeded_environments_from_the_dialogue_tools() -> None:
    source = resolve("bfcl:GorillaFileSystem,TwitterAPI")
    assert {t.family for t in source.pool} == {"GorillaFileSystem", "TwitterAPI"}
    tools = [t for t in source.pool if t.family == "GorillaFileSystem"][:5]
    env = source.make(tools, ScriptedLLM(), 3)
    assert env.executes and env.info().name == "bfcl:GorillaFileSystem,TwitterAPI"
    assert env.info().initial_state["classes"] == ["GorillaFileSystem"]
    assert env.info() == source.make(tools, ScriptedLLM(), 3).info()
    assert env.state_summary().startswith("GorillaFileSystem")
    with pytest.raises(ConfigError, match="unknown class"):
        resolve("bfcl:NoSuchAPI")


def test_a_record_replays_from_its_recorded_environment() -> None:
    source = resolve("bfcl:GorillaFileSystem")
    env = source.make(source.pool, ScriptedLLM(), 21)
    assert isinstance(env, bfcl.BfclEnvironment)
    root = next(iter(env.info().initial_state["initial_config"]["GorillaFileSystem"]["root"]))
    calls = [("mkdir", {"dir_name": "notes"}), ("cd", {"folder": "notes"}),
             ("touch", {"file_name": "a.txt"}), ("echo", {"content": "hi", "file_name": "a.txt"}),
             ("cat", {"file_name": "a.txt"}), ("pwd", {})]
    messages = [Message(role="user", content="make a note")]
    for i, (name, arguments) in enumerate(calls):
        fc = FunctionCall(name=name, arguments=json.dumps(arguments))
        result = asyncio.run(env.call(fc))
        messages += [Message(role="assistant", tool_calls=[ToolCall(id=f"c{i}", function=fc)]),
                     Message(role="tool", tool_call_id=f"c{i}", content=result.content)]
    assert json.loads(messages[-1].content or "") == {
        "current_working_directory": f"/{root}/notes"}
    wire = EnvironmentInfo.model_validate_json(env.info().model_dump_json())
    rebuilt = bfcl.from_info(wire, source.pool)
    assert asyncio.run(replay_check(messages, rebuilt)).passed
    tampered = [*messages[:-1], messages[-1].model_copy(update={"content": '{"x": 1}'})]
    assert not asyncio.run(replay_check(tampered, rebuilt)).passed
    with pytest.raises(ConfigError):
        bfcl.from_info(EnvironmentInfo(name="bfcl:x", initial_state={}), source.pool)


def _valid(text: str, instances: dict[str, Any]) -> bool:
    name, arguments = parse_call(text, instances[_owner(text)])
    tool = next(t for t in bfcl.pool(list(bfcl.CLASSES)) if t.name == name)
    return not tool.validate_arguments(arguments)


def test_gold_call_sequences_replay_to_the_packages_own_results() -> None:
    """Every base scenario's ground truth, through naig and through the package's classes:
    every result and every end state equal."""
    compared = skipped = 0
    for entry_id, entry in scenarios().items():
        classes = [c for c in bfcl.CLASSES if c in entry["involved_classes"]]
        reference = {c: direct(c, entry["initial_config"].get(c, {})) for c in classes}
        texts = [c for turn in gold()[entry_id] for c in turn]
        if not all(_valid(t, reference) for t in texts):
            skipped += 1  # the gold itself breaks the documented schema
            continue
        env = env_for(classes, entry["initial_config"])
        for text in texts:
            name, arguments = parse_call(text, reference[_owner(text)])
            ours = call(env, name, **arguments)
            try:
                theirs = bfcl.encode(getattr(reference[_owner(text)], name)(**arguments))
            except Exception as e:  # noqa: BLE001 - the package raising is a result too
                theirs = f"raised {type(e).__name__}"
                assert ours.error, (entry_id, text)
                continue
            assert ours.content == theirs, (entry_id, text)
            compared += 1
        for cls in classes:
            assert public_state(env.instances[cls]) == public_state(reference[cls]), entry_id
    assert compared > 1000 and skipped <= 2


def test_a_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "bfcl_eval.constants.executable_backend_config", None)
    bfcl._docs.cache_clear()
    try:
        with pytest.raises(ConfigError, match="pip install --no-deps bfcl-eval==2026.3.23"):
            bfcl.pool(["MathAPI"])
    finally:
        bfcl._docs.cache_clear()


Turns = list[tuple[str, list[tuple[str, dict[str, Any]]]]]


def _bfcl_record(env: bfcl.BfclEnvironment, turns: Turns) -> Any:
    """A dialogue whose calls really ran on ``env``, as a record (one call per step)."""
    from naig.dialogue import Meta, Record

    messages = [Message(role="system", content="You manage files.")]
    n = 0
    for said, calls in turns:
        messages.append(Message(role="user", content=said))
        for name, args in calls:
            n += 1
            messages.append(Message(role="assistant", tool_calls=[ToolCall(
                id=f"call_{n}", function=FunctionCall(name=name, arguments=json.dumps(args)))]))
            result = asyncio.run(env.call(FunctionCall(name=name, arguments=json.dumps(args))))
            messages.append(Message(role="tool", tool_call_id=f"call_{n}",
                                    content=result.content))
        messages.append(Message(role="assistant", content="Done."))
    tools = bfcl.pool(["GorillaFileSystem"])
    return Record(id="d-000004", tools=[t.openai() for t in tools], messages=messages,
                  meta=Meta(seed=1, model="m", config_hash="h", environment=env.info()))


def test_a_bfcl_export_is_a_test_entry_whose_ground_truth_bfcls_checker_accepts() -> None:
    from bfcl_eval.eval_checker.multi_turn_eval.multi_turn_checker import multi_turn_checker

    from naig.export import to_bfcl

    config = scenarios()["multi_turn_base_0"]["initial_config"]
    record = _bfcl_record(env_for(["GorillaFileSystem"], config), [
        ("Go into document and make a folder temp.",
         [("cd", {"folder": "document"}), ("mkdir", {"dir_name": "temp"})]),
        ("Thanks!", []),  # no call: joins the next turn's question
        ("Move final_report.pdf into temp, then show me nonexistent.txt.",
         [("mv", {"source": "final_report.pdf", "destination": "temp"}),
          ("cat", {"file_name": "nonexistent.txt"})]),  # fails: not ground truth
        ("Bye.", []),  # after the last call: left out
    ])
    entry = to_bfcl(record)
    assert entry["ground_truth"] == [
        ["cd(folder='document')", "mkdir(dir_name='temp')"],
        ["mv(source='final_report.pdf', destination='temp')"]]
    assert [[m["content"] for m in turn] for turn in entry["question"]] == [
        ["Go into document and make a folder temp."],
        ["Thanks!", "Move final_report.pdf into temp, then show me nonexistent.txt."]]
    assert entry["involved_classes"] == ["GorillaFileSystem"]
    assert entry["path"] == ["GorillaFileSystem.cd", "GorillaFileSystem.mkdir",
                             "GorillaFileSystem.mv"]
    truth = entry["ground_truth"]
    answer = [[turn] for turn in truth]  # a model that made exactly those calls
    verdict = multi_turn_checker(answer, truth, entry, "multi_turn_base", "naig-export-test")
    assert verdict == {"valid": True}
    # BFCL keeps its instances per model name and test id: a fresh name for a fresh state
    wrong = [[truth[0]], [["mkdir(dir_name='final')"]]]
    verdict = multi_turn_checker(wrong, truth, entry, "multi_turn_base", "naig-export-wrong")
    assert not verdict["valid"]  # BFCL's checker tells a different end state apart


def test_file_system_calls_take_only_entries_that_exist_where_they_run() -> None:
    from naig.stages.calls import existing

    config = scenarios()["multi_turn_base_0"]["initial_config"]
    env = env_for(["GorillaFileSystem"], config)
    tools = {t.name: t for t in bfcl.pool(["GorillaFileSystem"])}
    enum = lambda tool, param: (env.narrow(tool, tools[tool].parameters) or {}).get(  # noqa: E731
        "properties", {}).get(param, {}).get("enum")
    assert enum("cd", "folder") == ["archive", "document"]  # at the root: no ".."
    assert env.narrow("cat", tools["cat"].parameters) is None  # no file here to read
    touch = env.narrow("touch", tools["touch"].parameters) or {}
    assert touch["properties"]["file_name"]["pattern"] == bfcl.NAME  # a new name, no path
    import re
    assert [bool(re.match(bfcl.NAME, n)) for n in ("a.txt", "my notes", " Archives", "a/b")] \
        == [True, True, False, False]
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar")
    gbnf = llama_grammar.json_schema_to_gbnf(json.dumps(touch))  # the model decodes it
    assert "\\s" not in gbnf  # llama.cpp refused the grammar: "unknown escape at \s]"
    # "document" holds files: rmdir is never asked to meet "Directory not empty"
    assert enum("rmdir", "dir_name") == ["archive"]
    assert not call(env, "mkdir", dir_name="empty").error
    assert enum("rmdir", "dir_name") == ["archive", "empty"]
    assert not call(env, "cd", folder="document").error
    assert enum("cat", "file_name") == ["final_report.pdf", "previous_report.pdf"]
    assert enum("cd", "folder") == [".."]
    assert enum("mv", "source") == ["final_report.pdf", "previous_report.pdf"]
    mv = env.narrow("mv", tools["mv"].parameters) or {}
    assert mv["properties"]["destination"]["pattern"] == bfcl.NAME

    class Run:  # what existing() reads of a draft
        def __init__(self) -> None:
            self.env = env
    params = existing(Run(), None, list(tools.values()))  # type: ignore[arg-type]
    assert params is not None and "cat" in params and "rmdir" not in params
    assert params["diff"]["properties"]["file_name1"]["enum"] == ["final_report.pdf",
                                                                 "previous_report.pdf"]


def test_a_subtask_whose_tools_cannot_run_in_this_state_takes_one_that_can() -> None:
    """rmdir where no folder is empty: the opening offers the dialogue's other tools (the
    benchmark crashed here: a call schema with no tool in it)."""
    from naig.config import MethodSettings
    from naig.dialogue import Plan, Subtask
    from naig.stages.draft import Draft
    from naig.stages.skeleton import skeleton
    from naig.testing import ScriptedLLM, schema_example

    config = scenarios()["multi_turn_base_0"]["initial_config"]
    env = env_for(["GorillaFileSystem"], config)
    tools = [t for t in bfcl.pool(["GorillaFileSystem"]) if t.name in ("rmdir", "ls")]
    assert not call(env, "rmdir", dir_name="archive").error  # now no folder is empty
    llm = ScriptedLLM(respond=schema_example)
    d = Draft(llm=llm, env=env, tools=tools, seed=1, settings=MethodSettings())
    d.plan = Plan(task="t", subtasks=[Subtask(goal="remove a folder", tools=["rmdir"],
                                              steps=1)])
    asyncio.run(skeleton(d))
    offered = json.dumps(llm.requests[0].schema_)
    assert '"const": "ls"' in offered and '"const": "rmdir"' not in offered


def test_prompts_show_a_tools_own_description_without_the_class_preamble() -> None:
    """Every BFCL tool's description opens with its class's preamble ("This tool belongs to
    the TwitterAPI, ..."): the planner, shown it as what each tool does, wrote it as a goal."""
    from naig.stages.plan import _does
    from naig.transcript import tool_line

    comment = next(t for t in bfcl.pool(["TwitterAPI"]) if t.name == "comment")
    assert comment.description.startswith("This tool belongs to the TwitterAPI")
    assert comment.summary.startswith("Comment on a tweet")
    assert _does(comment) == "comment on a tweet for the authenticated user"
    assert "belongs to" not in tool_line(comment)


def test_a_start_state_states_the_account_a_class_takes_by_default_and_logs_in_with_it() -> None:
    state = bfcl.choose_state(["TwitterAPI"], 1)
    config = state["initial_config"]["TwitterAPI"]
    scenario = scenarios()[state["scenarios"]["TwitterAPI"]]["initial_config"]["TwitterAPI"]
    assert "password" not in scenario  # the scenario leaves the account to the default
    assert (config["username"], config["password"]) == ("john", "john123")
    env = env_for(["TwitterAPI"], state["initial_config"])
    assert public_state(env.instances["TwitterAPI"]) == public_state(direct("TwitterAPI",
                                                                           scenario))
    tools = {t.name: t for t in bfcl.pool(["TwitterAPI"])}
    login = env.narrow("authenticate_twitter", tools["authenticate_twitter"].parameters) or {}
    assert login["properties"]["username"]["enum"] == ["john"]
    assert login["properties"]["password"]["enum"] == ["john123"]
    # a tool that logs nobody in keeps its free arguments
    assert env.narrow("post_tweet", tools["post_tweet"].parameters) == \
        tools["post_tweet"].parameters


def test_a_call_that_returns_nothing_reads_in_prompts_as_no_error() -> None:
    from naig.transcript import NOTHING, describe

    env = env_for(["GorillaFileSystem"], scenarios()["multi_turn_base_0"]["initial_config"])
    made = call(env, "mkdir", dir_name="notes")
    assert not made.error and made.content == "null"  # the record keeps the real result
    line = describe(Message(role="tool", tool_call_id="c1", content=made.content))
    assert line == f"tool result: null ({NOTHING})"
    found = describe(Message(role="tool", tool_call_id="c2", content='{"matches": null}'))
    assert NOTHING not in found


def test_twitter_look_ups_take_users_who_exist_and_unfollow_one_followed() -> None:
    state = bfcl.choose_state(["TwitterAPI"], 2)
    env = env_for(["TwitterAPI"], state["initial_config"])
    tools = {t.name: t for t in bfcl.pool(["TwitterAPI"])}
    twitter = env.instances["TwitterAPI"]
    posters = sorted({t["username"] for t in twitter.tweets.values()} | {twitter.username})
    tweets = env.narrow("get_user_tweets", tools["get_user_tweets"].parameters) or {}
    assert tweets["properties"]["username"]["enum"] == posters
    unfollow = env.narrow("unfollow_user", tools["unfollow_user"].parameters) or {}
    assert unfollow["properties"]["username_to_unfollow"]["enum"] == sorted(
        twitter.following_list)
    follow = tools["follow_user"].parameters  # anyone may be followed
    assert env.narrow("follow_user", follow) == follow
