"""Python functions as a real environment (spec ``python:<module>``).

``python:my_tools`` (an importable module) or ``python:path/to/tools.py`` (a file) makes
tools of the module's own public functions: those defined in it (not imported into it),
whose name does not start with ``_``, that have a docstring and a type hint on every
parameter (no ``*args``, ``**kwargs`` or positional-only parameters). Other functions are
helpers and are left alone.

Schema: pydantic derives the parameters' JSON Schema from the type hints (``Literal``
gives an enum, a pydantic model a nested object); a parameter with a default is
optional. The docstring's first paragraph is the tool's description, and an ``Args:``
section (or a reST / NumPy one) describes the parameters where ``docstring_parser`` is
installed. The return annotation, where there is one, gives the result schema.

Calls: the arguments are checked against the schema, then validated by pydantic into the
annotated types (models, dates, enums) and passed by name; a coroutine function is
awaited, any other runs in a thread of its own. A call that takes longer than the time
limit (60 s; ``python:<module>?timeout=<seconds>`` sets it) gives the model an error
result. The return value is encoded as JSON by
pydantic; an exception becomes ``{"error": "<ExceptionType>: <message>"}``. Nothing the
model writes is ever evaluated as code.

State: each dialogue's environment runs a copy of the module of its own (its body
executed anew in a fresh module object), so module-level state (a dict of accounts, say)
belongs to one dialogue, and concurrent dialogues never see each other's. ``reset()``
calls the module's ``naig_reset()`` where it defines one (plain or async; it is never a
tool), else executes a fresh copy of the module on the next call. State kept outside the
module (files, databases, other modules) is reset only by what ``naig_reset()`` does.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import inspect
import json
import sys
import threading
import typing
from collections.abc import Callable
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from types import ModuleType
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, create_model
from pydantic_core import to_jsonable_python

from naig.dialogue import EnvironmentInfo
from naig.envs.base import Environment, ToolResult, error_result, time_limit
from naig.envs.schemas import drop_titles, inline_refs
from naig.errors import ConfigError, ToolEnvironmentError
from naig.tools import Tool, tool_from_dict

CALL_TIMEOUT = 60.0
"""Seconds a call may take by default (``python:<module>?timeout=<seconds>`` sets it); past
that the model sees an error result and the call is left to finish on its own."""
RESET = "naig_reset"
"""A module function of this name restores the start state on ``reset()``."""
_PASSABLE = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)


def locate(target: str) -> ModuleSpec:
    """How to load ``target``: a path to a ``.py`` file, else an importable module name."""
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target)
        if not path.is_file():
            raise ConfigError(f"python: no such file {target!r}")
        spec = importlib.util.spec_from_file_location(f"naig_tools_{path.stem}", path.resolve())
    else:
        try:
            spec = importlib.util.find_spec(target)
        except ModuleNotFoundError as e:
            if not e.name or not f"{target}.".startswith(f"{e.name}."):
                raise ConfigError(f"python: cannot import {target!r}: {e}") from None
            spec = None  # a package on the way to it does not exist
        except (ImportError, ValueError) as e:
            raise ConfigError(f"python: cannot import {target!r}: {e}") from None
    if spec is None or spec.loader is None:
        file = target.replace(".", "/") + ".py"
        hint = (f"; to load the file here, give its path: python:./{file}"
                if Path(file).is_file() else "")
        raise ConfigError(f"python: no module {target!r} (give an importable module name "
                          f"or a path to a .py file){hint}")
    return spec


def load(spec: ModuleSpec) -> ModuleType:
    """A fresh copy of the module: its body executed anew in a new module object.

    The copy stands in ``sys.modules`` only while its body runs (so the classes it defines
    resolve their annotations against it); the module already imported, if any, is put
    back after, and no copy outlives its environment there.
    """
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    previous = sys.modules.get(spec.name)
    sys.modules[spec.name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:  # the user's module is broken: they must fix it
        raise ConfigError(f"python: importing {spec.name} failed: "
                          f"{type(e).__name__}: {e}") from e
    finally:
        if previous is None:
            sys.modules.pop(spec.name, None)
        else:
            sys.modules[spec.name] = previous
    return module


def functions(module: ModuleType) -> dict[str, Callable[..., Any]]:
    """The module's tool functions by name, in definition order."""
    out: dict[str, Callable[..., Any]] = {}
    for name, fn in vars(module).items():
        if name.startswith("_") or name == RESET or not inspect.isfunction(fn):
            continue
        if fn.__module__ != module.__name__ or not inspect.getdoc(fn):
            continue
        params = inspect.signature(fn).parameters.values()
        if all(p.kind in _PASSABLE and p.annotation is not p.empty for p in params):
            out[name] = fn
    return out


