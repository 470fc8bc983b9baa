"""Crash safety through the real CLI: SIGKILL and SIGINT mid-run, then resume.

The model is the scripted backend (``scripted:<delay>``): these tests exercise the
runner and the store, not a model, so every dialogue takes a predictable second or so.
"""

import asyncio
import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from naig.config import MethodSettings, RunConfig
from naig.dialogue import Record
from naig.envs.registry import resolve
from naig.errors import OutputError
from naig.llm.registry import stack
from naig.runner import Summary, run
from naig.testing import ScriptedLLM, schema_example

from .contract import assert_contract

N = 6


def _cmd(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "naig.cli", "generate", "--tools", "builtin", "-n", str(N),
            "--model", "scripted:0.03", "--concurrency", "2", "--seed", "5",
            "--subtasks", "2", "--steps", "1-2", "--refine-steps", "2",
            "-o", str(out), "--cache-path", str(out.parent / "cache.sqlite"), *extra]


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _start_and_stop_after(out: Path, sig: int, written: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(_cmd(out), text=True, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(_lines(out)) < written:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the run wrote nothing in time"
        time.sleep(0.05)  # polling an observable: the output file
    proc.send_signal(sig)
    proc.wait(timeout=60)
    return proc


def _final_set(out: Path) -> list[Record]:
    records = [Record.from_json(line) for line in _lines(out)]
    ids = [r.id for r in records]
    assert len(records) == N and len(set(ids)) == N, ids
    for r in records:
        assert_contract(r, kept=True)
    return records


def test_sigkill_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = _start_and_stop_after(out, signal.SIGKILL, 2)
    assert proc.returncode == -signal.SIGKILL
    before = _lines(out)
    with out.open("a") as f:  # a write torn by the kill: half a record, no newline
        f.write(before[0][: len(before[0]) // 2])
    again = subprocess.run(_cmd(out), text=True, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert "resumed:" in again.stdout
    records = _final_set(out)
    assert [r.to_json() for r in records[: len(before)]] == before  # kept, in order


def test_sigint_stops_cleanly_then_resume(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    proc = _start_and_stop_after(out, signal.SIGINT, 1)
    stdout, stderr = proc.communicate()
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert "kept" in stdout  # the summary was printed
    again = subprocess.run(_cmd(out, "--resume"), text=True, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr
    _final_set(out)


def test_resume_with_other_settings_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = subprocess.run(_cmd(out), text=True, capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr
    cmd = _cmd(out)
    cmd[cmd.index("--seed") + 1] = "6"
    cmd[cmd.index("--refine-steps") + 1] = "3"
    other = subprocess.run(cmd, text=True, capture_output=True, timeout=60)
    assert other.returncode == 2
    assert "seed" in other.stderr and "refine_steps" in other.stderr
    assert "Traceback" not in other.stderr
    assert len(_lines(out)) == N  # nothing lost
    fresh = subprocess.run([*cmd, "--overwrite"], text=True, capture_output=True, timeout=300)
    assert fresh.returncode == 0, fresh.stderr
    assert os.path.getsize(out) > 0 and len(_lines(out)) == N


def test_token_budget_stops_cleanly_and_resume_goes_on(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    stopped = subprocess.run(_cmd(out, "--max-tokens", "24000"), text=True,
                             capture_output=True, timeout=300)
    assert stopped.returncode == 5, stopped.stderr
    assert "stopped:" in stopped.stdout and "Traceback" not in stopped.stderr
    written = _lines(out)
    assert 0 < len(written) < N
    for line in written:
        assert_contract(Record.from_json(line), kept=True)
    again = subprocess.run(_cmd(out), text=True, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _lines(out)[: len(written)] == written
    _final_set(out)


def test_a_token_budget_holds_across_restarts(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    manifest = tmp_path / "out.run.json"

    def spent() -> int:
        s = json.loads(manifest.read_text())["spent"]
        return int(s["prompt_tokens"] + s["completion_tokens"])

    first = subprocess.run(_cmd(out, "--max-tokens", "24000"), text=True,
                           capture_output=True, timeout=300)
    assert first.returncode == 5, first.stderr
    written, before = _lines(out), spent()
    assert 0 < before <= 24000
    same = subprocess.run(_cmd(out, "--max-tokens", "24000"), text=True,
                          capture_output=True, timeout=300)
    assert same.returncode == 5, same.stderr  # only what the first run left may be spent
    assert "earlier runs on this output spent" in same.stdout
    assert _lines(out)[: len(written)] == written and before <= spent() <= 24000
    written, before = _lines(out), spent()
    raised = subprocess.run(_cmd(out, "--max-tokens", "40000"), text=True,
                            capture_output=True, timeout=300)
    assert raised.returncode in (0, 5), raised.stderr
    assert len(_lines(out)) > len(written) and before < spent() <= 40000


def test_negative_budget_is_a_clean_error(tmp_path: Path) -> None:
    p = subprocess.run(_cmd(tmp_path / "o.jsonl", "--max-cost", "-1"), text=True,
                       capture_output=True, timeout=60)
    assert p.returncode == 2 and "max_cost" in p.stderr and "Traceback" not in p.stderr


def test_dry_run_estimates_without_writing(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    p = subprocess.run(_cmd(out, "--dry-run", "2"), text=True, capture_output=True,
                       timeout=120)
    assert p.returncode == 0, p.stderr
    assert "sample: 2 dialogues attempted" in p.stdout and f"estimate for {N} kept" in p.stdout
    assert not out.exists() and not out.with_name("out.run.json").exists()


def test_a_full_disk_stops_the_run_clearly_and_resume_finishes_it(tmp_path: Path) -> None:
    """The file-size limit (RLIMIT_FSIZE) makes writes past it fail with EFBIG, as a full
    disk fails them with ENOSPC: the run stops at the first record that does not fit."""
    out = tmp_path / "out.jsonl"
    size = 12_000

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
    no_room = subprocess.run(_cmd(out), text=True, capture_output=True, timeout=300,
                             preexec_fn=small_disk)  # the cache's own files do not fit
    assert no_room.returncode == 2 and "cannot use the response cache" in no_room.stderr
    assert "Traceback" not in no_room.stderr and not out.exists()
    full = subprocess.run(_cmd(out, "--no-cache"), text=True, capture_output=True,
                          timeout=300, preexec_fn=small_disk)
    assert full.returncode == 6, full.stderr
    assert "Traceback" not in full.stderr
    assert f"cannot write {out}" in full.stderr and "run the same command" in full.stderr
    assert out.stat().st_size == size  # filled to the limit: its last line is torn
    intact = [Record.from_json(line) for line in _lines(out)[:-1]]
    assert intact
    again = subprocess.run(_cmd(out, "--no-cache"), text=True, capture_output=True, timeout=300)
    assert again.returncode == 0, again.stderr
    records = _final_set(out)
    assert [r.to_json() for r in records[:len(intact)]] == [r.to_json() for r in intact]


def test_an_output_removed_mid_run_stops_the_run_and_the_rest_stays(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    config = RunConfig(tools=("builtin",), n=3, output=out, seed=5, cache=False,
                       settings=MethodSettings(subtasks_min=2, subtasks_max=2, steps_max=2,
                                             refine_steps=1))

    def remove_after_the_first(summary: Summary) -> None:
        if summary.kept == 1 and out.exists():
            out.unlink()
    llm = stack(ScriptedLLM(respond=schema_example), concurrency=1, cache=False,
                cache_path=None)
    with pytest.raises(BaseExceptionGroup) as caught:
        asyncio.run(run(config, llm, resolve("builtin"), remove_after_the_first))
    errors = caught.value.exceptions
    assert len(errors) == 1 and isinstance(errors[0], OutputError)
    assert "was removed or replaced during the run" in str(errors[0])
    assert not out.exists()
    manifest = json.loads(out.with_name("out.run.json").read_text())
    assert manifest["spent"]["calls"] > 0


def test_a_line_that_is_no_record_before_the_end_refuses_resume_and_cuts_nothing(
        tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    first = subprocess.run(_cmd(out), text=True, capture_output=True, timeout=300)
    assert first.returncode == 0, first.stderr
    lines = _lines(out)
    lines[1] = lines[1][:-1] + ', "from_a_newer_naig": true}'
    out.write_text("\n".join(lines) + "\n")
    before = out.read_bytes()
    again = subprocess.run(_cmd(out), text=True, capture_output=True, timeout=300)
    assert again.returncode == 2 and "Traceback" not in again.stderr
    assert f"{out}:2 is not a naig record" in again.stderr and "mend or remove" in again.stderr
    assert out.read_bytes() == before
