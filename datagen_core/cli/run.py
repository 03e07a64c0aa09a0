"""`datagen run`, `runs`, `check` and `demo`: generating and checking samples from the command line.

The method's and the checks' flags come from their plug-ins (`plugin_flags`); the run itself is built by
`build_run_config`, the same function the studio calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from datagen_core.cli.options import (
    DEFAULT_HOME,
    BaseUrl,
    FirstByteTimeout,
    GiveUpAfter,
    Home,
    Model,
    Retries,
    Timeout,
    err,
    llm_config,
    open_project,
    out,
    reachable,
    resume_llm_config,
    split_list,
)
from datagen_core.cli.plugin_flags import (
    fixed_parameters,
    options_for,
    plugin_flags,
    plugins_table,
    refresh_signature,
)
from datagen_core.config import RunConfig, in_run_check_names
from datagen_core.engine.build import build_run_config
from datagen_core.engine.progress import LabelProgress, RunObserver, describe_faults
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run, top_up_run, validate_run
from datagen_core.errors import DatagenError
from datagen_core.records import NewSample
from datagen_core.registry import CHECKS, METHODS
from datagen_core.store import RunInfo, Store


class _ProgressBars(RunObserver):
    """One progress bar per label."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, int] = {}

    def on_start(self, run_id: str, progress: dict[str, LabelProgress]) -> None:
        for label, state in progress.items():
            self.tasks[label] = self.progress.add_task(label, total=state.target, completed=state.kept, extra="")

    def on_batch(self, samples: Sequence[NewSample], progress: dict[str, LabelProgress]) -> None:
        for label, state in progress.items():
            extra = f"filtered {state.filtered}" + (f", failed {state.failed}" if state.failed else "")
            self.progress.update(self.tasks[label], completed=state.kept, extra=extra)

    def on_message(self, level: str, message: str) -> None:
        if level != "info":
            self.progress.console.print(Text.assemble((level, "yellow"), f": {message}"), soft_wrap=True)


def _checks_note(config: RunConfig) -> str:
    return f", checks {', '.join(check.name for check in config.checks)}" if config.checks else ""


def _method_flags() -> list[Any]:
    return plugin_flags(METHODS)


def _run_check_flags() -> list[Any]:
    return plugin_flags(CHECKS, plugins=lambda check: not check.not_in_run)


