"""Any OpenAI-compatible server (vLLM, SGLang, llama.cpp, Ollama, hosted APIs) through
the official ``openai`` async client.

Structured requests send their JSON Schema as ``response_format``: the standard
``json_schema`` form by default (OpenAI, vLLM, SGLang), or the ``json_object`` + ``schema``
form, which is the only one llama-cpp-python's server honours (it answers the standard
form with HTTP 500). The model spec ``openai:<model>?schema=json_object`` selects the
latter (see ``naig.llm.registry``).

Every failure surfaces at once as a ``BackendError``: the client's own retries are off, so
that retrying happens in one place, ``naig.llm.retry.RetryingLLM``. Transient ones (refused
or dropped connections, timeouts, 408, 429, 5xx) are marked ``retryable``, with the
server's ``Retry-After`` when it sent one; a timeout is a ``BackendTimeout``.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import math
import os
import re
import ssl
import time
from collections.abc import Mapping
from typing import Any, Literal

import openai

from naig.errors import BackendError, BackendTimeout, ConfigError, PromptTooLong
from naig.llm.base import LLM, Completion, Request

SchemaMode = Literal["json_schema", "json_object"]
SCHEMA_MODES: tuple[SchemaMode, ...] = ("json_schema", "json_object")

CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection: a host that drops packets fails in seconds, not after
the (long) answer timeout."""


class OpenAICompatLLM(LLM):
    def __init__(self, model: str, *, base_url: str | None = None, api_key: str | None = None,
                 schema_mode: SchemaMode = "json_schema", timeout: float = 600.0):
        if schema_mode not in SCHEMA_MODES:
            raise ConfigError(f"schema mode {schema_mode!r}: use one of {', '.join(SCHEMA_MODES)}")
        self.name = f"openai:{model}"
        # A server may honour one form and ignore the other: answers differ by mode.
        self.fingerprint = f"|schema={schema_mode}"
        self.model = model
        self.base_url = base_url or os.environ.get("OPENAI_BASE_URL") or None
        key = api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url is None:
                raise ConfigError("openai models need OPENAI_API_KEY (or --base-url for a "
                                  "local server that needs no key)")
            key = "unused"  # local servers accept any key
        self._key = key
        self.schema_mode = schema_mode
        self.timeout = timeout
        self._client = openai.AsyncOpenAI(
            base_url=self.base_url, api_key=key, max_retries=0,
            timeout=openai.Timeout(timeout, connect=min(timeout, CONNECT_TIMEOUT)))

    @property
    def where(self) -> str:
        return self.base_url or "the OpenAI API"

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
        except openai.APITimeoutError:
            raise BackendTimeout(f"{self.where} did not answer within {self.timeout:g} s; "
                                 "is the server overloaded?", retryable=True) from None
        except openai.APIConnectionError as e:
            cause = e.__cause__ or e
            if _tls_failure(cause):
                raise ConfigError(f"the TLS handshake with {self.where} failed "
                                  f"({self._scrub(_one_line(str(cause)))}); check http:// "
                                  "against https:// in --base-url, and the server's "
                                  "certificate") from None
            raise BackendError(f"cannot reach {self.where} ({self._scrub(_one_line(str(cause)))})"
                               "; start the server or fix --base-url", retryable=True) from None
        except openai.AuthenticationError:
            raise ConfigError(f"{self.where} refused the API key (HTTP 401); check "
                              "OPENAI_API_KEY") from None
        except openai.APIStatusError as e:
            raise self._status_error(e, structured=request.schema_ is not None) from None
        seconds = time.perf_counter() - start
        usage = out.usage
        details = getattr(usage, "prompt_tokens_details", None) if usage else None
        return Completion(
            text=(out.choices[0].message.content or "") if out.choices else "",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cached_prompt_tokens=int(getattr(details, "cached_tokens", 0) or 0),
            seconds=seconds,
        )

    def _scrub(self, text: str) -> str:
        """``text`` without the API key, should a server or library quote it."""
        return text.replace(self._key, "***") if len(self._key) >= 8 else text

    def _status_error(self, e: openai.APIStatusError, *, structured: bool) -> Exception:
        detail = self._scrub(_one_line(
            e.message.removeprefix(f"Error code: {e.status_code}").lstrip(" -")))
        if e.status_code == 404:
            return ConfigError(f"{self.where} has no model {self.model!r} (HTTP 404: "
                               f"{_one_line(detail, 160)}); check --model, and that "
                               "--base-url ends in /v1 where the server needs it")
        if structured and self.schema_mode == "json_schema" and "response_format" in detail:
            # llama-cpp-python's server rejects the standard form (with a 500, not a 400).
            return ConfigError(
                f"{self.where} rejected the json_schema response_format (HTTP {e.status_code}: "
                f"{_one_line(detail, 120)}); if it is a llama-cpp-python server, use "
                f"--model {self.name}?schema=json_object")
        if e.status_code in (400, 413, 422) and _OVERFLOW.search(detail):
            # this dialogue's prompt outgrew the model: the dialogue fails, not the run
            return PromptTooLong(f"{self.name}: the prompt is longer than the model's "
                                    f"context window (HTTP {e.status_code}: "
                                    f"{_one_line(detail, 160)})")
        return BackendError(f"{self.name} at {self.where}: HTTP {e.status_code}: {detail}",
                            status=e.status_code,
                            retryable=e.status_code in (408, 429) or e.status_code >= 500,
                            retry_after=retry_after(e.response.headers))

    async def aclose(self) -> None:
        await self._client.close()


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds the server asked to wait: ``retry-after-ms``, else ``Retry-After`` as seconds
    or as an HTTP date (relative to ``now``, a Unix time); None when it asked nothing
    readable."""
    millis = headers.get("retry-after-ms")
    with contextlib.suppress(ValueError):
        if millis is not None and math.isfinite(float(millis)):
            return max(0.0, float(millis) / 1000)
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": HTTP dates are GMT anyway
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


_OVERFLOW = re.compile(r"context.{0,20}(length|window|size)|too (long|many tokens)|"
                       r"maximum.{0,30}tokens|exceeds?.{0,40}(context|tokens)|prompt is too long",
                       re.IGNORECASE)
"""How OpenAI, vLLM, SGLang and llama.cpp servers word a prompt that does not fit."""


def _tls_failure(error: BaseException) -> bool:
    """Whether a connection failed in the TLS handshake (an https URL to a plain HTTP
    server, a certificate not trusted): trying again cannot help."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _one_line(text: str, limit: int = 300) -> str:
    """Server error texts can span lines (llama-cpp-python's include a traceback)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
