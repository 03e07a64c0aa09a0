"""Map: every sample's embedding in 2-D (UMAP), coloured by label, real seeds and offspring apart.

The projection lives in the store (`datagen_core.projection`): fitted once, new offspring placed among their
nearest fitted texts, so points never move when filters change or a run adds offspring. Clicking an offspring
draws its lineage: lines to both parents and, below the chart, the three texts and the gene split.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from datagen_core.projection import EmbeddingMap
from datagen_core.store import SAMPLE_STATUSES, SampleFilter, Store
from studio import state
from studio.map_chart import drawn, figure
from studio.render import ORIGINS, md, parent_ids, quoted

CHART_KEY = "map_chart"
FOCUS_KEY = "map_focus"


# ---------------------------------------------------------------------------- state
#: How many points the chart draws at most: in a fresh session Chromium draws the Map of 10,000 points in ~3 s
#: (60 points: 2 s), of 20,000 in ~4.4 s and of 93,000 in 12 s (benchmarks/scale_studio.py).
FILTER_WIDTH = 190  # px: a filter reads whole at any window width; the row wraps instead
DRAWN_CHOICES = {"10,000": 10_000, "2,000": 2_000, "30,000": 30_000, "100,000": 100_000, "all": None}


def filters(store: Store) -> SampleFilter:
    labels = [lb.name for lb in store.labels()]
    runs = [r.id for r in reversed(store.runs())]
    row = st.container(horizontal=True, vertical_alignment="bottom")  # wraps on a narrow window, never truncates
    run_ids = row.multiselect("Run", runs, key="map_runs", width=FILTER_WIDTH, placeholder="every run",
                              help="Offspring of these runs; add origin 'real' seeds with the origin filter.")
    chosen_labels = row.multiselect("Label", labels, key="map_labels", width=FILTER_WIDTH, placeholder="every label")
    statuses = row.multiselect("Status", list(SAMPLE_STATUSES), key="map_statuses", width=FILTER_WIDTH,
                               placeholder="every status")
    origin = row.selectbox("Origin", list(ORIGINS), key="map_origin", width=FILTER_WIDTH)
    include_filtered = row.checkbox("Filtered outputs", key="map_filtered", width="content",
                                    help="Also draw outputs the engine dropped (refusals, duplicates, ...).")
    return SampleFilter(run_ids=tuple(run_ids), labels=tuple(chosen_labels), statuses=tuple(statuses),
                        origin=ORIGINS[origin], include_filtered=include_filtered)


def selected_id(event: Any) -> int | None:
    """The sample id of the first clicked point that carries one (lineage lines and markers carry none)."""
    selection = (event or {}).get("selection") or {}
    for point in selection.get("points") or []:
        custom = point.get("customdata")
        if isinstance(custom, list | tuple):
            custom = custom[0] if custom else None
        if isinstance(custom, int | float | str) and str(custom).lstrip("-").isdigit():
            return int(custom)
    return None


def on_select() -> None:
    """Remember the clicked sample: the chart's own selection resets when the lineage lines change the figure."""
    chosen = selected_id(st.session_state.get(CHART_KEY))
    if chosen is not None:
        st.session_state[FOCUS_KEY] = chosen


def clear_focus() -> None:
    st.session_state.pop(FOCUS_KEY, None)


# ---------------------------------------------------------------------------- focus
def lineage_of(emap: EmbeddingMap, focus: int | None) -> pd.DataFrame | None:
    """The focused sample first, then its parents in order, each with x, y (parents may be filtered out)."""
    if focus is None:
        return None
    found = emap.locate([focus])
    if found.empty:
        return None
    parents = parent_ids(found.iloc[0]["parent_ids"])
    if not parents:
        return found
    located = emap.locate(parents)
    ordered = [located[located["id"] == p].iloc[:1] for p in parents]
    return pd.concat([found, *ordered], ignore_index=True)


