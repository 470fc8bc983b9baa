"""BFCL's stateful multi-turn backends as real environments (spec ``bfcl:<Class>[,...]``).

Each dialogue gets fresh instances of the classes its tools come from, loaded with a start
state taken from the package's multi-turn scenarios (``initial_config``), chosen by the
dialogue's seed. A call runs as a plain method call on the owning instance after the base
class has validated it against the tool's schema; BFCL's own executor (which ``eval``s
call strings and caches instances in module globals) is never used.

The start state is recorded as ``{"classes": [...], "initial_config": {...}}`` and is
enough to rebuild the environment (``from_info``), so a dialogue replays exactly.
"""

from __future__ import annotations

import copy
import decimal
import functools
import importlib
import json
import random
from collections.abc import Callable
from importlib import resources
from typing import Any

from naig.dialogue import EnvironmentInfo
from naig.envs.base import Environment, ToolResult, error_result
from naig.errors import ConfigError
from naig.grounding import Vocabulary, vocabulary
from naig.tools import Tool, logs_in, tool_from_dict

INSTALL = ("pip install --no-deps bfcl-eval==2026.3.23 && "
           "pip install mpmath==1.3.0 filelock==4.2.12")

CLASSES = ("GorillaFileSystem", "MathAPI", "MessageAPI", "TwitterAPI", "TicketAPI",
           "TradingBot", "TravelAPI", "VehicleControlAPI")
"""The stateful multi-turn classes; BFCL's memory and web-search backends are left out."""

SCENARIOS = "BFCL_v4_multi_turn_base.json"
SUMMARY_CHARS = 1500
MAX_PRECISION = 1000
"""MathAPI takes a digits-of-precision argument; more than this would run for minutes."""
MAX_RESULT_BITS = 100_000
"""An exact integer power bigger than this could not even be written out as a result."""


def _require() -> Any:
    try:
        config = importlib.import_module("bfcl_eval.constants.executable_backend_config")
    except ImportError:
        raise ConfigError(f"bfcl: tools need the bfcl-eval package; install it with: {INSTALL}"
                          ) from None
    return config


def _data(*parts: str) -> str:
    _require()
    return resources.files("bfcl_eval").joinpath("data", *parts).read_text("utf-8")


@functools.cache
def _docs() -> dict[str, tuple[Tool, ...]]:
    files = _require().MULTI_TURN_FUNC_DOC_FILE_MAPPING
    out = {}
    for cls in CLASSES:
        lines = [ln for ln in _data("multi_turn_func_doc", files[cls]).splitlines() if ln.strip()]
        out[cls] = tuple(tool_from_dict(json.loads(ln), f"bfcl {files[cls]}: line {i}", cls)
                         for i, ln in enumerate(lines, 1))
    return out


@functools.cache
def owners() -> dict[str, str]:
    """Tool name -> the class that implements it (names are unique across the classes)."""
    return {t.name: cls for cls, tools in _docs().items() for t in tools}


@functools.cache
def _scenarios() -> tuple[dict[str, Any], ...]:
    return tuple(json.loads(ln) for ln in _data(SCENARIOS).splitlines() if ln.strip())


def parse_classes(names: str) -> list[str]:
    """The classes a spec's name part asks for; empty means all of them."""
    wanted = [n.strip() for n in names.split(",") if n.strip()] or list(CLASSES)
    unknown = [n for n in wanted if n not in CLASSES]
    if unknown:
        raise ConfigError(f"bfcl: unknown class {', '.join(unknown)}; "
                          f"the classes are: {', '.join(CLASSES)}")
    return sorted(set(wanted), key=CLASSES.index)


def pool(classes: list[str]) -> list[Tool]:
    docs = _docs()
    return [t for c in classes for t in docs[c]]


_EXISTING: dict[str, dict[str, str]] = {
    "cat": {"file_name": "file"}, "tail": {"file_name": "file"},
    "grep": {"file_name": "file"}, "sort": {"file_name": "file"},
    "wc": {"file_name": "file"}, "diff": {"file_name1": "file", "file_name2": "file"},
    "cd": {"folder": "dir"}, "rmdir": {"dir_name": "empty dir"}, "rm": {"file_name": "entry"},
    "mv": {"source": "entry"}, "cp": {"source": "entry"}}
