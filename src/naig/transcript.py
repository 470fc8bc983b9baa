"""A dialogue as numbered text, for prompts: one line per message, index in brackets.

``marks`` replaces chosen messages by a placeholder (``[MASK]``), so a prompt can show a
dialogue with holes in it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from naig.dialogue import Message
from naig.tools import Tool

_LIMIT = 600
NOTHING = "no output, and no error"
"""What a result of ``null`` reads as: GorillaFileSystem's ``mkdir`` and ``touch`` return
nothing when they succeed, and the small model reported them as refused."""


def _clip(text: str, limit: int = _LIMIT) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe(message: Message) -> str:
    """One message as it reads in a transcript, without its index."""
    if message.role == "tool":
        if (message.content or "").strip() == "null":  # mkdir, touch, cd .. on BFCL
            return f"tool result: null ({NOTHING})"
        return f"tool result: {_clip(message.content or '')}"
    if message.tool_calls:
        calls = ", ".join(f"{c.function.name}({c.function.arguments})" for c in message.tool_calls)
        said = f"{_clip(message.content)} " if message.content else ""
        return f"assistant: {said}-> calls {calls}"
    return f"{message.role}: {_clip(message.content or '')}"


def transcript(messages: Sequence[Message], marks: Mapping[int, str] | None = None) -> str:
    """Numbered lines for every message but the system message (index 0)."""
    marks = marks or {}
    lines = []
    for i in range(1, len(messages)):
        body = marks[i] if i in marks else describe(messages[i])
        lines.append(f"[{i}] {body}")
    return "\n".join(lines)


def tool_line(tool: Tool) -> str:
    """A tool as one line for prompts: its signature (``?`` marks optional arguments, an
    enum lists its values) and description (``Tool.summary``: BFCL's preamble, the same
    for every tool of a class, took most of the line and clipped the rest)."""
    props = tool.parameters.get("properties") or {}
    required = set(tool.parameters.get("required") or [])
    args = []
    for name, schema in props.items():
        kind = schema.get("type", "any") if isinstance(schema, dict) else "any"
        if isinstance(schema, dict) and "enum" in schema:
            kind = "|".join(str(v) for v in schema["enum"][:8])
        args.append(f"{name}{'' if name in required else '?'}: {kind}")
    return _clip(f"{tool.name}({', '.join(args)}): {tool.summary}", 400)
