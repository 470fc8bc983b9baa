"""Tool pools: load them from files or built-in data, and sample a dialogue's tools.

A pool file is a JSON array of tools (OpenAI format or bare function objects), a JSON
object with a ``tools`` array, or JSON Lines with one tool per line (BFCL's function
docs). A tool's family is its ``domain`` field where given, else the file's name:
sampling draws a dialogue's tools from one family plus a few distractors.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from naig.errors import ConfigError
from naig.grounding import produces
from naig.tools import Tool, tool_from_dict


@dataclass(frozen=True)
class Sampling:
    tools_min: int = 3
    """Fewest tools drawn from the dialogue's family."""
    tools_max: int = 8
    """Most tools drawn from the dialogue's family."""
    distractors_max: int = 3
    """Most unrelated tools added from other families (0 to this many)."""


def _parse(text: str, where: str) -> list[Any]:
    text = text.strip()
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        try:
            return [json.loads(line) for line in text.splitlines() if line.strip()]
        except json.JSONDecodeError as e:
            raise ConfigError(
                f"{where}: not JSON or JSON Lines (line {e.lineno}: {e.msg})") from None
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        return list(data["tools"])
    if isinstance(data, dict):
        return [data]
    if isinstance(data, list):
        return data
    raise ConfigError(f"{where}: expected a list of tools")


def tools_from_text(text: str, where: str, family: str) -> list[Tool]:
    tools = []
    for i, raw in enumerate(_parse(text, where), 1):
        fam = str(raw.get("domain", family)) if isinstance(raw, dict) else family
        tools.append(tool_from_dict(raw, f"{where}: tool {i}", fam))
    if not tools:
        raise ConfigError(f"{where}: no tools found")
    first: dict[str, int] = {}
    for i, t in enumerate(tools):
        j = first.setdefault(t.name, i)
        if j != i and tools[j] != t:
            raise ConfigError(f"{where}: tools {j + 1} and {i + 1} are both named {t.name!r}; "
                              "rename one")
    return [t for i, t in enumerate(tools) if first[t.name] == i]  # a tool given twice: once


def load_file(path: Path) -> list[Tool]:
    if not path.is_file():
        raise ConfigError(f"tool file {path} does not exist")
    try:
        text = path.read_text("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text (byte {e.object[e.start]:#04x} at offset "
                          f"{e.start}); save it as UTF-8") from None
    return tools_from_text(text, str(path), path.stem)


def builtin_names() -> list[str]:
    folder = resources.files("naig.data").joinpath("pools")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir()
                  if p.name.endswith(".json"))


def load_builtin(name: str = "") -> list[Tool]:
    """A built-in pool by name, or all of them for an empty name."""
    names = builtin_names() if not name else [name]
    tools: list[Tool] = []
    for n in names:
        if n not in builtin_names():
            raise ConfigError(f"no built-in pool {n!r}; there are: {', '.join(builtin_names())}")
        text = resources.files("naig.data").joinpath("pools", f"{n}.json").read_text("utf-8")
        tools += tools_from_text(text, f"builtin:{n}", n)
    return tools


def check_unique(tools: list[Tool]) -> list[Tool]:
    seen: dict[str, Tool] = {}
    for t in tools:
        if t.name in seen and seen[t.name] != t:
            raise ConfigError(f"two different tools are named {t.name!r}; rename one")
        seen[t.name] = t
    return list(seen.values())


def with_producers(chosen: list[Tool], members: list[Tool]) -> list[Tool]:
    """``chosen`` with every member that produces a value one of them needs (a search for
    the booking that needs its ID, and so on down the chain), so that a call's entity
    arguments can come from a result and not only from the user."""
    out = list(chosen)
    for consumer in out:  # grows as producers join: their own producers join too
        out += [m for m in members if m not in out and produces(m, consumer)]
    return out


def sample(pool: list[Tool], rng: random.Random, settings: Sampling) -> list[Tool]:
    """A dialogue's candidate tools: some from one family (with the producers of what they
    need, ``with_producers``), plus unrelated distractors."""
    families: dict[str, list[Tool]] = {}
    for t in pool:
        families.setdefault(t.family, []).append(t)
    family = rng.choice(sorted(families))
    members = families[family]
    k = min(len(members), rng.randint(settings.tools_min, settings.tools_max))
    chosen = with_producers(rng.sample(members, k), members)
    others = [t for t in pool if t.family != family]
    d = min(len(others), rng.randint(0, settings.distractors_max))
    chosen += rng.sample(others, d)
    rng.shuffle(chosen)
    return chosen
