"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, hosted APIs) through
the official ``openai`` async client.

Structured requests send their JSON Schema as ``response_format``: the standard
``json_schema`` form by default, or llama.cpp's ``json_object`` + ``schema`` form.
"""

from __future__ import annotations

import os
import time
from typing import Any, Literal

import openai

from naig.errors import BackendError, ConfigError
from naig.llm.base import LLM, Completion, Request

SchemaMode = Literal["json_schema", "json_object"]


class OpenAICompatLLM(LLM):
    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 schema_mode: SchemaMode = "json_schema", timeout: float = 600.0):
        self.name = f"openai:{model}"
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url is None:
                raise ConfigError("openai models need OPENAI_API_KEY (or --base-url for a "
                                  "local server that needs no key)")
            key = "unused"  # local servers accept any key
        self.schema_mode = schema_mode
        self._client = openai.AsyncOpenAI(base_url=self.base_url, api_key=key,
                                          timeout=timeout, max_retries=2)

    def _response_format(self, schema: dict[str, Any]) -> dict[str, Any]:
        if self.schema_mode == "json_object":
            return {"type": "json_object", "schema": schema}
        return {"type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": False}}

    async def complete(self, request: Request) -> Completion:
        kwargs: dict[str, Any] = {}
        if request.schema_ is not None:
            kwargs["response_format"] = self._response_format(request.schema_)
        start = time.perf_counter()
        try:
            out = await self._client.chat.completions.create(
                model=self.model,
                messages=[m.model_dump() for m in request.messages],  # type: ignore[misc]
                temperature=request.temperature,
                max_tokens=request.max_tokens,
                seed=request.seed,
                **kwargs,
            )
        except openai.APIConnectionError as e:
            where = self.base_url or "the OpenAI API"
            raise BackendError(f"cannot reach {where} ({e.__cause__ or e}); start the server "
                               "or fix --base-url", retryable=True) from None
        except openai.AuthenticationError:
            raise ConfigError("the server refused the API key; set OPENAI_API_KEY") from None
        except openai.APIStatusError as e:
            raise BackendError(f"{self.name}: HTTP {e.status_code}: {e.message}",
                               status=e.status_code,
                               retryable=e.status_code == 429 or e.status_code >= 500) from None
        seconds = time.perf_counter() - start
        usage = out.usage
        return Completion(
            text=out.choices[0].message.content or "" if out.choices else "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            seconds=seconds,
        )

    async def aclose(self) -> None:
        await self._client.close()
