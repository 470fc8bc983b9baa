"""Where a run's work happens, chosen by name (``--engine``) like backends and environments.

The local engine is ``naig.runner.execute`` itself: one process, one event loop, dialogues
fanned out under ``--concurrency``. ``naig.engines.ray`` spreads the same pipeline over a
Ray cluster in shards of attempt indices, each shard a ``runner.execute`` of its own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from naig.config import RunConfig
from naig.errors import ConfigError
from naig.runner import Progress, Summary, execute


@dataclass(frozen=True)
class Placement:
    """What an engine is told beyond the run's config: where to run, in how many parts."""

    address: str | None = None
    """A cluster to join (``auto``: the one this machine is in); None: start one."""
    shards: int | None = None
    """Parts the attempts are split into (None: the engine decides)."""


Engine = Callable[[RunConfig, Progress | None, bool, Placement], Awaitable[Summary]]
"""Runs ``config`` (overwriting an earlier output where told) and returns its summary."""


async def _local(config: RunConfig, progress: Progress | None, overwrite: bool,
                 placement: Placement) -> Summary:
    return await execute(config, progress, overwrite=overwrite)


async def _ray(config: RunConfig, progress: Progress | None, overwrite: bool,
               placement: Placement) -> Summary:
    from naig.engines import ray  # Ray is an optional extra, imported when asked for

    return await ray.run(config, progress, overwrite=overwrite, address=placement.address,
                         shards=placement.shards)


ENGINES: dict[str, Engine] = {"local": _local, "ray": _ray}


def get(name: str, placement: Placement | None = None) -> Engine:
    """The engine called ``name``, where ``placement`` suits it (checked before any work)."""
    if name not in ENGINES:
        raise ConfigError(f"--engine {name}: use one of {', '.join(ENGINES)}")
    placement = placement or Placement()
    if name == "local" and placement != Placement():
        raise ConfigError("--ray-address and --shards go with --engine ray")
    if placement.shards is not None and placement.shards < 1:
        raise ConfigError("--shards must be at least 1")
    return ENGINES[name]


__all__ = ["ENGINES", "Engine", "Placement", "get"]
