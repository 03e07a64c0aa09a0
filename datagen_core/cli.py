"""`datagen`: the command line over the engine. Every user error is one line on stderr and exit code 1."""

from __future__ import annotations

import os
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .cli_doctor import doctor_command
from .cli_eval import eval_command, heldout_app
from .cli_options import DEFAULT_HOME, BaseUrl, Home, Model, err, open_project, out, split_list
from .config import (
    DEFAULT_MIN_WORDS,
    IN_RUN_CHECKS,
    METHOD_NAMES,
    CheckSpec,
    DataGenOptions,
    FewShotOptions,
    Gene,
    GeneticOptions,
    Label,
    LLMConfig,
    ProjectSpec,
    RunConfig,
    SamplingParams,
)
from .errors import DatagenError
from .ingest import read_examples
from .records import NewSample
from .runner import LabelProgress, RunObserver, run_generation, start_run
from .store import Store, project_path

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Genetic Prompt Studio: synthetic labelled text.",
)
genes_app = typer.Typer(no_args_is_help=True, help="Show, propose and edit a project's genes (versioned).")
labels_app = typer.Typer(no_args_is_help=True, help="Show and describe a project's labels.")
topics_app = typer.Typer(no_args_is_help=True, help="Topics per label for `run --method topic` (versioned).")
attributes_app = typer.Typer(no_args_is_help=True,
                             help="Values per attribute (gene) for `run --method attrprompt` (versioned).")
app.add_typer(genes_app, name="genes")
app.add_typer(labels_app, name="labels")
app.add_typer(topics_app, name="topics")
app.add_typer(attributes_app, name="attributes")


def _llm_config(base_url: str | None, model: str | None, in_flight: int | None = None) -> LLMConfig:
    try:
        return LLMConfig.from_env(base_url, model, in_flight)
    except ValidationError as exc:
        raise DatagenError(exc.errors()[0]["msg"]) from None
    except ValueError as exc:
        raise DatagenError(str(exc)) from None


def _resume_llm_config(recorded: dict[str, object], base_url: str | None, model: str | None,
                       in_flight: int | None) -> LLMConfig:
    """A resumed run keeps the model it started with unless the user names another one."""
    if base_url or model or os.environ.get("DATAGEN_BASE_URL"):
        return _llm_config(base_url, model, in_flight)
    settings = {**recorded, **({"max_in_flight": in_flight} if in_flight else {})}
    return LLMConfig.model_validate(settings)


def _parse_gene(text: str) -> Gene:
    name, _, description = text.partition(":")
    try:
        return Gene(name=name, description=description.strip())
    except ValidationError as exc:
        raise DatagenError(f"gene {text!r}: {exc.errors()[0]['msg']}") from None


def _parse_label_descriptions(items: Sequence[str]) -> dict[str, str]:
    descriptions: dict[str, str] = {}
    for item in items:
        label, sep, description = item.partition("=")
        if not sep or not label.strip():
            raise DatagenError(f"--label-desc {item!r} must look like LABEL=description")
        descriptions[label.strip()] = description.strip()
    return descriptions


