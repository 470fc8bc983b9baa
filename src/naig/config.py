"""Typed settings of a run. Defaults follow METHOD.md; ``[ours]`` marks our choices."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ADDED_LATER = ("subtask_tries",)
"""Settings added after runs were made with a version that did not have them."""


class MethodSettings(BaseModel):
    """Everything that shapes a dialogue, and so is part of the configuration hash."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    subtasks_min: int = Field(2, ge=1)
    """Fewest subtasks per task (paper: 2)."""
    subtasks_max: int = Field(5, ge=1)
    """Most subtasks per task (paper: 5)."""
    steps_min: int = Field(1, ge=1)
    """Fewest tool-calling steps per subtask (paper: 1)."""
    steps_max: int = Field(6, ge=1)
    """Most tool-calling steps per subtask (paper: 6)."""
    tools_min: int = Field(3, ge=1)
    """[ours] Fewest candidate tools from the dialogue's family."""
    tools_max: int = Field(8, ge=1)
    """[ours] Most candidate tools from the dialogue's family."""
    distractors_max: int = Field(3, ge=0)
    """[ours] Most unrelated tools added as distractors."""
    calls_per_step: int = Field(1, ge=1, le=5)
    """[ours] Most calls the assistant makes at once (parallel calls), in both methods. At 1
    a call that needs another's result must wait for it, as it should: a small model given
    room puts a search and the booking that needs its result into one step."""
    injections_min: int = Field(1, ge=0, le=4)
    """Fewest complexity-injection types per dialogue (paper: 1)."""
    injections_max: int = Field(3, ge=0, le=4)
    """Most complexity-injection types per dialogue (paper: 3)."""
    refine_steps: int = Field(5, ge=0)
    """Reasonability-refinement steps (paper's default: 5)."""
    repair_rounds: int = Field(1, ge=0, le=3)
    """[ours] Rounds of targeted repair a dialogue that fails verification gets before it
    is rejected: the turns the failed checks blame are rewritten, and verification runs
    again if a rewrite was kept."""
    masks_per_step: int = Field(2, ge=1)
    """[ours] Turns masked per refinement step (fewer for short dialogues)."""
    decay: float = Field(0.5, gt=0, le=1)
    """[ours] A turn's selection weight is decay**k after k selections."""
    flag_boost: float = Field(4.0, ge=1)
    """[ours] A turn a rule check blames is this many times likelier to be masked, and its
    rewrite is told the problem."""
    judge: Literal["auto", "on", "off"] = "auto"
    """[ours] The refinement judge (the candidate must win in both orders): ``auto`` asks it
    only where it passes the run's calibration (known pairs, asked once); ``off`` never asks it,
    so only a rewrite that fixes a failing check is kept."""
    experts: bool = True
    """Run the model-based expert panel in verification."""
    temperature: float = Field(0.7, ge=0)
    """Sampling temperature of generation calls (judges and experts use 0)."""
    attempts_per_output: int = Field(3, ge=1)
    """Tries for one structured output, the validation error fed back each time."""
    subtask_tries: int = Field(2, ge=1)
    """[ours] Tries at one subtask's skeleton: a subtask one of whose parts finds no valid
    answer is undone (on executing tools, replayed away) and written again from its
    request, rather than the whole attempt lost with the plan and the subtasks before it
    (most skeleton failures on executing tools came in a second subtask)."""
    mas_max_turns: int | None = Field(None, ge=2)
    """[ours] MAS baseline only: most assistant actions (a call or a reply) per subtask;
    by default the subtask's planned steps plus its reply, as NAIG gets. The last one
    allowed must be a reply, so a runaway subtask still ends on the assistant."""

    def as_written(self) -> dict[str, Any]:
        """The settings as run manifests and the configuration hash record them: one added
        after runs were made (``ADDED_LATER``) only where it is not at its default, so the
        same settings keep the hash an earlier version wrote, and its runs resume."""
        dump = self.model_dump()
        return {k: v for k, v in dump.items()
                if k not in ADDED_LATER or v != type(self).model_fields[k].default}


class RunConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tools: tuple[str, ...]
    """Tool specs (files, ``builtin[:name]``)."""
    n: int = Field(ge=1)
    """Kept dialogues wanted."""
    output: Path
    """Where kept dialogues go (JSONL); rejected ones go beside it."""
    model: str = "local"
    """``local``, ``local:<name>`` or ``openai:<model>``."""
    method: str = "naig"
    """The generation method (``--method``): ``naig`` (ToolACE-MT) or ``mas`` (the
    turn-by-turn baseline)."""
    base_url: str | None = None
    """OpenAI-compatible server URL for ``openai:`` models; several, comma-separated, are
    load-balanced."""
    seed: int = 0
    """Run seed; each dialogue's seed is derived from it with sha256."""
    max_attempts: int | None = Field(None, ge=1)
    """Dialogues attempted at most (default 3n)."""
    concurrency: int = Field(1, ge=1)
    """Dialogues generated at once; HTTP backends get up to this many requests in flight."""
    cache: bool = True
    """Use the persistent response cache."""
    cache_path: Path | None = None
    """Cache file (default: the user cache folder)."""
    settings: MethodSettings = MethodSettings()
    """How the method shapes dialogues (sizes, refinement, verification)."""
    max_cost: float | None = Field(None, gt=0)
    """Stop cleanly once the run's new LLM calls cost this many USD."""
    max_tokens: int | None = Field(None, gt=0)
    """Stop cleanly once the run's new LLM calls used this many tokens."""
    prices: Path | None = None
    """A JSON or TOML price table (USD per million tokens) overriding the built-in one."""

    @property
    def attempts(self) -> int:
        return self.max_attempts if self.max_attempts is not None else 3 * self.n

    @property
    def rejected_output(self) -> Path:
        return self.output.with_name(self.output.stem + ".rejected" + self.output.suffix)

    def shaping(self) -> dict[str, Any]:
        """The settings that decide what the dialogues are (not how many or how fast), as
        run manifests record them and ``config_hash`` hashes them. The keys are the ones
        earlier versions wrote (method was "generator", settings "method"): the same
        settings keep the same hash, and their runs resume."""
        return {"tools": list(self.tools), "model": self.model, "seed": self.seed,
                "generator": self.method, "method": self.settings.as_written()}

    def config_hash(self) -> str:
        """Hash of what shapes the dialogues (not where they go or how fast)."""
        blob = json.dumps(self.shaping(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def derive_seed(*parts: object) -> int:
    """A 63-bit seed from any parts, stable across processes (never ``hash()``)."""
    blob = ":".join(str(p) for p in parts).encode()
    return int(hashlib.sha256(blob).hexdigest()[:16], 16) >> 1
