"""Tool specs, keyed by ``provider:name`` strings, resolved to a pool and environments.

``builtin`` / ``builtin:<pool>`` and a path to a JSON file give schemas only, served by
the simulated environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from naig.dialogue import EnvironmentInfo
from naig.envs import bfcl, mcp, python_module, tau2
from naig.envs.base import Environment, time_limit
from naig.envs.simulated import SimulatedEnvironment
from naig.errors import ConfigError
from naig.llm.base import LLM
from naig.pools import check_unique, load_builtin, load_file
from naig.tools import Tool

EnvFactory = Callable[[list[Tool], int], Environment]
"""Builds a real environment for one dialogue's tools and seed."""


@dataclass(frozen=True)
class ToolSource:
    """What a tool spec yields: its pool, where state comes from, and how to build an
    environment for one dialogue's tools."""

    spec: str
    pool: list[Tool]
    state: str
    """Where results come from, in words (``naig tools list`` shows it)."""
    factory: EnvFactory | None = None
    """How a real environment is built; None where the LLM simulates the results."""

    @property
    def executes(self) -> bool:
        """Whether calls really run somewhere (else the LLM simulates their results)."""
        return self.factory is not None

    def make(self, tools: list[Tool], llm: LLM, seed: int) -> Environment:
        """The environment of one dialogue: a real one, or one whose results ``llm``
        writes."""
        if self.factory is None:
            return SimulatedEnvironment(tools, llm, seed, name=self.spec)
        return self.factory(tools, seed)


SIMULATED = "simulated by the LLM"


def _builtin(spec: str, name: str) -> ToolSource:
    return ToolSource(spec, load_builtin(name), SIMULATED)


def _file(spec: str) -> ToolSource:
    return ToolSource(spec, load_file(Path(spec)), SIMULATED)


def _bfcl(spec: str, name: str) -> ToolSource:
    classes = bfcl.parse_classes(name)
    return ToolSource(spec, bfcl.pool(classes), "executed by BFCL's classes",
                      bfcl.factory(spec, classes))


def _tau2(spec: str, name: str) -> ToolSource:
    return ToolSource(spec, tau2.pool(name), f"executed by tau2's {name} database",
                      tau2.factory(name))


def _mcp(spec: str, command: str) -> ToolSource:
    command, timeout = time_limit(command, "mcp")
    argv = mcp.parse_command(command)
    return ToolSource(spec, mcp.pool(argv), "executed by the MCP server, one process per "
                      "dialogue", mcp.factory(spec, argv, timeout))


def _python(spec: str, target: str) -> ToolSource:
    return ToolSource(spec, python_module.pool(target), f"executed by {target}'s functions",
                      python_module.factory(spec, target))


PROVIDERS: dict[str, Callable[[str, str], ToolSource]] = {
    "builtin": _builtin, "bfcl": _bfcl, "tau2": _tau2, "mcp": _mcp, "python": _python}


Restorer = Callable[[EnvironmentInfo, list[Tool]], Environment]
RESTORERS: dict[str, Restorer] = {"bfcl": bfcl.from_info, "tau2": tau2.from_info,
                                  "mcp": mcp.from_info, "python": python_module.from_info}


def restore(info: EnvironmentInfo, tools: list[Tool], llm: LLM) -> Environment:
    """Rebuild a dialogue's start state from its record's ``meta.environment``: what an
    independent replay needs. Simulated tools come back as a simulated environment."""
    provider = info.name.partition(":")[0]
    if provider in RESTORERS:
        return RESTORERS[provider](info, tools)
    return SimulatedEnvironment(tools, llm, 0, name=info.name)


def resolve(spec: str) -> ToolSource:
    provider, _, rest = spec.partition(":")
    if provider in PROVIDERS:
        return PROVIDERS[provider](spec, rest)
    if Path(spec).suffix in (".json", ".jsonl") or Path(spec).exists():
        return _file(spec)
    raise ConfigError(f"unknown tool spec {spec!r}: give a JSON file of tools or one of "
                      + ", ".join(f"{p}:..." for p in sorted(PROVIDERS)))


def combine(specs: list[str]) -> ToolSource:
    """One source from several specs; they must agree on how tools run."""
    if not specs:
        raise ConfigError("give at least one --tools spec")
    sources = [resolve(s) for s in specs]
    if len(sources) == 1:
        return sources[0]
    pool = check_unique([t for s in sources for t in s.pool])
    spec = ",".join(specs)
    if any(s.executes for s in sources):
        raise ConfigError("real environments cannot be mixed with other specs in one run")
    return ToolSource(spec, pool, SIMULATED)
