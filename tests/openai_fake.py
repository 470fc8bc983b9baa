"""A scripted OpenAI-compatible server for the tests: real HTTP on 127.0.0.1, in a thread.

Each ``POST /v1/chat/completions`` takes the next ``Reply`` from the script (or the
``default`` one): a chat completion, an error status with headers, or no answer at all
(``HANG``), optionally after waiting at a barrier until that many requests are in. A
request with nothing scripted for it gets HTTP 400 and is counted in ``unexpected``.

    with FakeOpenAI(ok(), error(429, retry_after="1")) as server:
        llm = OpenAICompatLLM("m", base_url=server.base_url)
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BARRIER_SECONDS = 10.0
HANG_SECONDS = 30.0


@dataclass(frozen=True)
class Reply:
    status: int = 200
    text: str = "ok"
    completion_tokens: int = 5
    """Capped at the request's ``max_tokens``, as a real server would."""
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False
    """Never answer (until the server stops): the client's timeout fires."""
    barrier: threading.Barrier | None = None
    """Wait here until the barrier's other parties arrive, then answer."""
    message: str = ""
    """An error's message (default: ``scripted <status>``)."""
    cached_tokens: int | None = None
    """Reported as ``usage.prompt_tokens_details.cached_tokens`` (as OpenAI, vLLM and
    SGLang do), where given."""


def ok(text: str = "ok", completion_tokens: int = 5, **kw: Any) -> Reply:
    return Reply(text=text, completion_tokens=completion_tokens, **kw)


def error(status: int, retry_after: str | None = None, **kw: Any) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return Reply(status=status, headers=headers, **kw)


HANG = Reply(hang=True)


class FakeOpenAI:
    def __init__(self, *script: Reply, default: Reply | None = None):
        self.default = default
        self.requests: list[dict[str, Any]] = []
        """Bodies of the chat requests received, in order of arrival."""
        self.unexpected = 0
        self.active = 0
        self.peak = 0
        """Most requests being handled at once."""
        self._script = list(script)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.02,),
                                        daemon=True)
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *replies: Reply) -> None:
        with self._lock:
            self._script.extend(replies)

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()  # lets hanging handlers go
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next(self, body: dict[str, Any]) -> Reply | None:
        with self._lock:
            self.requests.append(body)
            self.active += 1
            self.peak = max(self.peak, self.active)
            reply = self._script.pop(0) if self._script else self.default
            if reply is None:
                self.unexpected += 1
            return reply

    def _done(self) -> None:
        with self._lock:
            self.active -= 1


def _completion(reply: Reply, body: dict[str, Any]) -> dict[str, Any]:
    prompt = sum(len(m.get("content") or "") for m in body.get("messages", [])) // 4
    completion = min(reply.completion_tokens, int(body.get("max_tokens") or 1 << 30))
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion}
    if reply.cached_tokens is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": reply.cached_tokens}
    return {"id": "chatcmpl-fake", "object": "chat.completion", "created": 0,
            "model": body.get("model", ""),
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", "content": reply.text}}],
            "usage": usage}


def _handler(server: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
            reply = server._next(body)
            try:
                self._answer(reply, body)
            finally:
                server._done()

        def _answer(self, reply: Reply | None, body: dict[str, Any]) -> None:
            if reply is None:
                return self._send(400, {"error": {"message": "unscripted request"}}, {})
            if reply.barrier is not None:
                reply.barrier.wait(timeout=BARRIER_SECONDS)
            if reply.hang:
                server._stop.wait(HANG_SECONDS)
                return None
            if reply.status != 200:
                error = {"message": reply.message or f"scripted {reply.status}", "type": "fake",
                         "code": None}
                return self._send(reply.status, {"error": error}, reply.headers)
            return self._send(200, _completion(reply, body), reply.headers)

        def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return None  # quiet

    return Handler


class Waits:
    """A ``sleep`` that records what it was asked to wait and returns at once."""

    def __init__(self) -> None:
        self.seconds: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.seconds.append(seconds)
