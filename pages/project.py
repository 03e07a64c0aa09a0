"""Project page: open or create a project, describe its task and labels, and choose this session's LLM."""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import streamlit as st
from pydantic import SecretStr, ValidationError

from datagen_core.config import LLMConfig
from datagen_core.doctor import diagnose, last_report
from datagen_core.errors import DatagenError
from datagen_core.ingest import MIN_EXAMPLES_PER_LABEL, clean_examples, prepare_project, read_upload, split_heldout
from datagen_core.llm import check_connection
from studio import state
from studio.render import code, column_pickers, md

EMBEDDED = "Embedded (SmolLM2-135M, offline)"
ENDPOINT = "OpenAI-compatible endpoint"
FLASH_KEY = "project_flash"
LLM_PROBLEM_KEY = "project_llm_problem"
#: How long an endpoint is waited for and how often asked again (the CLI's --first-byte-timeout, --timeout,
#: --retries, --give-up-after): LLMConfig field -> widget title and help.
LIMITS = {
    "first_byte_timeout_s": ("First byte within (s)", "A request with no byte of answer after this long is a timeout "
                             "(for a non-streamed answer this bounds the whole generation)."),
    "timeout_s": ("Whole request within (s)", "The longest a request may take, answer included."),
    "max_retries": ("Retries", "Attempts after the first one for a transient fault: 429, 5xx, timeout, dropped "
                    "connection."),
    "give_up_after_s": ("Give up after (s)", "A run stops (resumable) when the endpoint has answered nothing for this "
                        "long while requests were waiting."),
}


def switch_to(name: str) -> None:
    """Open `name` and forget this page's own choice of project to open."""
    state.open_project(name)
    st.session_state.pop("open_choice", None)


def on_open() -> None:
    name = st.session_state["open_choice"]
    switch_to(name)
    st.session_state[FLASH_KEY] = f"Opened **{md(name)}**."


def open_section() -> None:
    names = state.workspace().projects()
    current = state.project_name()
    st.subheader("Open a project")
    left, right = st.columns([3, 1], vertical_alignment="bottom")
    left.selectbox("Projects in this folder", names, index=names.index(current) if current in names else 0,
                   key="open_choice")
    right.button("Open", on_click=on_open, disabled=not names)


def suggested_name(filename: str) -> str:
    stem = "".join(c if c.isalnum() or c in "_.-" else "-" for c in Path(filename).stem).strip("-._")
    return stem[:64] or "my-project"


def create_section() -> None:
    """Upload, preview, pick columns, validate, describe, create: each step stops with a message when wrong."""
    st.subheader("Create a project")
    st.caption("A CSV, TSV, JSONL or Parquet file (UTF-8) with a text column and a label column: "
               "at least two labels and two examples per label.")
    upload = st.file_uploader("Labelled examples", type=["csv", "tsv", "jsonl", "ndjson", "json", "parquet"],
                              key="upload")
    if upload is None:
        return
    raw = state.attempt(lambda: read_upload(upload.name, upload.getvalue()))
    if raw is None:
        return
    st.caption(f"{len(raw)} rows, {len(raw.columns)} columns. First rows:")
    st.dataframe(raw.head(8), hide_index=True)
    columns = [str(c) for c in raw.columns]
    raw = raw.set_axis(columns, axis=1)
    text_col, label_col = column_pickers(raw, "new_text_col", "new_label_col")
    examples = state.attempt(lambda: clean_examples(raw, text_col, label_col, upload.name))
    if examples is None:
        return
    counts = examples["label"].value_counts(sort=False)
    st.success(f"{len(examples)} usable examples in {len(counts)} labels: "
               + ", ".join(f"{md(label)} ({n})" for label, n in counts.items()))
    fraction = st.slider("Hold out for evaluation", min_value=0.0, max_value=0.8, value=0.2, step=0.05,
                         key="new_heldout",
                         help="This share of each label becomes held-out test data: never a seed, so the Metrics "
                              "page can score classifiers on real examples the generator never saw.")
    seeds, held = split_heldout(examples, fraction)
    held_counts = ", ".join(f"{md(label)} {n}" for label, n in held["label"].value_counts(sort=False).items())
    st.caption(f"{len(seeds)} seed(s) for the generator, {len(held)} held out for evaluation"
               + (f" ({held_counts})." if held_counts else ".")
               + f" Every label keeps at least {MIN_EXAMPLES_PER_LABEL} seeds.")
    with st.form("create_project"):
        name = st.text_input("Project name", value=suggested_name(upload.name), key="new_name",
                             help="Letters, digits, '_', '-' or '.'; it names the project's file.")
        task = st.text_input("Task", key="new_task", placeholder="e.g. SMS spam detection",
                             help="What the classifier decides; every prompt names it.")
        text_kind = st.text_input("What one sample is", key="new_kind", placeholder="e.g. SMS message, question")
        st.caption("Label descriptions (optional; they tell the model what each label means)")
        descriptions = {label: st.text_input(f"Label {code(label)}", key=f"new_desc_{i}")
                        for i, label in enumerate(counts.index)}
        submitted = st.form_submit_button("Create project", type="primary")
    if submitted:
        with state.user_errors():
            new = prepare_project(raw, text_col=text_col, label_col=label_col, source=upload.name, name=name,
                                  task=task, text_kind=text_kind, label_descriptions=descriptions,
                                  heldout_fraction=fraction)
            state.workspace().create_project(new.spec, new.labels, new.examples, source=new.source,
                                             heldout=new.heldout)
            switch_to(new.spec.name)
            st.session_state.pop("upload", None)
            held = 0 if new.heldout is None else len(new.heldout)
            st.session_state[FLASH_KEY] = (f"Created and opened **{md(new.spec.name)}** ({len(new.examples)} examples, "
                                           f"{held} held out for evaluation).")
            st.rerun()


