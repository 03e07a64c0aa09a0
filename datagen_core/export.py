"""Writing generated samples with their lineage to JSONL, CSV or Parquet, and the dataset card that describes them."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from datagen_core.config import redact_url
from datagen_core.errors import DatagenError
from datagen_core.markdown import md
from datagen_core.methods import describe_options
from datagen_core.records import utcnow
from datagen_core.registry import METHODS
from datagen_core.store import EXPORT_STATUSES, SampleFilter, Store

ExportFormat = Literal["jsonl", "csv", "parquet"]
_JSON_COLUMNS = ("gene_split", "sampling", "details")
#: A spreadsheet runs a cell that starts with one of these as a formula (OWASP's "CSV injection"): in a CSV such a
#: cell gets a leading single quote, which spreadsheets show as text. JSONL and Parquet keep every value exact.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
CSV_NOTE = ("In the CSV, a cell that begins with =, +, -, @, a tab or a carriage return has a single quote (') "
            "put before it, so that no spreadsheet runs it as a formula; JSONL and Parquet hold every value exactly.")


#: The columns of a train-ready file: what a classifier's training reads, and where each row came from.
TRAIN_READY_COLUMNS = ("text", "label", "source")


def export_frame(
    store: Store,
    *,
    run_id: str | None = None,
    statuses: tuple[str, ...] = EXPORT_STATUSES,
    include_filtered: bool = False,
    with_real: bool = False,
    history: bool = False,
) -> pd.DataFrame:
    """Synthetic samples with lineage (`statuses` empty: every status), each marked `source` = synthetic; the real
    seeds after them (`with_real`, source = real); `history`: each sample's edits, oldest first. JSON columns are
    decoded so JSONL and Parquet keep their structure."""
    chosen = SampleFilter(run_ids=(run_id,) if run_id else (), statuses=statuses, origin="synthetic",
                          include_filtered=include_filtered)
    frame = store.sample_page(chosen, order="oldest")
    if with_real:
        frame = pd.concat([frame, store.sample_page(SampleFilter(origin="real"), order="oldest")], ignore_index=True)
    frame.insert(frame.columns.get_loc("origin"), "source", frame.pop("origin"))
    for column in _JSON_COLUMNS:
        frame[column] = [json.loads(v) if isinstance(v, str) else None for v in frame[column]]
    frame["parent_ids"] = [list(map(int, v)) if isinstance(v, list | tuple | np.ndarray) else []
                           for v in frame["parent_ids"]]
    if history:
        edits = store.sample_histories(frame["id"].tolist())
        frame["history"] = [edits.get(int(i), []) for i in frame["id"]]
    return frame


def train_ready_frame(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """Text, label and source of every row, shuffled (seeded): a file a classifier trains on as it is."""
    return frame[list(TRAIN_READY_COLUMNS)].sample(frac=1.0, random_state=seed).reset_index(drop=True)


@dataclass(frozen=True)
class Export:
    """One export as an interface offers it: the samples (with lineage, for counts), the rows the file holds
    and the dataset card that describes them."""

    frame: pd.DataFrame
    rows: pd.DataFrame
    card: str

    @property
    def synthetic(self) -> int:
        return int((self.frame["source"] == "synthetic").sum())


def build_export(
    store: Store,
    *,
    run_id: str | None = None,
    statuses: tuple[str, ...] = EXPORT_STATUSES,
    include_filtered: bool = False,
    with_real: bool = False,
    history: bool = False,
    train_ready_seed: int | None = None,
) -> Export:
    """What the CLI and the Export page write: a train-ready file (`train_ready_seed`) holds the real seeds too
    and no history (its columns are text, label and source)."""
    if train_ready_seed is not None and history:
        raise DatagenError("a train-ready file keeps only text, label and source: leave out the edit history")
    frame = export_frame(store, run_id=run_id, statuses=statuses, include_filtered=include_filtered,
                         with_real=with_real or train_ready_seed is not None, history=history)
    rows = frame if train_ready_seed is None else train_ready_frame(frame, train_ready_seed)
    card = dataset_card(store, frame, run_id, statuses=statuses, train_ready_seed=train_ready_seed)
    return Export(frame, rows, card)


def export_bytes(frame: pd.DataFrame, fmt: ExportFormat) -> bytes:
    """The export file's content, for a download (the studio) or a file (`write_export`)."""
    if fmt == "jsonl":
        text = frame.to_json(orient="records", lines=True, date_format="iso", force_ascii=False)
        return (text or "").encode("utf-8")
    if fmt == "parquet":
        # `details` differs per method (and may be empty), which no single Parquet struct can hold; neither can
        # an edit history whose old and new values are of several kinds.
        buffer = io.BytesIO()
        frame.assign(**{column: [json.dumps(v, default=str) for v in frame[column]]
                        for column in ("details", "history") if column in frame}).to_parquet(buffer, index=False)
        return buffer.getvalue()
    if fmt == "csv":
        flat = frame.copy()
        for column in (*_JSON_COLUMNS, "parent_ids", "history"):
            if column in flat:
                flat[column] = [json.dumps(v, default=str) if v is not None else "" for v in flat[column]]
        for column in flat.columns:
            if flat[column].dtype == object or pd.api.types.is_string_dtype(flat[column]):
                flat[column] = [neutralise(v) for v in flat[column]]
        # RFC 4180's CRLF: the csv writer then quotes every cell holding a CR or an LF, so a lone CR in a text
        # cannot end a row early.
        return flat.to_csv(index=False, lineterminator="\r\n").encode("utf-8")
    raise DatagenError(f"unknown export format {fmt!r}; use jsonl, csv or parquet")


