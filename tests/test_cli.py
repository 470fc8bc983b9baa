"""Bad input: a one-line error that says what to fix, a non-zero exit, no traceback."""

import subprocess
import sys
from pathlib import Path

import pytest


def naig(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "naig.cli", *args], cwd=cwd, text=True,
                          capture_output=True, timeout=120)


def _assert_clean_error(p: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert p.returncode == code, (p.returncode, p.stderr)
    assert "Traceback" not in p.stderr
    lines = [line for line in p.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), p.stderr
    for w in words:
        assert w in lines[0], (w, lines[0])


@pytest.mark.parametrize(("content", "words"), [
    (None, ("does not exist",)),
    ("{not json", ("not JSON",)),
    ('[{"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": 7}}}}]',
     ("invalid JSON Schema", "(f)")),
    ('[{"description": "nameless"}]', ("name",)),
])
def test_bad_tool_file(tmp_path: Path, content: str | None, words: tuple[str, ...]) -> None:
    tools = tmp_path / "tools.json"
    if content is not None:
        tools.write_text(content)
    _assert_clean_error(naig("generate", "--tools", str(tools), "-n", "1", cwd=tmp_path),
                        2, *words)


def test_bad_flags(tmp_path: Path) -> None:
    _assert_clean_error(naig("generate", "--tools", "builtin", "--model", "nope:x", cwd=tmp_path),
                        2, "unknown model")
    _assert_clean_error(naig("generate", "--tools", "bogus:thing", cwd=tmp_path),
                        2, "unknown tool spec")
    _assert_clean_error(naig("generate", "--tools", "builtin", "--steps", "3-1", cwd=tmp_path),
                        2, "--steps")
    _assert_clean_error(naig("generate", "--tools", "builtin:nope", cwd=tmp_path),
                        2, "no built-in pool")
    _assert_clean_error(naig("generate", "--tools", "builtin", "--model", "local:nope",
                             cwd=tmp_path), 2, "unknown local model")