"""GorillaFileSystem's tools whose argument names an entry that must exist: a file, a
folder (``rmdir``: an empty one), or either. (``find`` searches.)"""

_NEW: dict[str, list[str]] = {"touch": ["file_name"], "mkdir": ["dir_name"],
                              "echo": ["file_name"], "mv": ["destination"],
                              "cp": ["destination"]}
"""GorillaFileSystem's arguments that name an entry in the current directory, new or
existing: a name, never a path ("path not allowed in destination")."""


_PEOPLE: dict[str, dict[str, str]] = {
    "get_user_tweets": {"username": "posters"}, "get_user_stats": {"username": "posters"},
    "unfollow_user": {"username_to_unfollow": "followed"}}
"""TwitterAPI's arguments that name a user who must exist: one who has posted, or one the
account follows."""


NAME = r"^[^/ ]([^/]*[^/ ])?$"
"""A new entry's name: no path, and no space at either end (the model made and removed
``" Archives"`` to answer "delete the Archives directory", at d9e8d79). Spaces, not a
whitespace escape: llama.cpp's grammar parser refused ``\\s`` in a character class."""


def choose_state(classes: list[str], seed: int) -> dict[str, Any]:
    """A start state for ``classes``: the config of a scenario chosen by ``seed``.

    The scenario is drawn among those whose classes cover all of ``classes``, else among
    those sharing at least one; a class the drawn scenario lacks takes its config from
    another scenario involving it (drawn the same way), or the class's default (``{}``).
    """
    rng = random.Random(seed)
    rows = _scenarios()
    covering = [r for r in rows if set(classes) <= set(r["involved_classes"])]
    touching = [r for r in rows if set(classes) & set(r["involved_classes"])]
    picks = [rng.choice(covering or touching)] if covering or touching else []
    config: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for cls in classes:
        if not any(cls in p["involved_classes"] for p in picks):
            involving = [r for r in rows if cls in r["involved_classes"]]
            if involving:
                picks.append(rng.choice(involving))
        for p in picks:
            if cls in p["involved_classes"]:
                config[cls] = copy.deepcopy(p["initial_config"].get(cls, {}))
                sources[cls] = p["id"]
                break
        else:
            config[cls] = {}
        config[cls] = {**_account(cls), **config[cls]}
    return {"classes": list(classes), "initial_config": config, "scenarios": sources}


def _module(cls: str) -> Any:
    return importlib.import_module(_require().CLASS_FILE_PATH_MAPPING[cls])


def _account(cls: str) -> dict[str, str]:
    """The text settings a class takes by default where its scenario leaves them out
    (TwitterAPI's ``username`` and ``password``), written into the start state: the
    instance behaves the same, and the user, who knows their own account, can state
    them (a state without them left TwitterAPI's login unknowable, and every post was
    refused as unauthenticated)."""
    defaults = getattr(_module(cls), "DEFAULT_STATE", {})
    return {k: v for k, v in defaults.items() if isinstance(v, str)}


def _instantiate(cls: str, config: dict[str, Any]) -> Any:
    instance = getattr(_module(cls), cls)()
    if hasattr(instance, "_load_scenario"):  # MathAPI is stateless and has none
        # _load_scenario keeps references into the dict it is given and mutates them
        instance._load_scenario(copy.deepcopy(config), long_context=False)
    return instance


def _guard(name: str, arguments: dict[str, Any]) -> str | None:
    """Why a call would run away (minutes of CPU, gigabytes of digits), if it would."""
    precision = arguments.get("precision")
    if isinstance(precision, int | float) and precision > MAX_PRECISION:
        return f"precision must be at most {MAX_PRECISION}"
    if name == "power":
        base, exponent = arguments.get("base"), arguments.get("exponent")
        if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 and \
                abs(exponent) * abs(base).bit_length() > MAX_RESULT_BITS:
            return "the result would be too large to compute"
    return None


