"""Reading a user's labelled examples (CSV, JSONL, Parquet) into a clean `text,label` frame.

Every way a file can be wrong ends in one `DatagenError` naming the file and the fix, before the
store is touched. Files are read and cleaned in chunks, so a large one costs little more memory than its
clean texts, and the caller can show progress.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
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
#: Rows read and cleaned at a time.
CHUNK_ROWS = 100_000
#: Called after each chunk with the rows read so far, the bytes read so far and the file's size.
ReadProgress = Callable[[int, int, int], None]
#: What a text or label cell may hold: anything else (bytes, lists, dicts) would become its Python repr.
_SCALAR_KINDS = frozenset({"string", "integer", "floating", "mixed-integer-float", "boolean", "decimal", "empty"})
_SCALAR_TYPES = (str, int, float, bool, np.generic)
# Two independent 64-bit hashes of (text, label): 128 bits, like the store's text hashes, so rows are deduplicated
# without holding every text twice.
_HASH_KEYS = ("datagen-dedup-k1", "datagen-dedup-k2")
_PROJECT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def check_project_name(name: str) -> str:
    """`name` if it can be a project's file name. Matched to the very end: a trailing newline is no name."""
    if not _PROJECT_NAME.fullmatch(name):
        raise DatagenError(f"project name {name!r} must be 1-64 letters, digits, '_', '-' or '.', "
                           "starting with a letter or digit")
    return name


def _format(path: Path) -> str:
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DatagenError(f"{path}: unsupported file type {path.suffix!r}; use CSV, JSONL or Parquet")
    return fmt


