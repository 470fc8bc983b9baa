"""The prompt templates: each renders, each has a hash that is part of the cache key, and
the words the checks guard come from them."""

from __future__ import annotations

from importlib import resources

import pytest

from naig.prompts import _load, placeholders, render, render_text

TEMPLATES = sorted(f.name.removesuffix(".j2") for f in resources.files("naig.prompts").iterdir()
                   if f.name.endswith(".j2"))


def test_every_template_is_found_and_has_a_distinct_hash() -> None:
    assert {"system", "frame", "skeleton", "judge", "expert_question", "retry"} <= set(TEMPLATES)
    hashes = [_load(name)[1] for name in TEMPLATES]
    assert len(set(hashes)) == len(hashes) and all(len(h) == 16 for h in hashes)


def test_a_chat_template_splits_into_its_parts_and_a_missing_variable_is_an_error() -> None:
    import jinja2

    messages, digest = render("judge", frame="F", transcript="[1] user: hi", kind="reply",
                              a="A-text", b="B-text")
    assert [m.role for m in messages] == ["system", "user"] and messages[0].content == "F"
    assert "A: A-text" in messages[1].content and digest == _load("judge")[1]
    with pytest.raises(jinja2.UndefinedError):  # StrictUndefined: no silent empty prompt
        render("judge", frame="F")


def test_the_default_system_prompt_and_the_experts_come_from_templates() -> None:
    assert render_text("system").startswith("You are a helpful assistant.")
    asked = render_text("expert_question", name="expert_arguments_grounded",
                        unshown=["[2] f: x = 7"])
    assert "Look hardest at these values" in asked and "[2] f: x = 7" in asked
    assert "[MASK]" in placeholders()
