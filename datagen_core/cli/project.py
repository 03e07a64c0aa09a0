"""`datagen init`, `projects`, `labels`, `export` and `kb`: creating projects and getting data in and out."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from datagen_core.cli.options import (
    DEFAULT_HOME,
    Home,
    err,
    open_project,
    out,
    readable_home,
    split_list,
    writable_home,
)
from datagen_core.config import DEFAULT_MIN_WORDS, Label, ProjectSpec
from datagen_core.errors import DatagenError
from datagen_core.ingest import MIN_EXAMPLES_PER_LABEL, ReadProgress, check_project_name, read_examples
from datagen_core.store import EXPORT_STATUSES, SAMPLE_STATUSES, Store, project_path

labels_app = typer.Typer(no_args_is_help=True, help="Show and describe a project's labels.")
kb_app = typer.Typer(no_args_is_help=True, help="The knowledge base that fact checks retrieve from.")


def _parse_label_descriptions(items: Sequence[str]) -> dict[str, str]:
    descriptions: dict[str, str] = {}
    for item in items:
        label, sep, description = item.partition("=")
        if not sep or not label.strip():
            raise DatagenError(f"--label-desc {item!r} must look like LABEL=description")
        descriptions[label.strip()] = description.strip()
    return descriptions



#: What `init` calls each field of the project spec in a message.
_SPEC_FLAGS = {"name": "project name", "task": "--task", "text_kind": "--kind", "min_words": "--min-words"}
#: At most this fraction of each label is held out: the rest are the seeds the generator breeds from.
MAX_HOLDOUT = 0.9
#: Files from this size on report their reading progress on stderr.
PROGRESS_FROM_BYTES = 8 * 1024 * 1024


@contextmanager
def _reading_progress(path: Path) -> Iterator[ReadProgress | None]:
    """Rows and megabytes read so far, on stderr: a bar on a terminal, a line per tenth of the file otherwise."""
    size = path.stat().st_size if path.is_file() else 0
    if size < PROGRESS_FROM_BYTES:
        yield None
        return
    mb = 1024 * 1024
    if err.is_terminal:
        with Progress(TextColumn(f"reading {path.name}", markup=False), BarColumn(),
                      TextColumn("{task.fields[note]}", markup=False), TimeElapsedColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("read", total=size, note="")

            def update(rows: int, done: int, total: int) -> None:
                bar.update(task, completed=done, note=f"{done / mb:.0f}/{total / mb:.0f} MB, {rows:,} rows")

            yield update
        return
    reported = [0]

    def report(rows: int, done: int, total: int) -> None:
        tenth = done * 10 // total
        if tenth > reported[0]:
            reported[0] = tenth
            err.print(f"reading {path.name}: {done / mb:.0f} of {total / mb:.0f} MB, {rows:,} rows", soft_wrap=True)

    yield report


def init(
    name: Annotated[str, typer.Argument(help="Project name (also the file name).")],
    data: Annotated[Path, typer.Option("--data", help="Real labelled examples: CSV, JSONL or Parquet.")],
    task: Annotated[str, typer.Option("--task", help="What the classifier does, e.g. 'spam detection'.")],
    text_col: Annotated[str, typer.Option("--text-col")] = "text",
    label_col: Annotated[str, typer.Option("--label-col")] = "label",
    kind: Annotated[str, typer.Option("--kind", help="What one sample is, e.g. 'SMS message'.")] = "text",
    label_desc: Annotated[list[str] | None, typer.Option("--label-desc", help="LABEL=description, repeatable.")] = None,
    holdout: Annotated[float, typer.Option("--holdout", help=f"Fraction of each label (0-{MAX_HOLDOUT}) kept apart "
                                           "as held-out test data the generator never sees.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", min=0, help="Seed of the held-out split.")] = 0,
    min_words: Annotated[int, typer.Option("--min-words", help="Generated texts with fewer words are filtered "
                                           "(too_short); 1 also accepts one-word texts.")] = DEFAULT_MIN_WORDS,
    home: Home = DEFAULT_HOME,
) -> None:
    """Create a project from real labelled examples (optionally holding some out for downstream evaluation)."""
    from datagen_core.ingest import split_heldout

    check_project_name(name)
    if not task.strip():
        raise DatagenError("--task is empty: describe the task (e.g. 'SMS spam detection'); every prompt names it")
    try:
        spec = ProjectSpec(name=name, task=task.strip(), text_kind=kind.strip() or "text", min_words=min_words)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = _SPEC_FLAGS.get(str(error["loc"][0]) if error["loc"] else "", "project")
        raise DatagenError(f"{field}: {error['msg'].removeprefix('Value error, ')}") from None
    if not 0.0 <= holdout <= MAX_HOLDOUT:
        raise DatagenError(f"--holdout must be from 0 to {MAX_HOLDOUT}, not {holdout}: each label keeps at least a "
                           f"tenth of its examples (and at least {MIN_EXAMPLES_PER_LABEL}) as the generator's seeds")
    descriptions = _parse_label_descriptions(label_desc or [])
    path = project_path(writable_home(home), name)
    if path.exists():
        raise DatagenError(f"project {name!r} already exists at {path}")
    with _reading_progress(data) as progress:
        examples = read_examples(data, text_col, label_col, progress)
    names = [str(n) for n in examples["label"].unique()]
    unknown = sorted(set(descriptions) - set(names))
    if unknown:
        raise DatagenError(f"--label-desc names unknown label(s) {unknown}; the data has {names}")
    labels = [Label(name=n, description=descriptions.get(n, "")) for n in names]
    examples, heldout = split_heldout(examples, holdout, seed)
    if progress is not None:
        err.print(f"writing {len(examples) + len(heldout):,} examples to {path}", soft_wrap=True)
    with Store.create(path, spec, labels, examples, str(data), heldout=heldout) as store:
        held = store.heldout_counts()
    counts = examples["label"].value_counts()
    out.print(f"created project {name} with {len(examples)} examples: "
              + ", ".join(f"{lb} {counts.get(lb, 0)}" for lb in names), soft_wrap=True)
    if held:
        out.print(f"held out {sum(held.values())} for evaluation: " + ", ".join(f"{lb} {n}" for lb, n in held.items()),
                  soft_wrap=True)


def projects(home: Home = DEFAULT_HOME) -> None:
    """List the projects in the home folder."""
    files = sorted(readable_home(home).glob("*.duckdb")) if home.exists() else []
    if not files:
        out.print(f"no projects in {home}", soft_wrap=True)
    for file in files:
        out.print(file.stem, soft_wrap=True)


@labels_app.command("list")
def labels_list(name: str, home: Home = DEFAULT_HOME) -> None:
    """Labels with their descriptions and real example counts."""
    with open_project(home, name) as store:
        counts = store.real_counts()
        table = Table("label", "real examples", "description")
        for label in store.labels():
            table.add_row(label.name, str(counts.get(label.name, 0)), label.description)
        out.print(table)


@labels_app.command("describe")
def labels_describe(name: str, label: str, description: str, home: Home = DEFAULT_HOME) -> None:
    """Set the description a label's prompts use ('it must be about ...')."""
    with open_project(home, name) as store:
        store.set_label_description(label, description)
    out.print(f"{label}: {description}", soft_wrap=True)



