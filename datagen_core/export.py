"""Writing generated samples with their lineage to JSONL, CSV or Parquet."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

import pandas as pd

from .errors import DatagenError
from .store import Store

ExportFormat = Literal["jsonl", "csv", "parquet"]
_JSON_COLUMNS = ("gene_split", "sampling", "details")


def export_frame(
    store: Store, *, run_id: str | None = None, status: str | None = None, include_filtered: bool = False
) -> pd.DataFrame:
    """Synthetic samples with lineage; JSON columns decoded so JSONL and Parquet keep their structure."""
    frame = store.samples(run_id=run_id, origin="synthetic", status=status, include_filtered=include_filtered)
    frame = frame.drop(columns=["origin"])
    for column in _JSON_COLUMNS:
        frame[column] = [json.loads(v) if isinstance(v, str) else None for v in frame[column]]
    frame["parent_ids"] = [list(map(int, v)) if v is not None else [] for v in frame["parent_ids"]]
    return frame


def write_export(frame: pd.DataFrame, path: Path, fmt: ExportFormat) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "jsonl":
        frame.to_json(path, orient="records", lines=True, date_format="iso", force_ascii=False)
    elif fmt == "parquet":
        # `details` differs per method (and may be empty), which no single Parquet struct can hold.
        frame.assign(details=[json.dumps(v) for v in frame["details"]]).to_parquet(path, index=False)
    elif fmt == "csv":
        flat = frame.copy()
        for column in (*_JSON_COLUMNS, "parent_ids"):
            flat[column] = [json.dumps(v) if v is not None else "" for v in flat[column]]
        flat.to_csv(path, index=False)
    else:
        raise DatagenError(f"unknown export format {fmt!r}; use jsonl, csv or parquet")
