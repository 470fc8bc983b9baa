"""Any Model Context Protocol server over stdio as a real environment (spec ``mcp:<command>``).

``mcp:python -m my_server --flag`` runs the command line (split as a POSIX shell would,
in the current directory, with the current environment variables) and talks MCP to it
through the official ``mcp`` SDK. The server's tools are the pool (``inputSchema`` is the
parameters, ``outputSchema`` the result schema, the server's name the family); every call
a dialogue makes runs on the server.

Lifetime and state: each dialogue's environment starts its own server process lazily, on
its first call, and keeps it for all its calls; ``aclose()`` stops it. An MCP server has no
way to be told "go back to your start state", so ``reset()`` stops the process, and the
next call starts a fresh one (nothing is restarted when no call ran since the start).
That restores the start state of servers that keep their state in memory; a server that
keeps state elsewhere (files, a database, a remote service) does not replay, and its
dialogues fail the replay check. So do results that vary between runs (timestamps,
random IDs). The start state recorded for a dialogue is the command line alone.

A result is JSON text: the structured content where the server gives one, else the text
of its content blocks (JSON-encoded as a string unless it is JSON already). A result the
server marks as an error becomes ``{"error": ...}``. A server that cannot be started, or
dies, is a ``ToolEnvironmentError`` (a ``ConfigError`` while the spec is resolved).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import math
import os
import shlex
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from naig.dialogue import EnvironmentInfo
from naig.envs.base import Environment, ToolResult
from naig.envs.schemas import inline_refs
from naig.errors import ConfigError, ToolEnvironmentError
from naig.tools import Tool, tool_from_dict

if TYPE_CHECKING:
    from mcp import Client
    from mcp.types import CallToolResult

INSTALL = "pip install mcp==2.3.0"
START_TIMEOUT = 30.0
"""Seconds a server has to start and answer the handshake."""
CALL_TIMEOUT = 120.0
"""Seconds a call may take by default (``mcp:<command>?timeout=<seconds>`` sets it); past
that the model sees an error result."""


def parse_command(text: str) -> list[str]:
    """The argv of a spec's command line."""
    try:
        argv = shlex.split(text)
    except ValueError as e:
        raise ConfigError(f"mcp: cannot split the command line {text!r}: {e}") from None
    if not argv:
        raise ConfigError("mcp: give the command that starts the server, "
                          "e.g. mcp:python -m my_server")
    return argv


def _require() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise ConfigError(f"mcp: tools need the mcp package; install it with: {INSTALL}"
                          ) from None


def _leaf(e: BaseException) -> BaseException:
    """The first real error inside the exception groups anyio wraps errors in."""
    while isinstance(e, BaseExceptionGroup) and e.exceptions:
        e = e.exceptions[0]
    return e