def _param_docs(doc: str) -> dict[str, str]:
    try:
        import docstring_parser
    except ImportError:
        return {}
    try:
        parsed = docstring_parser.parse(doc)
    except docstring_parser.ParseError:
        return {}
    return {p.arg_name: " ".join((p.description or "").split()) for p in parsed.params
            if p.description}


@dataclass(frozen=True)
class Signature:
    """What a tool function takes and gives, as pydantic sees it."""

    fn: Callable[..., Any]
    arguments: type[BaseModel]
    names: dict[str, str]
    """Field of ``arguments`` -> parameter name (fields are renamed so a parameter may be
    called ``json`` or ``model_x`` without clashing with pydantic's own names)."""
    returns: Any = None
    """The return annotation, or None where there is none."""

    @classmethod
    def of(cls, fn: Callable[..., Any], where: str) -> Signature:
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception as e:  # NameError, mostly: a hint naming something not importable
            raise ConfigError(f"{where}: cannot resolve the type hints: "
                              f"{type(e).__name__}: {e}") from None
        docs = _param_docs(inspect.getdoc(fn) or "")
        fields: dict[str, Any] = {}
        names = {}
        for i, p in enumerate(inspect.signature(fn).parameters.values()):
            default = ... if p.default is p.empty else p.default
            fields[f"p{i}"] = (hints[p.name], Field(default, alias=p.name,
                                                    description=docs.get(p.name)))
            names[f"p{i}"] = p.name
        try:
            model = create_model(f"{fn.__name__}_arguments",
                                 __config__=ConfigDict(extra="forbid"), **fields)
        except Exception as e:  # pydantic cannot handle a hint
            raise ConfigError(f"{where}: cannot derive a schema: {e}") from None
        return cls(fn, model, names, hints.get("return"))

    def parameters(self) -> dict[str, Any]:
        schema = drop_titles(inline_refs(self.arguments.model_json_schema(by_alias=True)))
        return dict(schema)

    def result_schema(self) -> dict[str, Any] | None:
        if self.returns is None or self.returns is type(None):
            return None
        try:
            schema = TypeAdapter(self.returns).json_schema(mode="serialization")
        except Exception:  # a return type pydantic cannot describe: no result schema
            return None
        return dict(drop_titles(inline_refs(schema))) or None

    def bind(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """Keyword arguments for ``fn``; raises ``ValidationError``."""
        parsed = self.arguments.model_validate(arguments)
        return {param: getattr(parsed, field) for field, param in self.names.items()}


def _description(fn: Callable[..., Any]) -> str:
    doc = inspect.getdoc(fn) or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


def _tool(fn: Callable[..., Any], family: str, where: str) -> Tool:
    sig = Signature.of(fn, f"{where}: {fn.__name__}")
    tool = tool_from_dict({"name": fn.__name__, "description": _description(fn),
                           "parameters": sig.parameters()}, where, family)
    return tool.model_copy(update={"result_schema": sig.result_schema()})


def split_target(target: str) -> tuple[str, float | None]:
    """The module part of a spec's target and its ``?timeout=<seconds>``, if given."""
    module, seconds = time_limit(target, f"python: {target}")
    if "?" in module:
        raise ConfigError(f"python: {target}: the only option is ?timeout=<seconds>, a "
                          "positive number")
    return module, seconds


def pool(target: str) -> list[Tool]:
    target, _ = split_target(target)
    spec = locate(target)
    family = Path(target).stem if target.endswith(".py") else target.rpartition(".")[2]
    tools = [_tool(fn, family, f"python:{target}") for fn in functions(load(spec)).values()]
    if not tools:
        raise ConfigError(f"python: {target} defines no tools; a tool is a public function "
                          "with a docstring and a type hint on every parameter")
    return tools


def _invalid(e: ValidationError) -> ToolResult:
    problems = [f"{'/'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in e.errors()]
    return error_result("invalid arguments: " + "; ".join(problems))


class PythonEnvironment(Environment):
    """A copy of the module of the dialogue's own, loaded on the first call."""

    executes = True

    def __init__(self, tools: list[Tool], target: str, *, name: str,
                 timeout: float | None = None):
        super().__init__(tools)
        self._target = target
        self._timeout = timeout
        self._spec = locate(target)
        self._name = name
        self._module: ModuleType | None = None
        self._signatures: dict[str, Signature] = {}

    def info(self) -> EnvironmentInfo:
        state: dict[str, Any] = {"module": self._target}
        if self._timeout is not None:
            state["timeout"] = self._timeout
        return EnvironmentInfo(name=self._name, initial_state=state)

    def _loaded(self) -> ModuleType:
        if self._module is None:
            self._module = load(self._spec)
            self._signatures = {}
        return self._module

    async def reset(self) -> None:
        if self._module is None:
            return
        restore = getattr(self._module, RESET, None)
        if not callable(restore):
            self._module = None  # the next call executes a fresh copy
            return
        try:
            done = restore()
            if inspect.isawaitable(done):
                await done
        except Exception as e:
            raise ToolEnvironmentError(f"python: {self._target}: {RESET}() failed: "
                                       f"{type(e).__name__}: {e}") from e

    async def _execute(self, tool: Tool, arguments: dict[str, Any]) -> ToolResult:
        module = self._loaded()
        sig = self._signatures.get(tool.name)
        if sig is None:
            fn = functions(module).get(tool.name)
            if fn is None:
                return error_result(f"tool {tool.name!r} is not part of this environment")
            sig = self._signatures[tool.name] = Signature.of(fn, f"python:{self._target}")
        try:
            kwargs = sig.bind(arguments)
        except ValidationError as e:
            return _invalid(e)
        limit = self._timeout or CALL_TIMEOUT
        try:
            if inspect.iscoroutinefunction(sig.fn):
                value = await asyncio.wait_for(sig.fn(**kwargs), limit)
            else:
                value = await asyncio.wait_for(_in_thread(sig.fn, kwargs), limit)
        except TimeoutError:
            return error_result(f"{tool.name} did not finish within {limit:g} s")
        except Exception as e:  # a failed call is a result the model must see, not a crash
            return error_result(f"{type(e).__name__}: {e}")
        return ToolResult(content=json.dumps(to_jsonable_python(value, fallback=str),
                                             ensure_ascii=False))


async def _in_thread(fn: Callable[..., Any], kwargs: dict[str, Any]) -> Any:
    """``fn(**kwargs)`` in a daemon thread of its own: one that never returns can be given
    up on, and neither holds a worker of the loop's pool nor keeps the process from
    exiting (``asyncio.to_thread`` would do both)."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None) -> None:
        if done.done():  # given up on
            return
        if error is None:
            done.set_result(value)
        else:
            done.set_exception(error)

    def work() -> None:
        try:
            value, error = fn(**kwargs), None
        except BaseException as e:  # noqa: BLE001 - handed to the awaiting task
            value, error = None, e
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(settle, value, error)

    threading.Thread(target=work, name=f"naig-tool-{fn.__name__}", daemon=True).start()
    return await done


def factory(spec: str, target: str) -> Callable[[list[Tool], int], Environment]:
    target, timeout = split_target(target)

    def build(tools: list[Tool], seed: int) -> Environment:
        return PythonEnvironment(tools, target, name=spec, timeout=timeout)

    return build


def from_info(info: EnvironmentInfo, tools: list[Tool]) -> PythonEnvironment:
    """Rebuild a dialogue's environment from its record's ``meta.environment``."""
    target = info.initial_state.get("module")
    if not isinstance(target, str):
        raise ConfigError(f"{info.name}: the recorded initial_state names no module")
    timeout = info.initial_state.get("timeout")
    return PythonEnvironment(tools, target, name=info.name,
                             timeout=float(timeout) if timeout is not None else None)


__all__ = ["CALL_TIMEOUT", "RESET", "PythonEnvironment", "Signature", "factory", "from_info",
           "functions", "load", "locate", "pool", "split_target"]
