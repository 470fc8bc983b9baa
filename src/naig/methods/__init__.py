"""Generation methods: each turns a fresh ``Draft`` into a finished dialogue.

A method is a coroutine ``run(draft) -> draft``; verification and the record are shared
by every method (see ``naig.runner``). Methods are keyed by name: ``naig`` (ToolACE-MT,
non-autoregressive) and ``mas`` (the turn-by-turn multi-agent-simulation baseline).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from naig.errors import ConfigError
from naig.methods import mas, naig
from naig.stages.draft import Draft

Method = Callable[[Draft], Awaitable[Draft]]


def get(name: str) -> Method:
    methods: dict[str, Method] = {"naig": naig.run, "mas": mas.run}
    if name not in methods:
        raise ConfigError(f"unknown method {name!r}; known: {', '.join(sorted(methods))}")
    return methods[name]


def repairs(name: str) -> bool:
    """Whether a dialogue of method ``name`` that fails verification is repaired before it
    is rejected (NAIG's; the MAS baseline has no such stage)."""
    return name == "naig"


__all__ = ["Method", "get", "repairs"]
