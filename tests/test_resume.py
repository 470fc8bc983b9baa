"""Crash safety through the real CLI: SIGKILL and SIGINT mid-run, then resume.

The model is the scripted backend (``scripted:<delay>``): these tests exercise the
runner and the store, not a model, so every dialogue takes a predictable second or so.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from naig.dialogue import Record

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
