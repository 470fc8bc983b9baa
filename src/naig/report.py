"""The run summary as a rich table: counts, rejection reasons, LLM work per stage."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from naig.dialogue import StageUsage
from naig.llm.accounting import Ledger
from naig.runner import Summary


def _row(name: str, u: StageUsage, per: int) -> list[str]:
    per = max(per, 1)
    return [name, f"{u.calls}", f"{u.prompt_tokens}", f"{u.completion_tokens}",
            f"{u.seconds:.1f}", f"{u.calls / per:.1f}",
            f"{(u.prompt_tokens + u.completion_tokens) / per:.0f}", f"{u.seconds / per:.1f}"]


def usage_table(title: str, book: Ledger, per: int) -> Table:
    table = Table(title=title, title_justify="left")
    for col in ("stage", "calls", "prompt tok", "compl tok", "seconds",
                "calls/kept", "tok/kept", "s/kept"):
        table.add_column(col, justify="right" if col != "stage" else "left")
    for stage, u in sorted(book.by_stage.items()):
        table.add_row(*_row(stage, u, per))
    table.add_row(*_row("total", book.usage(), per), style="bold")
    return table


def print_summary(summary: Summary, console: Console, outputs: tuple[str, str]) -> None:
    s = summary
    rate = s.kept / s.attempted if s.attempted else 0.0
    console.print(f"[bold]kept {s.kept}[/] of {s.wanted} wanted, rejected {s.rejected}; "
                  f"{s.attempted} attempted ({rate:.0%} kept) in {s.seconds:.1f} s")
    if s.resumed:
        console.print(f"resumed: {s.resumed} dialogues were already written by an earlier run")
    if s.earlier_spent.calls:
        e = s.earlier_spent
        cost = f", ${e.cost_usd:.4f}" if e.cost_usd else ""
        console.print(f"earlier runs on this output spent {e.calls} LLM calls "
                      f"({e.prompt_tokens + e.completion_tokens} tokens{cost}); spending "
                      "limits count it")
    if s.stopped:
        console.print(f"[yellow]stopped: {s.stopped}[/]")
    if s.out_of_attempts:
        console.print(f"[yellow]stopped at --max-attempts {s.attempts_allowed} with fewer kept "
                      "than wanted[/]")
    if s.reasons:
        console.print("rejections by first failed check: " + ", ".join(
            f"{k} {v}" for k, v in s.reasons.most_common()))
    if s.judge.calls:
        console.print(s.judge.describe())
    console.print(usage_table("LLM work of all attempts (as first measured)", s.all_usage,
                              s.kept))
    new, hits = s.new_calls.usage(s.price), s.cache_hits.usage()
    spent = f", ${new.cost_usd:.4f}" if s.price is not None and new.cost_usd else ""
    console.print(f"this run: {new.calls} new LLM calls ({new.prompt_tokens} prompt + "
                  f"{new.completion_tokens} completion tokens{spent}), {hits.calls} cache hits")
    if s.kept and s.price is not None:
        console.print(f"cost per kept dialogue (as first measured): "
                      f"${s.all_usage.usage(s.price).cost_usd / s.kept:.4f}")
    console.print(f"kept: {outputs[0]}\nrejected: {outputs[1]}")
