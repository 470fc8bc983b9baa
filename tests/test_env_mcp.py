"""The MCP environment against a real server process (tests/mcp_server.py, written with the
SDK): listing, real calls on real state, error results, validation before the server,
reset to a fresh process, replay, and servers that cannot start or die."""

from __future__ import annotations

import asyncio
import functools
import json
import shlex
import sys
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp")

from naig.dialogue import EnvironmentInfo, FunctionCall, Message, ToolCall  # noqa: E402
from naig.envs import mcp as mcp_env  # noqa: E402
from naig.envs.base import ToolResult  # noqa: E402
from naig.envs.registry import ToolSource, resolve  # noqa: E402
from naig.errors import ConfigError, ToolEnvironmentError  # noqa: E402
from naig.stages.verify import replay_check  # noqa: E402
from naig.testing import ScriptedLLM  # noqa: E402

SERVER = Path(__file__).with_name("mcp_server.py").resolve()
COMMAND = shlex.join([sys.executable, str(SERVER)])
SPEC = f"mcp:{COMMAND}"


def in_loop(test: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """An async test run in an event loop of its own (the suite has no async plugin)."""

    @functools.wraps(test)
    def run(*args: Any, **kwargs: Any) -> None:
        asyncio.run(test(*args, **kwargs))

    return run


@pytest.fixture(scope="module")
def source() -> ToolSource:
    return resolve(SPEC)


def env_of(source: ToolSource) -> mcp_env.McpEnvironment:
    env = source.make(source.pool, ScriptedLLM([]), 0)
    assert isinstance(env, mcp_env.McpEnvironment)
    return env


async def call(env: mcp_env.McpEnvironment, name: str, **args: object) -> ToolResult:
    return await env.call(FunctionCall(name=name, arguments=json.dumps(args)))


def test_the_servers_tools_are_the_pool(source: ToolSource) -> None:
    tools = {t.name: t for t in source.pool}
    assert set(tools) == {"add_note", "list_notes", "delete_note", "count_words", "crash"}
    assert {t.family for t in source.pool} == {"notes"}  # the server's name
    add = tools["add_note"]
    assert add.description == "Add a note; it gets the next free id."
    assert add.parameters["required"] == ["text"]
    assert add.parameters["properties"]["priority"]["enum"] == ["low", "high"]
    # outputSchema is the result schema, its $defs inlined so it can be embedded
    listed = tools["list_notes"].result_schema
    assert listed is not None and "$defs" not in json.dumps(listed)
    assert listed["properties"]["result"]["items"]["properties"]["id"]["type"] == "integer"
    assert tools["count_words"].result_schema is None  # the tool declares no structure
    assert source.state.startswith("executed")


@in_loop
async def test_calls_run_on_the_server_and_keep_its_state(source: ToolSource) -> None:
    env = env_of(source)
    try:
        first = await call(env, "add_note", text="buy milk", priority="high")
        assert not first.error
        assert json.loads(first.content) == {"id": 1, "text": "buy milk", "priority": "high"}
        await call(env, "add_note", text="call Bob")
        listed = json.loads((await call(env, "list_notes")).content)
        assert [n["text"] for n in listed["result"]] == ["buy milk", "call Bob"]
        deleted = await call(env, "delete_note", note_id=1)
        assert (deleted.error, json.loads(deleted.content)) == (False, {"result": "deleted note 1"})
        words = await call(env, "count_words", text="one two three")
        assert json.loads(words.content) == "3 words"  # plain text, JSON-encoded
    finally:
        await env.aclose()
    assert not env.running


@in_loop
async def test_a_failed_tool_is_an_error_result(source: ToolSource) -> None:
    env = env_of(source)
    try:
        result = await call(env, "delete_note", note_id=9)
    finally:
        await env.aclose()
    assert result.error
    assert "no note with id 9" in json.loads(result.content)["error"]


@in_loop
async def test_invalid_arguments_never_reach_the_server(source: ToolSource) -> None:
    env = env_of(source)
    try:
        bad_type = await call(env, "add_note", text=3)
        bad_enum = await call(env, "add_note", text="x", priority="urgent")
        missing = await call(env, "delete_note")
        unknown = await call(env, "rename_note", note_id=1)
        assert all(r.error for r in (bad_type, bad_enum, missing, unknown))
        assert "invalid arguments" in json.loads(bad_enum.content)["error"]
        assert "unknown tool" in json.loads(unknown.content)["error"]
        assert not env.running  # no process was started for any of them
    finally:
        await env.aclose()


@in_loop
async def test_reset_restarts_the_server_from_its_start_state(source: ToolSource) -> None:
    env = env_of(source)
    try:
        await call(env, "add_note", text="before")
        await env.reset()
        assert not env.running
        assert json.loads((await call(env, "list_notes")).content) == {"result": []}
        again = await call(env, "add_note", text="after")
        assert json.loads(again.content)["id"] == 1
    finally:
        await env.aclose()


@in_loop
async def test_a_recorded_dialogue_replays(source: ToolSource) -> None:
    env = env_of(source)
    calls = [("call_1", "add_note", {"text": "a"}), ("call_2", "add_note", {"text": "b"}),
             ("call_3", "delete_note", {"note_id": 1}), ("call_4", "list_notes", {})]
    messages = [Message(role="user", content="Note a and b, then drop a.")]
    try:
        for cid, name, args in calls:
            fc = FunctionCall(name=name, arguments=json.dumps(args))
            result = await env.call(fc)
            messages += [Message(role="assistant", tool_calls=[ToolCall(id=cid, function=fc)]),
                         Message(role="tool", tool_call_id=cid, content=result.content)]
        check = await replay_check(messages, env)
        assert check.passed, check.detail
        messages[-1] = messages[-1].model_copy(update={"content": '{"result": []}'})
        assert not (await replay_check(messages, env)).passed
    finally:
        await env.aclose()


@in_loop
async def test_the_session_may_be_used_and_closed_from_other_tasks(source: ToolSource) -> None:
    # the SDK's task groups live in the server's own task, not in the caller's
    env = env_of(source)
    first = await asyncio.create_task(call(env, "add_note", text="from a task"))
    listed = await call(env, "list_notes")
    await asyncio.create_task(env.aclose())
    assert not first.error and len(json.loads(listed.content)["result"]) == 1
    assert not env.running


@in_loop
async def test_a_server_that_dies_is_an_environment_error(source: ToolSource) -> None:
    env = env_of(source)
    try:
        with pytest.raises(ToolEnvironmentError, match="stopped answering"):
            await call(env, "crash")
    finally:
        await env.aclose()


def test_info_records_the_command_and_rebuilds(source: ToolSource) -> None:
    info = env_of(source).info()
    assert info == EnvironmentInfo(name=SPEC, initial_state={"command": COMMAND})
    rebuilt = mcp_env.from_info(info, source.pool)
    assert rebuilt.info() == info


def test_a_missing_command_is_a_clean_config_error() -> None:
    with pytest.raises(ConfigError) as e:
        resolve("mcp:/nonexistent/naig-no-such-server --port 1")
    message = str(e.value)
    assert "/nonexistent/naig-no-such-server --port 1" in message
    assert "could not be started" in message and "\n" not in message


def test_a_program_that_is_not_an_mcp_server_is_a_config_error() -> None:
    script = "import sys; sys.exit('I am not a server')"
    with pytest.raises(ConfigError, match="exited before answering.*I am not a server"):
        resolve(f"mcp:{shlex.join([sys.executable, '-c', script])}")


def test_an_empty_or_unsplittable_command_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="give the command"):
        resolve("mcp:")
    with pytest.raises(ConfigError, match="cannot split"):
        resolve("mcp:python 'unclosed")


def test_a_server_that_never_answers_the_handshake_is_a_config_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mcp_env, "START_TIMEOUT", 1.0)
    script = "import time; time.sleep(60)"
    with pytest.raises(ConfigError, match=r"could not be started: TimeoutError: no answer "
                                          r"within 1 s"):
        resolve(f"mcp:{shlex.join([sys.executable, '-c', script])}")
