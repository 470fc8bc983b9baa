"""Contamination: whether generated dialogues repeat the test tasks of the benchmarks naig
ships environments for (BFCL's multi-turn questions, tau2's task scenarios).

A dialogue made on those environments uses their start states, so the same names and IDs
are expected; what must not leak is the tasks' wording. A user turn that shares a run of
``RUN`` words (letters only, lower case) with a test task is reported, naming the run.
Benchmarks whose package is not installed are left out (and named as such).
"""

from __future__ import annotations

import functools
import json
import re
from importlib import resources
from typing import Any

from naig.dialogue import Record

RUN = 8
"""Words in a row two texts must share to count as copied."""
_WORD = re.compile(r"[a-z]+")


def _runs(text: str) -> list[tuple[str, ...]]:
    """The runs of ``RUN`` words in ``text``, in order."""
    words = _WORD.findall(text.lower())
    return [tuple(words[i:i + RUN]) for i in range(len(words) - RUN + 1)]


def _bfcl_texts() -> list[str]:
    folder = resources.files("bfcl_eval").joinpath("data")
    texts = []
    for entry in folder.iterdir():
        if entry.name.startswith("BFCL_v4_multi_turn") and entry.name.endswith(".json"):
            for line in entry.read_text("utf-8").splitlines():
                if line.strip():
                    texts += [m.get("content") or "" for turn in json.loads(line)["question"]
                              for m in turn]
    return texts


def _tau2_texts() -> list[str]:
    folder = resources.files("tau2").joinpath("data", "tau2", "domains")
    texts = []
    for domain in folder.iterdir():
        tasks = domain.joinpath("tasks.json")
        if not tasks.is_file():
            continue
        for task in json.loads(tasks.read_text("utf-8")):
            about: Any = ((task.get("user_scenario") or {}).get("instructions") or {})
            if isinstance(about, dict):
                texts += [str(v) for v in about.values() if isinstance(v, str)]
            elif isinstance(about, str):
                texts.append(about)
    return texts


@functools.cache
def benchmark_runs() -> tuple[dict[tuple[str, ...], str], tuple[str, ...]]:
    """Every run of words in the installed benchmarks' test tasks -> the benchmark; and
    the benchmarks checked."""
    runs: dict[tuple[str, ...], str] = {}
    checked = []
    for name, texts in (("BFCL", _bfcl_texts), ("tau2", _tau2_texts)):
        try:
            found = texts()
        except (ModuleNotFoundError, FileNotFoundError, OSError):
            continue
        checked.append(name)
        for text in found:
            runs.update(dict.fromkeys(_runs(text), name))
    return runs, tuple(checked)


def copied(record: Record) -> str | None:
    """The first run of words a user turn of ``record`` shares with a benchmark's test
    task, with the benchmark's name; None where there is none."""
    runs, _ = benchmark_runs()
    for m in record.messages:
        if m.role == "user" and m.content:
            for run in _runs(m.content):
                if run in runs:
                    return f"{runs[run]}: '{' '.join(run)}'"
    return None


__all__ = ["RUN", "benchmark_runs", "copied"]
