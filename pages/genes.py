"""Genes & constraints page: the attributes offspring inherit or mutate, and rules every offspring follows.

Every change is a new gene-set version (runs record the version they used), so nothing is edited in place. An LLM
proposal or a library set first becomes a draft that is saved only when the user accepts it.
"""

from __future__ import annotations

from typing import TypedDict

import pandas as pd
import streamlit as st

from datagen_core.config import Gene, GeneSet
from datagen_core.proposals.gene_library import LIBRARY, LIBRARY_SOURCE
from datagen_core.proposals.genes import (
    accept_genes,
    constraints_from_text,
    genes_from_rows,
    propose_genes,
    restore_gene_set,
)
from datagen_core.proposals.values import propose_attribute_values, propose_topics, save_values
from studio import state
from studio.render import code, md

EDITOR_KEY = "gene_editor"
CONSTRAINTS_KEY = "gene_constraints"
BASE_KEY = "gene_editor_base"  # (project, version) the editor's pending edits refer to
FLASH_KEY = "genes_flash"
DRAFT_KEY = "gene_draft"
DRAFT_SERIAL_KEY = "gene_draft_serial"


class Draft(TypedDict):
    """Genes not saved yet and what Accept saves them as. A plain dict in the session: Streamlit runs this page
    afresh on every rerun, so a class defined here would be a new class each time."""

    project: str
    genes: tuple[Gene, ...]
    source: str
    note: str
    what: str  # "proposed" or "library": how the saved message names them
    editor_key: str  # a fresh editor per draft, so edits of a discarded draft never reach the next one


def set_draft(genes: tuple[Gene, ...], source: str, note: str, what: str) -> None:
    serial = st.session_state.get(DRAFT_SERIAL_KEY, 0) + 1
    st.session_state[DRAFT_SERIAL_KEY] = serial
    st.session_state[DRAFT_KEY] = Draft(project=state.project_name(), genes=genes, source=source, note=note,
                                        what=what, editor_key=f"gene_draft_editor_{serial}")


def current_draft() -> Draft | None:
    """The draft of the open project (a draft made in another project is not shown here)."""
    draft: Draft | None = st.session_state.get(DRAFT_KEY)
    return draft if draft is not None and draft["project"] == state.project_name() else None


def reset_editor_on_new_version(project: str, version: int | None) -> None:
    """Pending edits belong to the version they were made on; a new version starts a fresh table."""
    if st.session_state.get(BASE_KEY) != (project, version):
        st.session_state.pop(EDITOR_KEY, None)
        st.session_state.pop(CONSTRAINTS_KEY, None)
        st.session_state[BASE_KEY] = (project, version)


def genes_table(genes: tuple[Gene, ...]) -> pd.DataFrame:
    """Explicit dtypes: an empty gene set must still give editable text columns, not float ones."""
    return pd.DataFrame({"position": pd.Series(range(1, len(genes) + 1), dtype="Int64"),
                         "name": pd.Series([g.name for g in genes], dtype="string"),
                         "description": pd.Series([g.description for g in genes], dtype="string")})


GENE_COLUMNS = {
    "position": st.column_config.NumberColumn("position", min_value=1, step=1, width="small"),
    "name": st.column_config.TextColumn("name", max_chars=80),
    "description": st.column_config.TextColumn("description", max_chars=500, width="large"),
}


def version_line(gene_set: GeneSet) -> str:
    """The version in bold, its source and note (which may name a model) as written."""
    return (f"**Version {gene_set.version}** · {md(gene_set.source)}"
            + (f" · {md(gene_set.note)}" if gene_set.note else ""))


def show_current(current: GeneSet | None) -> None:
    if current is None:
        st.info("This project has no genes yet: propose them with the LLM, start from the library or type them "
                "in the table below.")
        return
    st.markdown(version_line(current))
    st.dataframe(genes_table(current.genes).drop(columns="position"), hide_index=True)
    if current.constraints:
        st.markdown("Constraints:\n" + "\n".join(f"- {md(c)}" for c in current.constraints))
    else:
        st.caption("No constraints.")


