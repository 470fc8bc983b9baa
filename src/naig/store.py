"""The run's output: append-only JSONL that survives crashes, and resume.

A record is durable once ``write`` returns (append, flush, fsync). Beside the outputs a
manifest (``<name>.run.json``) records the settings that shape the dialogues; running
again on the same output resumes: records already written are not generated again, a
torn last line (a crash mid-write) is dropped, and different settings are refused with
the names of the settings that differ. The manifest also keeps what all runs on the output
have spent on LLM calls, so that spending limits hold across restarts.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from naig.config import RunConfig
from naig.dialogue import Record, StageUsage
from naig.errors import ConfigError, OutputError


def read_records(path: Path) -> list[Record]:
    return list(iter_records(path))


def iter_records(path: Path, skipped: list[str] | None = None) -> Iterator[Record]:
    """A naig JSONL file's records, one at a time (for user-given files). A missing file is
    a ConfigError; so is a line that is not a record, naming the file and line, unless
    ``skipped`` is given: then such a line is passed over and described there."""
    if not path.is_file():
        raise ConfigError(f"{path} does not exist")
    return _records(path, skipped)


def _records(path: Path, skipped: list[str] | None) -> Iterator[Record]:
    found, first_skip = 0, None if skipped is None else len(skipped)
    with path.open("rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
                if not line.strip():
                    continue
                record = _record_or_plain(line, f"{path.stem}:{n}")
            except ValueError as e:  # UnicodeDecodeError and pydantic's errors included
                why = f"{path}:{n}: not a naig record ({str(e).splitlines()[0]})"
                if skipped is None:
                    raise ConfigError(why) from None
                skipped.append(why)
                continue
            found += 1
            yield record
    if skipped is not None and not found and len(skipped) > (first_skip or 0):
        raise ConfigError(f"no naig record in {path}: {skipped[first_skip or 0]}")


IMPORTED = "imported"
"""``meta.method`` of a record read from a plain chat file: naig has no verdict on it."""


def _record_or_plain(line: str, name: str) -> Record:
    """A naig record, or a row of a plain chat file read as one: OpenAI's fine-tuning
    layout (arguments as objects too, as naig's ``hf`` export writes), or LLaMA-Factory's
    ShareGPT layout (naig's ``sharegpt`` export)."""
    try:
        return Record.from_json(line)
    except ValueError as first:
        data = json.loads(line)
        if not isinstance(data, dict) or "meta" in data:
            raise first from None
        if isinstance(data.get("conversations"), list):
            return plain_record(sharegpt_messages(data), name)
        if not isinstance(data.get("messages"), list):
            raise first from None
        return plain_record(data, name)


_SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant",
                   "assistant": "assistant", "system": "system"}


def sharegpt_messages(data: dict[str, Any]) -> dict[str, Any]:
    """A ShareGPT row (``conversations`` of ``from``/``value`` turns; ``function_call`` and
    ``observation`` for calls and results, a results list where several calls ran) as a
    ``{"messages", "tools"}`` row. Call ids are given in order (``call_1``...)."""
    messages: list[dict[str, Any]] = []
    if data.get("system"):
        messages.append({"role": "system", "content": str(data["system"])})
    ids: list[str] = []  # the calls waiting for their results
    made = 0
    for turn in data["conversations"]:
        if not isinstance(turn, dict):
            raise ValueError("a ShareGPT turn is not a JSON object")
        who, value = turn.get("from"), turn.get("value")
        if not isinstance(value, str):
            raise ValueError(f"a ShareGPT {who!r} turn has no string 'value'")
        if who == "function_call":
            calls = json.loads(value)
            calls = calls if isinstance(calls, list) else [calls]
            ids = [f"call_{made + k + 1}" for k in range(len(calls))]
            made += len(calls)
            messages.append({"role": "assistant", "content": None, "tool_calls": [
                {"id": i, "function": c} for i, c in zip(ids, calls, strict=True)]})
        elif who == "observation":
            results = json.loads(value) if len(ids) > 1 else [value]
            if not isinstance(results, list) or len(results) != len(ids):
                raise ValueError("an observation does not answer the calls before it")
            messages += [{"role": "tool", "tool_call_id": i, "content": r if isinstance(r, str)
                          else json.dumps(r, ensure_ascii=False)}
                         for i, r in zip(ids, results, strict=True)]
            ids = []
        elif who in _SHAREGPT_ROLES:
            messages.append({"role": _SHAREGPT_ROLES[who], "content": value})
        else:
            raise ValueError(f"unknown ShareGPT role {who!r}")
    tools = data.get("tools") or []
    tools = json.loads(tools) if isinstance(tools, str) else tools
    return {"messages": messages,
            "tools": [t if "function" in t else {"type": "function", "function": t}
                      for t in tools if isinstance(t, dict)]}


def plain_record(data: dict[str, Any], name: str) -> Record:
    """A ``{"messages", "tools"}`` row as a record (id ``name``, method ``imported``)."""
    tools = data.get("tools") or []
    if isinstance(tools, str):  # some layouts keep the tools as a JSON string
        tools = json.loads(tools)
    messages = []
    for m in data["messages"]:
        if not isinstance(m, dict):
            raise ValueError("a message is not a JSON object")
        calls: list[dict[str, Any]] = []
        for c in m.get("tool_calls") or []:
            fn = dict(c.get("function") or {})
            if not isinstance(fn.get("arguments"), str):
                fn["arguments"] = json.dumps(fn.get("arguments") or {}, ensure_ascii=False)
            calls.append({"id": c.get("id") or f"call_{len(calls) + 1}", "type": "function",
                          "function": {"name": fn.get("name"), "arguments": fn["arguments"]}})
        content = m.get("content")
        messages.append({"role": m.get("role"),
                         "content": content if isinstance(content, str | None) else
                         json.dumps(content, ensure_ascii=False),
                         "tool_calls": calls or None, "tool_call_id": m.get("tool_call_id")})
    return Record.model_validate({
        "id": name, "tools": tools, "messages": messages,
        "meta": {"method": IMPORTED, "seed": 0, "model": "unknown", "config_hash": "",
                 "environment": {"name": IMPORTED}}})


def _recover(path: Path) -> list[Record]:
    """The complete records of a JSONL file. A torn last line (a crash mid-write) is cut
    off; a line before it that is no record is refused, naming it: never cut with what
    follows it."""
    if not path.exists():
        return []
    data = path.read_bytes()
    records: list[Record] = []
    good = 0
    lines = data.splitlines(keepends=True)
    for n, line in enumerate(lines, 1):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("no end of line")
            records.append(Record.from_json(line.decode("utf-8")))
        except ValueError as e:
            if n < len(lines):
                raise ConfigError(f"{path}:{n} is not a naig record ({str(e).splitlines()[0]})"
                                  "; mend or remove that line, then run again") from None
            break
        good += len(line)
    if good < len(data):
        with path.open("r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
    return records


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        json.dump(data, f, indent=1)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def attempt_index(record: Record) -> int:
    return int(record.id.rsplit("-", 1)[-1])


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= _flatten(v, f"{prefix}{k}.")
        return out
    return {prefix.rstrip("."): value}


@dataclass
class Resumed:
    kept: list[Record] = field(default_factory=list)
    rejected: list[Record] = field(default_factory=list)
    spent: StageUsage = field(default_factory=StageUsage)
    """LLM work that reached a model in the earlier runs on this output."""

    @property
    def done(self) -> set[int]:
        return {attempt_index(r) for r in (*self.kept, *self.rejected)}


def check_output(path: Path) -> None:
    """Refuse an output path no run can write records to, before any work is done."""
    if path.is_dir():
        raise ConfigError(f"-o {path} is a folder; give a file in it, such as "
                          f"{path / 'out.jsonl'}")
    if path.exists() and not path.is_file():
        raise ConfigError(f"-o {path} is not a regular file; give a .jsonl file path")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"-o {path}: {folder} is a file, so no folder can be made there")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"-o {path}: cannot write in {folder}; choose another -o")


