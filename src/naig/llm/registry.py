"""LLM backends keyed by ``provider:model`` strings, and the wrappers every run uses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from naig.errors import ConfigError
from naig.llm.base import LLM
from naig.llm.cache import CachedLLM
from naig.llm.limits import LimitedLLM
from naig.llm.weights import DEFAULT_MODEL


def _local(name: str, base_url: str | None) -> LLM:
    from naig.llm.llamacpp import LlamaCppLLM

    return LlamaCppLLM(name or DEFAULT_MODEL)


def _openai(name: str, base_url: str | None) -> LLM:
    from naig.llm.openai_compat import OpenAICompatLLM

    if not name:
        raise ConfigError("name the model: --model openai:<model>")
    return OpenAICompatLLM(name, base_url=base_url)


BACKENDS: dict[str, Callable[[str, str | None], LLM]] = {"local": _local, "openai": _openai}


def open_backend(spec: str, base_url: str | None = None) -> LLM:
    provider, _, name = spec.partition(":")
    factory = BACKENDS.get(provider)
    if factory is None:
        raise ConfigError(f"unknown model {spec!r}: use local, local:<name> or openai:<model>")
    return factory(name, base_url)


def stack(backend: LLM, *, concurrency: int, cache: bool, cache_path: Path | None) -> LLM:
    """The backend behind a concurrency limit, then the cache (hits skip the limit)."""
    llm: LLM = LimitedLLM(backend, 1 if backend.serializes else concurrency)
    return CachedLLM(llm, cache_path) if cache else llm
