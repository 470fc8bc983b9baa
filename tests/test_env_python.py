"""The python: environment on a real module of tools (tests/tools_module.py): which
functions become tools, the schemas pydantic derives, real calls, exceptions as error
results, per-dialogue state and reset."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from naig.dialogue import EnvironmentInfo, FunctionCall
from naig.envs import python_module
from naig.envs.base import Environment, ToolResult
from naig.envs.registry import ToolSource, resolve
from naig.errors import ConfigError
from naig.testing import ScriptedLLM
from naig.tools import Tool

MODULE = "tests.tools_module"
PATH = Path(__file__).with_name("tools_module.py").resolve()


@pytest.fixture(scope="module")
def source() -> ToolSource:
    return resolve(f"python:{MODULE}")


def tools(source: ToolSource) -> dict[str, Tool]:
    return {t.name: t for t in source.pool}


def env_of(source: ToolSource) -> Environment:
    return source.make(source.pool, ScriptedLLM([]), 0)


def call(env: Environment, name: str, **args: Any) -> ToolResult:
    return asyncio.run(env.call(FunctionCall(name=name, arguments=json.dumps(args))))


def value(result: ToolResult) -> Any:
    return json.loads(result.content)


def test_public_documented_typed_functions_of_the_module_are_the_tools(
        source: ToolSource) -> None:
    assert list(tools(source)) == ["open_account", "get_balance", "transfer", "list_accounts"]
    assert {t.family for t in source.pool} == {"tools_module"}
    assert source.state.startswith("executed")


def test_the_schema_comes_from_the_signature_and_docstring(source: ToolSource) -> None:
    opening = tools(source)["open_account"]
    assert opening.description == "Open an account for a customer."
    params = opening.parameters
    assert params["required"] == ["owner"]  # defaults make the others optional
    assert params["properties"]["currency"]["enum"] == ["EUR", "USD"]
    assert params["properties"]["owner"] == {"type": "string",
                                             "description": "Full name of the account holder."}
    assert params["properties"]["deposit"]["default"] == 0.0
    assert "title" not in json.dumps(params)
    assert opening.result_schema is not None
    assert opening.result_schema["properties"]["balance"] == {"type": "number"}

    order = tools(source)["transfer"].parameters["properties"]["order"]  # a nested model
    assert "$ref" not in json.dumps(order)
    assert order["properties"]["amount"]["exclusiveMinimum"] == 0
    assert order["properties"]["source"]["description"] == "The account the money leaves."
    assert order["description"] == "What to move, from where, to where."
    assert tools(source)["get_balance"].result_schema == {"type": "number"}


def test_calls_run_the_functions_on_the_dialogues_state(source: ToolSource) -> None:
    env = env_of(source)
    opened = value(call(env, "open_account", owner="Grace Hopper", deposit=5))
    assert opened == {"id": "A-3", "owner": "Grace Hopper", "balance": 5.0, "currency": "EUR"}
    moved = call(env, "transfer", order={"source": "A-1", "target": "A-3", "amount": 30})
    assert not moved.error and value(moved) == {"A-1": 70.0, "A-3": 35.0}
    assert value(call(env, "get_balance", account_id="A-3")) == 35.0
    mine = value(call(env, "list_accounts", owner="Grace Hopper"))  # an async function
    assert [a["id"] for a in mine] == ["A-3"]


def test_exceptions_and_bad_arguments_are_error_results(source: ToolSource) -> None:
    env = env_of(source)
    missing = call(env, "get_balance", account_id="A-9")
    assert missing.error and value(missing) == {"error": "KeyError: 'A-9'"}
    poor = call(env, "transfer", order={"source": "A-1", "target": "A-1", "amount": 500})
    assert value(poor) == {"error": "ValueError: insufficient funds in A-1"}
    mixed = call(env, "transfer", order={"source": "A-1", "target": "A-2", "amount": 1})
    assert "A-1 is in EUR" in value(mixed)["error"]
    negative = call(env, "transfer", order={"source": "A-1", "target": "A-2", "amount": -1})
    wrong_enum = call(env, "open_account", owner="X", currency="GBP")
    extra = call(env, "get_balance", account_id="A-1", pin="1234")
    for bad in (negative, wrong_enum, extra):
        assert bad.error and value(bad)["error"].startswith("invalid arguments")
    assert value(call(env, "get_balance", account_id="A-1")) == 100.0  # nothing moved


def test_each_dialogue_has_its_own_state(source: ToolSource) -> None:
    first, second = env_of(source), env_of(source)
    call(first, "open_account", owner="Grace Hopper")
    assert len(value(call(first, "list_accounts"))) == 3
    assert len(value(call(second, "list_accounts"))) == 2
    import tests.tools_module as imported  # the importable module itself is untouched
    assert len(imported.ACCOUNTS) == 2


def test_reset_calls_naig_reset(source: ToolSource) -> None:
    env = env_of(source)
    call(env, "transfer", order={"source": "A-1", "target": "A-1", "amount": 1})
    call(env, "open_account", owner="Grace Hopper")
    asyncio.run(env.reset())
    assert [a["id"] for a in value(call(env, "list_accounts"))] == ["A-1", "A-2"]


def test_a_file_without_naig_reset_is_executed_afresh_on_reset(tmp_path: Path) -> None:
    module = tmp_path / "counter.py"
    module.write_text('"""A counter."""\n\nCOUNT = [0]\n\n\n'
                      'def bump(by: int = 1) -> int:\n    """Add to the counter."""\n'
                      '    COUNT[0] += by\n    return COUNT[0]\n')
    source = resolve(f"python:{module}")
    assert [t.name for t in source.pool] == ["bump"]
    assert source.pool[0].family == "counter"
    env = env_of(source)
    assert [value(call(env, "bump")) for _ in range(3)] == [1, 2, 3]
    asyncio.run(env.reset())
    assert value(call(env, "bump", by=5)) == 5


def test_naig_reset_is_what_reset_runs_where_defined(tmp_path: Path) -> None:
    module = tmp_path / "counter2.py"
    module.write_text('COUNT = [0]\n\n\ndef bump() -> int:\n    """Add one."""\n'
                      '    COUNT[0] += 1\n    return COUNT[0]\n\n\n'
                      'async def naig_reset() -> None:\n    COUNT[0] = 100\n')
    source = resolve(f"python:{module}")
    assert [t.name for t in source.pool] == ["bump"]  # naig_reset is no tool
    env = env_of(source)
    assert value(call(env, "bump")) == 1  # the module's own start state
    asyncio.run(env.reset())
    assert value(call(env, "bump")) == 101


def test_a_path_to_the_file_works_like_the_module_name() -> None:
    by_path = resolve(f"python:{PATH}")
    assert [t.name for t in by_path.pool] == ["open_account", "get_balance", "transfer",
                                              "list_accounts"]
    env = env_of(by_path)
    assert value(call(env, "get_balance", account_id="A-2")) == 20.0


def test_info_records_the_module_and_rebuilds(source: ToolSource) -> None:
    info = env_of(source).info()
    assert info == EnvironmentInfo(name=f"python:{MODULE}", initial_state={"module": MODULE})
    assert python_module.from_info(info, source.pool).info() == info


def test_unusable_modules_are_config_errors(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ConfigError, match="no module 'naig_no_such_module'"):
        resolve("python:naig_no_such_module")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loose.py").write_text("")
    with pytest.raises(ConfigError, match="give its path: python:./loose.py"):
        resolve("python:loose")  # a file here is not importable by name from a script
    with pytest.raises(ConfigError, match="no such file"):
        resolve(f"python:{tmp_path / 'missing.py'}")
    bare = tmp_path / "bare.py"
    bare.write_text("def f(x):\n    return x\n")
    with pytest.raises(ConfigError, match="defines no tools"):
        resolve(f"python:{bare}")
    broken = tmp_path / "broken.py"
    broken.write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ConfigError, match="RuntimeError: boom"):
        resolve(f"python:{broken}")


SLOW = '''
import asyncio
import time


class Opaque:
    def __str__(self) -> str:
        return "an opaque thing"


def wait(seconds: float) -> str:
    """Wait, then say so."""
    time.sleep(seconds)
    return "waited"


async def wait_async(seconds: float) -> str:
    """Wait without a thread."""
    await asyncio.sleep(seconds)
    return "waited"


def odd() -> object:
    """Return what JSON cannot hold."""
    return {"when": {1, 2}, "what": Opaque()}
'''


def test_a_call_past_the_time_limit_is_an_error_result_and_the_next_call_runs(
        tmp_path: Path) -> None:
    module = tmp_path / "slow_tools.py"
    module.write_text(SLOW)
    source = resolve(f"python:{module}?timeout=0.5")
    env = env_of(source)
    assert env.info().initial_state == {"module": str(module), "timeout": 0.5}
    for name in ("wait", "wait_async"):
        hung = call(env, name, seconds=30)
        assert hung.error and value(hung) == {"error": f"{name} did not finish within 0.5 s"}
        assert value(call(env, name, seconds=0)) == "waited"
    rebuilt = python_module.from_info(env.info(), source.pool)
    assert value(asyncio.run(rebuilt.call(FunctionCall(name="wait", arguments='{"seconds": 30}'))
                             ))["error"].endswith("within 0.5 s")


def test_a_result_json_cannot_hold_is_encoded_not_a_crash(tmp_path: Path) -> None:
    module = tmp_path / "slow_tools.py"
    module.write_text(SLOW)
    result = call(env_of(resolve(f"python:{module}")), "odd")
    assert not result.error and value(result) == {"when": [1, 2], "what": "an opaque thing"}


@pytest.mark.parametrize("option", ["?timeout=abc", "?timeout=0", "?timeout=-1", "?limit=5",
                                    "?timeout=inf"])
def test_a_bad_time_limit_is_a_config_error(option: str) -> None:
    with pytest.raises(ConfigError, match=r"\?timeout=<seconds>"):
        resolve(f"python:{MODULE}{option}")