@app.command()
def init(
    name: Annotated[str, typer.Argument(help="Project name (also the file name).")],
    data: Annotated[Path, typer.Option("--data", help="Real labelled examples: CSV, JSONL or Parquet.")],
    task: Annotated[str, typer.Option("--task", help="What the classifier does, e.g. 'spam detection'.")],
    text_col: Annotated[str, typer.Option("--text-col")] = "text",
    label_col: Annotated[str, typer.Option("--label-col")] = "label",
    kind: Annotated[str, typer.Option("--kind", help="What one sample is, e.g. 'SMS message'.")] = "text",
    label_desc: Annotated[list[str] | None, typer.Option("--label-desc", help="LABEL=description, repeatable.")] = None,
    holdout: Annotated[float, typer.Option("--holdout", min=0.0, max=0.9, help="Fraction of each label kept apart "
                                           "as held-out test data the generator never sees.")] = 0.0,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the held-out split.")] = 0,
    min_words: Annotated[int, typer.Option("--min-words", help="Generated texts with fewer words are filtered "
                                           "(too_short); 1 also accepts one-word texts.")] = DEFAULT_MIN_WORDS,
    home: Home = DEFAULT_HOME,
) -> None:
    """Create a project from real labelled examples (optionally holding some out for downstream evaluation)."""
    from .ingest import split_heldout

    try:
        spec = ProjectSpec(name=name, task=task, text_kind=kind, min_words=min_words)
    except ValidationError as exc:
        raise DatagenError(exc.errors()[0]["msg"].removeprefix("Value error, ")) from None
    examples = read_examples(data, text_col, label_col)
    descriptions = _parse_label_descriptions(label_desc or [])
    names = list(dict.fromkeys(examples["label"]))
    unknown = sorted(set(descriptions) - set(names))
    if unknown:
        raise DatagenError(f"--label-desc names unknown label(s) {unknown}; the data has {names}")
    labels = [Label(name=n, description=descriptions.get(n, "")) for n in names]
    examples, heldout = split_heldout(examples, holdout, seed)
    with Store.create(project_path(home, name), spec, labels, examples, str(data), heldout=heldout) as store:
        held = store.heldout_counts()
    counts = examples["label"].value_counts()
    out.print(f"created project [bold]{name}[/] with {len(examples)} examples: "
              + ", ".join(f"{lb} {counts.get(lb, 0)}" for lb in names))
    if held:
        out.print(f"held out {sum(held.values())} for evaluation: " + ", ".join(f"{lb} {n}" for lb, n in held.items()))


@app.command()
def projects(home: Home = DEFAULT_HOME) -> None:
    """List the projects in the home folder."""
    files = sorted(home.glob("*.duckdb")) if home.exists() else []
    if not files:
        out.print(f"no projects in {home}")
    for file in files:
        out.print(file.stem)


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
    out.print(f"{label}: {description}")


def _print_genes(store: Store, all_versions: bool) -> None:
    sets = store.gene_sets()
    if not sets:
        out.print("no genes yet: `datagen genes propose` or `datagen genes set`")
        return
    for gene_set in sets if all_versions else sets[-1:]:
        out.print(f"[bold]version {gene_set.version}[/] ({gene_set.source}) {gene_set.note}")
        for gene in gene_set.genes:
            out.print(f"  - {gene.name}: {gene.description}" if gene.description else f"  - {gene.name}")
        for constraint in gene_set.constraints:
            out.print(f"  constraint: {constraint}")


@genes_app.command("list")
def genes_list(
    name: str, all_versions: Annotated[bool, typer.Option("--all")] = False, home: Home = DEFAULT_HOME
) -> None:
    """Show the current genes (or every version with --all)."""
    with open_project(home, name) as store:
        _print_genes(store, all_versions)


