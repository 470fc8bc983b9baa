"""Accounting: who asked for what, and what it cost.

Each dialogue runs with its own ``Ledger`` in a context variable; the ``AccountedLLM``
wrapper charges every completion to the current ledger under the request's stage, and
to the run's totals, telling calls that reached a model from cache hits.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar

from naig.dialogue import StageUsage, Usage
from naig.llm.base import LLM, Completion, Request, Wrapper
from naig.llm.pricing import Price, cost


class Ledger:
    """The LLM work for one dialogue, per stage, as first measured (cache hits included)."""

    def __init__(self) -> None:
        self.by_stage: dict[str, StageUsage] = {}

    def charge(self, stage: str, c: Completion) -> None:
        u = self.by_stage.setdefault(stage or "other", StageUsage())
        u.add(StageUsage(calls=1, prompt_tokens=c.prompt_tokens,
                         completion_tokens=c.completion_tokens,
                         cached_prompt_tokens=c.cached_prompt_tokens, seconds=c.seconds))

    def usage(self, price: Price | None = None) -> Usage:
        """Totals and stages; with a price, each priced in USD."""
        total = Usage(by_stage={k: v.model_copy() for k, v in sorted(self.by_stage.items())})
        for u in total.by_stage.values():
            u.seconds = round(u.seconds, 3)
            if price is not None:
                u.cost_usd = round(cost(u, price), 6)
            total.add(u)
        total.seconds = round(total.seconds, 3)
        total.cost_usd = round(total.cost_usd, 6)
        return total


class RunTotals:
    """What the run itself spent: new calls and cache hits, apart."""

    def __init__(self) -> None:
        self.new = Ledger()
        self.cached = Ledger()


_ledger: ContextVar[Ledger | None] = ContextVar("naig_ledger", default=None)


@contextlib.contextmanager
def ledger(book: Ledger | None = None) -> Iterator[Ledger]:
    """Charge the LLM work done inside the block (in this task) to ``book`` (a fresh
    ledger where not given)."""
    book = Ledger() if book is None else book
    token = _ledger.set(book)
    try:
        yield book
    finally:
        _ledger.reset(token)


class AccountedLLM(Wrapper):
    def __init__(self, inner: LLM, totals: RunTotals | None = None):
        super().__init__(inner)
        self.totals = totals or RunTotals()

    async def complete(self, request: Request) -> Completion:
        c = await self.inner.complete(request)
        book = _ledger.get()
        if book is not None:
            book.charge(request.stage, c)
        (self.totals.cached if c.cached else self.totals.new).charge(request.stage, c)
        return c
