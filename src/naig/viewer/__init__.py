"""``naig view``: a dialogue file as one self-contained HTML page, for reading by eye.

Each dialogue shows its verdict, plan, messages (calls with their arguments, results as
formatted JSON), failed checks, injections, refinement steps and LLM usage. The page has
no external assets and no network access; every text from a record is HTML-escaped.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from typing import Any

import jinja2

from naig.dialogue import Message, Record

_env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined,
                          trim_blocks=True, lstrip_blocks=True)


def _pretty(text: str | None) -> str:
    """JSON text indented for reading; anything else as it is."""
    try:
        return json.dumps(json.loads(text or ""), indent=2, ensure_ascii=False)
    except ValueError:
        return text or ""


@dataclass(frozen=True)
class ShownTurn:
    """One message as the page shows it."""

    role: str
    text: str
    calls: list[tuple[str, str, str]]
    """``(call id, tool name, arguments as indented JSON)``."""
    call_id: str | None


def _turn(m: Message) -> ShownTurn:
    calls = [(c.id, c.function.name, _pretty(c.function.arguments)) for c in m.tool_calls or []]
    text = _pretty(m.content) if m.role == "tool" else (m.content or "")
    return ShownTurn(m.role, text, calls, m.tool_call_id)


def _view(r: Record) -> dict[str, Any]:
    v = r.meta.verification
    status = "kept" if v is not None and v.passed else "rejected"
    return {"id": r.id, "status": status, "meta": r.meta,
            "failed": v.failed if v else [], "checks": v.checks if v else [],
            "turns": [_turn(m) for m in r.messages],
            "tools": sorted(t.get("function", t).get("name", "?") for t in r.tools),
            "state": json.dumps(r.meta.environment.initial_state, indent=2,
                                ensure_ascii=False) if r.meta.environment.initial_state else ""}


def render_html(records: Iterable[Record], title: str) -> str:
    views = [_view(r) for r in records]
    failures = Counter(c.name for v in views for c in v["failed"][:1])
    if any(v["meta"].error for v in views):
        failures["model_output"] = sum(1 for v in views if v["meta"].error)
    source = resources.files("naig.viewer").joinpath("page.html.j2").read_text("utf-8")
    return _env.from_string(source).render(
        title=title, dialogues=views, kept=sum(v["status"] == "kept" for v in views),
        failures=failures.most_common())


__all__ = ["render_html"]