@contextmanager
def _parse_errors(path: Path, fmt: str) -> Iterator[None]:
    """The reader's exceptions as one line naming the file."""
    try:
        yield
    except UnicodeDecodeError as exc:
        byte = exc.object[exc.start] if isinstance(exc.object, bytes) and exc.start < len(exc.object) else None
        found = f" (byte {byte:#04x})" if byte is not None else ""
        raise DatagenError(f"{path}: not UTF-8 text{found}; re-save the file as UTF-8") from None
    except pd.errors.EmptyDataError:
        raise DatagenError(f"{path}: the file is empty") from None
    except (pd.errors.ParserError, ValueError, OSError, OverflowError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatagenError(f"{path}: cannot parse as {fmt}: {first_line}") from None


def _read_whole(source: Path | IO[bytes], fmt: str) -> pd.DataFrame:
    if fmt == "parquet":
        return pd.read_parquet(source)
    if fmt in ("csv", "tsv"):
        return pd.read_csv(source, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                           encoding="utf-8")
    return pd.read_json(source, lines=fmt == "jsonl", dtype=False, encoding="utf-8")


def _read_chunks(handle: IO[bytes], fmt: str, columns: tuple[str, str]) -> Iterator[pd.DataFrame]:
    """The file's rows, `CHUNK_ROWS` at a time (a JSON array at once: it has no rows until it is parsed)."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        file = pq.ParquetFile(handle)
        present = set(file.schema_arrow.names)
        # only the two columns when both are there; otherwise all of them, for the error to list
        wanted = list(columns) if present.issuperset(columns) else None
        for batch in file.iter_batches(batch_size=CHUNK_ROWS, columns=wanted):
            yield batch.to_pandas()
    elif fmt in ("csv", "tsv"):
        yield from pd.read_csv(handle, sep="\t" if fmt == "tsv" else ",", dtype=str, keep_default_na=False,
                               encoding="utf-8", chunksize=CHUNK_ROWS)
    elif fmt == "jsonl":
        yield from pd.read_json(handle, lines=True, dtype=False, encoding="utf-8", chunksize=CHUNK_ROWS)
    else:
        yield pd.read_json(handle, dtype=False, encoding="utf-8")


def _refuse_surplus_fields(frame: pd.DataFrame, fmt: str, path: Path) -> pd.DataFrame:
    """pandas silently makes the surplus leading fields of rows longer than the header their index, which shifts
    every text into the wrong column: such rows are texts holding an unquoted separator."""
    if fmt in ("csv", "tsv") and not isinstance(frame.index, pd.RangeIndex):
        raise DatagenError(f"{path}: rows have more fields than the header; quote texts that contain the separator")
    return frame


def _shown(columns: list[str]) -> str:
    """The file's columns for a message, cut short: a binary 'header' must not flood the line."""
    text = repr(columns)
    return text if len(text) <= 200 else text[:200] + "…"


def _read_raw(source: Path | IO[bytes], name: str) -> pd.DataFrame:
    path = Path(name)
    fmt = _format(path)
    with _parse_errors(path, fmt):
        return _refuse_surplus_fields(_read_whole(source, fmt), fmt, path)


def read_examples(path: Path, text_col: str = "text", label_col: str = "label",
                  progress: ReadProgress | None = None) -> pd.DataFrame:
    """Load labelled examples; returns a frame with exactly the columns `text` and `label` (strings)."""
    if not path.exists():
        raise DatagenError(f"{path}: no such file")
    if path.is_dir():
        raise DatagenError(f"{path}: is a directory, expected a CSV, JSONL or Parquet file")
    if not path.is_file():
        raise DatagenError(f"{path}: not a regular file, expected a CSV, JSONL or Parquet file")
    fmt = _format(path)
    size = path.stat().st_size
    if size == 0:
        raise DatagenError(f"{path}: the file is empty")
    cleaner = _Cleaner(text_col, label_col, str(path))
    rows = 0
    with _parse_errors(path, fmt), path.open("rb") as handle:
        for chunk in _read_chunks(handle, fmt, (text_col, label_col)):
            cleaner.add(_refuse_surplus_fields(chunk, fmt, path))
            rows += len(chunk)
            if progress is not None:
                progress(rows, handle.tell(), size)
    return cleaner.result()


def read_upload(name: str, data: bytes) -> pd.DataFrame:
    """An uploaded file as it is (all columns), for a preview and a choice of text and label columns."""
    if not data:
        raise DatagenError(f"{name}: the file is empty")
    raw = _read_raw(io.BytesIO(data), name)
    if raw.empty or len(raw.columns) < 2:
        raise DatagenError(f"{name}: needs at least two columns (a text and a label) and one row")
    return raw


def guess_columns(raw: pd.DataFrame) -> tuple[str, str]:
    """The text and label columns an upload most likely has, judged by content, not by name (a header may be
    `tweet,sentiment` or the same columns the other way round): the text column holds the longest strings; the
    label column, among the others, has the fewest distinct values (at least two where any has)."""
    columns = [str(c) for c in raw.columns]
    sample = raw.head(2_000).set_axis(columns, axis=1).astype(str)
    lengths = {c: float(sample[c].str.len().mean()) for c in columns}
    text = max(columns, key=lambda c: (lengths[c], -columns.index(c)))
    distinct = {c: sample[c].nunique() for c in columns if c != text}
    label = min(distinct, key=lambda c: (distinct[c] < 2, distinct[c], columns.index(c)))
    return text, label


def _refuse_non_scalar(values: pd.Series, column: str, source: str) -> None:
    """A column of bytes, lists or dicts is refused: its cells' Python reprs are no text to learn from."""
    if values.dtype != object:
        if (pd.api.types.is_string_dtype(values.dtype) or pd.api.types.is_numeric_dtype(values.dtype)
                or pd.api.types.is_bool_dtype(values.dtype) or isinstance(values.dtype, pd.CategoricalDtype)):
            return
        raise DatagenError(f"{source}: column {column!r} holds {values.dtype} values, not text; "
                           "convert it to strings")
    if pd.api.types.infer_dtype(values, skipna=True) in _SCALAR_KINDS:
        return
    odd = next((v for v in values if v is not None and not isinstance(v, _SCALAR_TYPES)), None)
    if odd is not None:
        raise DatagenError(f"{source}: column {column!r} holds {type(odd).__name__} values, not text; "
                           "convert it to strings")


class _Cleaner:
    """Cleans chunks of one file as they arrive and keeps the first of each (text, label) pair."""

    def __init__(self, text_col: str, label_col: str, source: str) -> None:
        if text_col == label_col:
            raise DatagenError(f"{source}: text and label must be different columns")
        self.text_col, self.label_col, self.source = text_col, label_col, source
        self.parts: list[pd.DataFrame] = []
        self.hashes: list[pd.DataFrame] = []

    def add(self, raw: pd.DataFrame) -> None:
        columns = [str(c) for c in raw.columns]
        missing = [c for c in (self.text_col, self.label_col) if c not in columns]
        if missing:
            raise DatagenError(f"{self.source}: missing column(s) {', '.join(map(repr, missing))}; "
                               f"the file has {_shown(columns)}")
        raw = raw.set_axis(columns, axis=1)
        for column in (self.text_col, self.label_col):
            _refuse_non_scalar(raw[column], column, self.source)
        frame = pd.DataFrame({"text": raw[self.text_col].astype(str).str.strip(),
                              "label": raw[self.label_col].astype(str).str.strip()})
        keep = (frame["text"].notna() & frame["label"].notna() & (frame["text"] != "") & (frame["label"] != "")
                & (frame["text"].str.lower() != "nan"))
        frame = frame[keep].reset_index(drop=True)
        self.parts.append(frame)
        self.hashes.append(pd.DataFrame({
            key: pd.util.hash_pandas_object(frame, index=False, hash_key=key, categorize=False).to_numpy()
            for key in _HASH_KEYS
        }))

    def result(self) -> pd.DataFrame:
        """The clean, deduplicated rows, checked to be enough for a project."""
        if not self.parts:
            raise DatagenError(f"{self.source}: no rows with both a text and a label")
        repeated = pd.concat(self.hashes, ignore_index=True).duplicated().to_numpy()
        self.hashes = []
        kept, start = [], 0
        while self.parts:  # each part is let go once filtered: no moment holds every text twice
            part = self.parts.pop(0)
            kept.append(part[~repeated[start:start + len(part)]])
            start += len(part)
        frame = pd.concat(kept, ignore_index=True)
        if frame.empty:
            raise DatagenError(f"{self.source}: no rows with both a text and a label")
        counts = frame["label"].value_counts()
        too_few = sorted(counts[counts < MIN_EXAMPLES_PER_LABEL].index)
        if too_few:
            raise DatagenError(
                f"{self.source}: label(s) {', '.join(map(repr, too_few))} have fewer than {MIN_EXAMPLES_PER_LABEL} "
                "examples; a population needs at least two parents"
            )
        if len(counts) < 2:
            raise DatagenError(f"{self.source}: only one label ({counts.index[0]!r}); "
                               "a classifier needs at least two")
        return frame


def clean_examples(raw: pd.DataFrame, text_col: str, label_col: str, source: str) -> pd.DataFrame:
    """Validate columns and content of an already-loaded frame (shared with uploads in the studio)."""
    cleaner = _Cleaner(text_col, label_col, source)
    cleaner.add(raw)
    return cleaner.result()


def split_heldout(examples: pd.DataFrame, fraction: float, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Seeds and held-out test rows: `fraction` of each label (rounded) is held out, stratified and seeded,
    while every label keeps at least the seeds a population needs."""
    if not 0.0 <= fraction < 1.0:
        raise DatagenError(f"the held-out fraction must be in [0, 1), not {fraction}")
    if fraction == 0.0:  # no copy of a large frame for nothing
        return examples, examples.iloc[:0]
    # label codes, not a groupby: grouping a large frame by its strings costs more memory than the frame
    codes, labels = pd.factorize(examples["label"])
    chosen = np.zeros(len(examples), dtype=bool)
    rng = np.random.default_rng(seed)
    for code in range(len(labels)):  # in order of first appearance, like a groupby(sort=False)
        rows = np.flatnonzero(codes == code)
        n = min(round(fraction * len(rows)), len(rows) - MIN_EXAMPLES_PER_LABEL)
        if n > 0:
            chosen[rng.choice(rows, size=n, replace=False)] = True
    return _rows(examples, ~chosen), _rows(examples, chosen)


def _rows(frame: pd.DataFrame, mask: np.ndarray) -> pd.DataFrame:
    """The rows of `frame` where `mask` holds, filtered a chunk at a time: filtering a large frame of Arrow
    strings at once copies it more than once."""
    parts = [frame.iloc[start:start + CHUNK_ROWS][mask[start:start + CHUNK_ROWS]]
             for start in range(0, len(frame), CHUNK_ROWS)]
    return pd.concat(parts or [frame.iloc[:0]], ignore_index=True)


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
        spec = ProjectSpec(name=check_project_name(name.strip()), task=task.strip(),
                           text_kind=text_kind.strip() or "text")
        labels = [Label(name=n, description=descriptions.get(n, "").strip()) for n in examples["label"].unique()]
    except ValidationError as exc:
        error = exc.errors()[0]
        where = ".".join(map(str, error["loc"]))
        message = error["msg"].removeprefix("Value error, ")
        raise DatagenError(message if where == "name" else f"{where}: {message}") from None
    return NewProject(spec=spec, labels=labels, examples=examples, source=source, heldout=heldout)
