"""`datagen eval` and `datagen heldout`: measure runs against the real data (SPEC §4) from the command line."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from datagen_core.cli.options import DEFAULT_HOME, Home, open_project, out, split_list
from datagen_core.cli.plugin_flags import fixed_parameters, options_for, plugin_flags, plugins_table, refresh_signature
from datagen_core.errors import DatagenError
from datagen_core.ingest import read_examples
from datagen_core.registry import TRAINERS

heldout_app = typer.Typer(no_args_is_help=True, help="Real labelled test data the generator never sees.")


@heldout_app.command("load")
def heldout_load(
    name: str,
    data: Annotated[Path, typer.Option("--data", help="Labelled real examples: CSV, JSONL or Parquet.")],
    text_col: Annotated[str, typer.Option("--text-col")] = "text",
    label_col: Annotated[str, typer.Option("--label-col")] = "label",
    home: Home = DEFAULT_HOME,
) -> None:
    """Add held-out test examples (texts that are seeds or already held out are skipped)."""
    examples = read_examples(data, text_col, label_col)
    with open_project(home, name) as store:
        added = store.add_heldout(examples, str(data))
        counts = store.heldout_counts()
    out.print(f"added {added} of {len(examples)} examples; held out: "
              + ", ".join(f"{label} {n}" for label, n in counts.items()), soft_wrap=True)


@heldout_app.command("list")
def heldout_list(name: str, home: Home = DEFAULT_HOME) -> None:
    """Held-out examples per label."""
    with open_project(home, name) as store:
        counts = store.heldout_counts()
    if not counts:
        out.print("no held-out data")
    for label, n in counts.items():
        out.print(f"{label}\t{n}")


def _format(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.0f}" if value > 1 and value.is_integer() else f"{value:.3f}"
    return str(value)


def _print_frame(title: str, frame: Any) -> None:
    table = Table(title=title)
    for i, column in enumerate(frame.columns):
        table.add_column(str(column), no_wrap=i == 0)
    for row in frame.itertuples(index=False):
        table.add_row(*map(_format, row))
    out.print(table)


@contextmanager
def _progress_bar(description: str) -> Iterator[Any]:
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                  TextColumn("{task.fields[note]}", markup=False),
                  TimeElapsedColumn(), console=out, transient=True, disable=not out.is_terminal) as bar:
        task = bar.add_task(description, total=1.0, note="")

        def report(fraction: float, message: str) -> None:
            bar.update(task, completed=fraction, note=message)

        yield report


def eval_command(
    name: str,
    runs: Annotated[str | None, typer.Option("--runs", help="Comma-separated run ids; default: every run.")] = None,
    real: Annotated[bool, typer.Option("--real/--no-real", help="Include the real seeds as a row.")] = True,
    trainer_name: Annotated[str, typer.Option("--trainer", help="The downstream trainer (see `datagen trainers`).")]
    = "logistic",
    modes: Annotated[str, typer.Option("--modes", help="Downstream modes per run: synthetic, mixed.")] = "synthetic",
    mix_ratio: Annotated[float | None, typer.Option("--mix-ratio", min=0.0,
                                                    help="mixed: synthetic samples per real one; default all.")]
    = None,
    scale: Annotated[str | None, typer.Option("--scale", help="Scale curve: synthetic samples per label, "
                                                               "e.g. 5,10,20.")] = None,
    scale_mode: Annotated[str, typer.Option("--scale-mode", help="synthetic alone, or mixed with the real seeds.")]
    = "synthetic",
    test: Annotated[Path | None, typer.Option("--test", help="Held-out file to score on instead of the project's "
                                                             "held-out data.")] = None,
    no_downstream: Annotated[bool, typer.Option("--no-downstream", help="Intrinsic metrics only.")] = False,
    bleu_sample: Annotated[int, typer.Option("--bleu-sample", min=2, help="Self-BLEU sample size.")] = 500,
    seed: Annotated[int, typer.Option("--seed")] = 0,
    confusion: Annotated[bool, typer.Option("--confusion", help="Print confusion matrices.")] = False,
    refresh: Annotated[bool, typer.Option("--refresh", help="Recompute even when cached.")] = False,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write every result with its settings.")]
    = None,
    home: Home = DEFAULT_HOME,
    **values: Any,
) -> None:
    """Compare runs: APS, CMD, vocabulary, remote-clique, self-BLEU, distinct-n, and downstream F1 on held-out data.

    Results are cached in the project with the settings that produced them; a second call prints them at once.
    The trainers' own options are the flags below the common ones.
    """
    from datagen_core.evaluation.comparison import (
        ComparisonSettings,
        parse_sizes,
        plan,
        run_step,
        step_title,
        subject_names,
    )
    from datagen_core.evaluation.evaluator import REAL, Evaluation, Evaluator, TextSet, comparison_table
    from datagen_core.evaluation.set_metrics import legend

    if json_out is not None and json_out.is_dir():
        raise DatagenError(f"--json {json_out} is a folder; name the file to write")
    mode_list = split_list(modes)
    if bad := [m for m in mode_list if m not in ("synthetic", "mixed")]:
        raise DatagenError(f"--modes takes synthetic and mixed (real is the real row), not {bad}")
    results: list[Evaluation] = []
    curves: dict[str, list[Evaluation]] = {}
    with open_project(home, name) as store:
        settings = ComparisonSettings(
            runs=tuple(split_list(runs) or [r.id for r in store.runs()]), real=real, downstream=not no_downstream,
            trainer=trainer_name, modes=tuple(mode_list), mix_ratio=mix_ratio,
            trainer_settings=tuple(options_for(TRAINERS.get(trainer_name), _trainer_flags(), values,
                                               strict="--trainer").items()),
            sizes=parse_sizes(scale or ""), scale_mode=scale_mode, bleu_sample=bleu_sample, seed=seed,
            refresh=refresh,
        )
        for run_id in settings.runs:
            store.run(run_id)  # a clear error for an unknown id
        names = subject_names(store, settings.subjects)
        evaluator = Evaluator(store)
        test_set = None
        if test is not None:
            frame = read_examples(test, "text", "label")
            test_set = TextSet("test", tuple(frame["text"]), tuple(frame["label"]))
        trainer = evaluator.trainer(trainer_name, **settings.trainer_options()) if settings.downstream else None
        for step in plan(settings):
            with _progress_bar(step_title(step, names)) as report:
                result = run_step(evaluator, trainer, step, settings, report, test_set)
            if step.role == "scale":
                curves.setdefault(step.subject, []).append(result)
            else:
                results.append(result)
    table = comparison_table(results)
    table["subject"] = table["subject"].map(names)
    _print_frame("metrics", table.set_index("subject").T.reset_index(names="metric"))
    out.print(f"{legend()} · F1: on the held-out real data", style="dim", markup=False, highlight=False)
    per_label = {ev.subject: ev.result["cmd_per_label"] for ev in results
                 if ev.kind == "metrics" and ev.subject != REAL}
    if per_label:
        labels = list(dict.fromkeys(label for values in per_label.values() for label in values))
        table = Table("label", *(names[s] for s in per_label), title="CMD per label (vs the real seeds)")
        for label in labels:
            table.add_row(label, *(_format(values.get(label)) for values in per_label.values()))
        out.print(table)
    for subject, points in curves.items():
        table = Table("synthetic per label", "trained on", "micro-F1", "macro-F1",
                      title=f"scale curve: {names[subject]}")
        for point in points:
            table.add_row(str(point.params["per_label"]), str(point.result["n_train"]),
                          _format(point.result["micro_f1"]), _format(point.result["macro_f1"]))
        out.print(table)
    if confusion:
        for ev in results:
            if ev.kind == "downstream":
                labels = ev.result["labels"]
                table = Table("true \\ predicted", *labels, title=f"confusion: {ev.subject} {ev.result['mode']}")
                for label, row in zip(labels, ev.result["confusion"], strict=True):
                    table.add_row(label, *map(str, row))
                out.print(table)
    cached = sum(ev.cached for ev in results) + sum(p.cached for pts in curves.values() for p in pts)
    total = len(results) + sum(len(pts) for pts in curves.values())
    out.print(f"{total} results, {cached} from the cache")
    if json_out is not None:
        everything = results + [p for pts in curves.values() for p in pts]
        try:
            json_out.write_text(json.dumps([
                {"key": ev.key, "kind": ev.kind, "subject": ev.subject, "params": ev.params, "result": ev.result,
                 "seconds": ev.seconds, "cached": ev.cached} for ev in everything
            ], indent=2))
        except OSError as exc:
            raise DatagenError(f"cannot write {json_out}: {exc.strerror or exc}") from None
        out.print(f"wrote {json_out}", soft_wrap=True)


def trainers_command() -> None:
    """List the downstream trainers with their options (`datagen eval --trainer NAME`)."""
    out.print(plugins_table(TRAINERS, "trainer"))


def _trainer_flags() -> list[Any]:
    return plugin_flags(TRAINERS)


def refresh() -> None:
    """Rebuild the trainer flags of `eval` from the registry (trainers registered since import included)."""
    refresh_signature(eval_command, _EVAL_FIXED, _trainer_flags())


_EVAL_FIXED = fixed_parameters(eval_command)