def propose_section() -> None:
    """Two ways to a draft: ask the LLM, or take the library's set for a task kind (no LLM)."""
    st.subheader("Propose genes")
    llm_tab, library_tab = st.tabs(["Ask the LLM", "Start from the library"])
    with llm_tab:
        llm_proposal()
    with library_tab:
        library_proposal()


def llm_proposal() -> None:
    config = state.llm_config()
    left, right = st.columns([1, 3], vertical_alignment="bottom")
    count = left.number_input("How many", min_value=2, max_value=6, value=4, key="propose_count")
    if right.button("Propose genes with the LLM", help=f"One structured call to {md(config.model)}; "
                    "the answer is a draft you review before it is saved"):
        with st.spinner(f"Asking {md(config.model)} for {count} genes…"), state.user_errors():
            genes = propose_genes(state.store(), config, int(count))
            set_draft(tuple(genes), "llm", f"proposed by {config.model}", "proposed")
            st.rerun()


def library_proposal() -> None:
    st.caption("Gene sets per task kind that need no LLM (the embedded model is too small to propose genes).")
    kind = st.selectbox("Task kind", list(LIBRARY), format_func=lambda k: LIBRARY[k].title, key="library_kind")
    chosen = LIBRARY[kind]
    st.caption(f"Source: {md(chosen.source)}")
    st.dataframe(genes_table(chosen.genes).drop(columns="position"), hide_index=True)
    if st.button("Load into the draft", help="Review and edit it below, then accept it as a new version"):
        set_draft(chosen.genes, LIBRARY_SOURCE, chosen.note(), "library")
        st.rerun()


def draft_section(draft: Draft) -> None:
    st.subheader("Draft (not saved)")
    st.caption(f"{md(draft['note'])} — not saved yet. Edit it here, then accept it as a new version (the "
               "current constraints are kept) or discard it.")
    edited = st.data_editor(genes_table(draft["genes"]), key=draft["editor_key"], num_rows="dynamic",
                            hide_index=True, width="stretch", column_config=GENE_COLUMNS)
    accept, discard, _ = st.columns([1, 1, 2])
    if accept.button("Accept as new version", type="primary"):
        with state.user_errors():
            genes = genes_from_rows(edited.to_dict("records"))
            note = draft["note"] if tuple(genes) == draft["genes"] else f"{draft['note']}, edited in the studio"
            saved = accept_genes(state.store(), genes, draft["source"], note)
            st.session_state.pop(DRAFT_KEY, None)
            st.session_state[FLASH_KEY] = f"Saved {len(genes)} {draft['what']} genes as version {saved.version}."
            st.rerun()
    if discard.button("Discard the draft"):
        st.session_state.pop(DRAFT_KEY, None)
        st.session_state[FLASH_KEY] = "Discarded the draft: nothing was saved."
        st.rerun()


def edit_section(current: GeneSet | None) -> None:
    st.subheader("Edit genes and constraints")
    st.caption("Rename a gene in its cell, add rows at the bottom, delete rows, and reorder by changing "
               "`position`. Saving creates a new version; runs already made keep theirs.")
    edited = st.data_editor(genes_table(current.genes if current else ()), key=EDITOR_KEY, num_rows="dynamic",
                            hide_index=True, width="stretch", column_config=GENE_COLUMNS)
    text = st.text_area(
        "Constraints, one per line", value="\n".join(current.constraints if current else ()), key=CONSTRAINTS_KEY,
        placeholder="no named people\nunder 40 words", help="Every offspring prompt asks the model to respect these.",
    )
    if st.button("Save as new version", type="primary"):
        with state.user_errors():
            genes = genes_from_rows(edited.to_dict("records"))
            constraints = constraints_from_text(text)
            if current is not None and (tuple(genes), tuple(constraints)) == (current.genes, current.constraints):
                st.info("Nothing changed: no new version saved.")
                return
            saved = state.store().add_gene_set(genes, "user", note="edited in the studio", constraints=constraints)
            st.session_state[FLASH_KEY] = f"Saved version {saved.version}: {len(genes)} genes, " \
                                          f"{len(constraints)} constraints."
            st.rerun()