def export(
    name: str,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--out", help="File to write; default NAME.FORMAT")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    status: Annotated[str, typer.Option("--status", help="Comma-separated statuses (accepted, pending, rejected) "
                                                          "or 'all'.")] = ",".join(EXPORT_STATUSES),
    include_filtered: Annotated[bool, typer.Option("--include-filtered", help="Also the outputs the engine "
                                                                                  "filtered, with the reason.")]
    = False,
    with_real: Annotated[bool, typer.Option("--with-real", help="Add the real seeds (source = real).")] = False,
    train_ready: Annotated[bool, typer.Option("--train-ready", help="Only text, label and source, synthetic and "
                                                                     "real rows shuffled: a file to train on.")]
    = False,
    history: Annotated[bool, typer.Option("--history", help="Add each sample's edits (a `history` column).")]
    = False,
    seed: Annotated[int, typer.Option("--seed", help="The shuffle of --train-ready.")] = 0,
    card: Annotated[Path | None, typer.Option("--card", help="Also write the dataset card (markdown) here.")]
    = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Write generated samples with their lineage: by default those accepted or pending review, never rejected
    or filtered ones."""
    from datagen_core.export import build_export, write_export

    if fmt not in ("jsonl", "csv", "parquet"):
        raise DatagenError(f"--format must be jsonl, csv or parquet, not {fmt!r}")
    statuses = () if status.strip() == "all" else tuple(split_list(status))
    if (not statuses and status.strip() != "all") or any(s not in SAMPLE_STATUSES for s in statuses):
        raise DatagenError(f"--status must be one of {', '.join(SAMPLE_STATUSES)} (comma-separated) or all, "
                           f"not {status!r}")
    if train_ready and history:
        raise DatagenError("--train-ready keeps only text, label and source; drop --history")
    target = output or Path(f"{name}.{fmt}")
    if target.is_dir():
        raise DatagenError(f"--out {target} is a folder; name the file to write, e.g. {target / f'{name}.{fmt}'}")
    if target.suffix.lower() == ".duckdb":
        raise DatagenError(f"--out {target} would be taken for a project file; pick a name ending in .{fmt}")
    with open_project(home, name) as store:
        if run_id is not None:
            store.run(run_id)
        made = build_export(store, run_id=run_id, statuses=statuses, include_filtered=include_filtered,
                            with_real=with_real, history=history, train_ready_seed=seed if train_ready else None)
    try:
        write_export(made.rows, target, fmt)  # type: ignore[arg-type]
        if card is not None:
            card.write_text(made.card, encoding="utf-8")
    except OSError as exc:
        raise DatagenError(f"cannot write {exc.filename or target}: {exc.strerror or exc}") from None
    real = len(made.frame) - made.synthetic
    out.print(f"wrote {made.synthetic} samples" + (f" and {real} real seeds" if real else "") + f" to {target}"
              + (f" and the dataset card to {card}" if card is not None else ""), soft_wrap=True)


@kb_app.command("load")
def kb_load(
    name: str,
    data: Annotated[Path, typer.Option("--data", help="CSV/TSV/JSONL/JSON, a .txt/.md file or a folder of them.")],
    text_col: Annotated[str, typer.Option("--text-col")] = "text",
    title_col: Annotated[str | None, typer.Option("--title-col")] = "title",
    home: Home = DEFAULT_HOME,
) -> None:
    """Add documents to the project's knowledge base (passages already there are skipped)."""
    from datagen_core.checks.knowledge import load_knowledge
    from datagen_core.embed import Embedder

    with open_project(home, name) as store:
        added = load_knowledge(store, Embedder(), data, text_col=text_col, title_col=title_col)
        out.print(f"added {added} passages; the knowledge base holds {store.kb_count()}", soft_wrap=True)

