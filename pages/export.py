"""Export page: download the synthetic samples with their lineage, and the dataset card that describes them.

By default an export holds what review accepted or has not judged yet: rejected samples and filtered outputs ship
only when asked for. The real seeds can go along (marked `source` = real), or everything as a train-ready file.
"""

from __future__ import annotations

import streamlit as st

from datagen_core.export import TRAIN_READY_COLUMNS, build_export, export_bytes
from datagen_core.store import EXPORT_STATUSES, RunInfo
from studio import state
from studio.render import md

ALL_RUNS = "all runs"
STATUSES = {"accepted + pending": EXPORT_STATUSES, "accepted only": ("accepted",), "pending only": ("pending",),
            "rejected only": ("rejected",), "every status": ()}
FORMATS = (("CSV", "csv", "text/csv"), ("JSONL", "jsonl", "application/jsonl"),
           ("Parquet", "parquet", "application/vnd.apache.parquet"))
PREVIEW_COLUMNS = ("id", "source", "label", "status", "text", "run_id", "parent_ids", "model", "filter_reason")
SHUFFLE_SEED = 0


def run_caption(run: RunInfo) -> str:
    return f"{run.id} · {run.status} · {run.llm.get('model')} · {run.created_at:%Y-%m-%d %H:%M}"


def main() -> None:
    """The export filters, the downloads (every format with lineage) and the dataset card."""
    st.title("Export")
    store = state.store()
    project = state.project_name()
    runs = {run.id: run for run in reversed(store.runs())}  # newest first
    left, right = st.columns([3, 2], vertical_alignment="bottom")
    run_choice = left.selectbox("Run", [ALL_RUNS, *runs], key="export_run",
                                format_func=lambda v: v if v == ALL_RUNS else run_caption(runs[v]))
    status_choice = right.selectbox("Samples", list(STATUSES), key="export_status",
                                    help="Accept or reject samples on the Review page; rejected ones ship only "
                                         "when chosen here.")
    options = st.container(horizontal=True)
    with_real = options.checkbox("Add the real seeds", key="export_real",
                                 help="The project's real examples after the synthetic ones, marked source = real.")
    ready = options.checkbox("Train-ready", key="export_train_ready",
                             help=f"Only {', '.join(TRAIN_READY_COLUMNS)}: synthetic and real rows shuffled, a file "
                                  "a classifier trains on as it is.")
    history = options.checkbox("Edit history", key="export_history", disabled=ready,
                               help="A `history` column with each sample's edits (field, old, new, who, when).")
    include_filtered = options.checkbox("Include filtered", key="export_filtered",
                                        help="Outputs the engine dropped (refusals, duplicates, too long), with the "
                                             "reason.")
    run_id = None if run_choice == ALL_RUNS else run_choice
    statuses = STATUSES[status_choice]
    made = build_export(store, run_id=run_id, statuses=statuses, include_filtered=include_filtered,
                        with_real=with_real, history=history and not ready,
                        train_ready_seed=SHUFFLE_SEED if ready else None)
    frame, written, synthetic = made.frame, made.rows, made.synthetic
    if not synthetic:
        if not runs:
            st.info("No synthetic samples yet: start a run on the **Evolve** page, then come back to export it.")
        else:
            st.info(f"No samples match ({md(run_choice)}, {status_choice}). Choose another run or status"
                    + (", or accept samples on the **Review** page." if statuses == ("accepted",) else "."))
        st.stop()

    st.metric("Samples in this export", synthetic)
    real = len(frame) - synthetic
    counts = frame[frame["source"] == "synthetic"]["label"].value_counts()
    st.caption(" · ".join(f"{md(label)}: {n}" for label, n in counts.items())
               + (f" · and {real} real seeds" if real else ""))
    stem = f"{project}-{run_id or 'all'}-{'-'.join(statuses) or 'all'}" + ("-train" if ready else "")
    buttons = st.container(horizontal=True)  # wraps instead of cutting labels on a narrow window
    for title, fmt, mime in FORMATS:
        buttons.download_button(f"Download {title}", data=lambda fmt=fmt: export_bytes(written, fmt),
                                file_name=f"{stem}.{fmt}", mime=mime, on_click="ignore", key=f"download_{fmt}")
    buttons.download_button("Download dataset card", data=made.card.encode("utf-8"), file_name=f"{stem}-card.md",
                            mime="text/markdown", on_click="ignore", key="download_card")
    st.caption(f"Train-ready: {', '.join(TRAIN_READY_COLUMNS)}, shuffled (seed {SHUFFLE_SEED})." if ready else
               "Every format keeps the lineage columns: parent_ids, gene_split, prompt, model, sampling, "
               "raw_response, token counts and timestamps.")
    st.dataframe(written[[c for c in PREVIEW_COLUMNS if c in written.columns]].head(500), hide_index=True)
    if len(written) > 500:
        st.caption(f"Showing the first 500 of {len(written)} rows; the downloads hold all of them.")
    with st.expander("Dataset card"):
        st.markdown(made.card)


if __name__ == "__main__":  # Streamlit runs pages as __main__; tests import the helpers
    main()
