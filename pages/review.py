"""Review: filter, page through, accept, reject, edit and relabel samples, one by one or in bulk.

Every listing is one page fetched from DuckDB (`count_samples` + `sample_page`), so a project with 100k
samples stays fast; every change goes through `Store.edit_sample` / `Store.set_status_where`, which keep
the previous value in `sample_edits`. Changes happen in button callbacks, before widgets are drawn, so
the widgets can be reset and the page redraws with what the store now holds.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd
import streamlit as st

from datagen_core.checks import make_check
from datagen_core.checks.apply import apply_check, check_target
from datagen_core.errors import DatagenError
from datagen_core.llm import LLM
from datagen_core.registry import CHECKS
from datagen_core.store import SAMPLE_STATUSES, SampleFilter, SampleOrder, Store
from studio import state
from studio.options_form import options_inputs
from studio.render import ORIGINS, md, parent_ids

FILTER_WIDTH = 190  # px: a filter reads whole at any window width; the row wraps instead
ACTOR = "studio"
PAGE_SIZES = (10, 25, 50, 100, 200)
ORDERS: dict[str, SampleOrder] = {"oldest first": "oldest", "newest first": "newest"}
EDITABLE = ("text", "label", "status")
FLASH_KEY = "review_flash"
FOCUS_KEY = "review_focus"
PAGE_KEY = "review_page"
VIEW_KEY = "review_view"
EDITOR_VERSION_KEY = "review_editor_version"
BULK_KEY = "review_bulk_pending"


def editor_key() -> str:
    """The table editor's key; bumping the version gives a fresh editor (edits of other rows are dropped)."""
    return f"review_editor_{st.session_state.get(EDITOR_VERSION_KEY, 0)}"


def reset_editor() -> None:
    st.session_state.pop(editor_key(), None)
    st.session_state[EDITOR_VERSION_KEY] = st.session_state.get(EDITOR_VERSION_KEY, 0) + 1


def flash(level: str, message: str) -> None:
    """A message for the next draw (actions run in callbacks, before the page is drawn); shown as written, since
    it may quote a label or an error."""
    st.session_state.setdefault(FLASH_KEY, []).append((level, message))


def show_flash() -> None:
    for level, message in st.session_state.pop(FLASH_KEY, []):
        {"success": st.success, "error": st.error, "warning": st.warning}.get(level, st.info)(md(message))


# -------------------------------------------------------------------------- filters
def filters(store: Store) -> SampleFilter:
    """The filter widgets, in one row; their values become the SampleFilter every query uses."""
    labels = [lb.name for lb in store.labels()]
    runs = [r.id for r in reversed(store.runs())]
    row = st.container(horizontal=True, vertical_alignment="bottom")  # wraps on a narrow window, never truncates
    chosen_labels = row.multiselect("Label", labels, key="review_labels", width=FILTER_WIDTH, placeholder="every label")
    statuses = row.multiselect("Status", list(SAMPLE_STATUSES), key="review_statuses", width=FILTER_WIDTH,
                               placeholder="every status")
    run_ids = row.multiselect("Run", runs, key="review_runs", width=FILTER_WIDTH, placeholder="every run")
    origin = row.selectbox("Origin", list(ORIGINS), key="review_origin", width=FILTER_WIDTH)
    search = row.text_input("Search text", key="review_search", placeholder="words in the text; Enter applies",
                            width=2 * FILTER_WIDTH)
    include_filtered = row.checkbox("Include filtered outputs", key="review_filtered", width="content",
                                    help="Refusals, empty, too long and duplicate outputs the engine dropped.")
    return SampleFilter(run_ids=tuple(run_ids), labels=tuple(chosen_labels), statuses=tuple(statuses),
                        origin=ORIGINS[origin], search=search, include_filtered=include_filtered)


# -------------------------------------------------------------------------- actions
def save_table(ids: list[int], key: str) -> None:
    """Apply only the cells changed in the table, row by row; a bad row does not stop the others."""
    edited: dict[Any, dict[str, Any]] = (st.session_state.get(key) or {}).get("edited_rows", {})
    changed, problems = 0, []
    for position, cells in edited.items():
        row = int(position)
        if row >= len(ids):
            continue
        values = {field: cells[field] for field in EDITABLE if field in cells and cells[field] is not None}
        if not values:
            continue
        try:
            state.store().edit_sample(ids[row], **values, actor=ACTOR)
            changed += 1
        except DatagenError as exc:
            problems.append(f"#{ids[row]}: {exc}")
    if changed:
        flash("success", f"Saved {changed} edited sample(s).")
    if problems:
        flash("error", "Not saved: " + "; ".join(problems))
    if not edited:
        flash("info", "Nothing to save: edit cells of the table first.")
    reset_editor()


