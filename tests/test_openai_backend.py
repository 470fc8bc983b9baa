"""The OpenAI-compatible backend at the wire.

Tests marked ``server`` start a real llama-cpp-python server on the embedded model and
drive it through ``OpenAICompatLLM``, ``structured.ask`` and the CLI. The failure paths
(nothing listening, a server that never answers, no API key) need no model.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from naig.dialogue import Record
from naig.errors import BackendError, ConfigError
from naig.llm.base import Completion, Request, messages
from naig.llm.openai_compat import OpenAICompatLLM
from naig.llm.registry import open_backend
from naig.llm.structured import ask

from .openai_fake import FakeOpenAI, error

STARTUP_SECONDS = 120.0
CLI_SECONDS = 240.0

# Values no model writes unprompted: an answer that holds them was decoded under the schema.
COLOURS = ["zqxv-teal", "wvuk-ochre"]
NONCE = "naig-7f3a9"
NONCE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"colour": {"type": "string", "enum": COLOURS}, "token": {"const": NONCE}},
    "required": ["colour", "token"],
    "additionalProperties": False,
}


def _free_port() -> int:
    """A port with nothing listening on it (free when asked; nothing here binds it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(proc: subprocess.Popen[bytes], base_url: str, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the server exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    pytest.fail(f"no answer from {base_url}/models within {STARTUP_SECONDS:g} s:\n"
                f"{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:<port>/v1``) of a llama-cpp-python server on the
    embedded model, for the whole session."""
    pytest.importorskip("llama_cpp.server.app",
                        reason="needs llama-cpp-python[server]: pip install 'naig[dev]'")
    from naig.llm.weights import model_path

    try:
        model = model_path("qwen2.5-coder-0.5b")
    except ConfigError as e:
        pytest.skip(str(e))
    port = _free_port()
    base_url = f"http://127.0.0.1:{port}/v1"
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    # The log goes to a file: a pipe nobody reads would fill up and stall the server.
    with log.open("wb") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(model),
             "--host", "127.0.0.1", "--port", str(port), "--chat_format", "chatml",
             "--n_ctx", "4096"],
            stdout=sink, stderr=subprocess.STDOUT)
    try:
        _wait_ready(proc, base_url, log)
        yield base_url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def _complete(llm: OpenAICompatLLM, request: Request) -> Completion:
    try:
        return await llm.complete(request)
    finally:
        await llm.aclose()


def _check_nonce(value: Any) -> dict[str, Any]:
    try:
        jsonschema.validate(value, NONCE_SCHEMA)
    except jsonschema.ValidationError as e:
        raise ValueError(e.message) from None
    return dict(value)


def _cli_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_")}
    env["NAIG_CACHE_DIR"] = str(tmp_path / "naig-cache")
    return env


def _naig(tmp_path: Path, *args: str, env: dict[str, str] | None = None,
          timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "naig.cli", "generate", "--tools", "builtin", "-n", "1",
         "-o", str(tmp_path / "out.jsonl"), "--cache-path", str(tmp_path / "c.sqlite"), *args],
        capture_output=True, text=True, timeout=timeout, env=env or _cli_env(tmp_path))


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


@pytest.mark.server
def test_plain_completion_returns_text_and_usage(llama_server: str) -> None:
    llm = OpenAICompatLLM("anything", base_url=llama_server)
    request = Request(messages=messages(("user", "Say hello in one short sentence.")),
                      temperature=0.0, max_tokens=24)

    completion = asyncio.run(_complete(llm, request))

    assert completion.text.strip()
    assert completion.prompt_tokens > 0
    assert 0 < completion.completion_tokens <= 24
    assert completion.seconds > 0
    assert not completion.cached


@pytest.mark.server
def test_json_object_mode_constrains_decoding(llama_server: str) -> None:
    llm = open_backend("openai:anything?schema=json_object", llama_server)
    assert llm.name == "openai:anything"
    assert llm.fingerprint == "|schema=json_object"
    prompt = messages(("user", "Describe your favourite colour as a JSON object."))

    async def go() -> dict[str, Any]:
        try:
            # One attempt: no error feedback can rescue an unconstrained answer.
            return await ask(llm, prompt, NONCE_SCHEMA, _check_nonce, stage="test", seed=0,
                             template_hash="", max_tokens=64, attempts=1)
        finally:
            await llm.aclose()

    answer = asyncio.run(go())

    assert answer["token"] == NONCE
    assert answer["colour"] in COLOURS


@pytest.mark.server
def test_standard_form_rejected_by_llama_server_says_what_to_do(llama_server: str) -> None:
    # llama-cpp-python's server answers the json_schema form with HTTP 500 (a validation
    # error); the backend turns that into a ConfigError naming the spec that works.
    llm = OpenAICompatLLM("anything", base_url=llama_server)
    request = Request(messages=messages(("user", "Answer in JSON.")), schema=NONCE_SCHEMA,
                      max_tokens=16)

    with pytest.raises(ConfigError) as caught:
        asyncio.run(_complete(llm, request))

    message = str(caught.value)
    assert "\n" not in message
    assert llama_server in message
    assert "--model openai:anything?schema=json_object" in message


@pytest.mark.server
def test_cli_generates_records_through_the_server(llama_server: str, tmp_path: Path) -> None:
    """... and the API key given by environment appears in no output, cache, trace,
    manifest or message (the server accepts any key)."""
    env = _cli_env(tmp_path) | {"OPENAI_API_KEY": CANARY,
                                "NAIG_TRACE": str(tmp_path / "trace.jsonl")}
    result = _naig(tmp_path, "--model", "openai:anything?schema=json_object",
                   "--base-url", llama_server,
                   "--subtasks", "1", "--steps", "1", "--refine-steps", "1",
                   "--injections", "0-0", "--no-experts", "--max-attempts", "1",
                   env=env, timeout=CLI_SECONDS)
    assert CANARY not in result.stdout + result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {"out.jsonl", "out.rejected.jsonl", "out.run.json", "c.sqlite", "trace.jsonl"} <= {
        p.name for p in written}
    for p in written:
        assert CANARY.encode() not in p.read_bytes(), p

    assert result.returncode in (0, 1), result.stderr  # 1: none kept, fair for a 0.5B model
    assert "Traceback" not in result.stderr
    kept = (tmp_path / "out.jsonl").read_text().splitlines()
    rejected = (tmp_path / "out.rejected.jsonl").read_text().splitlines()
    assert (result.returncode == 0) == bool(kept)
    (record,) = [Record.from_json(line) for line in kept + rejected]
    assert record.meta.model == "openai:anything"
    assert record.meta.usage.calls > 0
    assert record.meta.usage.prompt_tokens > 0
    assert record.meta.usage.completion_tokens > 0
    verdict = record.meta.verification
    if kept:
        assert verdict is not None and verdict.passed
    else:  # rejected with reasons: failed checks, or why no dialogue could be produced
        assert (verdict is not None and verdict.failed) or record.meta.error


def test_cli_refused_connection_fails_fast_with_one_error(tmp_path: Path) -> None:
    base_url = f"http://127.0.0.1:{_free_port()}/v1"
    start = time.monotonic()
    result = _naig(tmp_path, "--model", "openai:anything", "--base-url", base_url,
                   "--max-attempts", "1")
    elapsed = time.monotonic() - start

    assert result.returncode == BackendError.exit_code, result.stderr
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert base_url in errors[0]
    assert elapsed < 20, f"took {elapsed:.1f} s"


def test_silent_server_times_out_as_backend_error() -> None:
    # A listening socket nobody accepts from: the connection opens, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        base_url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"
        llm = OpenAICompatLLM("anything", base_url=base_url, timeout=0.5)
        request = Request(messages=messages(("user", "hi")), max_tokens=4)

        with pytest.raises(BackendError) as caught:
            asyncio.run(_complete(llm, request))

    assert caught.value.retryable
    assert base_url in str(caught.value)
    assert "did not answer within 0.5 s" in str(caught.value)


def test_cli_hosted_default_without_key_is_a_config_error(tmp_path: Path) -> None:
    result = _naig(tmp_path, "--model", "openai:gpt-4o-mini")

    assert result.returncode == ConfigError.exit_code, result.stderr
    assert "Traceback" not in result.stderr
    errors = _error_lines(result.stderr)
    assert len(errors) == 1, result.stderr
    assert "OPENAI_API_KEY" in result.stderr


@pytest.mark.parametrize(("spec", "mode"), [
    ("openai:m", "json_schema"),
    ("openai:m?schema=json_schema", "json_schema"),
    ("openai:m?schema=json_object", "json_object"),
])
def test_spec_picks_the_schema_mode(spec: str, mode: str) -> None:
    llm = open_backend(spec, "http://127.0.0.1:1/v1")

    assert isinstance(llm, OpenAICompatLLM)
    assert (llm.name, llm.model, llm.schema_mode) == ("openai:m", "m", mode)
    assert llm.fingerprint == f"|schema={mode}"  # the mode is part of the cache key


@pytest.mark.parametrize("spec", ["openai:m?schema=grammar", "openai:m?mode=json_object",
                                  "openai:m?json_object", "openai:?schema=json_object"])
def test_bad_spec_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        open_backend(spec, "http://127.0.0.1:1/v1")


def test_cached_prompt_tokens_are_read_counted_and_priced() -> None:
    from naig.llm.accounting import Ledger
    from naig.llm.pricing import cost, load_prices

    from .openai_fake import FakeOpenAI, ok

    request = Request(messages=messages(("user", "x" * 400)), max_tokens=10)
    with FakeOpenAI(ok(cached_tokens=64), ok()) as server:
        first = asyncio.run(_complete(OpenAICompatLLM("m", base_url=server.base_url), request))
        second = asyncio.run(_complete(OpenAICompatLLM("m", base_url=server.base_url), request))
    assert (first.prompt_tokens, first.cached_prompt_tokens) == (100, 64)
    assert second.cached_prompt_tokens == 0  # a server that reports none
    book = Ledger()
    book.charge("plan", first)
    usage = book.usage()
    assert usage.cached_prompt_tokens == usage.by_stage["plan"].cached_prompt_tokens == 64
    price = load_prices()["openai:gpt-4o-mini"]
    # 36 uncached at $0.15, 64 cached at $0.075, 5 completion at $0.60 per million
    assert cost(usage, price) == pytest.approx((36 * 0.15 + 64 * 0.075 + 5 * 0.60) / 1e6)
    uncached = usage.model_copy(update={"cached_prompt_tokens": 0})
    assert cost(uncached, price) == pytest.approx((100 * 0.15 + 5 * 0.60) / 1e6)


@pytest.mark.server
def test_the_real_local_server_reports_no_cached_tokens_and_none_are_counted(
        llama_server: str) -> None:
    # llama-cpp-python's server keeps the prompt's prefix but does not report it
    # (usage has no prompt_tokens_details): naig counts 0 rather than guessing
    llm = OpenAICompatLLM("anything", base_url=llama_server)
    request = Request(messages=messages(("user", "Name one colour.")), temperature=0.0,
                      max_tokens=8)
    completion = asyncio.run(_complete(llm, request))
    assert completion.prompt_tokens > 0 and completion.cached_prompt_tokens == 0


CANARY = "sk-naig-canary-5e1d0c7b"
"""A recognisable API key: no output, message or file may ever hold it."""


@pytest.mark.parametrize(("reply", "kind", "words"), [
    (error(401, message=f"Incorrect API key provided: {CANARY}"), ConfigError,
     ("refused the API key", "OPENAI_API_KEY")),
    (error(404, message="The model `no-such-model` does not exist"), ConfigError,
     ("has no model 'no-such-model'", "check --model")),
    (error(400, message=f"bad request from key {CANARY}"), BackendError, ("HTTP 400", "***")),
])
def test_refusals_say_what_to_fix_and_never_quote_the_key(
        reply: Any, kind: type[Exception], words: tuple[str, ...]) -> None:
    with FakeOpenAI(reply) as server:
        llm = OpenAICompatLLM("no-such-model", base_url=server.base_url, api_key=CANARY)
        with pytest.raises(kind) as caught:
            asyncio.run(_complete(llm, Request(messages=messages(("user", "hi")), max_tokens=4)))
    message = str(caught.value)
    assert CANARY not in message and "\n" not in message
    for w in words:
        assert w in message, message


def test_https_to_a_plain_http_server_is_a_tls_config_error() -> None:
    with FakeOpenAI() as server:
        url = server.base_url.replace("http://", "https://")
        llm = OpenAICompatLLM("m", base_url=url, api_key=CANARY)
        with pytest.raises(ConfigError, match="TLS handshake with https://.*check http://"):
            asyncio.run(_complete(llm, Request(messages=messages(("user", "hi")), max_tokens=4)))
