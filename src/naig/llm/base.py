"""The LLM interface every backend and wrapper implements: one async method.

A ``Request`` is everything that determines an answer (so it is also the cache key);
a ``Completion`` is the text plus what producing it cost, as first measured.
Wrappers (cache, limits, accounting) are ``LLM``s around another ``LLM``.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    role: str
    content: str


class Request(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: tuple[ChatMessage, ...]
    schema_: dict[str, Any] | None = Field(default=None, alias="schema")
    """JSON Schema the answer must satisfy; backends constrain decoding with it."""
    temperature: float = 0.7
    max_tokens: int = 1024
    seed: int = 0
    template_hash: str = ""
    """Hash of the prompt template that produced ``messages``: editing a prompt never
    serves a stale cached answer."""
    stage: str = ""
    """Which pipeline stage asks (plan, skeleton, refine, verify, env): for accounting."""

    def key(self, backend: str) -> str:
        """Cache key: backend and model, and everything that shapes the answer."""
        body = self.model_dump(by_alias=True, exclude={"stage"})
        body["backend"] = backend
        blob = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()


class Completion(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_prompt_tokens: int = 0
    """Of the prompt tokens, those the model did not evaluate again: a prefix it kept from
    an earlier request (OpenAI-compatible servers report it; llama.cpp in-process too)."""
    seconds: float = 0.0
    """Wall time of the call that first produced this text."""
    cached: bool = False
    """True when served from the cache: no model did any work for it this time."""


class LLM(ABC):
    """Something that answers a ``Request``."""

    name: str
    """``provider:model``, e.g. ``local:qwen2.5-coder-0.5b`` or ``openai:gpt-4o-mini``."""

    serializes: bool = False
    """True when the backend runs one call at a time (the embedded model)."""

    fingerprint: str = ""
    """Backend settings that shape answers beyond the request (part of the cache key)."""

    @abstractmethod
    async def complete(self, request: Request) -> Completion: ...

    async def aclose(self) -> None:
        return None


class Wrapper(LLM):
    """An ``LLM`` that adds behaviour around another one."""

    def __init__(self, inner: LLM):
        self.inner = inner
        self.name = inner.name
        self.serializes = inner.serializes
        self.fingerprint = inner.fingerprint

    async def complete(self, request: Request) -> Completion:
        return await self.inner.complete(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def messages(*pairs: tuple[str, str]) -> tuple[ChatMessage, ...]:
    return tuple(ChatMessage(role=r, content=c) for r, c in pairs)
