"""A tool environment: the tools, a start state, and the execution of calls.

An environment belongs to one dialogue. ``call`` takes a call exactly as a model wrote it:
the arguments are parsed and validated against the tool's schema before anything runs,
and an unknown tool or bad arguments become an error result, never an exception.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict

from naig.dialogue import EnvironmentInfo, FunctionCall
from naig.errors import ConfigError
from naig.grounding import Vocabulary
from naig.tools import Tool, parse_arguments


class ToolResult(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    content: str
    """What the tool returned, as JSON text."""
    error: bool = False


def time_limit(target: str, where: str) -> tuple[str, float | None]:
    """A spec's target without its trailing ``?timeout=<seconds>``, and those seconds (None
    where not given): how ``python:`` and ``mcp:`` specs set a call's time limit."""
    head, sep, value = target.rpartition("?timeout=")
    if not sep:
        return target, None
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ConfigError(f"{where}: ?timeout=<seconds> takes a positive number, got {value!r}")
    return head, seconds


def error_result(message: str) -> ToolResult:
    return ToolResult(content=json.dumps({"error": message}), error=True)


class Environment(ABC):
    """Tools with state for one dialogue."""

    executes: bool = False
    """True when results come from running the calls, so a replay must reproduce them."""

    def __init__(self, tools: list[Tool]):
        self._tools = {t.name: t for t in tools}

    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    @abstractmethod
    def info(self) -> EnvironmentInfo:
        """Everything needed to rebuild this environment's start state."""

    def state_summary(self) -> str:
        """What the planner may know of the start state (entities that exist)."""
        return ""

    def vocabulary(self) -> Vocabulary | None:
        """What exists in the start state (``naig.grounding.vocabulary``), where it is
        known: words in a dialogue then ground an entity argument only when they name
        something that exists. None where the state is unknown (simulated tools)."""
        return None

    def narrow(self, tool: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
        """``parameters`` (a call's argument schema) restricted to the values that exist in
        the current state, where this environment knows them (a file system's entries,
        say); None where a required argument has no value now. Unchanged by default."""
        return parameters

    def system_prompt(self) -> str:
        """Extra text for the dialogue's system message (a domain policy, say)."""
        return ""

    async def reset(self) -> None:
        """Return to the start state."""
        return None

    async def aclose(self) -> None:
        """Release what the environment holds (a server process, say); the runner calls it
        once the dialogue is done, on every path."""
        return None

    async def call(self, call: FunctionCall) -> ToolResult:
        tool = self._tools.get(call.name)
        if tool is None:
            return error_result(f"unknown tool {call.name!r}")
        try:
            arguments = parse_arguments(call.arguments)
        except ValueError as e:
            return error_result(f"arguments are not a JSON object: {e}")
        problems = tool.validate_arguments(arguments)
        if problems:
            return error_result("invalid arguments: " + "; ".join(problems))
        return await self._execute(tool, arguments)

    @abstractmethod
    async def _execute(self, tool: Tool, arguments: dict[str, Any]) -> ToolResult:
        """Run a call whose arguments are valid for ``tool``."""
