"""Export page: download the synthetic samples with their lineage, and the dataset card that describes them."""

from __future__ import annotations

import streamlit as st

from datagen_core.export import dataset_card, export_bytes, export_frame
from datagen_core.store import RunInfo
from studio import state
from studio.render import md

ALL_RUNS = "all runs"
STATUSES = {"all statuses": None, "accepted only": "accepted", "pending only": "pending", "rejected only": "rejected"}
FORMATS = (("CSV", "csv", "text/csv"), ("JSONL", "jsonl", "application/jsonl"),
           ("Parquet", "parquet", "application/vnd.apache.parquet"))
PREVIEW_COLUMNS = ("id", "label", "status", "text", "run_id", "parent_ids", "model", "filter_reason")


def run_caption(run: RunInfo) -> str:
    return f"{run.id} · {run.status} · {run.llm.get('model')} · {run.created_at:%Y-%m-%d %H:%M}"


def main() -> None:
    """The export filters, the downloads (every format with lineage) and the dataset card."""
    st.title("Export")
    store = state.store()
    project = state.project_name()
    runs = {run.id: run for run in reversed(store.runs())}  # newest first
    left, middle, right = st.columns([2, 1, 1], vertical_alignment="bottom")
    run_choice = left.selectbox("Run", [ALL_RUNS, *runs], key="export_run",
                                format_func=lambda v: v if v == ALL_RUNS else run_caption(runs[v]))
    status_choice = middle.selectbox("Samples", list(STATUSES), key="export_status",
                                     help="Accept or reject samples on the Review page.")
    include_filtered = right.checkbox("Include filtered", key="export_filtered",
                                      help="Outputs the engine dropped (refusals, duplicates, too long), with the "
                                           "reason.")
    run_id = None if run_choice == ALL_RUNS else run_choice
    frame = export_frame(store, run_id=run_id, status=STATUSES[status_choice], include_filtered=include_filtered)

    if frame.empty:
        if not runs:
            st.info("No synthetic samples yet: start a run on the **Evolve** page, then come back to export it.")
        else:
            st.info(f"No samples match ({run_choice}, {status_choice}). Choose another run or status"
                    + (", or accept samples on the **Review** page." if STATUSES[status_choice] == "accepted" else "."))
        st.stop()

    counts = frame["label"].value_counts()
    st.metric("Samples in this export", len(frame))
    st.caption(" · ".join(f"{md(label)}: {n}" for label, n in counts.items()))
    stem = f"{project}-{run_id or 'all'}-{(STATUSES[status_choice] or 'all')}"
    columns = st.columns(len(FORMATS) + 1)
    for column, (title, fmt, mime) in zip(columns, FORMATS, strict=False):
        column.download_button(f"Download {title}", data=lambda fmt=fmt: export_bytes(frame, fmt),
                               file_name=f"{stem}.{fmt}", mime=mime, on_click="ignore", key=f"download_{fmt}")
    card = dataset_card(store, frame, run_id)
    columns[-1].download_button("Download dataset card", data=card.encode("utf-8"), file_name=f"{stem}-card.md",
                                mime="text/markdown", on_click="ignore", key="download_card")
    st.caption("Every format keeps the lineage columns: parent_ids, gene_split, prompt, model, sampling, raw_response, "
               "token counts and timestamps.")
    st.dataframe(frame[[c for c in PREVIEW_COLUMNS if c in frame.columns]].head(500), hide_index=True)
    if len(frame) > 500:
        st.caption(f"Showing the first 500 of {len(frame)} rows; the downloads hold all of them.")
    with st.expander("Dataset card"):
        st.markdown(card)


if __name__ == "__main__":  # Streamlit runs pages as __main__; tests import the helpers
    main()