def act_on_one(sample_id: int, action: str, next_id: int | None) -> None:
    """Accept, reject or save the focused sample with what its form holds; then move on to the next one."""
    text = st.session_state.get(f"review_text_{sample_id}")
    label = st.session_state.get(f"review_label_{sample_id}")
    chosen_status = st.session_state.get(f"review_status_{sample_id}")
    status = {"accept": "accepted", "reject": "rejected"}.get(action, chosen_status)
    try:
        state.store().edit_sample(sample_id, text=text, label=label, status=status, actor=ACTOR)
    except DatagenError as exc:
        flash("error", f"#{sample_id}: {exc}")
        return
    flash("success", f"#{sample_id} {'saved' if action == 'save' else status}.")
    for key in (f"review_text_{sample_id}", f"review_label_{sample_id}", f"review_status_{sample_id}"):
        st.session_state.pop(key, None)  # redraw the form from the store
    if action != "save" and next_id is not None:
        st.session_state[FOCUS_KEY] = next_id
    reset_editor()


def ask_bulk(chosen: SampleFilter, status: str, count: int) -> None:
    st.session_state[BULK_KEY] = (chosen, status, count)


def confirm_bulk() -> None:
    pending = st.session_state.pop(BULK_KEY, None)
    if pending is None:
        return
    chosen, status, _ = pending
    changed = state.store().set_status_where(chosen, status, actor=ACTOR)
    flash("success", f"{changed} sample(s) set to {status}.")
    reset_editor()


def cancel_bulk() -> None:
    st.session_state.pop(BULK_KEY, None)


# --------------------------------------------------------------------------- drawing
def table(page: pd.DataFrame, labels: list[str]) -> None:
    """The page as an editable grid: text, label and status cells; Save applies only what changed."""
    ids = [int(i) for i in page["id"]]
    shown = page[["id", "label", "status", "text", "origin", "run_id", "filter_reason"]]
    key = editor_key()
    st.data_editor(
        shown, key=key, hide_index=True, num_rows="fixed", width="stretch",
        disabled=["id", "origin", "run_id", "filter_reason"],
        column_config={
            "id": st.column_config.NumberColumn("id", width="small"),
            "label": st.column_config.SelectboxColumn("label", options=labels, required=True, width="small"),
            "status": st.column_config.SelectboxColumn("status", options=list(SAMPLE_STATUSES), required=True,
                                                       width="small"),
            "text": st.column_config.TextColumn("text", width="large", required=True),
        },
    )
    st.button("Save table edits", key="review_save_table", on_click=save_table, args=(ids, key), type="primary",
              help="Applies only the changed cells; every change is kept in the sample's history.")


def one_by_one(store: Store, page: pd.DataFrame, labels: list[str]) -> None:
    """The focused sample in a form (Enter in a field submits); buttons always Accept, Reject, Save."""
    ids = [int(i) for i in page["id"]]
    if st.session_state.get(FOCUS_KEY) not in ids:
        st.session_state[FOCUS_KEY] = ids[0]
    rows = {int(r["id"]): r for _, r in page.iterrows()}
    sample_id = st.selectbox(
        "Sample", ids, key=FOCUS_KEY,
        format_func=lambda i: f"#{i} · {rows[i]['label']} · {rows[i]['status']} · {rows[i]['text'][:70]}",
    )
    row = rows[sample_id]
    position = ids.index(sample_id)
    next_id = ids[position + 1] if position + 1 < len(ids) else None
    lineage = f"#{sample_id} · {row['origin']}"
    if isinstance(row["run_id"], str):
        lineage += f" · run {row['run_id']}"
    if parents := parent_ids(row["parent_ids"]):
        lineage += " · parents " + ", ".join(f"#{p}" for p in parents)
    if isinstance(row["gene_split"], str):
        split = json.loads(row["gene_split"])
        lineage += (f" · genes from parent 1: {', '.join(split['parent1']) or '—'}; from parent 2: "
                    f"{', '.join(split['parent2']) or '—'}; mutated: {', '.join(split['mutated']) or '—'}")
    if isinstance(row["filter_reason"], str):
        lineage += f" · filtered: {row['filter_reason']}"
    st.caption(md(lineage))
    with st.form(f"review_one_{sample_id}"):
        st.text_area("Text", value=row["text"], key=f"review_text_{sample_id}", height=110)
        left, right = st.columns(2)
        left.selectbox("Label", labels, index=labels.index(row["label"]) if row["label"] in labels else 0,
                       key=f"review_label_{sample_id}")
        right.radio("Status", list(SAMPLE_STATUSES), index=list(SAMPLE_STATUSES).index(row["status"]),
                    key=f"review_status_{sample_id}", horizontal=True)
        accept, reject, save, _ = st.columns(4)  # equal: a narrow window keeps the labels whole
        accept.form_submit_button("Accept", on_click=act_on_one, args=(sample_id, "accept", next_id), type="primary")
        reject.form_submit_button("Reject", on_click=act_on_one, args=(sample_id, "reject", next_id))
        save.form_submit_button("Save", on_click=act_on_one, args=(sample_id, "save", next_id))
    history = store.sample_history(sample_id)
    with st.expander(f"History of #{sample_id} ({len(history)} change(s))"):
        if history.empty:
            st.caption("Never edited.")
        else:
            st.dataframe(history[["edited_at", "field", "old_value", "new_value", "actor"]], hide_index=True,
                         width="stretch")
    checks = store.sample_checks(sample_id)
    if not checks.empty:
        with st.expander(f"Quality checks of #{sample_id} ({len(checks)})"):
            st.dataframe(checks[["created_at", "check", "keep", "reason", "details", "options"]], hide_index=True,
                         width="stretch")