def history_section(sets: list[GeneSet]) -> None:
    with st.expander(f"Earlier versions ({max(len(sets) - 1, 0)})"):
        if len(sets) < 2:
            st.caption("Only one version so far.")
        for gene_set in reversed(sets[:-1]):
            st.markdown(version_line(gene_set))
            st.markdown("\n".join(f"- {md(g.name)}" + (f": {md(g.description)}" if g.description else "")
                                  for g in gene_set.genes) or "_no genes_")
            if gene_set.constraints:
                st.caption("Constraints: " + "; ".join(md(c) for c in gene_set.constraints))
            if st.button(f"Restore version {gene_set.version}", key=f"restore_{gene_set.version}",
                         help="Save its genes and constraints again as the newest version"):
                with state.user_errors():
                    saved = restore_gene_set(state.store(), gene_set.version)
                    st.session_state[FLASH_KEY] = f"Restored version {gene_set.version} as version {saved.version}."
                    st.rerun()


VALUE_KINDS = {"topics": ("label", "Topics per label (for the zero-shot topic method)"),
               "attributes": ("gene", "Values per gene (for the AttrPrompt method)")}


def values_section(kind: str, keys: list[str]) -> None:
    """Topics or attribute values: propose with the LLM, or edit one per line; every save is a new version."""
    what, title = VALUE_KINDS[kind]
    current = state.store().value_set(kind)
    with st.expander(title + (f" · version {current.version}" if current else " · none yet")):
        if not keys:
            st.caption(f"No {what}s yet.")
            return
        if st.button(f"Propose {kind} with the LLM", key=f"propose_{kind}"):
            with st.spinner(f"Asking {md(state.llm_config().model)} for {kind}…"), state.user_errors():
                store = state.store()
                proposed = (propose_topics(store, state.llm_config()) if kind == "topics"
                            else propose_attribute_values(store, state.llm_config()))
                gene_set = store.gene_set()
                saved = save_values(store, kind, proposed, "llm", note="proposed in the studio",
                                    gene_set_version=gene_set.version if gene_set and kind == "attributes" else None)
                st.session_state[FLASH_KEY] = f"Saved {kind} version {saved.version}."
                st.rerun()
        with st.form(f"edit_{kind}"):
            edited = {key: st.text_area(f"{what.capitalize()} {code(key)} (one per line)",
                                        value="\n".join(current.items.get(key, ())) if current else "",
                                        key=f"{kind}_{state.project_name()}_{i}", height=100)
                      for i, key in enumerate(keys)}
            if st.form_submit_button(f"Save {kind} as a new version"):
                updates = {key: [line.strip() for line in text.splitlines() if line.strip()]
                           for key, text in edited.items()}
                saved = save_values(state.store(), kind, updates, "user", note="edited in the studio")
                st.session_state[FLASH_KEY] = f"Saved {kind} version {saved.version}."
                st.rerun()


def main() -> None:
    """The current genes, proposals and the library, the draft, the editor, the history and the baselines' inputs."""
    st.title("Genes & constraints")
    store = state.store()
    sets = store.gene_sets()
    current_set = sets[-1] if sets else None
    reset_editor_on_new_version(state.project_name(), current_set.version if current_set else None)
    if message := st.session_state.pop(FLASH_KEY, None):
        st.success(message)
    show_current(current_set)
    propose_section()
    if draft := current_draft():
        draft_section(draft)
    edit_section(current_set)
    history_section(sets)
    st.subheader("Baseline inputs")
    values_section("topics", [lb.name for lb in store.labels()])
    values_section("attributes", [g.name for g in current_set.genes] if current_set else [])


if __name__ == "__main__":  # Streamlit runs pages as __main__; tests import the helpers
    main()
