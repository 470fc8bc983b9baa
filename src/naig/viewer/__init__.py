"""``naig view``: dialogue files as one self-contained HTML page, for reading by eye.

The page opens on an overview (per file: dialogues and kept share; the first failed
checks, the tools called and the dialogue shapes as bars), then lists the dialogues, which
a search box and a kept/rejected choice filter. Each dialogue shows its file, verdict,
plan, messages (calls with their arguments, results as formatted JSON), failed checks,
injections, refinement steps and LLM usage. The page has no external assets and no
network access; every text from a record is HTML-escaped.
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


def _view(r: Record, source: str) -> dict[str, Any]:
    v = r.meta.verification
    status = "kept" if v is not None and v.passed else "rejected"
    return {"id": r.id, "source": source, "status": status, "meta": r.meta,
            "failed": v.failed if v else [], "checks": v.checks if v else [],
            "turns": [_turn(m) for m in r.messages],
            "tools": sorted(t.get("function", t).get("name", "?") for t in r.tools),
            "state": json.dumps(r.meta.environment.initial_state, indent=2,
                                ensure_ascii=False) if r.meta.environment.initial_state else ""}


def _bars(counts: Counter[str], limit: int = 12) -> list[tuple[str, int, int]]:
    """The most common of ``counts`` as ``(label, count, percent of the largest)``."""
    top = counts.most_common(limit)
    most = top[0][1] if top else 1
    return [(label, n, round(100 * n / most)) for label, n in top]


def _overview(views: list[dict[str, Any]]) -> dict[str, Any]:
    files: dict[str, list[int]] = {}
    for v in views:
        seen = files.setdefault(v["source"], [0, 0])
        seen[0] += 1
        seen[1] += v["status"] == "kept"
    failures = Counter(c.name for v in views for c in v["failed"][:1])
    failures.update("model_output" for v in views if v["meta"].error)
    called = Counter(c[1] for v in views for t in v["turns"] for c in t.calls)
    shapes = Counter(f"{sum(t.role == 'user' for t in v['turns'])} user turns, "
                     f"{sum(len(t.calls) for t in v['turns'])} calls" for v in views)
    return {"files": [(name, n, kept) for name, (n, kept) in files.items()],
            "failures": _bars(failures), "tools": _bars(called), "shapes": _bars(shapes)}


def render_html(files: Iterable[tuple[str, Iterable[Record]]], title: str) -> str:
    """One page for the records of each ``(file name, records)``, in order."""
    views = [_view(r, name) for name, records in files for r in records]
    source = resources.files("naig.viewer").joinpath("page.html.j2").read_text("utf-8")
    return _env.from_string(source).render(
        title=title, dialogues=views, kept=sum(v["status"] == "kept" for v in views),
        overview=_overview(views))


__all__ = ["render_html"]
