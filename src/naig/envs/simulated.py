"""The simulated environment, for tools known only by their schemas.

Results are written by the LLM to fit the tool's description (and result schema where
known), and remembered: the same call gets the same answer for the rest of the dialogue,
and results seen so far are shown to the LLM so entity IDs stay consistent.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from naig.dialogue import EnvironmentInfo, FunctionCall, call_key
from naig.envs.base import Environment, ToolResult
from naig.llm.base import LLM
from naig.llm.structured import ask
from naig.prompts import render
from naig.tools import Tool, bounded, out_of_bounds, parse_arguments, simulated_results


def _memory_key(name: str, arguments: dict[str, Any]) -> str:
    """The call as text: the memory's key, and how the prompt shows earlier calls."""
    return "".join(call_key(name, arguments))


class SimulatedEnvironment(Environment):
    def __init__(self, tools: list[Tool], llm: LLM, seed: int, name: str = "simulated"):
        super().__init__(tools)
        self._llm = llm
        self._seed = seed
        self._name = name
        self._memory: dict[str, ToolResult] = {}

    def info(self) -> EnvironmentInfo:
        return EnvironmentInfo(name=self._name)

    def suggest(self, call: FunctionCall, result: ToolResult) -> None:
        """A result the generator proposes for ``call`` (a skeleton writes results beside
        its calls): the answer to that call from now on, unless one was given already."""
        try:
            key = _memory_key(call.name, parse_arguments(call.arguments))
        except ValueError:
            return
        self._memory.setdefault(key, result)

    async def _execute(self, tool: Tool, arguments: dict[str, Any]) -> ToolResult:
        key = _memory_key(tool.name, arguments)
        if key in self._memory:
            return self._memory[key]
        earlier = [f"{k} -> {r.content}" for k, r in list(self._memory.items())[-8:]]
        schema = bounded(simulated_results(tool.results()), arguments)
        messages, digest = render("simulate_result", tool=tool.openai()["function"],
                                  arguments=json.dumps(arguments), earlier=earlier,
                                  result_schema=json.dumps(schema))
        seed = self._seed ^ int(hashlib.sha256(key.encode()).hexdigest()[:8], 16)
        def check(value: Any) -> Any:
            broken = out_of_bounds(arguments, _as_object(value))
            if broken is not None:
                raise ValueError(f"the result's {broken}; a result keeps to its call")
            return value
        value = await ask(self._llm, messages, schema, check,
                          stage="env", seed=seed, template_hash=digest, max_tokens=400)
        result = ToolResult(content=json.dumps(value, ensure_ascii=False),
                            error=isinstance(value, dict) and "error" in value)
        self._memory[key] = result
        return result


def _as_object(value: Any) -> Any:
    if not isinstance(value, dict | list):
        raise ValueError("a tool result must be a JSON object or array")
    return value