def genes(split: dict[str, list[str]], role: str) -> str:
    """The gene names of one role of a gene split, as written ("—" for none)."""
    return ", ".join(md(gene) for gene in split.get(role, [])) or "—"


def focus_panel(store: Store, lineage: pd.DataFrame) -> None:
    """The selected sample, its parents side by side and which genes each parent gave."""
    child = lineage.iloc[0]
    sample = store.samples_by_ids([int(child["id"])]).iloc[0]
    head = st.container(horizontal=True, vertical_alignment="center")
    head.markdown(f"**Selected #{int(child['id'])}** · {md(child['label'])} · {child['origin']} · {child['status']}")
    head.button("Clear selection", key="map_clear", on_click=clear_focus, width="content")
    if len(lineage) == 1:
        st.markdown(quoted(str(child["text"])))
        st.caption("A real seed: it has no parents." if child["origin"] == "real" else "No parents recorded.")
        return
    split = json.loads(sample["gene_split"]) if isinstance(sample["gene_split"], str) else {}
    columns = st.columns(3)
    with columns[0]:
        st.caption(f"Offspring · mutated: {genes(split, 'mutated')}")
        st.markdown(quoted(str(child["text"])))
    for position, (column, (_, parent)) in enumerate(zip(columns[1:], lineage.iloc[1:].iterrows(), strict=False),
                                                      start=1):
        with column:
            st.caption(f"Parent {position} · #{int(parent['id'])} · {parent['origin']} · gives: "
                       f"{genes(split, f'parent{position}')}")
            st.markdown(quoted(str(parent["text"])))
    st.markdown(f"Gene split: from parent 1 **{genes(split, 'parent1')}** · from parent 2 "
                f"**{genes(split, 'parent2')}** · mutated **{genes(split, 'mutated')}**")


def main() -> None:
    st.title("Map")
    store = state.store()
    emap = EmbeddingMap(store, state.workspace().embedder)
    chosen = filters(store)
    first_fit = not emap.is_fitted
    message = ("Fitting the map for the first time (UMAP; 15–40 s, once per project)…" if first_fit
               else "Placing new samples on the map…")
    with st.spinner(message):
        points = state.attempt(lambda: emap.points(chosen))
    if points is None:
        return
    fitted = int(points["fitted"].sum()) if not points.empty else 0
    controls = st.container(horizontal=True, vertical_alignment="bottom")
    most = controls.selectbox("Points drawn", list(DRAWN_CHOICES), key="map_drawn", width=FILTER_WIDTH,
                              help="A map of many thousands of points is drawn from a fixed subset (the same points "
                                   "stay drawn as filters change); 'all' draws every one, which takes longer.")
    refit = controls.container(width="content")
    st.caption(f"{len(points)} point(s) shown · the map was fitted on {emap.fitted_on} text(s); of the points "
                 f"shown, {fitted} come from the fit and {len(points) - fitted} were placed incrementally since.")
    if refit.button("Refit map", key="map_refit", help="Fit again on everything the project holds now."):
        with st.spinner("Refitting the map…"):
            state.attempt(emap.refit)
        st.rerun()
    if points.empty:
        st.info("No sample matches these filters.")
        return
    lineage = lineage_of(emap, st.session_state.get(FOCUS_KEY))
    labels = [lb.name for lb in store.labels()]
    shown = drawn(points, DRAWN_CHOICES[most], [] if lineage is None else lineage["id"].tolist())
    if len(shown) < len(points):
        st.caption(f"Of these {len(points):,}, {len(shown):,} are drawn (a fixed subset, every label and run in "
                   "proportion): narrow the filters or choose more under *Points drawn*.")
    st.plotly_chart(figure(shown, labels, lineage), key=CHART_KEY, on_select=on_select, selection_mode="points")
    if lineage is None:
        st.caption("Click an offspring (◆) to see its parents and the genes it took from each.")
    else:
        focus_panel(store, lineage)


if __name__ == "__main__":  # Streamlit runs pages as __main__; tests import the helpers
    main()
