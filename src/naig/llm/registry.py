"""LLM backends keyed by ``provider:model`` strings, and the wrappers every run uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from naig.errors import ConfigError
from naig.llm.base import LLM
from naig.llm.breaker import CircuitBreakerLLM
from naig.llm.cache import CachedLLM
from naig.llm.limits import AdaptiveLimitedLLM, LimitedLLM
from naig.llm.pricing import Budget, BudgetLLM
from naig.llm.retry import RetryingLLM
from naig.llm.weights import DEFAULT_MODEL


def _local(name: str, base_url: str | None) -> LLM:
    from naig.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(name or DEFAULT_MODEL)


def _openai(name: str, base_url: str | None) -> LLM:
    """``openai:<model>``, or ``openai:<model>?schema=json_object``.

    ``schema`` picks the ``response_format`` form of structured requests: ``json_schema``
    (the standard form, the default: OpenAI, vLLM, SGLang) or ``json_object`` (a
    ``json_object`` with a ``schema``: the only form llama-cpp-python's server honours).
    """
    from naig.llm.openai_compat import SCHEMA_MODES, OpenAICompatLLM

    model, _, query = name.partition("?")
    if not model:
        raise ConfigError("name the model: --model openai:<model>")
    options = dict(part.partition("=")[::2] for part in query.split("&")) if query else {}
    mode = options.pop("schema", "json_schema")
    if options or mode not in SCHEMA_MODES:
        raise ConfigError(f"openai:{name}: the only option is ?schema=, one of "
                          f"{', '.join(SCHEMA_MODES)}")
    return OpenAICompatLLM(model, base_url=base_url, schema_mode=mode)


def _scripted(name: str, base_url: str | None) -> LLM:
    """``scripted:<seconds>``: answers every request with a minimal schema-valid example
    after a delay. For exercising orchestration (resume, interrupts) without a model."""
    from naig.testing import ScriptedLLM, schema_example

    try:
        delay = float(name or 0)
    except ValueError:
        raise ConfigError("scripted:<seconds> takes a number, e.g. scripted:0.05") from None
    return ScriptedLLM(respond=schema_example, name=f"scripted:{name or 0}", delay=delay)


BACKENDS: dict[str, Callable[[str, str | None], LLM]] = {
    "local": _local, "openai": _openai, "scripted": _scripted}


def open_backend(spec: str, base_url: str | None = None) -> LLM:
    provider, _, name = spec.partition(":")
    factory = BACKENDS.get(provider)
    if factory is None:
        raise ConfigError(f"unknown model {spec!r}: use local, local:<name> or openai:<model>")
    return factory(name, base_url)


def stack(backend: LLM, *, concurrency: int, cache: bool, cache_path: Path | None,
          budget: Budget | None = None) -> LLM:
    """The wrappers every run uses, outermost first: cache > budget > breaker > retry >
    limit > backend.

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
    return CachedLLM(llm, cache_path) if cache else llm