def details_section() -> None:
    """The open project's task, sample kind and label descriptions, all of which go into the prompts."""
    store = state.opened_store()
    if store is None:  # held by a CLI run or broken: the other sections stay usable
        return
    project = store.project()
    st.subheader(f"Project {md(project.name)}")
    source = md(project.source_file) if project.source_file else "an unknown source"
    st.caption(f"Created {project.created_at:%Y-%m-%d %H:%M} UTC from {source}.")
    counts = store.real_counts()
    held = store.heldout_counts()
    labels = store.labels()
    st.dataframe(pd.DataFrame({"label": [lb.name for lb in labels],
                               "real examples": [counts.get(lb.name, 0) for lb in labels],
                               "held out": [held.get(lb.name, 0) for lb in labels],
                               "description": [lb.description for lb in labels]}), hide_index=True)
    st.caption(f"{sum(held.values())} held-out example(s) for downstream evaluation: never seeds, so F1 on the "
               "**Metrics** page is measured on real data the generator never saw." if held else
               "No held-out data: the **Metrics** page can add some for downstream F1.")
    with st.form(f"details_{project.name}"):
        task = st.text_input("Task", value=project.task, key=f"task_{project.name}")
        text_kind = st.text_input("What one sample is", value=project.text_kind, key=f"kind_{project.name}")
        min_words = st.number_input("Minimum words per sample", min_value=1, value=project.min_words, step=1,
                                    key=f"min_words_{project.name}",
                                    help="Generated texts with fewer words never count (filtered as too_short); "
                                         "1 also accepts one-word texts. Runs read it when they start or resume.")
        descriptions = {lb.name: st.text_input(f"Label {code(lb.name)}", value=lb.description,
                                               key=f"desc_{project.name}_{i}")
                        for i, lb in enumerate(labels)}
        saved = st.form_submit_button("Save details")
    if saved:
        with state.user_errors():
            if not task.strip():
                raise DatagenError("the task cannot be empty: every prompt names it")
            if (task, text_kind, min_words) != (project.task, project.text_kind, project.min_words):
                store.set_project_details(task.strip(), text_kind.strip() or "text", int(min_words))
            for label in labels:
                if descriptions[label.name].strip() != label.description:
                    store.set_label_description(label.name, descriptions[label.name].strip())
            st.session_state[FLASH_KEY] = "Saved the project's details."
            st.rerun()


def config_from_widgets() -> LLMConfig:
    """The LLM settings as the widgets show them (validated by LLMConfig)."""
    if st.session_state["llm_choice"] == EMBEDDED:
        return LLMConfig(backend="embedded", max_in_flight=2)
    key = st.session_state.get("llm_key", "")
    model = st.session_state.get("llm_model", "").strip()
    if not model:
        raise DatagenError("an OpenAI-compatible endpoint needs a model name (e.g. gpt-4o-mini)")
    limits = {name: value for name in LIMITS if (value := st.session_state.get(f"llm_{name}")) is not None}
    try:
        return LLMConfig(backend="openai", base_url=st.session_state.get("llm_url", "").strip() or None, model=model,
                         max_in_flight=int(st.session_state.get("llm_in_flight", 16)),
                         session_api_key=SecretStr(key) if key else None, **limits)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["loc"] and first["loc"][0] in LIMITS:  # pydantic's message alone does not say which field
            raise DatagenError(f"{LIMITS[str(first['loc'][0])][0]}: {first['msg'].lower()}") from None
        raise


