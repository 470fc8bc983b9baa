"""The command line: parse flags, build a config, call one library function, map errors
to exit codes. The only ``asyncio.run`` in the package is here."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.metadata
import json
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from naig import engines, methods
from naig.audit import Audit, audit
from naig.bench import BenchReport, bench
from naig.config import MethodSettings, RunConfig
from naig.contamination import RUN
from naig.dialogue import Record
from naig.engines import Placement
from naig.envs.registry import combine, resolve
from naig.errors import BudgetExhausted, ConfigError, NaigError
from naig.estimate import Estimate, estimate
from naig.export import export
from naig.llm.pricing import load_prices
from naig.llm.registry import open_backend
from naig.report import print_summary
from naig.runner import Summary, model_for, rejection_reason
from naig.store import check_output, iter_records
from naig.viewer import render_html

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Synthesize multi-turn tool-use dialogues (ToolACE-MT).",
                  context_settings={"help_option_names": ["-h", "--help"]})
err = Console(stderr=True)
out = Console()
STDOUT = Path("-")
"""``-o -``: write to standard output (export, view)."""


def _version(show: bool) -> None:
    if show:
        out.print(f"naig {importlib.metadata.version('naig')}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True,
                                                help="Show the version and exit.")] = False
          ) -> None:
    """Synthesize multi-turn tool-use dialogues (ToolACE-MT)."""


def _range(text: str, name: str) -> tuple[int, int]:
    lo, _, hi = text.partition("-")
    try:
        a, b = int(lo), int(hi or lo)
    except ValueError:
        raise ConfigError(f"--{name} takes N or MIN-MAX, got {text!r}") from None
    if a < 0 or b < a:
        raise ConfigError(f"--{name}: need 0 <= MIN <= MAX, got {text!r}")
    return a, b


async def _generate(config: RunConfig, *, overwrite: bool = False,
                    dry_run: int = 0, engine: str = "local", ray_address: str | None = None,
                    shards: int | None = None) -> Summary | Estimate:
    # Ctrl-C cancels this task; the runner stops cleanly and returns its summary
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGINT, main_task.cancel)
    with _progress(config.n) as show:
        if not dry_run:
            placement = Placement(ray_address, shards)
            return await engines.get(engine, placement)(config, show, overwrite, placement)
        async with model_for(config) as (llm, _):
            return await estimate(config, llm, combine(list(config.tools)), dry_run)


@contextlib.contextmanager
def _progress(n: int) -> Iterator[Callable[[Summary], None]]:
    """A progress bar shown from the first report on, so that an error found before the run
    starts (its output refused, say) is the only line printed."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())
    bar = Progress(*columns, console=err, transient=False)
    task = bar.add_task("kept 0, rejected 0", total=n)

    def show(s: Summary) -> None:
        if not bar.live.is_started:
            bar.start()
        bar.update(task, completed=s.kept,
                   description=f"done {s.attempted}: kept {s.kept}, rejected {s.rejected}")
    try:
        yield show
    finally:
        if bar.live.is_started:
            bar.stop()


def _preflight(config: RunConfig) -> None:
    """What can be refused before any work starts: an unknown method, a bad prices file, an
    output path no run can write to."""
    methods.get(config.method)
    load_prices(config.prices)
    check_output(config.output)


def _fail(e: BaseException) -> None:
    if isinstance(e, BaseExceptionGroup):
        inner = e.exceptions[0]
        return _fail(inner)
    if isinstance(e, ValidationError):
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        e = ConfigError(f"{where}: {first['msg']}")
    if isinstance(e, NaigError):
        err.print(f"[red]error:[/] {escape(str(e))}", soft_wrap=True, highlight=False)
        raise typer.Exit(e.exit_code)
    raise e


