"""Small drawing helpers the pages share: user text shown as text, a sample's text and lineage fields, upload columns.

Streamlit renders markdown in `st.markdown`, captions, alerts, spinners, progress text, tooltips and in the labels
of widgets, expanders, tabs and metrics: every user- or model-supplied string put there goes through `md` (or
`code`). Selectbox and multiselect options, dataframes, `st.text` and `st.code` show plain text and need neither.
"""

from __future__ import annotations

import json
from typing import Any

from datagen_core.markdown import code, md

ORIGINS = {"real and synthetic": None, "synthetic": "synthetic", "real": "real"}


def quoted(text: str) -> str:
    """A sample's text as a markdown quote, with markdown syntax escaped so it shows as written."""
    escaped = md(text.strip())
    return "\n".join(f"> {line}" if line else ">" for line in escaped.splitlines()) or "> *(empty)*"


def parent_ids(value: Any) -> list[int]:
    """A sample's parent ids; NULL (a real seed) comes back from DuckDB as None or pandas.NA."""
    return [int(i) for i in value] if isinstance(value, list | tuple) or hasattr(value, "__array__") else []


def gene_split(raw: Any) -> dict[str, list[str]]:
    """The stored JSON gene split as lists per role; empty roles for real seeds."""
    parsed = json.loads(raw) if isinstance(raw, str) and raw else {}
    return {role: list(parsed.get(role, [])) for role in ("parent1", "parent2", "mutated")}


def genes_text(genes: list[str]) -> str:
    return ", ".join(code(g) for g in genes) if genes else "—"


def default_column(columns: list[str], wanted: str, fallback: int) -> int:
    """The index of column `wanted` in an upload, else of the `fallback`-th column (the last if fewer)."""
    return columns.index(wanted) if wanted in columns else min(fallback, len(columns) - 1)
