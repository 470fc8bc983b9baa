"""Prompt templates are package data, loaded by name; each has a content hash.

A template is Jinja2 text with ``### system`` and ``### user`` lines opening the parts of
the chat. The hash of the template source is part of every cache key, so editing a
prompt never serves a stale answer.
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources

import jinja2

from naig.llm.base import ChatMessage

_env = jinja2.Environment(undefined=jinja2.StrictUndefined, trim_blocks=True,
                          lstrip_blocks=True, keep_trailing_newline=False, autoescape=False)
_SPLIT = re.compile(r"^### (system|user|assistant)\s*$", re.MULTILINE)


@functools.cache
def _load(name: str) -> tuple[jinja2.Template, str]:
    source = resources.files("naig.prompts").joinpath(f"{name}.j2").read_text("utf-8")
    return _env.from_string(source), hashlib.sha256(source.encode()).hexdigest()[:16]


def render(name: str, /, **variables: object) -> tuple[tuple[ChatMessage, ...], str]:
    """Render template ``name`` into chat messages, with the template's hash."""
    template, digest = _load(name)
    text = template.render(**variables)
    parts = _SPLIT.split(text)
    messages = tuple(ChatMessage(role=role, content=body.strip())
                     for role, body in zip(parts[1::2], parts[2::2], strict=True))
    return messages, digest


def render_text(name: str, /, **variables: object) -> str:
    """Render template ``name`` as plain text (a part other templates take as a variable)."""
    return _load(name)[0].render(**variables).strip()


@functools.cache
def placeholders() -> frozenset[str]:
    """The placeholders the templates put in a transcript (``[MASK]``, ``[TURN]``...), read
    from the templates themselves: a turn that copies one copies the instructions."""
    folder = resources.files("naig.prompts")
    return frozenset(hit for f in folder.iterdir() if f.name.endswith(".j2")
                     for hit in re.findall(r"\[[A-Z]+\]", f.read_text("utf-8")))


def instructions(messages: tuple[ChatMessage, ...], *variables: object) -> str:
    """The template's own words in rendered ``messages``: every variable's text (the
    dialogue so far, goals, values) removed. An answer must not copy these."""
    text = "\n".join(m.content for m in messages if m.role == "user")
    for v in sorted((str(x) for x in variables if x), key=len, reverse=True):
        text = text.replace(v, " ")
    return text