@app.command()
def generate(
    tools: Annotated[list[str], typer.Option("--tools", "-t", help="Tool spec: a JSON file, builtin[:pool], bfcl:<Class>, tau2:<domain>, mcp:<cmd>, python:<module>. Repeatable.")],
    n: Annotated[int, typer.Option("-n", help="Kept dialogues wanted.")] = 4,
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL; rejected go beside it.")] = Path("out.jsonl"),
    model: Annotated[str, typer.Option("--model", "-m", help="local, local:<name>, openai:<model> (add ?schema=json_object for llama.cpp servers).")] = "local",
    base_url: Annotated[list[str] | None, typer.Option(help="OpenAI-compatible server URL (or OPENAI_BASE_URL); several (repeated or comma-separated) are load-balanced.")] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    max_attempts: Annotated[int | None, typer.Option(help="Most dialogues attempted (default 3n).")] = None,
    concurrency: Annotated[int, typer.Option(help="Dialogues generated at once.")] = 1,
    refine_steps: Annotated[int, typer.Option(help="Refinement steps per dialogue.")] = 5,
    subtasks: Annotated[str, typer.Option(help="Subtasks per task, MIN-MAX.")] = "2-5",
    steps: Annotated[str, typer.Option(help="Tool-calling steps per subtask, MIN-MAX.")] = "1-6",
    injections: Annotated[str, typer.Option(help="Injection types per dialogue, MIN-MAX.")] = "1-3",
    experts: Annotated[bool, typer.Option(help="Run the model-based expert panel.")] = True,
    judge: Annotated[str, typer.Option(help="Refinement judge: auto (asked where it passes a calibration on known pairs, once per run), on, off (keep only rewrites that fix a failing check).")] = "auto",
    repair_rounds: Annotated[int, typer.Option(help="Repair rounds for a dialogue that fails verification, before it is rejected.")] = 1,
    cache: Annotated[bool, typer.Option(help="Use the persistent response cache.")] = True,
    cache_path: Annotated[Path | None, typer.Option(help="Cache file (default: user cache folder).")] = None,
    method: Annotated[str, typer.Option("--method", help="Generation method: naig or mas (the baseline).")] = "naig",
    resume: Annotated[bool, typer.Option(help="Continue the run that wrote -o (also the default when its settings match).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Discard what an earlier run wrote to -o.")] = False,
    max_cost: Annotated[float | None, typer.Option(help="Stop cleanly once new LLM calls cost this many USD.")] = None,
    max_tokens: Annotated[int | None, typer.Option(help="Stop cleanly once new LLM calls used this many tokens.")] = None,
    prices: Annotated[Path | None, typer.Option(help="Price table (JSON/TOML, USD per million tokens).")] = None,
    dry_run: Annotated[int, typer.Option(help="Estimate the run's cost from a sample of this many dialogues; write nothing.")] = 0,
    engine: Annotated[str, typer.Option(help="Where the work runs: local (this process) or ray (a Ray cluster, in shards).")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="With --engine ray: the cluster to join (auto: the one this machine is in); default: start a local one.")] = None,
    shards: Annotated[int | None, typer.Option(help="With --engine ray: shards of attempts (default: the cluster's CPU count).")] = None,
) -> None:
    """Generate verified multi-turn tool-use dialogues."""
    try:
        settings = _settings(subtasks, steps, injections, refine_steps=refine_steps,
                             experts=experts, judge=judge, repair_rounds=repair_rounds)
        _check_run_flags(output, n=n, concurrency=concurrency, resume=resume,
                         overwrite=overwrite, engine=engine, ray_address=ray_address,
                         shards=shards)
        config = RunConfig(tools=tuple(tools), n=n, output=output, model=model, method=method,
                           base_url=",".join(base_url) if base_url else None, seed=seed,
                           max_attempts=max_attempts,
                           concurrency=concurrency, cache=cache, cache_path=cache_path,
                           max_cost=max_cost, max_tokens=max_tokens, prices=prices,
                           settings=settings)
        _preflight(config)
        result = asyncio.run(_generate(config, overwrite=overwrite, dry_run=dry_run,
                                       engine=engine, ray_address=ray_address, shards=shards))
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished dialogues are in the output files")
        raise typer.Exit(130) from None
    except typer.Exit:
        raise
    except BaseException as e:  # noqa: BLE001 - mapped to exit codes, tracebacks only for bugs
        _fail(e)
        return
    if isinstance(result, Estimate):
        for line in result.lines(config.n):
            out.print(line, highlight=False, soft_wrap=True)
        return
    summary = result
    print_summary(summary, out, (str(config.output), str(config.rejected_output)))
    _exit_for(summary)


def _settings(subtasks: str, steps: str, injections: str, **settings: object) -> MethodSettings:
    """The settings that shape a dialogue, from the flags' MIN-MAX ranges and the rest."""
    (s_lo, s_hi), (p_lo, p_hi), (i_lo, i_hi) = (
        _range(subtasks, "subtasks"), _range(steps, "steps"), _range(injections, "injections"))
    return MethodSettings.model_validate(settings | {
        "subtasks_min": max(1, s_lo), "subtasks_max": max(1, s_hi),
        "steps_min": max(1, p_lo), "steps_max": max(1, p_hi),
        "injections_min": min(i_lo, 4), "injections_max": min(i_hi, 4)})


