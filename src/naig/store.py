"""Append-only JSONL output: a record is durable once ``write`` returns."""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

from naig.dialogue import Record


class JsonlWriter:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._f = path.open("a", encoding="utf-8")

    def write(self, record: Record) -> None:
        self._f.write(record.to_json() + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> JsonlWriter:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()


def read_records(path: Path) -> list[Record]:
    return [Record.from_json(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