@genes_app.command("propose")
def genes_propose(
    name: str,
    count: Annotated[int, typer.Option(min=2, max=6)] = 4,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Ask the LLM which genes matter for the task; saves them as a new version."""
    from .genes import propose_genes

    with open_project(home, name) as store:
        genes = propose_genes(store, _llm_config(base_url, model), count)
        store.add_gene_set(genes, "llm", note="proposed by the LLM")
        _print_genes(store, False)


def _edit_genes(home: Path, name: str, genes: list[Gene], note: str) -> None:
    with open_project(home, name) as store:
        current = store.gene_set()
        store.add_gene_set(genes, "user", note=note, constraints=current.constraints if current else ())
        _print_genes(store, False)


def _current_genes(home: Path, name: str) -> list[Gene]:
    with open_project(home, name) as store:
        current = store.gene_set()
    return list(current.genes) if current else []


@genes_app.command("set")
def genes_set(
    name: str,
    genes: Annotated[list[str], typer.Argument(help="'name' or 'name: description', one per argument.")],
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace the genes with the given list (a new version)."""
    _edit_genes(home, name, [_parse_gene(g) for g in genes], "set by the user")


@genes_app.command("add")
def genes_add(name: str, genes: list[str], home: Home = DEFAULT_HOME) -> None:
    """Add genes to the current set (a new version)."""
    _edit_genes(home, name, _current_genes(home, name) + [_parse_gene(g) for g in genes], f"added {genes}")


@genes_app.command("remove")
def genes_remove(name: str, genes: list[str], home: Home = DEFAULT_HOME) -> None:
    """Remove genes by name from the current set (a new version)."""
    current = _current_genes(home, name)
    wanted = {g.lower() for g in genes}
    missing = wanted - {g.name.lower() for g in current}
    if missing:
        raise DatagenError(f"no gene(s) {sorted(missing)} in the current set {[g.name for g in current]}")
    _edit_genes(home, name, [g for g in current if g.name.lower() not in wanted], f"removed {genes}")


def _print_values(store: Store, kind: str, all_versions: bool) -> None:
    sets = store.value_sets(kind)
    if not sets:
        out.print(f"no {kind} yet: `datagen {kind} propose` or `datagen {kind} set`")
        return
    for value_set in sets if all_versions else sets[-1:]:
        out.print(f"[bold]version {value_set.version}[/] ({value_set.source}) {value_set.note}", highlight=False)
        for key, values in value_set.items.items():
            out.print(f"  - {key}: " + "; ".join(values), highlight=False, markup=False)


@topics_app.command("list")
def topics_list(
    name: str, all_versions: Annotated[bool, typer.Option("--all")] = False, home: Home = DEFAULT_HOME
) -> None:
    """Show the current topics per label (or every version with --all)."""
    with open_project(home, name) as store:
        _print_values(store, "topics", all_versions)


@topics_app.command("propose")
def topics_propose(
    name: str,
    count: Annotated[int, typer.Option(min=2, max=50, help="Real texts asked per label (distinct topics kept).")] = 10,
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated subset; others are kept.")] = None,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Ask the LLM the topic of up to COUNT real texts per label; the distinct answers are a new version."""
    from .proposals import propose_topics, save_values

    with open_project(home, name) as store:
        topics = propose_topics(store, _llm_config(base_url, model), count, split_list(labels))
        save_values(store, "topics", topics, "llm", note="proposed by the LLM")
        _print_values(store, "topics", False)


@topics_app.command("set")
def topics_set(
    name: str,
    label: Annotated[str, typer.Argument(help="The label whose topics to replace.")],
    topics: Annotated[list[str] | None, typer.Argument(help="Topics, one per argument; none removes them.")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace one label's topics (a new version)."""
    from .proposals import save_values

    with open_project(home, name) as store:
        known = [lb.name for lb in store.labels()]
        if label not in known:
            raise DatagenError(f"unknown label {label!r}; labels are {known}")
        save_values(store, "topics", {label: topics or []}, "user", note=f"set {label}")
        _print_values(store, "topics", False)


@attributes_app.command("list")
def attributes_list(
    name: str, all_versions: Annotated[bool, typer.Option("--all")] = False, home: Home = DEFAULT_HOME
) -> None:
    """Show the current values per attribute (or every version with --all)."""
    with open_project(home, name) as store:
        _print_values(store, "attributes", all_versions)


@attributes_app.command("propose")
def attributes_propose(
    name: str,
    count: Annotated[int, typer.Option(min=2, max=30, help="Real texts asked per attribute.")] = 6,
    attributes: Annotated[str | None, typer.Option("--attributes", help="Comma-separated genes; others kept.")] = None,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Ask the LLM each gene's value in up to COUNT real texts; the distinct answers are a new version."""
    from .proposals import propose_attribute_values, save_values

    with open_project(home, name) as store:
        values = propose_attribute_values(store, _llm_config(base_url, model), count, split_list(attributes))
        gene_set = store.gene_set()
        save_values(store, "attributes", values, "llm", note="proposed by the LLM",
                    gene_set_version=gene_set.version if gene_set else None)
        _print_values(store, "attributes", False)


@attributes_app.command("set")
def attributes_set(
    name: str,
    attribute: Annotated[str, typer.Argument(help="The attribute (usually a gene) whose values to replace.")],
    values: Annotated[list[str] | None, typer.Argument(help="Values, one per argument; none removes it.")] = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Replace one attribute's values, or add a new attribute (a new version)."""
    from .proposals import save_values

    with open_project(home, name) as store:
        current = store.value_set("attributes")
        # keep the stored spelling of an attribute named in another case, so it is replaced, not doubled
        key = next((k for k in (current.items if current else {}) if k.lower() == attribute.strip().lower()),
                   " ".join(attribute.split()))
        if not key:
            raise DatagenError("the attribute name is empty")
        save_values(store, "attributes", {key: values or []}, "user", note=f"set {key}")
        _print_values(store, "attributes", False)


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
            self.progress.console.print(f"[yellow]{level}[/]: {message}")


def _checks_note(config: RunConfig) -> str:
    return f", checks {', '.join(check.name for check in config.checks)}" if config.checks else ""


@app.command()
def run(
    name: str,
    per_label: Annotated[int | None, typer.Option("--per-label", min=1, help="Offspring per label.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the latest unfinished run.")] = False,
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated subset of labels.")] = None,
    method: Annotated[str, typer.Option("--method", help=f"{' | '.join(METHOD_NAMES)}.")] = "genetic",
    shots: Annotated[int | None, typer.Option("--shots", min=1, max=10, help="few_shot: real examples per call "
                                              "(1 = one-shot; the paper used 1, 3, 5; default 3).")] = None,
    items_per_call: Annotated[int, typer.Option("--items-per-call", min=1, max=20,
                                                help="datagen: samples asked for in one call.")] = 5,
    diverse: Annotated[str, typer.Option("--diverse", help="datagen: example choice, greedy or kmeans.")] = "greedy",
    selection: Annotated[str, typer.Option("--selection", help="farthest (active) or random parents.")] = "farthest",
    no_mutation: Annotated[bool, typer.Option("--no-mutation", help="Ablation: no mutated genes.")] = False,
    word_genes: Annotated[bool, typer.Option("--word-genes", help="Ablation: genes are the parents' words.")] = False,
    dedup: Annotated[float | None, typer.Option("--dedup", help="In-run group check: filter offspring closer "
                                                "than this distance to the population (DataGen: 0.3).")] = None,
    checks: Annotated[list[str] | None, typer.Option(
        "--check", help=f"In-run quality module, repeatable, applied in order: {', '.join(IN_RUN_CHECKS)}.")] = None,
    rounds: Annotated[int, typer.Option(min=1, max=10, help="--check reflection: judge/rewrite rounds at most.")] = 5,
    mode: Annotated[str, typer.Option(help="--check math, facts: flag mismatches, or correct them.")] = "flag",
    seed: Annotated[int | None, typer.Option("--seed", help="Fix splits, selection and the cache.")] = None,
    in_flight: Annotated[int | None, typer.Option("--in-flight", min=1, help="Concurrent LLM requests.")] = None,
    temperature: Annotated[float | None, typer.Option("--temperature")] = None,
    top_p: Annotated[float | None, typer.Option("--top-p")] = None,
    max_tokens: Annotated[int | None, typer.Option("--max-tokens")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Never answer from the response cache.")] = False,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Generate samples per label with Genetic Prompt or a baseline method (or resume an interrupted run)."""
    with open_project(home, name) as store:
        if resume:
            unfinished = store.latest_unfinished_run()
            if unfinished is None:
                raise DatagenError(f"project {name!r} has no unfinished run to resume")
            if checks:
                raise DatagenError("a resumed run keeps the checks it started with; --check applies to a new run")
            run_id = unfinished.id
            llm_config = _resume_llm_config(unfinished.llm, base_url, model, in_flight)
            out.print(f"resuming run {run_id}: {unfinished.config.per_label} per label, model {llm_config.model}"
                      + _checks_note(unfinished.config), highlight=False)
        else:
            llm_config = _llm_config(base_url, model, in_flight)
            if per_label is None:
                raise DatagenError("give --per-label N (or --resume)")
            if selection not in ("farthest", "random"):
                raise DatagenError("--selection must be 'farthest' or 'random'")
            if method not in METHOD_NAMES:
                raise DatagenError(f"--method must be one of {', '.join(METHOD_NAMES)}, not {method!r}")
            if shots is not None and method != "few_shot":
                raise DatagenError("--shots applies to --method few_shot only")
            if diverse not in ("greedy", "kmeans"):
                raise DatagenError(f"--diverse must be 'greedy' or 'kmeans', not {diverse!r}")
            if mode not in ("flag", "correct"):
                raise DatagenError(f"--mode must be 'flag' or 'correct', not {mode!r}")
            try:
                in_run = tuple(CheckSpec.model_validate({"name": check, "rounds": rounds, "mode": mode})
                               for check in checks or ())
                if len({check.name for check in in_run}) < len(in_run):
                    raise DatagenError("--check: each check may be given once")
            except ValidationError as exc:
                raise DatagenError(f"--check: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
            defaults = llm_config.default_sampling()
            sampling = SamplingParams(
                temperature=defaults.temperature if temperature is None else temperature,
                top_p=defaults.top_p if top_p is None else top_p,
                max_tokens=max_tokens or defaults.max_tokens,
                repeat_penalty=defaults.repeat_penalty,
            )
            config = RunConfig(
                per_label=per_label,
                labels=tuple(split_list(labels)),
                seed=seed if seed is not None else random.randrange(2**31),
                sampling=sampling,
                method=method,  # type: ignore[arg-type]
                genetic=GeneticOptions(parent_selection=selection, mutation=not no_mutation,  # type: ignore[arg-type]
                                       word_genes=word_genes),
                few_shot=FewShotOptions(k=shots) if shots is not None else FewShotOptions(),
                datagen=DataGenOptions(items_per_call=items_per_call, selection=diverse),  # type: ignore[arg-type]
                use_cache=not no_cache,
                dedup_distance=dedup,
                checks=in_run,
                worked_example=llm_config.backend == "embedded",
            )
            run_id = start_run(store, config, llm_config)
            out.print(f"run {run_id}: {config.method}, {per_label} per label, model {llm_config.model}, "
                      f"seed {config.seed}" + _checks_note(config), highlight=False)
        columns = (TextColumn("{task.description:>12}"), BarColumn(), MofNCompleteColumn(),
                   TimeElapsedColumn(), TextColumn("{task.fields[extra]}"))
        try:
            with Progress(*columns, console=out, transient=False) as progress:
                summary = run_generation(store, llm_config, run_id, observer=_ProgressBars(progress))
        except KeyboardInterrupt:
            err.print(f"interrupted: what landed is saved; continue with `datagen run {name} --resume`")
            raise typer.Exit(130) from None
        usage = summary.usage
        out.print(
            f"run {run_id} {summary.status}: {summary.new_offspring} new offspring in {summary.seconds:.1f}s "
            f"({summary.offspring_per_second:.2f}/s); calls {usage['calls']:.0f} "
            f"(cached {usage['cached_calls']:.0f}, failed {usage['failed_calls']:.0f}), "
            f"tokens {usage['prompt_tokens']:.0f} in / {usage['completion_tokens']:.0f} out"
        )


@app.command()
def runs(name: str, home: Home = DEFAULT_HOME) -> None:
    """List runs with their status, counts and token usage."""
    with open_project(home, name) as store:
        table = Table("run", "status", "method", "per label", "kept", "filtered", "calls", "tokens", "created")
        for info in store.runs():
            usage = store.run_usage(info.id)
            table.add_row(
                info.id, info.status, info.method, str(info.config.per_label),
                str(sum(store.kept_counts(info.id).values())), str(sum(store.filtered_counts(info.id).values())),
                f"{usage['calls']:.0f}", f"{usage['prompt_tokens'] + usage['completion_tokens']:.0f}",
                f"{info.created_at:%Y-%m-%d %H:%M}",
            )
        out.print(table)


@app.command()
def export(
    name: str,
    fmt: Annotated[str, typer.Option("--format", help="jsonl, csv or parquet")] = "jsonl",
    output: Annotated[Path | None, typer.Option("--out", help="File to write; default NAME.FORMAT")] = None,
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="pending, accepted or rejected")] = None,
    include_filtered: Annotated[bool, typer.Option("--include-filtered")] = False,
    home: Home = DEFAULT_HOME,
) -> None:
    """Write generated samples with their lineage."""
    from .export import export_frame, write_export

    if fmt not in ("jsonl", "csv", "parquet"):
        raise DatagenError(f"--format must be jsonl, csv or parquet, not {fmt!r}")
    with open_project(home, name) as store:
        if run_id is not None:
            store.run(run_id)
        frame = export_frame(store, run_id=run_id, status=status, include_filtered=include_filtered)
    target = output or Path(f"{name}.{fmt}")
    write_export(frame, target, fmt)  # type: ignore[arg-type]
    out.print(f"wrote {len(frame)} samples to {target}")


kb_app = typer.Typer(no_args_is_help=True, help="The knowledge base that fact checks retrieve from.")
app.add_typer(kb_app, name="kb")


@kb_app.command("load")
def kb_load(
    name: str,
    data: Annotated[Path, typer.Option("--data", help="CSV/TSV/JSONL/JSON, a .txt/.md file or a folder of them.")],
    text_col: Annotated[str, typer.Option("--text-col")] = "text",
    title_col: Annotated[str | None, typer.Option("--title-col")] = "title",
    home: Home = DEFAULT_HOME,
) -> None:
    """Add documents to the project's knowledge base (passages already there are skipped)."""
    from .embed import Embedder
    from .knowledge import load_knowledge

    with open_project(home, name) as store:
        added = load_knowledge(store, Embedder(), data, text_col=text_col, title_col=title_col)
        out.print(f"added {added} passages; the knowledge base holds {store.kb_count()}")


@app.command()
def check(
    name: str,
    module: Annotated[str, typer.Option("--check", help="The quality module (see above).")] = "dedup",
    run_id: Annotated[str | None, typer.Option("--run", help="Only this run's samples.")] = None,
    labels: Annotated[str | None, typer.Option("--labels", help="Comma-separated subset of labels.")] = None,
    distance: Annotated[float, typer.Option(help="dedup: Euclidean distance below which items are the same.")] = 0.3,
    text_similarity: Annotated[float, typer.Option(help="dedup: word-shingle Jaccard of near-duplicates.")] = 0.8,
    rounds: Annotated[int, typer.Option(min=1, max=10, help="reflection: judge/rewrite rounds at most.")] = 5,
    mode: Annotated[str, typer.Option(help="math, facts: flag mismatches, or correct them.")]
    = "flag",
    in_flight: Annotated[int | None, typer.Option("--in-flight", min=1, help="Concurrent LLM requests.")] = None,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Apply a quality module (dedup, reflection, math, facts, difficulty, debias) to stored synthetic samples.

    Rejected samples stay in the store, marked with the reason; corrections are edits kept in the history.
    """
    from .embed import Embedder
    from .llm import LLM
    from .quality import apply_check
    from .store import SampleFilter
    from .validators import CHECKS, make_check

    if module not in CHECKS:
        raise DatagenError(f"--check must be one of {sorted(CHECKS)}, not {module!r}")
    if mode not in ("flag", "correct"):
        raise DatagenError(f"--mode must be 'flag' or 'correct', not {mode!r}")
    chosen_check = make_check(module, rounds=rounds, mode=mode, distance=distance, text_similarity=text_similarity)
    with open_project(home, name) as store:
        if run_id is not None:
            store.run(run_id)
        chosen = SampleFilter(run_ids=(run_id,) if run_id else (), origin="synthetic",
                              labels=tuple(split_list(labels)),
                              statuses=("pending", "accepted"))
        llm = None if module == "dedup" else LLM.from_config(_llm_config(base_url, model, in_flight), store)
        summary = apply_check(store, chosen_check, chosen, Embedder(), llm)
    reasons = ", ".join(f"{reason} {n}" for reason, n in summary.rejected.items()) or "none"
    out.print(f"{summary.check}: checked {summary.checked}, kept {summary.kept}, rejected {reasons}, "
              f"corrected {summary.corrected}")


@app.command()
def demo(
    per_label: Annotated[int, typer.Option("--per-label", min=1)] = 5,
    base_url: BaseUrl = None,
    model: Model = None,
    home: Home = DEFAULT_HOME,
) -> None:
    """Create the shipped demo project (SMS spam seeds) if needed and generate a few offspring."""
    from .demo import DEMO_PROJECT, ensure_demo_project

    ensure_demo_project(home)
    out.print(f"demo project {DEMO_PROJECT!r} in {home}")
    run(DEMO_PROJECT, per_label=per_label, resume=False, labels=None, selection="farthest", no_mutation=False,
        word_genes=False, dedup=None, checks=None, rounds=5, mode="flag", items_per_call=5, diverse="greedy",
        seed=None, in_flight=None, temperature=None, top_p=None, max_tokens=None, no_cache=False,
        base_url=base_url, model=model, home=home)


app.add_typer(heldout_app, name="heldout")
app.command("eval")(eval_command)
app.command("doctor")(doctor_command)


def main(argv: Sequence[str] | None = None) -> None:
    try:
        # Non-standalone click returns the code of a typer.Exit instead of raising it.
        code = app(args=list(argv) if argv is not None else None, standalone_mode=False)
    except DatagenError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(1)
    except (typer.Abort, KeyboardInterrupt):
        err.print("aborted")
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
    if isinstance(code, int) and code:
        sys.exit(code)


if __name__ == "__main__":
    main()