def on_apply_llm() -> None:
    """Runs before the page (a button callback), so the sidebar already shows the new model."""
    try:
        state.set_llm_config(config_from_widgets())
        st.session_state[LLM_PROBLEM_KEY] = False
    except (DatagenError, ValidationError):
        st.session_state[LLM_PROBLEM_KEY] = True  # the page draws why, where the settings are


def limits_inputs(current: LLMConfig) -> None:
    """The endpoint's timeouts and retries, from this session's config; LLMConfig checks them on apply."""
    with st.expander("Advanced: timeouts and retries"):
        columns = st.columns(len(LIMITS))
        for column, (name, (title, help_text)) in zip(columns, LIMITS.items(), strict=True):
            value = getattr(current, name)
            column.number_input(title, value=value, step=1 if isinstance(value, int) else 10.0, key=f"llm_{name}",
                                help=help_text)


def llm_section() -> None:
    st.subheader("Language model")
    current = state.llm_config()
    st.caption("Chosen for this browser session only; runs record the model and URL, never a key.")
    choice = st.radio("Model", [EMBEDDED, ENDPOINT], index=0 if current.backend == "embedded" else 1,
                      key="llm_choice", horizontal=True)
    if choice == ENDPOINT:
        openai = current.backend == "openai"
        st.text_input("Base URL", value=current.base_url if openai else os.environ.get("DATAGEN_BASE_URL", ""),
                      key="llm_url", placeholder="http://localhost:8000/v1")
        st.text_input("Model", value=current.model if openai else os.environ.get("DATAGEN_MODEL", ""),
                      key="llm_model", placeholder="e.g. gpt-4o-mini, Qwen/Qwen2.5-7B-Instruct")
        typed = current.session_api_key.get_secret_value() if current.session_api_key else ""
        st.text_input("API key", value=typed, key="llm_key", type="password",
                      help="Kept in this session's memory only: never written to disk or to the project.")
        env_note = ("is set" if os.environ.get("OPENAI_API_KEY") or os.environ.get("DATAGEN_API_KEY")
                    else "is not set")
        st.caption("Leave the key empty to use the environment variable `OPENAI_API_KEY` (or `DATAGEN_API_KEY`) "
                   f"of the studio's process; it {env_note}. Local servers (vLLM, Ollama) accept any key.")
        st.number_input("Requests in flight", min_value=1, max_value=4096,
                        value=current.max_in_flight if openai else 16, key="llm_in_flight")
        limits_inputs(current)
    else:
        st.caption("SmolLM2-135M-Instruct runs offline in a process of its own (a crash there never takes the "
                   "studio down): demo quality, about 1 offspring/s.")
    left, right = st.columns(2)
    left.button("Use this model", on_click=on_apply_llm, type="primary")
    test = right.button("Test connection", on_click=on_apply_llm)
    if st.session_state.pop(LLM_PROBLEM_KEY, False):
        with state.user_errors():
            config_from_widgets()  # draws why the settings are not valid
        return
    if test:
        config = state.llm_config()
        with st.spinner(f"Asking {md(config.model)}…"):
            line = state.attempt(lambda: check_connection(config))
        if line is not None:
            st.success(f"Connected: {md(line)}")


def system_section() -> None:
    """The machine's latest self-check (`datagen doctor`, run by scripts/start.sh), and a button to redo it."""
    st.subheader("System check")
    again = st.button("Check again", key="doctor_again", help="Python, CPU, the model runtime's build, one answer "
                      "from the embedded model, the project folder (a few seconds).")
    if again:
        with st.spinner("Checking this machine…"):
            report = diagnose(state.workspace().home, skip=frozenset({"embedder"}))
    else:
        report = last_report()
    if report is None:
        st.caption("No check has run on this machine yet: press *Check again* (or run `datagen doctor`).")
        return
    failed = report.failed
    when = f"{pd.Timestamp(report.at, unit='s', tz='UTC'):%Y-%m-%d %H:%M} UTC"
    if failed:
        st.error(f"{len(failed)} check(s) failed ({when}): " + "; ".join(f.name for f in failed), icon="⚠️")
    else:
        st.caption(f"Every check passed ({when}).")
    st.code(report.text(), language=None, wrap_lines=True)


def main() -> None:
    """Open or create a project, choose the model, and the system check."""
    st.title("Project")
    if message := st.session_state.pop(FLASH_KEY, None):
        st.success(message)
    open_section()
    st.divider()
    with state.user_errors():
        details_section()
    st.divider()
    llm_section()
    st.divider()
    create_section()
    st.divider()
    system_section()


if __name__ == "__main__":  # Streamlit runs pages as __main__; tests import the helpers
    main()