def bulk(chosen: SampleFilter, total: int) -> None:
    """Set one status on every sample the filters select, after an explicit confirmation."""
    pending = st.session_state.get(BULK_KEY)
    if pending is not None and pending[0] != chosen:
        st.session_state.pop(BULK_KEY)  # the filters changed since the question: do not apply it to another set
        pending = None
    left, middle, right = st.columns([2, 2, 3])
    status = left.selectbox("Set status", ["accepted", "rejected", "pending"], key="review_bulk_status",
                            label_visibility="collapsed")
    middle.button(f"Apply to all {total} filtered…", key="review_bulk_ask", on_click=ask_bulk,
                  args=(chosen, status, total), disabled=total == 0)
    right.caption("Applies to every sample the filters select, on every page.")
    if pending is not None:
        _, wanted, count = pending
        st.warning(f"Set **{wanted}** on all {count} sample(s) the filters select? Each change enters the history.")
        yes, no, _ = st.columns([1, 1, 4])
        yes.button("Confirm", key="review_bulk_confirm", on_click=confirm_bulk, type="primary")
        no.button("Cancel", key="review_bulk_cancel", on_click=cancel_bulk)


def quality_checks(store: Store, chosen: SampleFilter) -> None:
    """Run a check (DataGen §3) on the generated samples the filters select; verdicts enter the history."""
    with st.expander("Quality checks on the filtered samples"):
        name = st.selectbox("Check", CHECKS.names(), format_func=CHECKS.title, key="review_check")
        plugin = CHECKS.get(name)
        st.caption(plugin.summary)
        options = options_inputs(plugin.Options, "review_check_")
        target = check_target(chosen)
        total = store.count_samples(target) if target is not None else 0
        st.caption("Checks judge generated samples that are pending or accepted (real seeds and rejected samples "
                   "are left alone). Rejected samples stay in the store, marked with the reason; corrections are "
                   "edits with history."
                   + (f" Uses this session's model ({md(state.llm_config().model)})." if plugin.needs_llm else ""))
        if not st.button(f"Run on {total} sample(s)", key="review_check_run", disabled=total == 0):
            return
        llm = LLM.from_config(state.llm_config(), store) if plugin.needs_llm else None
        with st.spinner(f"Checking {total} sample(s)…"), state.user_errors():
            summary = apply_check(store, make_check(name, options), chosen, state.workspace().embedder, llm)
            reasons = ", ".join(f"{reason} {n}" for reason, n in summary.rejected.items()) or "none"
            flash("success", f"{plugin.title}: checked {summary.checked}, kept {summary.kept}, rejected "
                  f"{reasons}, corrected {summary.corrected}.")
            reset_editor()
            st.rerun()


def main() -> None:
    st.title("Review")
    store = state.store()
    labels = [lb.name for lb in store.labels()]
    show_flash()
    chosen = filters(store)
    paging = st.container(horizontal=True, vertical_alignment="bottom")
    size = paging.selectbox("Page size", PAGE_SIZES, index=1, key="review_size", width=110)
    order = paging.selectbox("Order", list(ORDERS), key="review_order", width=150,
                             help="Oldest first keeps pages still while a run adds offspring.")
    # What is on screen; a plain tuple, since a class defined here is a new class on every rerun.
    view = (chosen, size, order)
    if st.session_state.get(VIEW_KEY) != view:  # new filter, size or order: back to page 1, fresh table
        st.session_state[VIEW_KEY] = view
        st.session_state[PAGE_KEY] = 1
        reset_editor()
    total = store.count_samples(chosen)
    pages = max(1, -(-total // size))
    if st.session_state.get(PAGE_KEY, 1) > pages:
        st.session_state[PAGE_KEY] = pages
    page_number = paging.number_input("Page", min_value=1, max_value=pages, step=1, key=PAGE_KEY,
                                      on_change=reset_editor, width=130)
    first = (page_number - 1) * size
    paging.markdown(f"**{total}** sample(s) match · showing {min(first + 1, total)}–{min(first + size, total)}"
                       f" · page {page_number} of {pages}")
    if total == 0:
        st.info("No sample matches these filters.")
        return
    page = store.sample_page(chosen, offset=first, limit=size, order=ORDERS[order])
    table(page, labels)
    st.subheader("One by one")
    one_by_one(store, page, labels)
    st.subheader("Everything filtered")
    bulk(chosen, total)
    quality_checks(store, chosen)


if __name__ == "__main__":  # Streamlit runs pages as __main__; tests import the helpers
    main()
