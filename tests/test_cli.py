"""Bad input: a one-line error that says what to fix, a non-zero exit, no traceback."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from naig.envs.registry import resolve
from naig.errors import ConfigError
from naig.pools import load_file
from naig.tools import MAX_SCHEMA_CHARS, tool_from_dict


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
    ("{}", ("tool 1", "non-empty string 'name'")),
    ('[{"name": "book hotel!"}]', ("tool 1", "'book hotel!'", "letters, digits")),
    ("[]", ("no tools found",)),
    ("42", ("expected a list of tools",)),
    ('[{"name": "f", "parameters": {"type": "string"}}]', ("(f)", "type 'object'")),
    ('[{"name": "f", "parameters": {"type": "object"}}, {"name": "f", "description": "other"}]',
     ("tools 1 and 2", "'f'", "rename one")),
    ('[{"name": "f", "parameters": {"type": "object", "properties": {"a": '
     '{"$ref": "#/properties/a"}}}}]', ("(f)", "recursive $ref")),
    ('[{"name": "f", "parameters": {"type": "object", "properties": {"a": '
     '{"$ref": "#/$defs/missing"}}}}]', ("(f)", "points to nothing")),
    ('[{"name": "f", "parameters": {"type": "object", "properties": {"a": '
     '{"$ref": "https://example.com/s.json"}}}}]', ("(f)", "points outside")),
    (b'[{"name": "caf\xe9"}]', ("not UTF-8", "0xe9")),
    (json.dumps([{"name": "big", "parameters": {"type": "object", "properties": {
        f"p{i}": {"type": "string", "description": "y" * 60} for i in range(400)}}}]),
     ("(big)", "characters of JSON", "under 20,000")),
])
def test_bad_tool_file(tmp_path: Path, content: str | bytes | None,
                       words: tuple[str, ...]) -> None:
    tools = tmp_path / "tools.json"
    if isinstance(content, bytes):
        tools.write_bytes(content)
    elif content is not None:
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


def test_a_tool_given_twice_alike_is_taken_once(tmp_path: Path) -> None:
    tool = {"name": "f", "description": "d", "parameters": {"type": "object"}}
    (tmp_path / "tools.json").write_text(json.dumps([tool, tool]))
    assert [t.name for t in load_file(tmp_path / "tools.json")] == ["f"]


def test_a_byte_order_mark_is_fine(tmp_path: Path) -> None:
    (tmp_path / "tools.json").write_bytes(b"\xef\xbb\xbf" + json.dumps([{"name": "f"}]).encode())
    assert [t.name for t in load_file(tmp_path / "tools.json")] == ["f"]


def test_a_recursive_schema_through_defs_is_refused_and_a_shared_def_is_fine() -> None:
    shared = {"$ref": "#/$defs/s"}
    leaf = {"type": "object", "properties": {"x": shared, "y": shared},
            "$defs": {"s": {"type": "string"}}}
    assert tool_from_dict({"name": "ok", "parameters": leaf}, "here").name == "ok"
    loop = {"type": "object", "properties": {"t": {"$ref": "#/$defs/a"}},
            "$defs": {"a": {"type": "object", "properties": {"b": {"$ref": "#/$defs/b"}}},
                      "b": {"type": "array", "items": {"$ref": "#/$defs/a"}}}}
    with pytest.raises(ConfigError, match="recursive"):
        tool_from_dict({"name": "tree", "parameters": loop}, "here")


def test_the_largest_real_tools_fit_the_schema_limit() -> None:
    for spec in ("tau2:airline", "bfcl:TravelAPI"):
        assert max(len(json.dumps(t.parameters)) for t in resolve(spec).pool) < MAX_SCHEMA_CHARS


BAD_GENERATE_FLAGS = [
    (("-n", "0"), "-n"),
    (("--concurrency", "0"), "--concurrency"),
    (("--max-attempts", "0"), "max_attempts"),
    (("--max-cost", "-1"), "max_cost"),
    (("--max-tokens", "-5"), "max_tokens"),
    (("--refine-steps", "-1"), "refine_steps"),
    (("--repair-rounds", "9"), "repair_rounds"),
    (("--subtasks", "5-2"), "--subtasks"),
    (("--steps", "abc"), "--steps"),
    (("--judge", "maybe"), "judge"),
    (("--method", "foo"), "unknown method 'foo'"),
    (("--engine", "cloud"), "--engine cloud"),
    (("--shards", "2"), "--engine ray"),
    (("--resume", "--overwrite"), "contradict"),
    (("--prices", "missing.json"), "cannot read the prices file"),
    (("--prices", "prices.txt"), ".json or .toml"),
    (("--prices", "broken.json"), "does not parse"),
    (("--resume", "-o", "fresh.jsonl"), "nothing to resume"),
    (("-o", "afile/out.jsonl"), "afile is a file"),
    (("-o", "adir"), "is a folder"),
    (("-o", "/dev/null"), "not a regular file"),
    (("-o", "other.jsonl"), "already has data from another run"),
    (("-o", "out.jsonl", "--seed", "9"), "other settings"),
]


def test_bad_flags_are_refused_before_any_work_and_earlier_output_stays(tmp_path: Path) -> None:
    first = naig("generate", "-t", "builtin", "--model", "scripted:0", "--no-cache", "-n", "1",
                 "--refine-steps", "1", "-o", "out.jsonl", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    (tmp_path / "afile").write_text("x")
    (tmp_path / "adir").mkdir()
    (tmp_path / "prices.txt").write_text("{}")
    (tmp_path / "broken.json").write_text("{bad")
    (tmp_path / "other.jsonl").write_text('{"id": "x"}\n')
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    for flags, words in BAD_GENERATE_FLAGS:
        out = ("-o", "out.jsonl") if "-o" not in flags else ()
        _assert_clean_error(naig("generate", "-t", "builtin", "--model", "scripted:0",
                                 "--no-cache", "--refine-steps", "1", *out, *flags,
                                 cwd=tmp_path), 2, words)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before
    assert not list((tmp_path / "adir").iterdir())