def _check_run_flags(output: Path, *, n: int, concurrency: int, resume: bool, overwrite: bool,
                     engine: str, ray_address: str | None, shards: int | None) -> None:
    """Refuse flags that contradict each other or this machine's state."""
    if n < 1 or concurrency < 1:
        raise ConfigError("-n and --concurrency must be at least 1")
    if resume and overwrite:
        raise ConfigError("--resume and --overwrite contradict each other; choose one")
    engines.get(engine, Placement(ray_address, shards))  # before any work
    if resume and not output.with_name(output.stem + ".run.json").exists():
        raise ConfigError(f"nothing to resume: no earlier run wrote {output}")


def _exit_for(summary: Summary) -> None:
    """The exit code of a finished run: 130 interrupted, 5 stopped by a spending limit, 1
    nothing kept, else 0."""
    if summary.interrupted:
        err.print("[yellow]interrupted[/]: finished dialogues are kept; run the same command "
                  "again to resume", soft_wrap=True)
        raise typer.Exit(130)
    if summary.stopped:
        raise typer.Exit(BudgetExhausted.exit_code)
    if summary.kept == 0:
        raise typer.Exit(1)


@app.command("bench")
def bench_command(
    tools: Annotated[list[str], typer.Option("--tools", "-t", help="Tool spec (as for generate).")] = ["builtin"],  # noqa: B006
    n: Annotated[int, typer.Option("-n", help="Dialogues attempted per method (the same seeds).")] = 2,
    output: Annotated[Path, typer.Option("-o", "--output", help="Report stem: writes STEM.json, STEM.md and each method's dialogues.")] = Path("out/bench"),
    model: Annotated[str, typer.Option("--model", "-m", help="local, local:<name>, openai:<model>.")] = "local",
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
    seed: Annotated[int, typer.Option(help="Run seed.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Dialogues at once, per method.")] = 1,
    refine_steps: Annotated[int, typer.Option(help="Refinement steps (naig).")] = 5,
    subtasks: Annotated[str, typer.Option(help="Subtasks per task, MIN-MAX.")] = "2-5",
    steps: Annotated[str, typer.Option(help="Tool-calling steps per subtask, MIN-MAX.")] = "1-6",
    experts: Annotated[bool, typer.Option(help="Run the expert panel.")] = True,
    judge: Annotated[str, typer.Option(help="Refinement judge (naig): auto, on, off.")] = "auto",
    methods: Annotated[list[str], typer.Option("--method", help="A method to run (repeatable): naig, mas.")] = ["naig", "mas"],  # noqa: B006
) -> None:
    """Compare NAIG with the multi-agent-simulation baseline on the same seeds and model."""
    try:
        (s_lo, s_hi), (p_lo, p_hi) = _range(subtasks, "subtasks"), _range(steps, "steps")
        settings = MethodSettings(subtasks_min=max(1, s_lo), subtasks_max=max(1, s_hi),
                                  steps_min=max(1, p_lo), steps_max=max(1, p_hi),
                                  refine_steps=refine_steps, experts=experts,
                                  judge=judge)
        config = RunConfig(tools=tuple(tools), n=n, output=output.with_suffix(".jsonl"),
                           model=model, base_url=base_url, seed=seed, concurrency=concurrency,
                           cache=False, settings=settings)

        async def go() -> BenchReport:
            main_task = asyncio.current_task()
            assert main_task is not None
            asyncio.get_running_loop().add_signal_handler(signal.SIGINT, main_task.cancel)
            backend = open_backend(config.model, config.base_url)
            try:
                return await bench(config, backend, combine(list(config.tools)), methods,
                                   progress=_bench_line)
            finally:
                await backend.aclose()
        report = asyncio.run(go())
    except asyncio.CancelledError:
        err.print(f"interrupted: the dialogues finished so far are in {output.parent}/"
                  f"{output.stem}.<method>[.rejected].jsonl; no report written",
                  highlight=False)
        raise typer.Exit(130) from None
    except BaseException as e:  # noqa: BLE001
        _fail(e)
        return
    out.print(report.rich())
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".json").write_text(json.dumps(report.to_dict(), indent=1))
    output.with_suffix(".md").write_text(report.to_markdown())
    out.print(f"report: {output.with_suffix('.json')}, {output.with_suffix('.md')}",
              highlight=False)


