"""LLM backends keyed by ``provider:model`` strings, and the wrappers every run uses."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import cast

from naig.errors import ConfigError
from naig.llm.base import LLM
from naig.llm.breaker import CircuitBreakerLLM
from naig.llm.cache import CachedLLM
from naig.llm.limits import AdaptiveLimitedLLM, LimitedLLM
from naig.llm.pricing import Budget, BudgetLLM
from naig.llm.retry import RetryingLLM
from naig.llm.trace import traced
from naig.llm.weights import DEFAULT_MODEL


def _local(name: str, base_urls: list[str]) -> LLM:
    from naig.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(name or DEFAULT_MODEL)


def _openai(name: str, base_urls: list[str]) -> LLM:
    """``openai:<model>``, or ``openai:<model>?schema=json_object``.

    ``schema`` picks the ``response_format`` form of structured requests: ``json_schema``
    (the standard form, the default: OpenAI, vLLM, SGLang) or ``json_object`` (a
    ``json_object`` with a ``schema``: the only form llama-cpp-python's server honours).
    Several base URLs (servers of the same model) are load-balanced by ``BalancedLLM``.
    """
    from naig.llm.balance import BalancedLLM
    from naig.llm.openai_compat import SCHEMA_MODES, OpenAICompatLLM, SchemaMode

    model, _, query = name.partition("?")
    if not model:
        raise ConfigError("name the model: --model openai:<model>")
    options = dict(part.partition("=")[::2] for part in query.split("&")) if query else {}
    mode = options.pop("schema", "json_schema")
    if options or mode not in SCHEMA_MODES:
        raise ConfigError(f"openai:{name}: the only option is ?schema=, one of "
                          f"{', '.join(SCHEMA_MODES)}")
    mode = cast(SchemaMode, mode)
    if len(base_urls) > 1:
        return BalancedLLM([OpenAICompatLLM(model, base_url=url, schema_mode=mode)
                            for url in base_urls])
    return OpenAICompatLLM(model, base_url=base_urls[0] if base_urls else None,
                           schema_mode=mode)


def _scripted(name: str, base_urls: list[str]) -> LLM:
    """``scripted:<seconds>``: answers every request with a minimal schema-valid example
    after a delay. For exercising orchestration (resume, interrupts) without a model."""
    from naig.testing import ScriptedLLM, schema_example

    try:
        delay = float(name or 0)
    except ValueError:
        raise ConfigError("scripted:<seconds> takes a number, e.g. scripted:0.05") from None
    return ScriptedLLM(respond=schema_example, name=f"scripted:{name or 0}", delay=delay)


BACKENDS: dict[str, Callable[[str, list[str]], LLM]] = {
    "local": _local, "openai": _openai, "scripted": _scripted}


def base_urls(base_url: str | list[str] | None) -> list[str]:
    """The server URLs given: a list, or one string of comma-separated URLs; none given,
    those of ``OPENAI_BASE_URL`` (which may be comma-separated too)."""
    if base_url is None:
        base_url = os.environ.get("OPENAI_BASE_URL") or []
    parts = [base_url] if isinstance(base_url, str) else base_url
    return [url.strip() for part in parts for url in part.split(",") if url.strip()]


def open_backend(spec: str, base_url: str | list[str] | None = None) -> LLM:
    """The backend ``spec`` names; ``base_url``: one server URL, several (a list or
    comma-separated) to balance over, or None for the provider's default."""
    provider, _, name = spec.partition(":")
    factory = BACKENDS.get(provider)
    if factory is None:
        raise ConfigError(f"unknown model {spec!r}: use local, local:<name> or openai:<model>")
    return factory(name, base_urls(base_url))


def stack(backend: LLM, *, concurrency: int, cache: bool, cache_path: Path | None,
          budget: Budget | None = None) -> LLM:
    """The wrappers every run uses, outermost first: trace (where ``NAIG_TRACE`` is set) >
    cache > budget > breaker > retry > limit > backend.

    Cache hits skip everything below (free, no slot, served after the budget is spent);
    the budget reserves once for a call and all its retries; the breaker counts only
    calls that still failed after retrying; retrying happens outside the limit, so a call
    waiting to retry frees its slot and the limit sees every 429.
    """
    llm: LLM
    if backend.serializes:
        llm = LimitedLLM(backend, 1)
    else:
        llm = AdaptiveLimitedLLM(backend, start=concurrency, ceiling=concurrency)
    llm = CircuitBreakerLLM(RetryingLLM(llm))
    if budget is not None:
        llm = BudgetLLM(llm, budget)
    return traced(CachedLLM(llm, cache_path) if cache else llm)