class _Server:
    """One server process and its MCP session.

    The SDK's anyio task groups must be entered and left by the same task, while calls
    may come from any task; so a task of its own opens the session, waits until asked to
    stop, and closes it. Calls go straight to the session from the caller's task.
    """

    def __init__(self, argv: list[str], call_timeout: float | None = None):
        self.argv = argv
        self.call_timeout = call_timeout or CALL_TIMEOUT
        self.line = shlex.join(argv)
        self.name = Path(argv[0]).name
        self.used = False
        """Whether a call ran, so the state may differ from the start state."""
        self._client: Client | None = None
        self._opened = asyncio.Event()
        self._stop = asyncio.Event()
        self._failure: BaseException | None = None
        # the server's stderr, for the message if it fails; lives as long as the process
        self._stderr = tempfile.TemporaryFile(  # noqa: SIM115 (closed by close())
            "a+", encoding="utf-8", errors="replace")
        self._task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        self._task = asyncio.create_task(self._serve(), name=f"mcp server {self.line}")
        await self._opened.wait()
        if self._client is None:
            from mcp import MCPError
            from mcp.types import CONNECTION_CLOSED

            failure = self._failure
            if isinstance(failure, MCPError) and failure.code == CONNECTION_CLOSED:
                why = self._why("exited before answering the MCP handshake", None)
            else:
                why = self._why("could not be started", failure)
            await self.close()
            raise ToolEnvironmentError(why)

    async def _serve(self) -> None:
        import anyio
        from mcp import Client, StdioServerParameters, stdio_client

        params = StdioServerParameters(command=self.argv[0], args=self.argv[1:],
                                       env=dict(os.environ))
        try:
            with anyio.CancelScope(deadline=anyio.current_time() + START_TIMEOUT) as scope:
                async with Client(stdio_client(params, errlog=self._stderr), cache=None,
                                  read_timeout_seconds=self.call_timeout) as client:
                    scope.deadline = math.inf
                    if client.server_info is not None and client.server_info.name:
                        self.name = client.server_info.name
                    self._client = client
                    self._opened.set()
                    await self._stop.wait()
            if scope.cancelled_caught and self._client is None:
                self._failure = TimeoutError(f"no answer within {START_TIMEOUT:g} s")
        except Exception as e:  # kept for the message; the caller raises
            self._failure = _leaf(e)
        finally:
            self._client = None
            self._opened.set()

    def _why(self, what: str, cause: BaseException | None) -> str:
        detail = f": {type(cause).__name__}: {cause}" if cause is not None else ""
        lines = []
        if not self._stderr.closed:
            self._stderr.seek(0)
            lines = [ln.strip() for ln in self._stderr.read()[-4000:].splitlines() if ln.strip()]
        said = f" (its last words: {lines[-1][:300]})" if lines else ""
        return f"mcp: the server `{self.line}` {what}{detail}{said}"

    async def close(self) -> None:
        self._stop.set()
        if self._task is not None:
            # shielded: a cancelled caller must not cancel the shutdown of the process
            await asyncio.shield(self._task)
        self._stderr.close()

    def _session(self) -> Client:
        if self._client is None:
            raise ToolEnvironmentError(self._why("has stopped", self._failure))
        return self._client

    async def tools(self) -> list[Tool]:
        from mcp import MCPError

        tools, cursor = [], None
        try:
            while True:
                page = await self._session().list_tools(cursor=cursor)
                tools += [_tool(t, self.name, self.line) for t in page.tools]
                cursor = page.next_cursor
                if cursor is None:
                    return tools
        except MCPError as e:
            raise ToolEnvironmentError(self._why("did not list its tools", e)) from None

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        from mcp import MCPError
        from mcp.types import CONNECTION_CLOSED
        from pydantic import ValidationError

        session = self._session()
        self.used = True
        try:
            result = await session.call_tool(name, arguments)
        except MCPError as e:
            if e.code == CONNECTION_CLOSED:
                raise ToolEnvironmentError(self._why("stopped answering", e)) from None
            # a protocol-level error (unknown tool, bad params, timeout) is still an answer
            return _error(e.message)
        except (RuntimeError, ValidationError) as e:
            # the SDK checks results against the tool's output schema and the protocol
            return _error(f"the server's result is invalid: {e}")
        return to_result(result)


def _tool(tool: Any, family: str, line: str) -> Tool:
    raw = {"name": tool.name, "description": tool.description or tool.title or "",
           "parameters": inline_refs(tool.input_schema)}
    out = tool_from_dict(raw, f"mcp server `{line}`", family)
    if tool.output_schema:
        out = out.model_copy(update={"result_schema": inline_refs(tool.output_schema)})
    return out


def _encode(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _text(block: Any) -> str:
    if isinstance(getattr(block, "text", None), str):
        return str(block.text)
    text = getattr(getattr(block, "resource", None), "text", None)  # an embedded resource
    if isinstance(text, str):
        return text
    what = getattr(block, "mime_type", None) or getattr(block, "uri", None) or ""
    return f"[{block.type}{' ' + str(what) if what else ''}]"


def _error(text: str) -> ToolResult:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, dict) and "error" in value:
        return ToolResult(content=text, error=True)
    return ToolResult(content=_encode({"error": text or "the tool failed"}), error=True)