def _bench_line(method: str, record: Record, done: int, total: int) -> None:
    """One line per finished attempt, readable in a terminal and in a log file."""
    v, u = record.meta.verification, record.meta.usage
    verdict = "kept" if v is not None and v.passed else f"rejected ({rejection_reason(record)})"
    err.print(f"{method} {done}/{total}: {record.id} {verdict}; {u.calls} calls, "
              f"{u.prompt_tokens + u.completion_tokens:,} tokens, {u.seconds:.0f} s",
              highlight=False)


@app.command("verify")
def verify_command(
    path: Annotated[Path, typer.Argument(help="A JSONL file of naig records.")],
    model: Annotated[str | None, typer.Option("--model", "-m", help="Also run the expert panel with this model.")] = None,
    base_url: Annotated[str | None, typer.Option(help="OpenAI-compatible server URL.")] = None,
) -> None:
    """Check written dialogues again: rules, and replay against rebuilt start states."""
    skipped: list[str] = []

    async def go() -> Audit:
        llm = open_backend(model, base_url) if model else None
        try:
            return await audit(list(iter_records(path, skipped)), llm)
        finally:
            if llm is not None:
                await llm.aclose()
    try:
        result = asyncio.run(go())
    except BaseException as e:  # noqa: BLE001
        _fail(e)
        return
    _say_skipped(skipped)
    for rid, v in result.verdicts:
        if not v.passed:
            first = v.failed[0]
            out.print(f"{rid}: {first.name}: {escape(first.detail)}", soft_wrap=True,
                      highlight=False)
    out.print(f"{result.passed} of {result.checked} passed"
              + ("; failed checks: " + ", ".join(f"{k} {n}" for k, n in
                                                 result.failures.most_common())
                 if result.failures else ""), highlight=False)
    if result.passed < result.checked:
        raise typer.Exit(1)


@app.command("export")
def export_command(
    path: Annotated[Path, typer.Argument(help="A JSONL file of naig records.")],
    fmt: Annotated[str, typer.Option("--format", "-f", help="openai ({messages, tools}, arguments as JSON strings), hf (arguments as objects: chat templates, TRL), sharegpt (LLaMA-Factory), hermes (<tool_call> tags), swift (ms-swift's agent layout), bfcl (BFCL multi-turn test entries with ground truth, for dialogues made on bfcl: classes) or dpo (preference pairs from refinement and repair: prompt, chosen, rejected).")] = "openai",
    output: Annotated[Path, typer.Option("-o", "--output", help="Output JSONL, or a .parquet file (Hugging Face datasets loads it; tools and call arguments as JSON text; pip install 'naig[parquet]'); - for standard output.")] = Path("export.jsonl"),
    include_rejected: Annotated[bool, typer.Option(help="Export rejected dialogues too.")] = False,
    weights: Annotated[bool, typer.Option(help="openai and hf: a training weight on each assistant turn, 0 where a failed check blames it (OpenAI's fine-tuning weight; Axolotl: message_field_training: weight). Useful with --include-rejected.")] = False,
    dedup: Annotated[bool, typer.Option(help="Leave out dialogues that nearly repeat an earlier one (MinHash; pip install 'naig[dedup]').")] = False,
) -> None:
    """Convert dialogues into a fine-tuning framework's format."""
    skipped: list[str] = []
    try:
        done = export(iter_records(path, skipped), fmt, output,
                      include_rejected=include_rejected, dedup=dedup, weights=weights)
    except BaseException as e:  # noqa: BLE001
        _fail(e)
        return
    _say_skipped(skipped)
    say = err if output == STDOUT else out  # the data owns standard output
    rows = "preference pairs" if fmt == "dpo" else "dialogues"
    say.print(f"{done.written} {rows} written to {output} ({fmt})", highlight=False)
    if done.duplicates:
        shown = ", ".join(f"{k} (repeats {v})" for k, v in list(done.duplicates.items())[:3])
        err.print(f"left out {len(done.duplicates)} near-duplicate dialogue(s): {shown}"
                  + (" ..." if len(done.duplicates) > 3 else ""), highlight=False,
                  soft_wrap=True)
    if done.benchmarks:
        checked = " and ".join(done.benchmarks)
        if done.copied:
            shown = "; ".join(f"{k}: {why}" for k, why in list(done.copied.items())[:3])
            err.print(f"{len(done.copied)} of {done.written} dialogue(s) repeat {checked} test "
                      f"tasks word for word: {escape(shown)}", soft_wrap=True, highlight=False)
        else:
            say.print(f"none repeats {checked} test tasks ({RUN} words in a row)",
                      highlight=False)
    if done.lossy:
        err.print(f"{len(done.lossy)} dialogue(s) lost text an assistant wrote beside its calls, "
                  f"which {fmt} cannot hold: {', '.join(done.lossy[:3])}"
                  + (" ..." if len(done.lossy) > 3 else ""), highlight=False, soft_wrap=True)
    if done.rejected:
        err.print(f"left out {done.rejected} rejected dialogue(s); --include-rejected adds "
                  "them", highlight=False)
    if done.skipped:
        shown = "; ".join(f"{k}: {why}" for k, why in list(done.skipped.items())[:3])
        more = f" and {len(done.skipped) - 3} more" if len(done.skipped) > 3 else ""
        err.print(f"skipped {len(done.skipped)} that {fmt} cannot express: {escape(shown)}"
                  f"{more}", soft_wrap=True, highlight=False)


