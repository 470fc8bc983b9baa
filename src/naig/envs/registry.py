"""Tool specs, keyed by ``provider:name`` strings, resolved to a pool and environments.

``builtin`` / ``builtin:<pool>`` and a path to a JSON file give schemas only, served by
the simulated environment.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from naig.envs import bfcl, tau2
from naig.envs.base import Environment
from naig.envs.simulated import SimulatedEnvironment
from naig.errors import ConfigError
from naig.llm.base import LLM
from naig.pools import check_unique, load_builtin, load_file
from naig.tools import Tool

EnvFactory = Callable[[list[Tool], LLM, int], Environment]


@dataclass(frozen=True)
class ToolSource:
    """What a tool spec yields: its pool, where state comes from, and how to build an
    environment for one dialogue's tools."""

    spec: str
    pool: list[Tool]
    state: str
    make: EnvFactory


def _simulated(spec: str) -> EnvFactory:
    def make(tools: list[Tool], llm: LLM, seed: int) -> Environment:
        return SimulatedEnvironment(tools, llm, seed, name=spec)
    return make


def _builtin(spec: str, name: str) -> ToolSource:
    return ToolSource(spec, load_builtin(name), "simulated by the LLM", _simulated(spec))


def _file(spec: str) -> ToolSource:
    return ToolSource(spec, load_file(Path(spec)), "simulated by the LLM", _simulated(spec))


def _bfcl(spec: str, name: str) -> ToolSource:
    classes = bfcl.parse_classes(name)
    return ToolSource(spec, bfcl.pool(classes), "executed by BFCL's classes",
                      bfcl.factory(spec, classes))


def _tau2(spec: str, name: str) -> ToolSource:
    return ToolSource(spec, tau2.pool(name), f"executed by tau2's {name} database",
                      tau2.factory(name))


PROVIDERS: dict[str, Callable[[str, str], ToolSource]] = {
    "builtin": _builtin, "bfcl": _bfcl, "tau2": _tau2}


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
    if any(s.state != "simulated by the LLM" for s in sources):
        raise ConfigError("real environments cannot be mixed with other specs in one run")
    return ToolSource(spec, pool, "simulated by the LLM", _simulated(spec))
