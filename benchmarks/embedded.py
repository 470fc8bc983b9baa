"""Benchmark the pipeline on the embedded model: throughput and cost per kept dialogue.

Runs `naig generate` in-process on a built-in pool with the cache off (every call reaches
the model), then reports decode and prompt tokens per second, and LLM calls, tokens and
seconds per kept dialogue, per stage. Writes a JSON report and prints a Markdown table.

    .venv/bin/python benchmarks/embedded.py --n 3 --max-attempts 8 --out benchmarks/results
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path

from naig.config import MethodSettings, RunConfig
from naig.envs.registry import combine
from naig.llm.registry import open_backend, stack
from naig.runner import Summary, run


def _table(summary: Summary) -> list[dict[str, object]]:
    rows = []
    per = max(summary.kept, 1)
    book = summary.new_calls
    for stage, u in [*sorted(book.by_stage.items()), ("total", book.usage())]:
        rows.append({"stage": stage, "calls": u.calls, "prompt_tokens": u.prompt_tokens,
                     "completion_tokens": u.completion_tokens, "seconds": round(u.seconds, 1),
                     "calls_per_kept": round(u.calls / per, 1),
                     "tokens_per_kept": round((u.prompt_tokens + u.completion_tokens) / per),
                     "seconds_per_kept": round(u.seconds / per, 1),
                     "decode_tok_s": round(u.completion_tokens / u.seconds, 1) if u.seconds else 0})
    return rows


def _markdown(rows: list[dict[str, object]]) -> str:
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="naig-bench-"))
    method = MethodSettings(subtasks_min=args.subtasks[0], subtasks_max=args.subtasks[1],
                            steps_min=args.steps[0], steps_max=args.steps[1],
                            refine_steps=args.refine_steps)
    config = RunConfig(tools=(args.tools,), n=args.n, output=work / "out.jsonl",
                       model=args.model, seed=args.seed, max_attempts=args.max_attempts,
                       cache=False, settings=method)
    backend = open_backend(config.model)
    llm = stack(backend, concurrency=1, cache=False, cache_path=None)
    start = time.perf_counter()
    summary = await run(config, llm, combine([args.tools]))
    wall = time.perf_counter() - start
    total = summary.new_calls.usage()
    return {
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} cores, "
                   f"{platform.python_version()}",
        "model": backend.name, "settings": method.model_dump(), "seed": args.seed,
        "attempted": summary.attempted, "kept": summary.kept, "rejected": summary.rejected,
        "kept_rate": round(summary.kept / max(summary.attempted, 1), 3),
        "rejections": dict(summary.reasons), "wall_seconds": round(wall, 1),
        "wall_seconds_per_kept": round(wall / max(summary.kept, 1), 1),
        "decode_tokens_per_second": round(total.completion_tokens / total.seconds, 1),
        "all_tokens_per_second": round((total.prompt_tokens + total.completion_tokens)
                                       / total.seconds, 1),
        "stages": _table(summary), "output": str(config.output),
    }


def _pair(text: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    return int(lo), int(hi or lo)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tools", default="builtin")
    p.add_argument("--model", default="local")
    p.add_argument("--n", type=int, default=3)
    p.add_argument("--max-attempts", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--subtasks", type=_pair, default=(2, 3))
    p.add_argument("--steps", type=_pair, default=(1, 2))
    p.add_argument("--refine-steps", type=int, default=5)
    p.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = p.parse_args()
    report = asyncio.run(main(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "embedded.json").write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if k != "stages"}, indent=2))
    print(_markdown(report["stages"]))  # type: ignore[arg-type]