def neutralise(value: object) -> object:
    """A CSV cell a spreadsheet shows as written instead of running it as a formula."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_STARTS) else value


def write_export(frame: pd.DataFrame, path: Path, fmt: ExportFormat) -> None:
    data = export_bytes(frame, fmt)  # an unknown format fails before anything is created
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def dataset_card(store: Store, frame: pd.DataFrame, run_id: str | None = None, *,
                 statuses: tuple[str, ...] = EXPORT_STATUSES, train_ready_seed: int | None = None) -> str:
    """A markdown card describing an export (`frame` as `export_frame` made it; `train_ready_seed` when the file
    holds its train-ready form): task, model, genes, what was kept, counts and the parameters of its runs.

    Every string a user or a model supplied is escaped (`md`), so the card renders it as written: no image, link or
    HTML from a label name or a gene runs where the card is shown. Credentials in an endpoint's URL are redacted."""
    project = store.project()
    runs = [store.run(run_id)] if run_id else [r for r in store.runs() if r.id in set(frame["run_id"].dropna())]
    real = store.real_counts()
    synthetic = frame[frame["source"] == "synthetic"]
    included_real = frame[frame["source"] == "real"]
    kept = ", ".join(statuses) if statuses else "every status"
    form = (f"Train-ready: the columns {', '.join(TRAIN_READY_COLUMNS)}, rows shuffled with seed {train_ready_seed}."
            if train_ready_seed is not None else "Every row keeps its lineage columns.")
    lines = [
        f"# Dataset card: {md(project.name)}",
        "",
        f"Synthetic {md(project.text_kind)} samples for **{md(project.task)}**, generated with Genetic Prompt Studio.",
        "",
        "## Contents",
        "",
        f"{len(synthetic)} synthetic samples ({kept})"
        + (f" and the {len(included_real)} real seeds they were bred from (`source` = real)" if len(included_real)
           else "")
        + f", exported on {utcnow():%Y-%m-%d %H:%M} UTC. {form} {CSV_NOTE}",
        "",
        "| label | synthetic | accepted | pending | rejected | real seeds |",
        "|---|---|---|---|---|---|",
    ]
    for label in store.labels():
        rows = synthetic[synthetic["label"] == label.name]
        counts = rows["status"].value_counts()
        lines.append(f"| {md(label.name)} | {len(rows)} | {counts.get('accepted', 0)} | {counts.get('pending', 0)} "
                     f"| {counts.get('rejected', 0)} | {real.get(label.name, 0)} |")
    described = [lb for lb in store.labels() if lb.description]
    if described:
        lines += ["", "## Labels", ""] + [f"- **{md(lb.name)}**: {md(lb.description)}" for lb in described]
    for run in runs:
        config = run.config
        usage = store.run_usage(run.id)
        lines += [
            "", f"## Run {run.id}", "",
            f"- method: {config.method}; status: {run.status}; started {run.created_at:%Y-%m-%d %H:%M} UTC",
            f"- model: {md(run.llm.get('model'))} ({run.llm.get('backend')}"
            + (f", {md(redact_url(run.llm['base_url']))}" if run.llm.get("base_url") else "") + ")",
            f"- target per label: {config.per_label}; labels: {md(', '.join(config.labels)) or 'all'}; "
            f"seed {config.seed}",
            f"- sampling: temperature {config.sampling.temperature}, top-p {config.sampling.top_p}, "
            f"max tokens {config.sampling.max_tokens}",
            f"- {METHODS.title(config.method)}: {md(describe_options(config)) or 'no options'}",
            f"- LLM calls {usage['calls']:.0f} (cached {usage['cached_calls']:.0f}, "
            f"failed {usage['failed_calls']:.0f}); tokens {usage['prompt_tokens']:.0f} in / "
            f"{usage['completion_tokens']:.0f} out",
        ]
        if run.gene_set_version is not None:
            gene_set = store.gene_set(run.gene_set_version)
            assert gene_set is not None
            lines.append(f"- genes (version {gene_set.version}): "
                         + "; ".join(md(g.name) + (f" ({md(g.description)})" if g.description else "")
                                     for g in gene_set.genes))
            lines += [f"- constraint: {md(c)}" for c in gene_set.constraints]
    lines += [
        "", "## Lineage", "",
        "Every row carries `parent_ids`, `gene_split` (genes inherited from each parent and mutated), the `prompt`, "
        "the `model`, the `sampling` parameters and the `raw_response`; edits are kept in the project's history.",
        "",
    ]
    return "\n".join(lines)