@app.command("view")
def view_command(
    paths: Annotated[list[Path], typer.Argument(help="JSONL files of naig records (kept and rejected, or several runs), or plain chat files.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Output HTML page; - for standard output.")] = Path("report.html"),
) -> None:
    """Write the dialogues as one self-contained HTML page (overview, search), to read them by eye."""
    skipped: list[str] = []
    try:
        page = render_html([(p.name, iter_records(p, skipped)) for p in paths],
                           title=", ".join(p.name for p in paths))
        if output == STDOUT:
            sys.stdout.write(page)
            _say_skipped(skipped)
            return
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(page, "utf-8")
        except OSError as e:
            raise ConfigError(f"cannot write {output}: {e.strerror or e}") from None
    except BaseException as e:  # noqa: BLE001
        _fail(e)
        return
    _say_skipped(skipped)
    out.print(f"wrote {output}", highlight=False)


def _say_skipped(skipped: list[str]) -> None:
    """Name the lines of an input file that were not records (passed over, not fatal)."""
    if skipped:
        more = f" (and {len(skipped) - 3} more)" if len(skipped) > 3 else ""
        err.print(f"skipped {len(skipped)} line(s) that are not naig records: "
                  f"{escape('; '.join(skipped[:3]))}{more}", soft_wrap=True, highlight=False)


tools_app = typer.Typer(help="Inspect tool specs.")
app.add_typer(tools_app, name="tools")


@tools_app.command("list")
def tools_list(
    spec: Annotated[str | None, typer.Argument(help="A tool spec; none lists the kinds of spec.")] = None,
) -> None:
    """Show what a tool spec yields: tool names, descriptions, where state comes from."""
    if spec is None:
        for line in SPEC_HELP:
            out.print(line, highlight=False, soft_wrap=True)
        return
    try:
        source = resolve(spec)
    except BaseException as e:  # noqa: BLE001
        _fail(e)
        return
    table = Table(title=f"{spec}: {len(source.pool)} tools, state {source.state}",
                  title_justify="left")
    table.add_column("tool")
    table.add_column("family")
    table.add_column("description")
    for t in source.pool:
        table.add_row(t.name, t.family, t.summary.split("\n")[0][:100])
    out.print(table)


SPEC_HELP = (
    "builtin[:travel|shop|office]   built-in schemas; results simulated by the LLM",
    "<file>.json / <file>.jsonl     OpenAI-format tools or BFCL function docs; simulated",
    "bfcl:<Class>[,<Class>...]      BFCL multi-turn classes, executed (e.g. bfcl:GorillaFileSystem)",
    "tau2:retail, tau2:airline      tau2-bench domains, executed against their databases",
    "mcp:<command line>             an MCP server over stdio, its tools executed on it",
    "python:<module or file.py>     typed, documented Python functions, executed in-process",
)


@app.command("version")
def version() -> None:
    """Print naig's version."""
    from importlib.metadata import version as v

    out.print(v("naig"))


def main() -> None:
    app(prog_name="naig")


if __name__ == "__main__":
    main()
