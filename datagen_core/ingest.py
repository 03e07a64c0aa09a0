"""Reading a user's labelled examples (CSV, JSONL, Parquet) into a clean `text,label` frame.

Every way a file can be wrong ends in one `DatagenError` naming the file and the fix, before the
store is touched.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np
import pandas as pd
from pydantic import ValidationError

from datagen_core.config import Label, ProjectSpec
from datagen_core.errors import DatagenError

MIN_EXAMPLES_PER_LABEL = 2
FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".parquet": "parquet"}


def _read_raw(source: Path | IO[bytes], name: str) -> pd.DataFrame:
    path = Path(name)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DatagenError(f"{path}: unsupported file type {path.suffix!r}; use CSV, JSONL or Parquet")
    try:
        if fmt == "parquet":
            return pd.read_parquet(source)
        if fmt in ("csv", "tsv"):
            return pd.read_csv(source, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                               encoding="utf-8")
        return pd.read_json(source, lines=fmt == "jsonl", dtype=False, encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DatagenError(f"{path}: not UTF-8 text (byte {exc.start}); re-save the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DatagenError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatagenError(f"{path}: cannot parse as {fmt}: {first_line}") from None


def read_examples(path: Path, text_col: str = "text", label_col: str = "label") -> pd.DataFrame:
    """Load labelled examples; returns a frame with exactly the columns `text` and `label` (strings)."""
    if not path.exists():
        raise DatagenError(f"{path}: no such file")
    if path.is_dir():
        raise DatagenError(f"{path}: is a directory, expected a CSV, JSONL or Parquet file")
    if path.stat().st_size == 0:
        raise DatagenError(f"{path}: the file is empty")
    raw = _read_raw(path, str(path))
    return clean_examples(raw, text_col, label_col, str(path))


def read_upload(name: str, data: bytes) -> pd.DataFrame:
    """An uploaded file as it is (all columns), for a preview and a choice of text and label columns."""
    if not data:
        raise DatagenError(f"{name}: the file is empty")
    raw = _read_raw(io.BytesIO(data), name)
    if raw.empty or len(raw.columns) < 2:
        raise DatagenError(f"{name}: needs at least two columns (a text and a label) and one row")
    return raw


def clean_examples(raw: pd.DataFrame, text_col: str, label_col: str, source: str) -> pd.DataFrame:
    """Validate columns and content of an already-loaded frame (shared with uploads in the studio)."""
    columns = [str(c) for c in raw.columns]
    missing = [c for c in (text_col, label_col) if c not in columns]
    if missing:
        raise DatagenError(f"{source}: missing column(s) {', '.join(map(repr, missing))}; the file has {columns}")
    if text_col == label_col:
        raise DatagenError(f"{source}: text and label must be different columns")
    frame = pd.DataFrame(
        {"text": raw[text_col].astype(str).str.strip(), "label": raw[label_col].astype(str).str.strip()}
    )
    frame = frame[(frame["text"] != "") & (frame["label"] != "") & (frame["text"].str.lower() != "nan")]
    frame = frame.drop_duplicates(subset=["text", "label"]).reset_index(drop=True)
    if frame.empty:
        raise DatagenError(f"{source}: no rows with both a text and a label")
    counts = frame["label"].value_counts()
    too_few = sorted(counts[counts < MIN_EXAMPLES_PER_LABEL].index)
    if too_few:
        raise DatagenError(
            f"{source}: label(s) {', '.join(map(repr, too_few))} have fewer than {MIN_EXAMPLES_PER_LABEL} "
            "examples; a population needs at least two parents"
        )
    if len(counts) < 2:
        raise DatagenError(f"{source}: only one label ({counts.index[0]!r}); a classifier needs at least two")
    return frame


def split_heldout(examples: pd.DataFrame, fraction: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeds and held-out test rows: `fraction` of each label (rounded) is held out, stratified and seeded,
    while every label keeps at least the seeds a population needs."""
    if not 0.0 <= fraction < 1.0:
        raise DatagenError(f"the held-out fraction must be in [0, 1), not {fraction}")
    held: list[int] = []
    rng = np.random.default_rng(seed)
    for _, rows in examples.groupby("label", sort=False):
        n = min(round(fraction * len(rows)), len(rows) - MIN_EXAMPLES_PER_LABEL)
        if n > 0:
            held.extend(rng.choice(rows.index.to_numpy(), size=n, replace=False).tolist())
    chosen = examples.index.isin(held)
    return examples[~chosen].reset_index(drop=True), examples[chosen].reset_index(drop=True)


@dataclass(frozen=True)
class NewProject:
    """Everything `Workspace.create_project` needs, validated before any file is created."""

    spec: ProjectSpec
    labels: list[Label]
    examples: pd.DataFrame
    source: str
    heldout: pd.DataFrame | None = None


def prepare_project(
    raw: pd.DataFrame,
    *,
    text_col: str,
    label_col: str,
    source: str,
    name: str,
    task: str,
    text_kind: str,
    label_descriptions: Mapping[str, str] | None = None,
    heldout_fraction: float = 0.0,
    seed: int = 0,
) -> NewProject:
    """Validate an uploaded frame and the user's answers together, so the studio fails before writing anything."""
    examples, heldout = split_heldout(clean_examples(raw, text_col, label_col, source), heldout_fraction, seed)
    if not task.strip():
        raise DatagenError("describe the task (e.g. 'SMS spam detection'): every prompt names it")
    descriptions = label_descriptions or {}
    try:
        spec = ProjectSpec(name=name.strip(), task=task.strip(), text_kind=text_kind.strip() or "text")
        labels = [Label(name=n, description=descriptions.get(n, "").strip()) for n in examples["label"].unique()]
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        raise DatagenError(message if where == "name" else f"{where}: {message}") from None
    return NewProject(spec=spec, labels=labels, examples=examples, source=source, heldout=heldout)
