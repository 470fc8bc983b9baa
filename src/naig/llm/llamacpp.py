"""The embedded backend: llama.cpp in-process, no server and no key.

Structured requests are decoded under a grammar built from their JSON Schema (naig builds
it with llama-cpp-python's converter: its ``json_object`` response format would, on a
schema the converter cannot express, decode free JSON without a word). Calls into the
native library block, so they run in a worker thread, one at a time.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import os
import time
from typing import Any

from naig.errors import ConfigError, PromptTooLong
from naig.llm.base import LLM, Completion, Request
from naig.llm.weights import model_path

log = logging.getLogger(__name__)

CONTEXT_TOKENS = 8192
REPEAT_PENALTY = 1.1
"""Small models loop on a phrase without it; the grammar keeps JSON structure intact."""


class LlamaCppLLM(LLM):
    serializes = True

    def __init__(self, model: str, *, n_ctx: int = CONTEXT_TOKENS, threads: int | None = None):
        try:
            from llama_cpp import Llama
        except ImportError:
            raise ConfigError(
                "the embedded model needs llama-cpp-python; install it with: "
                "pip install 'naig[local]' (or use --model openai:<name>)") from None
        self.name = f"local:{model}"
        self.fingerprint = f"|repeat_penalty={REPEAT_PENALTY}"
        path = model_path(model)
        # Qwen and SmolLM2 are ChatML models; the template embedded in a GGUF is not trusted.
        self._llama = Llama(model_path=str(path), n_ctx=n_ctx, n_threads=threads or os.cpu_count(),
                            chat_format="chatml", verbose=False)
        self._lock = asyncio.Lock()

    def _run(self, request: Request) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if request.schema_ is not None:
            from llama_cpp.llama_grammar import LlamaGrammar
            gbnf = grammar_text(json.dumps(request.schema_))  # key order is decoding order
            kwargs["grammar"] = LlamaGrammar.from_string(gbnf, verbose=False)
        return self._llama.create_chat_completion(  # type: ignore[return-value]
            messages=[m.model_dump() for m in request.messages],  # type: ignore[misc]
            temperature=request.temperature,
            max_tokens=request.max_tokens,
            seed=request.seed,
            repeat_penalty=REPEAT_PENALTY,
            **kwargs,
        )

    def _kept(self) -> list[int]:
        """The tokens whose state llama.cpp holds from the last call."""
        return [int(t) for t in self._llama.input_ids[: self._llama.n_tokens]]

    async def complete(self, request: Request) -> Completion:
        async with self._lock:
            start = time.perf_counter()
            before = self._kept()
            try:
                out = await asyncio.to_thread(self._run, request)
            except ValueError as e:  # the prompt outgrew the context window
                raise PromptTooLong(f"{self.name}: {e}") from None
            seconds = time.perf_counter() - start
            usage = out.get("usage") or {}
            prompt = int(usage.get("prompt_tokens", 0))
            reused = shared_prefix(before, self._kept()[:prompt])
        return Completion(
            text=out["choices"][0]["message"].get("content") or "",
            prompt_tokens=prompt,
            completion_tokens=int(usage.get("completion_tokens", 0)),
            cached_prompt_tokens=reused,
            seconds=seconds,
        )


@functools.lru_cache(maxsize=256)
def grammar_text(schema: str) -> str:
    """The GBNF grammar of a JSON Schema (as JSON text); any JSON where the converter cannot
    express the schema, said in the log once per reason (the answer is still validated)."""
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf
    try:
        return str(json_schema_to_gbnf(schema))
    except Exception as e:  # the converter raises assertions, key and value errors
        why = f"{type(e).__name__}: {str(e)[:200]}"
        if why not in _SAID:
            _SAID.add(why)
            log.warning("llama.cpp cannot decode under this schema (%s); decoding any JSON",
                        why)
        return str(JSON_GBNF)


_SAID: set[str] = set()


def shared_prefix(before: list[int], prompt: list[int]) -> int:
    """Prompt tokens llama.cpp did not evaluate again: the prefix the prompt shares with
    the tokens it held (it always evaluates the prompt's last token itself)."""
    n = 0
    for a, b in zip(before, prompt[:-1], strict=False):
        if a != b:
            break
        n += 1
    return n