def to_result(result: CallToolResult) -> ToolResult:
    """A server's answer to a call as a tool result (JSON text)."""
    text = "\n".join(_text(b) for b in result.content)
    if result.is_error:
        return _error(text)
    if result.structured_content is not None:
        return ToolResult(content=_encode(result.structured_content))
    try:
        json.loads(text)
    except ValueError:
        return ToolResult(content=_encode(text))
    return ToolResult(content=text)


async def _list(argv: list[str]) -> list[Tool]:
    server = _Server(argv)
    await server.open()
    try:
        return await server.tools()
    finally:
        await server.close()


def pool(argv: list[str]) -> list[Tool]:
    """The server's tools, listed by a server started for the purpose and stopped after.

    Spec resolution is synchronous, and may run inside the run's event loop, where
    ``asyncio.run`` cannot nest and blocking on a coroutine of that loop would deadlock;
    so the listing runs its own event loop in a worker thread. It blocks the caller for
    the server's start-up, once per run.
    """
    _require()
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="naig-mcp") as worker:
        try:
            tools = worker.submit(asyncio.run, _list(argv)).result()
        except ToolEnvironmentError as e:
            raise ConfigError(str(e)) from None
    if not tools:
        raise ConfigError(f"mcp: the server `{shlex.join(argv)}` lists no tools")
    return tools


class McpEnvironment(Environment):
    """A server process of the dialogue's own, started on the first call."""

    executes = True

    def __init__(self, tools: list[Tool], argv: list[str], *, name: str,
                 timeout: float | None = None):
        super().__init__(tools)
        self._argv = list(argv)
        self._timeout = timeout
        self._name = name
        self._server: _Server | None = None
        self._lock = asyncio.Lock()

    def info(self) -> EnvironmentInfo:
        state: dict[str, Any] = {"command": shlex.join(self._argv)}
        if self._timeout is not None:
            state["timeout"] = self._timeout
        return EnvironmentInfo(name=self._name, initial_state=state)

    @property
    def running(self) -> bool:
        """Whether a server process is up (started by a call since the last reset)."""
        return self._server is not None

    async def _running(self) -> _Server:
        async with self._lock:
            if self._server is None:
                server = _Server(self._argv, self._timeout)
                await server.open()
                self._server = server
            return self._server

    async def reset(self) -> None:
        if self._server is not None and self._server.used:
            await self.aclose()

    async def aclose(self) -> None:
        async with self._lock:
            server, self._server = self._server, None
            if server is not None:
                await server.close()

    async def _execute(self, tool: Tool, arguments: dict[str, Any]) -> ToolResult:
        server = await self._running()
        return await server.call(tool.name, arguments)


def factory(spec: str, argv: list[str], timeout: float | None = None
            ) -> Callable[[list[Tool], int], Environment]:
    def build(tools: list[Tool], seed: int) -> Environment:
        return McpEnvironment(tools, argv, name=spec, timeout=timeout)

    return build


def from_info(info: EnvironmentInfo, tools: list[Tool]) -> McpEnvironment:
    """Rebuild a dialogue's environment from its record's ``meta.environment``."""
    command = info.initial_state.get("command")
    if not isinstance(command, str):
        raise ConfigError(f"{info.name}: the recorded initial_state has no command line")
    timeout = info.initial_state.get("timeout")
    return McpEnvironment(tools, parse_command(command), name=info.name,
                          timeout=float(timeout) if timeout is not None else None)


__all__ = ["CALL_TIMEOUT", "START_TIMEOUT", "McpEnvironment", "factory", "from_info",
           "parse_command", "pool", "to_result"]