def run(
    name: str,
    per_label: Annotated[int | None, typer.Option("--per-label", min=1, help="Offspring per label.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest unfinished run (or --run).")] = False,
    top_up: Annotated[bool, typer.Option(
        "--top-up", help="Ask again for the offspring rejected in review: same run, same lineage rules.")] = False,
    run_id: Annotated[str | None, typer.Option(
        "--run", help="The run to --resume or --top-up (default: the latest unfinished / the latest run).")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated subset of labels.")] = None,
    method: Annotated[str, typer.Option("--method", help="The generation method (see `datagen methods`).")]
    = "genetic",
    dedup: Annotated[float | None, typer.Option("--dedup", help="In-run group check: filter offspring closer "
                                                "than this distance to the population (DataGen: 0.3).")] = None,
    checks: Annotated[list[str] | None, typer.Option(
        "--check", help="In-run check, repeatable, applied in order (see `datagen checks`).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Fix splits, selection and the cache.")] = None,
    in_flight: Annotated[int | None, typer.Option("--in-flight", min=1, help="Concurrent LLM requests.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens", min=1)] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Never answer from the response cache.")] = False,
    base_url: BaseUrl = None,
    model: Model = None,
    first_byte_timeout: FirstByteTimeout = None,
    timeout: Timeout = None,
    retries: Retries = None,
    give_up_after: GiveUpAfter = None,
    home: Home = DEFAULT_HOME,
    **values: Any,
) -> None:
    """Generate samples per label with Genetic Prompt or a baseline method (or resume an interrupted run).

    The method's own options and the in-run checks' options are the flags below the common ones.
    """
    limits = {"first_byte_timeout_s": first_byte_timeout, "timeout_s": timeout, "max_retries": retries,
              "give_up_after_s": give_up_after}
    if resume and top_up:
        raise DatagenError("give --resume or --top-up, not both")
    if run_id is not None and not (resume or top_up):
        raise DatagenError("--run names the run to --resume or --top-up")
    with open_project(home, name) as store:
        if resume or top_up:
            earlier = _run_to_continue(store, name, run_id, top_up)
            if checks:
                raise DatagenError("a resumed run keeps the checks it started with; --check applies to a new run")
            run_id = earlier.id
            chosen_llm = reachable(resume_llm_config(earlier.llm, base_url, model, in_flight, limits))
            if top_up:
                asked = top_up_run(store, run_id)
                out.print(f"topping up run {run_id}: asking again for {_counts(asked)} rejected in review, model "
                          f"{chosen_llm.model}" + _checks_note(earlier.config), markup=False, highlight=False)
            else:
                out.print(f"resuming run {run_id}: {earlier.config.per_label} per label, model {chosen_llm.model}"
                          + _checks_note(earlier.config), markup=False, highlight=False)
        else:
            chosen_llm = llm_config(base_url, model, in_flight, limits)
            if per_label is None:
                raise DatagenError("give --per-label N (or --resume)")
            if method not in METHODS:
                raise DatagenError(f"--method must be one of {', '.join(METHODS.names())}, not {method!r}")
            check_flags = _run_check_flags()
            config = build_run_config(
                chosen_llm, per_label=per_label, method=method,
                options=options_for(METHODS.get(method), _method_flags(), values, strict="--method"),
                labels=split_list(labels), seed=seed, checks=checks or [],
                check_options={field: flag.value(values[flag.keyword]) for flag in check_flags
                               if values.get(flag.keyword) is not None for field in flag.owners.values()},
                dedup_distance=dedup, temperature=temperature, top_p=top_p, max_tokens=max_tokens,
                use_cache=not no_cache,
            )
            validate_run(store, config)  # the project's own gaps first, then the endpoint
            run_id = start_run(store, config, reachable(chosen_llm))  # an unreachable endpoint records no run
            out.print(f"run {run_id}: {config.method}, {per_label} per label, model {chosen_llm.model}, "
                      f"seed {config.seed}" + _checks_note(config), highlight=False)
        columns = (TextColumn("{task.description:>12}", markup=False), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[extra]}", markup=False))
        try:
            with Progress(*columns, console=out, transient=False) as progress:
                summary = run_generation(store, chosen_llm, run_id, observer=_ProgressBars(progress))
        except KeyboardInterrupt:
            err.print(f"interrupted: what landed is saved; continue with `datagen run {name} --resume`",
                      markup=False, highlight=False)
            raise typer.Exit(130) from None
        out.print(f"run {run_id} {summary.status}: {summary.new_offspring} new offspring in {summary.seconds:.1f}s "
                  f"({summary.offspring_per_second:.2f}/s); {usage_line(store, run_id)}", markup=False, highlight=False,
                  soft_wrap=True)
        if summary.status == "interrupted":  # only SIGTERM stops a CLI run without an error
            err.print(f"terminated: what landed is saved; continue with `datagen run {name} --resume`",
                      markup=False, highlight=False)
            raise typer.Exit(143)


def _run_to_continue(store: Store, name: str, run_id: str | None, top_up: bool) -> RunInfo:
    if run_id is not None:
        return store.run(run_id)
    runs = store.runs()
    if top_up:
        if not runs:
            raise DatagenError(f"project {name!r} has no run to top up")
        return runs[-1]
    unfinished = store.latest_unfinished_run()
    if unfinished is None:
        raise DatagenError(f"project {name!r} has no unfinished run to resume")
    return unfinished


def _counts(per_label: dict[str, int]) -> str:
    return ", ".join(f"{n} {label}" for label, n in per_label.items())


def usage_line(store: Store, run_id: str) -> str:
    """Calls, retries by kind with the time they cost, and tokens: what a run spent on its endpoint."""
    usage = store.run_usage(run_id)
    faults = store.run_faults(run_id)
    retries = f"retries {usage['retries']:.0f}"
    if faults:
        retries += f" ({describe_faults(faults)}; {usage['lost_s']:.1f} s lost)"
    return (f"calls {usage['calls']:.0f} (cached {usage['cached_calls']:.0f}, failed {usage['failed_calls']:.0f}), "
            f"{retries}, tokens {usage['prompt_tokens']:.0f} in / {usage['completion_tokens']:.0f} out")


def runs(name: str, home: Home = DEFAULT_HOME) -> None:
    """List runs with their status, counts, calls and token usage; runs whose endpoint struggled get a line
    with their retries by kind and the time lost."""
    with open_project(home, name) as store:
        table = Table("run", "status", "method", "kept", "rejected", "filtered", "calls", "retries", "tokens",
                      "created")
        notes = []
        every_label = len(store.labels())
        for info in store.runs():
            usage = store.run_usage(info.id)
            table.add_row(
                info.id, info.status, info.method,
                f"{sum(store.kept_counts(info.id).values())}/"
                f"{info.config.per_label * (len(info.config.labels) or every_label)}",
                str(sum(store.rejected_offspring(info.id).values())), str(sum(store.filtered_counts(info.id).values())),
                f"{usage['calls']:.0f}", f"{usage['retries']:.0f}",
                f"{usage['prompt_tokens'] + usage['completion_tokens']:.0f}", f"{info.created_at:%Y-%m-%d %H:%M}",
            )
            if usage["retries"] or usage["failed_calls"]:
                notes.append(f"{info.id}: {usage_line(store, info.id)}")
        out.print(table)
        for note in notes:
            out.print(note, markup=False, highlight=False, soft_wrap=True)


def check(
    name: str,
    module: Annotated[str, typer.Option("--check", help="The check to apply (see `datagen checks`).")] = "dedup",
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's samples.")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated subset of labels.")] = None,
    in_flight: Annotated[int | None, typer.Option("--in-flight", min=1, help="Concurrent LLM requests.")] = None,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
    **values: Any,
) -> None:
    """Apply a check to stored synthetic samples that are pending or accepted.

    Rejected samples stay in the store, marked with the reason; corrections are edits kept in the history.
    Each check reads only its own options among the flags below the common ones.
    """
    from datagen_core.checks import make_check
    from datagen_core.checks.apply import apply_check
    from datagen_core.embed import Embedder
    from datagen_core.llm import LLM
    from datagen_core.store import SampleFilter

    if module not in CHECKS:
        raise DatagenError(f"--check must be one of {', '.join(CHECKS.names())}, not {module!r}")
    plugin = CHECKS.get(module)
    chosen_check = make_check(module, options_for(plugin, plugin_flags(CHECKS), values))
    with open_project(home, name) as store:
        if run_id is not None:
            store.run(run_id)
        chosen = SampleFilter(run_ids=(run_id,) if run_id else (), labels=tuple(split_list(labels)))
        llm = LLM.from_config(llm_config(base_url, model, in_flight), store) if plugin.needs_llm else None
        summary = apply_check(store, chosen_check, chosen, Embedder(), llm)
    reasons = ", ".join(f"{reason} {n}" for reason, n in summary.rejected.items()) or "none"
    out.print(f"{summary.check}: checked {summary.checked}, kept {summary.kept}, rejected {reasons}, "
              f"corrected {summary.corrected}")


def demo(
    per_label: Annotated[int, typer.Option("--per-label", min=1)] = 5,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Create the shipped demo project (SMS spam seeds) if needed and generate a few offspring."""
    from datagen_core.demo import DEMO_PROJECT, ensure_demo_project

    ensure_demo_project(home)
    out.print(f"demo project {DEMO_PROJECT!r} in {home}")
    run(DEMO_PROJECT, per_label=per_label, resume=False, top_up=False, run_id=None, labels=None, method="genetic",
        dedup=None, checks=None, seed=None, in_flight=None, temperature=None, top_p=None, max_tokens=None,
        no_cache=False, base_url=base_url, model=model, first_byte_timeout=None, timeout=None, retries=None,
        give_up_after=None, home=home)


def methods_command() -> None:
    """List the generation methods with their options."""
    out.print(plugins_table(METHODS, "method"))


def checks_command() -> None:
    """List the checks with their options (in-run ones can be given to `run --check`)."""
    table = plugins_table(CHECKS, "check")
    out.print(table)
    out.print(f"in-run: {', '.join(in_run_check_names())}", highlight=False)


def refresh() -> None:
    """Rebuild the flags of `run` and `check` from the registries (plug-ins registered since import included)."""
    refresh_signature(run, _RUN_FIXED, [*_method_flags(), *_run_check_flags()])
    refresh_signature(check, _CHECK_FIXED, plugin_flags(CHECKS))


_RUN_FIXED = fixed_parameters(run)
_CHECK_FIXED = fixed_parameters(check)
