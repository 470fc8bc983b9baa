"""A trace of every request and answer, for reading what the model was asked.

``TracedLLM`` appends one JSON line per call (cache hits included) to a file: the stage,
the messages, the schema, the answer and what it cost. It is the outermost wrapper, so it
sees what the stages asked; ``NAIG_TRACE=path`` turns it on for any command.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from naig.llm.base import LLM, Completion, Request, Wrapper

TRACE_VARIABLE = "NAIG_TRACE"


class TracedLLM(Wrapper):
    def __init__(self, inner: LLM, path: Path):
        super().__init__(inner)
        self.path = path

    async def complete(self, request: Request) -> Completion:
        answer = await self.inner.complete(request)
        line = {"stage": request.stage, "messages": [m.model_dump() for m in request.messages],
                "schema": request.schema_, "text": answer.text, "cached": answer.cached,
                "prompt_tokens": answer.prompt_tokens,
                "cached_prompt_tokens": answer.cached_prompt_tokens,
                "completion_tokens": answer.completion_tokens, "seconds": answer.seconds}
        with self.path.open("a", encoding="utf-8") as f:
            f.write(json.dumps(line, ensure_ascii=False) + "\n")
        return answer


def traced(llm: LLM) -> LLM:
    """``llm`` traced to the file ``NAIG_TRACE`` names, if it is set."""
    where = os.environ.get(TRACE_VARIABLE)
    return TracedLLM(llm, Path(where)) if where else llm