class RunStore:
    """Kept and rejected outputs of one run, with its manifest."""

    def __init__(self, config: RunConfig):
        self.kept_path = config.output
        self.rejected_path = config.rejected_output
        self.manifest_path = config.output.with_name(config.output.stem + ".run.json")
        self._files: list[TextIO] = []

    def paths(self) -> Iterator[Path]:
        yield from (self.kept_path, self.rejected_path, self.manifest_path)

    def open(self, config: RunConfig, *, overwrite: bool = False) -> Resumed:
        """Prepare the outputs; returns what an earlier run of these settings wrote."""
        check_output(self.kept_path)
        if overwrite:
            for p in self.paths():
                p.unlink(missing_ok=True)
        settings = config.shaping()
        spent = StageUsage()
        if self.manifest_path.exists():
            manifest = json.loads(self.manifest_path.read_text("utf-8"))
            self._refuse_if_different(manifest["settings"], settings)
            spent = StageUsage.model_validate(manifest.get("spent", {}))
        elif any(p.exists() and p.stat().st_size for p in (self.kept_path, self.rejected_path)):
            raise ConfigError(f"{self.kept_path} already has data from another run; choose "
                              "another -o or pass --overwrite")
        self.kept_path.parent.mkdir(parents=True, exist_ok=True)
        self._manifest = {"settings": settings, "config_hash": config.config_hash()}
        self.save_spent(spent)
        resumed = Resumed(_recover(self.kept_path), _recover(self.rejected_path), spent)
        self._kept = self._open(self.kept_path)
        self._rejected = self._open(self.rejected_path)
        return resumed

    def save_spent(self, spent: StageUsage) -> None:
        """Record in the manifest what all runs on this output have spent, so that a
        spending limit holds across restarts (replaced atomically, never torn)."""
        try:
            _write_json(self.manifest_path, self._manifest | {"spent": spent.model_dump()})
        except OSError as e:
            raise OutputError(f"cannot write {self.manifest_path}: {e.strerror or e}; free "
                              "the space and run the same command to resume") from None

    def spent_on_disk(self) -> StageUsage:
        """What the manifest on disk says was spent (0 where there is none)."""
        if not self.manifest_path.exists():
            return StageUsage()
        manifest = json.loads(self.manifest_path.read_text("utf-8"))
        return StageUsage.model_validate(manifest.get("spent", {}))

    def clear_spent(self) -> None:
        """Set the manifest's spend to 0: once it has been moved into another manifest
        (the Ray engine moves its shards' spend into the run's)."""
        if self.manifest_path.exists():
            manifest = json.loads(self.manifest_path.read_text("utf-8"))
            _write_json(self.manifest_path, manifest | {"spent": StageUsage().model_dump()})

    def _refuse_if_different(self, earlier: dict[str, Any], now: dict[str, Any]) -> None:
        a, b = _flatten(earlier), _flatten(now)
        diff = sorted(k for k in a.keys() | b.keys() if a.get(k) != b.get(k))
        if diff:
            shown = ", ".join(f"{k} ({a.get(k)!r} -> {b.get(k)!r})" for k in diff[:6])
            raise ConfigError(f"{self.kept_path} was written with other settings: {shown}; "
                              "use the same settings to resume, or another -o, or --overwrite")

    def _open(self, path: Path) -> TextIO:
        f = path.open("a", encoding="utf-8")
        self._files.append(f)
        return f

    def write(self, record: Record, *, kept: bool) -> None:
        """Append ``record``, durably. A write that fails (a full disk) or a file removed
        or replaced during the run (whose records would go nowhere) stops the run with
        ``OutputError``; what was written before stays, and a torn line is dropped on
        resume."""
        f, path = (self._kept, self.kept_path) if kept else (self._rejected, self.rejected_path)
        try:
            if os.fstat(f.fileno()).st_ino != os.stat(path).st_ino:
                raise FileNotFoundError
            f.write(record.to_json() + "\n")
            f.flush()
            os.fsync(f.fileno())
        except FileNotFoundError:
            raise OutputError(f"{path} was removed or replaced during the run; its records "
                              "are gone with it. Run the same command to go on") from None
        except OSError as e:
            raise OutputError(f"cannot write {path}: {e.strerror or e}; what was written "
                              "before is kept: free the space and run the same command to "
                              "resume") from None

    def close(self) -> None:
        for f in self._files:
            with contextlib.suppress(OSError):  # a line a failed write left: dropped on resume
                f.close()
        self._files.clear()