def encode(result: Any) -> str:
    return json.dumps(result, default=str, ensure_ascii=False, sort_keys=True)


def run_call(method: Any, arguments: dict[str, Any]) -> tuple[Any, str]:
    """Call a method and encode its result, with the process-wide numeric settings put
    back after: MathAPI sets ``mpmath.mp.dps`` and the thread's decimal precision as a side
    effect (and an mpmath number prints at the precision in force, so encode inside)."""
    import mpmath

    dps = mpmath.mp.dps
    try:
        with decimal.localcontext():
            result = method(**arguments)
            return result, encode(result)
    finally:
        mpmath.mp.dps = dps


class BfclEnvironment(Environment):
    """Live instances of BFCL classes, one per class the dialogue's tools come from."""

    executes = True

    def __init__(self, tools: list[Tool], initial_config: dict[str, Any], *, name: str,
                 scenarios: dict[str, str] | None = None):
        super().__init__(tools)
        self._name = name
        self._config = copy.deepcopy(initial_config)
        self._scenarios = dict(scenarios or {})
        self._instances: dict[str, Any] = {}
        self._build()

    def _build(self) -> None:
        self._instances = {c: _instantiate(c, cfg) for c, cfg in self._config.items()}

    @property
    def instances(self) -> dict[str, Any]:
        """The live BFCL objects by class name (BFCL's checker compares these end states)."""
        return dict(self._instances)

    def info(self) -> EnvironmentInfo:
        state: dict[str, Any] = {"classes": list(self._config),
                                 "initial_config": copy.deepcopy(self._config)}
        if self._scenarios:
            state["scenarios"] = dict(self._scenarios)
        return EnvironmentInfo(name=self._name, initial_state=state)

    async def reset(self) -> None:
        self._build()

    def vocabulary(self) -> Vocabulary:
        return vocabulary(self._config)

    def narrow(self, tool: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
        """The file system's tools that act on an entry take one that exists in the current
        directory (its files, its folders, or ``..`` to go up): GorillaFileSystem takes no
        paths, and a name anywhere else is "No such file"."""
        if tool in _PEOPLE:
            return self._people(tool, parameters)
        kinds, new = _EXISTING.get(tool, {}), _NEW.get(tool, [])
        fs = self._instances.get("GorillaFileSystem")
        if not (kinds or new) or fs is None:
            return self._credentials(tool, parameters)
        here = fs._current_dir
        files = sorted(n for n, v in here.contents.items() if not hasattr(v, "contents"))
        dirs = sorted(n for n, v in here.contents.items() if hasattr(v, "contents"))
        empty = [n for n in dirs if not here.contents[n].contents]
        dirs += [".."] if tool == "cd" and here.parent is not None else []
        out = copy.deepcopy(parameters)
        props = out.setdefault("properties", {})
        for param, kind in kinds.items():
            names = {"file": files, "dir": dirs, "empty dir": empty, "entry": files + dirs}[kind]
            if not names:
                return None
            props[param] = {**props.get(param, {}), "enum": names}
        for param in new:
            props[param] = {**props.get(param, {}), "pattern": NAME}
        return out

    def _people(self, tool: str, parameters: dict[str, Any]) -> dict[str, Any] | None:
        """TwitterAPI's look-ups of a user take one who has posted (or the account's own
        name), and ``unfollow_user`` one the account follows: asked for the tweets of
        "John Doe", a name the plan made up, the look-up came back empty and the next
        subtask invented a tweet ID (at 8858cb6)."""
        tw = self._instances.get("TwitterAPI")
        if tw is None:
            return parameters
        who = {"posters": sorted({str(t.get("username")) for t in tw.tweets.values()
                                  if t.get("username")} | {tw.username}),
               "followed": sorted(str(u) for u in tw.following_list)}
        out = copy.deepcopy(parameters)
        for param, kind in _PEOPLE[tool].items():
            if not who[kind]:
                return None
            out["properties"][param] = {**out["properties"][param], "enum": who[kind]}
        return out

    def _credentials(self, tool: str, parameters: dict[str, Any]) -> dict[str, Any]:
        """A log-in tool (one that takes a password or a secret) takes the account's own
        values for the arguments its class holds a text of the same name for
        (``authenticate_twitter(username, password)``): a guessed password is no refusal
        but ``{"authentication_status": false}``, and every post after it is refused."""
        props = parameters.get("properties") or {}
        instance = self._instances.get(owners().get(tool, ""))
        if instance is None or tool not in self._tools or not logs_in(self._tools[tool]):
            return parameters
        held = {p: v for p in props if isinstance(v := getattr(instance, p, None), str) and v}
        if not held:
            return parameters
        out = copy.deepcopy(parameters)
        for p, v in held.items():
            out["properties"][p] = {**out["properties"][p], "enum": [v]}
        return out

    def state_summary(self) -> str:
        shown = {c: cfg for c, cfg in self._config.items() if c != "MathAPI"}  # stateless
        budget = SUMMARY_CHARS // max(1, len(shown))
        parts = []
        for cls, cfg in shown.items():
            if cls == "GorillaFileSystem":
                root = cfg.get("root", {})
                text = (f"GorillaFileSystem (the current directory starts at "
                        f"/{next(iter(root), '')}):\n" + "\n".join(_tree(root)))
            else:
                text = f"{cls}: " + json.dumps(cfg, ensure_ascii=False, separators=(",", ":"))
            parts.append(text if len(text) <= budget else text[:budget - 3] + "...")
        return "\n".join(parts)

    async def _execute(self, tool: Tool, arguments: dict[str, Any]) -> ToolResult:
        cls = owners().get(tool.name)
        instance = self._instances.get(cls) if cls else None
        method = getattr(instance, tool.name, None) if instance is not None else None
        if tool.name.startswith("_") or not callable(method):
            return error_result(f"tool {tool.name!r} is not part of this environment")
        why = _guard(tool.name, arguments)
        if why:
            return error_result(why)
        try:
            result, content = run_call(method, arguments)
        except Exception as e:  # a bad call is a result the model must see, not a crash
            return error_result(f"{type(e).__name__}: {e}")
        return ToolResult(content=content, error=isinstance(result, dict) and "error" in result)


def _tree(root: dict[str, Any], depth: int = 0) -> list[str]:
    lines = []
    for name, node in root.items():
        if node.get("type") == "directory" or "contents" in node:
            lines.append("  " * depth + name + "/")
            lines += _tree(node.get("contents", {}), depth + 1)
        else:
            lines.append("  " * depth + f"{name} ({len(node.get('content', ''))} chars)")
    return lines


def factory(spec: str, classes: list[str]) -> Callable[[list[Tool], int], Environment]:
    """Builds each dialogue's environment: the classes of its tools, in a start state
    chosen by its seed."""

    def build(tools: list[Tool], seed: int) -> Environment:
        owner = owners()
        mine = sorted({owner[t.name] for t in tools if t.name in owner} or set(classes),
                      key=CLASSES.index)
        state = choose_state(mine, seed)
        return BfclEnvironment(tools, state["initial_config"], name=spec,
                               scenarios=state["scenarios"])

    return build


def from_info(info: EnvironmentInfo, tools: list[Tool]) -> BfclEnvironment:
    """Rebuild a dialogue's environment from its record's ``meta.environment``."""
    state = info.initial_state
    config = state.get("initial_config")
    classes = state.get("classes") or list(config or {})
    if not isinstance(config, dict) or any(c not in CLASSES for c in [*config, *classes]):
        raise ConfigError(f"{info.name}: the recorded initial_state has no usable "
                          "initial_config (BFCL class name -> config)")
    return BfclEnvironment(tools, {c: config.get(c, {}) for c in classes}, name=info.name,
                           scenarios=state.get("scenarios"))


__all__ = ["CLASSES", "BfclEnvironment", "choose_state", "encode", "factory", "from_info",
           "owners", "parse_classes", "pool", "run_call"]
