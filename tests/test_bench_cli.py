"""`naig bench` through the real CLI: reports, a line per attempt, bad input, Ctrl-C.

The model is the scripted backend: these tests exercise the command, not a model (the
benchmark's core is tested in test_bench.py, and a real-model run is in docs/benchmarks.md).
"""

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

from naig.store import read_records

from .contract import assert_contract


def _cmd(stem: Path, *extra: str, n: int = 2, delay: str = "0") -> list[str]:
    return [sys.executable, "-m", "naig.cli", "bench", "-n", str(n), "--model",
            f"scripted:{delay}", "--seed", "1", "--subtasks", "2", "--steps", "1-2",
            "--refine-steps", "2", "-o", str(stem), *extra]


def test_bench_writes_reports_dialogues_and_a_line_per_attempt(tmp_path: Path) -> None:
    stem = tmp_path / "b" / "bench"
    p = subprocess.run(_cmd(stem), text=True, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    report = json.loads(stem.with_suffix(".json").read_text())
    assert set(report["methods"]) == {"naig", "mas"}
    assert "## Cost" in stem.with_suffix(".md").read_text()
    assert "Headline" in p.stdout and "calls / kept" in p.stdout
    for method, result in report["methods"].items():
        kept = read_records(stem.parent / f"bench.{method}.jsonl")
        assert len(kept) == result["kept"] == result["attempted"] == 2  # scripted: all pass
        for record in kept:
            assert_contract(record, kept=True, method=method)
        lines = [x for x in p.stderr.splitlines() if x.startswith(f"{method} ")]
        assert [x.split(":")[0] for x in lines] == [f"{method} 1/2", f"{method} 2/2"]
        assert all(" kept; " in x and " calls, " in x for x in lines)
    assert not list(stem.parent.glob("*.part"))


def test_bench_bad_input_is_one_line(tmp_path: Path) -> None:
    cases = ((("--subtasks", "x"), "--subtasks"), (("--tools", "bogus:y"), "unknown tool spec"))
    for args, words in cases:
        cmd = [*_cmd(tmp_path / "bench"), *args]
        p = subprocess.run(cmd, text=True, capture_output=True, timeout=120)
        assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr
        lines = [x for x in p.stderr.splitlines() if x.strip()]
        assert len(lines) == 1 and lines[0].startswith("error:") and words in lines[0]


def test_ctrl_c_keeps_the_finished_dialogues_and_exits_130(tmp_path: Path) -> None:
    stem = tmp_path / "bench"
    kept = tmp_path / "bench.naig.jsonl"
    stale = tmp_path / "bench.mas.jsonl"
    stale.write_text("an earlier benchmark's dialogues\n")
    proc = subprocess.Popen(_cmd(stem, n=20, delay="0.05"), text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (kept.exists() and kept.read_text().count("\n") >= 1):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the benchmark wrote nothing in time"
        time.sleep(0.05)  # polling an observable: the output file
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    records = read_records(kept)
    assert 1 <= len(records) < 20
    assert [r.id for r in records] == sorted(r.id for r in records)
    assert not stem.with_suffix(".json").exists()
    assert not stale.exists() and not list(tmp_path.glob("*.part"))
