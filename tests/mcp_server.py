"""A small MCP server for the tests: a notes store kept in memory, written with the SDK.

Run as ``python tests/mcp_server.py``; it speaks MCP over stdin/stdout.
"""

from __future__ import annotations

import os
from typing import Literal

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel

server = MCPServer("notes", log_level="WARNING")


class Note(BaseModel):
    id: int
    text: str
    priority: Literal["low", "high"]


NOTES: dict[int, Note] = {}


@server.tool()
def add_note(text: str, priority: Literal["low", "high"] = "low") -> Note:
    """Add a note; it gets the next free id."""
    note = Note(id=max(NOTES, default=0) + 1, text=text, priority=priority)
    NOTES[note.id] = note
    return note


@server.tool()
def list_notes() -> list[Note]:
    """All notes, oldest first."""
    return list(NOTES.values())


@server.tool()
def delete_note(note_id: int) -> str:
    """Delete a note by id."""
    if note_id not in NOTES:
        raise ToolError(f"no note with id {note_id}")
    del NOTES[note_id]
    return f"deleted note {note_id}"


@server.tool(structured_output=False)
def count_words(text: str) -> str:
    """How many words a text has, in words."""
    return f"{len(text.split())} words"


@server.tool()
def crash() -> str:
    """Stop the server at once (to test a server that dies mid-dialogue)."""
    os._exit(3)


if __name__ == "__main__":
    server.run()
