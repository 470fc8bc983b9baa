"""Benchmark the orchestrator (``naig.runner.run``) against a local OpenAI-compatible server.

The server runs in a separate process (so that the client's CPU time is the
orchestrator's alone) and answers every chat completion with a minimal instance of the
request's JSON Schema (``naig.testing.example``), reporting usage tokens, after a latency
that follows one of two models: ``fixed`` (every answer after ``--latency``, 200 ms) or
``decode`` (``--per-token`` per completion token, 10 ms: the same 200 ms on average, since
these answers average 20 tokens). It records when each request arrived and was answered.

For each latency model and concurrency C, the benchmark runs ``naig.runner.run`` with
``--model openai:bench`` (the real wrapper stack, cache off, ``--tools builtin``, small
dialogues) on ``max(40, 3C)`` dialogues, stopping a run after ``--max-seconds``, and
reports:

* occupancy: mean requests in flight at the server over the steady part of the run (all
  C dialogue slots busy: from the first request until the last dialogue starts, or the run
  is stopped), divided by C; the same for calls the dialogues issued (waiting for a slot
  included) and calls holding a slot of the adaptive limiter, whose final, mean and peak
  ``limit`` it reports;
* the client's CPU time per dialogue and per LLM call, and the same dialogues' CPU on the
  in-process ``scripted:0`` backend (same answers, no HTTP);
* dialogues per second and wall time;
* once, the client CPU per call of the openai SDK alone (``chat.completions.create`` as
  naig calls it, and the same body through the SDK's low-level ``post``).

    .venv/bin/python benchmarks/orchestrator.py            # about 3 minutes on 2 cores

Prints Markdown tables and writes ``benchmarks/results/orchestrator.json``.
``--profile C`` adds one cProfile'd run (CPU timer) at concurrency C: CPU by package.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import json
import multiprocessing
import os
import platform
import pstats
import re
import socket
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from naig.config import MethodSettings, RunConfig
from naig.envs.registry import combine
from naig.llm.base import LLM, Completion, Request, Wrapper
from naig.llm.limits import AdaptiveLimitedLLM
from naig.llm.registry import open_backend, stack
from naig.runner import Summary, run
from naig.testing import example

Span = tuple[float, float]
"""(start, end) in ``time.monotonic()`` seconds, which is system-wide on Linux: the
server's and the client's spans share one clock."""


# --- the server (child process) ------------------------------------------------------

def _completion(body: dict[str, Any]) -> tuple[bytes, int]:
    fmt = body.get("response_format") or {}
    schema = (fmt.get("json_schema") or {}).get("schema") or fmt.get("schema")
    salt = "\n".join(str(m.get("content") or "") for m in body.get("messages", []))
    text = json.dumps(example(schema, salt)) if schema else "ok"
    prompt = sum(len(m.get("content") or "") for m in body.get("messages", [])) // 4
    completion = max(1, len(text) // 4)
    return json.dumps({
        "id": "chatcmpl-bench", "object": "chat.completion", "created": 0,
        "model": body.get("model", ""),
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": text}}],
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion,
                  "total_tokens": prompt + completion}}).encode(), completion


class _Server:
    """A minimal HTTP/1.1 (keep-alive) server on asyncio streams: cheap in CPU, so that
    it takes as little as possible of the cores the client needs."""

    def __init__(self, latency: float, per_token: float):
        self.latency = latency
        self.per_token = per_token
        self.spans: list[Span] = []
        self.tokens: list[int] = []
        self.cpu0 = time.process_time()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                start = time.monotonic()
                line, *lines = head.decode("latin-1").split("\r\n")
                method, path, _ = line.split(" ", 2)
                headers = {k.strip().lower(): v.strip()
                           for k, _, v in (h.partition(":") for h in lines if h)}
                body = await reader.readexactly(int(headers.get("content-length", 0)))
                status, data = await self.answer(method, path, body, start)
                writer.write(f"HTTP/1.1 {status}\r\nContent-Type: application/json\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
                if path.endswith("/chat/completions"):
                    self.spans.append((start, time.monotonic()))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def answer(self, method: str, path: str, body: bytes,
                     start: float) -> tuple[str, bytes]:
        if method == "POST" and path.endswith("/chat/completions"):
            data, tokens = _completion(json.loads(body))
            self.tokens.append(tokens)
            latency = self.latency + self.per_token * tokens
            await asyncio.sleep(max(0.0, start + latency - time.monotonic()))
            return "200 OK", data
        if path == "/reset":
            self.spans.clear()
            self.tokens.clear()
            self.cpu0 = time.process_time()
            return "200 OK", b"{}"
        if path == "/stats":
            return "200 OK", json.dumps({"spans": self.spans, "tokens": self.tokens,
                                         "cpu": time.process_time() - self.cpu0}).encode()
        return "404 Not Found", b'{"error": {"message": "not found"}}'


def _serve(latency: float, per_token: float, conn: Connection) -> None:
    async def main() -> None:
        server = _Server(latency, per_token)
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        listener = await asyncio.start_server(server.handle, sock=sock, backlog=1024)
        conn.send(sock.getsockname()[1])
        await listener.serve_forever()

    asyncio.run(main())


@contextlib.contextmanager
def serving(latency: float, per_token: float = 0.0) -> Iterator[str]:
    """The server in a child process, answering after ``latency`` plus ``per_token`` per
    completion token; yields its root URL."""
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=_serve, args=(latency, per_token, theirs), daemon=True)
    proc.start()
    try:
        if not ours.poll(30):
            raise RuntimeError("the benchmark server did not start")
        yield f"http://127.0.0.1:{ours.recv()}"
    finally:
        proc.terminate()
        proc.join(5)


def _call(url: str, method: str = "GET") -> Any:
    with urllib.request.urlopen(urllib.request.Request(url, method=method, data=b""
                                                       if method == "POST" else None)) as r:
        return json.loads(r.read())


# --- the client ----------------------------------------------------------------------

class Probe(Wrapper):
    """Records when each call through it started and ended (cancelled ones too)."""

    def __init__(self, inner: LLM):
        super().__init__(inner)
        self.spans: list[Span] = []

    async def complete(self, request: Request) -> Completion:
        start = time.monotonic()
        try:
            return await self.inner.complete(request)
        finally:
            self.spans.append((start, time.monotonic()))


def find_limiter(llm: LLM) -> AdaptiveLimitedLLM:
    node: LLM | None = llm
    while node is not None:
        if isinstance(node, AdaptiveLimitedLLM):
            return node
        node = getattr(node, "inner", None)
    raise LookupError("no AdaptiveLimitedLLM in the stack")


def mean_in_flight(spans: list[Span], lo: float, hi: float) -> float:
    """Time-averaged number of spans open over [lo, hi]."""
    if hi <= lo:
        return 0.0
    return sum(max(0.0, min(e, hi) - max(s, lo)) for s, e in spans) / (hi - lo)


def _config(args: argparse.Namespace, n: int, concurrency: int, model: str,
            work: Path) -> RunConfig:
    method = MethodSettings(subtasks_min=args.subtasks[0], subtasks_max=args.subtasks[1],
                            steps_min=args.steps[0], steps_max=args.steps[1],
                            refine_steps=args.refine_steps)
    out = work / f"{model.replace(':', '-')}-c{concurrency}-{time.monotonic_ns()}.jsonl"
    return RunConfig(tools=(args.tools,), n=n, output=out, model=model, seed=args.seed,
                     max_attempts=n, concurrency=concurrency, cache=False, settings=method)


async def _run_once(config: RunConfig, base_url: str | None,
                    max_seconds: float | None = None) -> dict[str, Any]:
    """One run, cancelled (cleanly: the runner returns its summary) after ``max_seconds``;
    everything measured in the client."""
    wire = Probe(open_backend(config.model, base_url))  # calls holding a limiter slot
    stacked = stack(wire, concurrency=config.concurrency, cache=False, cache_path=None)
    top = Probe(stacked)  # calls the dialogues issued (waiting for a slot included)
    limiter = find_limiter(stacked)
    finishes: list[float] = []
    limits: list[tuple[float, int]] = []

    def progress(summary: Summary) -> None:
        while len(finishes) < summary.attempted:
            finishes.append(time.monotonic())

    async def sample() -> None:
        while True:
            limits.append((time.monotonic(), limiter.limit))
            await asyncio.sleep(0.05)

    sampler = asyncio.create_task(sample())
    cpu = time.process_time()
    task = asyncio.create_task(run(config, top, combine(list(config.tools)), progress))
    if max_seconds:
        asyncio.get_running_loop().call_later(max_seconds, task.cancel)
    summary = await task
    stopped = time.monotonic()
    cpu = time.process_time() - cpu
    sampler.cancel()
    await top.aclose()
    return {"summary": summary, "cpu": cpu, "top": top.spans, "wire": wire.spans,
            "finishes": finishes, "limits": limits, "stopped": stopped,
            "limit": limiter.limit, "peak": limiter.peak, "baseline": limiter.baseline}


def measure(args: argparse.Namespace, url: str, concurrency: int, work: Path) -> dict[str, Any]:
    n = args.n or max(args.min_n, args.per_slot * concurrency)
    _call(url + "/reset", "POST")
    got = asyncio.run(_run_once(_config(args, n, concurrency, "openai:bench", work),
                                url + "/v1", args.max_seconds))
    stats = _call(url + "/stats")
    s: Summary = got["summary"]
    spans: list[Span] = [(float(a), float(b)) for a, b in stats["spans"]]
    calls = len(spans)
    first = min(start for start, _ in got["top"])
    # Steady part: every dialogue slot busy, i.e. until the last dialogue starts, which is
    # when the (n - C)th one finishes (each finish starts the next attempt), or until the
    # run was stopped.
    end = got["stopped"]
    if len(got["finishes"]) >= n - concurrency > 0:
        end = min(end, got["finishes"][n - concurrency - 1])
    in_window = [lim for t, lim in got["limits"] if first <= t <= end]
    # CPU per finished dialogue: per call, times the calls a finished dialogue made (a run
    # stopped early also paid for the calls of the dialogues it abandoned).
    done = max(1, s.attempted)
    calls_per_dialogue = s.all_usage.usage().calls / done
    cpu_per_call = got["cpu"] / max(1, calls)

    # The same dialogues on the in-process scripted backend: the pipeline's CPU, no HTTP.
    base = asyncio.run(_run_once(_config(args, done, concurrency, "scripted:0", work), None))
    return {
        "concurrency": concurrency, "n": n, "attempted": s.attempted, "kept": s.kept,
        "interrupted": s.interrupted, "llm_calls": calls,
        "calls_per_dialogue": round(calls_per_dialogue, 1),
        "wall_s": round(s.seconds, 2),
        "dialogues_per_s": round(s.attempted / s.seconds, 2),
        "calls_per_s": round(calls / s.seconds, 1),
        "steady_window_s": round(end - first, 2),
        "occupancy": round(mean_in_flight(spans, first, end) / concurrency, 3),
        "issued_per_c": round(mean_in_flight(got["top"], first, end) / concurrency, 3),
        "holding_slot_per_c": round(mean_in_flight(got["wire"], first, end) / concurrency, 3),
        "limit_final": got["limit"], "limit_peak": got["peak"],
        "limit_min": min(lim for _, lim in got["limits"]),
        "limit_mean_steady": round(sum(in_window) / len(in_window), 1) if in_window else None,
        "limiter_baseline_ms_per_token": round(1000 * got["baseline"], 2)
        if got["baseline"] else None,
        "limit_every_2s": [lim for t, lim in got["limits"][::40]],
        "call_ms_client": round(1000 * sum(e - b for b, e in got["wire"])
                                / max(1, len(got["wire"])), 1),
        "completion_tokens_min_mean_max": [min(stats["tokens"]), round(
            sum(stats["tokens"]) / len(stats["tokens"]), 1), max(stats["tokens"])],
        "call_ms_server": round(1000 * sum(e - b for b, e in spans) / max(1, calls), 1),
        "client_cpu_s": round(got["cpu"], 2),
        "cpu_ms_per_dialogue": round(1000 * cpu_per_call * calls_per_dialogue, 1),
        "cpu_ms_per_call": round(1000 * cpu_per_call, 2),
        "client_cpu_share": round(got["cpu"] / s.seconds, 2),
        "scripted_cpu_ms_per_dialogue": round(1000 * base["cpu"]
                                              / max(1, base["summary"].attempted), 1),
        "server_cpu_s": round(stats["cpu"], 2),
    }


async def _sdk_cost(url: str, work: Path, args: argparse.Namespace,
                    concurrency: int = 32, repeat: int = 5) -> dict[str, float]:
    """Client CPU per call of naig's backend (``chat.completions.create``) and of the same
    body posted with the SDK's low-level ``post``, which skips its per-request ``transform``
    of the parameters: the requests of a few real dialogues, replayed."""
    from openai.types.chat import ChatCompletion

    from naig.llm.openai_compat import OpenAICompatLLM
    from naig.testing import ScriptedLLM, schema_example

    recorder = ScriptedLLM(respond=schema_example)
    config = _config(args, 4, 4, "scripted:0", work)
    await run(config, stack(recorder, concurrency=4, cache=False, cache_path=None),
              combine(list(config.tools)))
    requests = recorder.requests * repeat
    llm = OpenAICompatLLM("bench", base_url=url + "/v1")
    slots = asyncio.Semaphore(concurrency)

    async def post(r: Request) -> None:
        body: dict[str, Any] = {"model": llm.model, "temperature": r.temperature,
                                "messages": [m.model_dump() for m in r.messages],
                                "max_tokens": r.max_tokens, "seed": r.seed}
        if r.schema_ is not None:
            body["response_format"] = llm._response_format(r.schema_)
        await llm._client.post("/chat/completions", cast_to=ChatCompletion, body=body)

    async def one(way: str, r: Request) -> None:
        async with slots:
            await (llm.complete(r) if way == "create" else post(r))

    cpu: dict[str, list[float]] = {"create": [], "post": []}
    for way in ["create", "post"] * 2:
        start = time.process_time()
        await asyncio.gather(*(one(way, r) for r in requests))
        cpu[way].append(1000 * (time.process_time() - start) / len(requests))
    await llm.aclose()
    return {f"{way}_cpu_ms_per_call": round(min(v), 2) for way, v in cpu.items()}


def warm_up(args: argparse.Namespace, url: str, work: Path) -> None:
    """One dialogue on each backend first: lazy imports and first-use costs (the openai
    client's modules, prompt templates) are not charged to the first measured run."""
    asyncio.run(_run_once(_config(args, 1, 1, "openai:bench", work), url + "/v1"))
    asyncio.run(_run_once(_config(args, 1, 1, "scripted:0", work), None))


def _package(path: str) -> str:
    if m := re.search(r"site-packages/([A-Za-z0-9_]+)", path):
        return m.group(1)
    if "/naig/" in path:
        return "naig"
    if path.startswith("<") or path == "~":
        return "builtins"
    return "stdlib:" + Path(path).stem


def profile(args: argparse.Namespace, url: str, concurrency: int, work: Path,
            top: int = 15) -> dict[str, Any]:
    """CPU of one run by package (own time, cProfile), with the hottest functions."""
    n = args.n or max(args.min_n, args.per_slot * concurrency)
    config = _config(args, n, concurrency, "openai:bench", work)
    profiler = cProfile.Profile(time.process_time)  # CPU, not the wall time awaited
    profiler.enable()
    asyncio.run(_run_once(config, url + "/v1", args.max_seconds))
    profiler.disable()
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    by: dict[str, float] = defaultdict(float)
    funcs = []
    for (path, line, name), (_, _, tt, ct, _) in stats.items():
        by[_package(path)] += tt
        funcs.append((ct, f"{_package(path)}:{name}:{line}"))
    total = sum(by.values())
    return {"concurrency": concurrency, "n": n, "profiled_cpu_s": round(total, 2),
            "share_by_package": {k: round(v / total, 3) for k, v in
                                 sorted(by.items(), key=lambda kv: -kv[1])[:top]},
            "top_cumulative_s": [(f, round(c, 2)) for c, f in sorted(funcs)[::-1][:top]]}


COLUMNS = [("concurrency", "C"), ("attempted", "dialogues"), ("llm_calls", "LLM calls"),
           ("wall_s", "wall s"), ("dialogues_per_s", "dialogues/s"),
           ("occupancy", "occupancy"), ("issued_per_c", "issued/C"),
           ("holding_slot_per_c", "holding slot/C"), ("limit_final", "limit final"),
           ("limit_mean_steady", "limit mean"), ("limit_peak", "peak"),
           ("call_ms_client", "call ms"), ("cpu_ms_per_dialogue", "CPU ms/dialogue"),
           ("cpu_ms_per_call", "CPU ms/call"),
           ("scripted_cpu_ms_per_dialogue", "CPU ms/dialogue, no HTTP"),
           ("client_cpu_share", "client CPU/wall"), ("server_cpu_s", "server CPU s")]


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |",
             "|" + "---:|" * len(COLUMNS)]
    for r in rows:
        cells = [str(r[key]) for key, _ in COLUMNS]
        if r["interrupted"]:
            cells[1] += " (stopped)"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pair(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


SERVERS = {"fixed": "every answer after --latency seconds",
           "decode": "every answer after --per-token seconds per completion token"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--concurrency", type=int, nargs="+", default=[4, 16, 64])
    p.add_argument("--server", nargs="+", choices=list(SERVERS), default=["fixed", "decode"],
                   help="latency models to run: " + "; ".join(f"{k}: {v}"
                                                                for k, v in SERVERS.items()))
    p.add_argument("--latency", type=float, default=0.2, help="fixed server latency, s")
    p.add_argument("--per-token", type=float, default=0.01,
                   help="decode server: seconds per completion token (naig's answers here "
                        "average 20 tokens, so 0.01 gives the same 200 ms mean)")
    p.add_argument("--n", type=int, default=0,
                   help="dialogues per run (default: max(--min-n, --per-slot x C))")
    p.add_argument("--min-n", type=int, default=40)
    p.add_argument("--per-slot", type=int, default=3,
                   help="dialogues per concurrency slot, so that a steady part exists")
    p.add_argument("--max-seconds", type=float, default=40.0,
                   help="stop a run (cleanly, as Ctrl-C does) after this long")
    p.add_argument("--tools", default="builtin")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subtasks", type=_pair, default=(2, 2))
    p.add_argument("--steps", type=_pair, default=(1, 2))
    p.add_argument("--refine-steps", type=int, default=2)
    p.add_argument("--profile", type=int, metavar="C",
                   help="also profile one run at concurrency C (on the first --server)")
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "bench")
    work = Path(tempfile.mkdtemp(prefix="naig-orch-"))
    load = os.getloadavg()
    start = time.perf_counter()
    results: dict[str, list[dict[str, Any]]] = {}
    prof = None
    sdk: dict[str, float] = {}
    for kind in args.server:
        latency, per_token = (args.latency, 0.0) if kind == "fixed" else (0.0, args.per_token)
        with serving(latency, per_token) as url:
            warm_up(args, url, work)
            results[kind] = []
            for c in args.concurrency:
                results[kind].append(measure(args, url, c, work))
                print(kind, json.dumps(results[kind][-1]), file=sys.stderr)
            if args.profile and kind == args.server[0]:
                prof = profile(args, url, args.profile, work)
            if kind == args.server[-1]:
                sdk = asyncio.run(_sdk_cost(url, work, args))
                print("sdk", json.dumps(sdk), file=sys.stderr)
    report = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform(),
                    "loadavg_before": [round(x, 2) for x in load],
                    "loadavg_after": [round(x, 2) for x in os.getloadavg()]},
        "settings": {"latency_s": args.latency, "per_token_s": args.per_token,
                     "tools": args.tools, "seed": args.seed, "subtasks": args.subtasks,
                     "steps": args.steps, "refine_steps": args.refine_steps, "cache": False,
                     "model": "openai:bench", "max_seconds": args.max_seconds,
                     "servers": {k: SERVERS[k] for k in args.server}},
        "runs": results, "openai_sdk_cpu": sdk, "profile": prof,
        "benchmark_wall_s": round(time.perf_counter() - start, 1),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "orchestrator.json").write_text(json.dumps(report, indent=2))
    for kind, rows in results.items():
        what = (f"{args.latency * 1000:g} ms" if kind == "fixed"
                else f"{args.per_token * 1000:g} ms per completion token")
        print(f"\n### Server latency: {kind} ({what})\n\n{markdown(rows)}")
    print(f"\nopenai SDK alone, client CPU per call: {sdk}")
    if prof:
        print("\n" + json.dumps(prof, indent=2))
    print(f"\nbenchmark wall time: {report['benchmark_wall_s']} s")


if __name__ == "__main__":
    main()
