"""Small drawing helpers the pages share: user text shown as text, a sample's text and lineage fields, upload columns.

Streamlit renders markdown in `st.markdown`, captions, alerts, spinners, progress text, tooltips and in the labels
of widgets, expanders, tabs and metrics: every user- or model-supplied string put there goes through `md` (or
`code`). Selectbox and multiselect options, dataframes, `st.text` and `st.code` show plain text and need neither.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from datagen_core.ingest import guess_columns
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


def column_pickers(raw: pd.DataFrame, text_key: str, label_key: str) -> tuple[str, str]:
    """Text and label column pickers for an upload, defaulting to what its content suggests. A file with other
    columns starts from fresh defaults: a choice kept from the last file could show one mapping while the check
    used another."""
    columns = [str(c) for c in raw.columns]
    layout_key = f"{text_key}:layout"
    if st.session_state.get(layout_key) != columns:
        st.session_state[layout_key] = columns
        st.session_state.pop(text_key, None)
        st.session_state.pop(label_key, None)
    text, label = guess_columns(raw)
    left, right = st.columns(2)
    text_col = left.selectbox("Text column", columns, index=columns.index(text), key=text_key,
                              help="Guessed from the content: the column with the longest texts.")
    label_col = right.selectbox("Label column", columns, index=columns.index(label), key=label_key,
                                help="Guessed from the content: the column with the fewest distinct values.")
    return text_col, label_col
