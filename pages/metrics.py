"""Metrics: runs and the real seeds side by side: diversity, distance to the real data and downstream F1.

Every figure comes from `datagen_core.evaluation.evaluator.Evaluator` and is cached in the store under a key that
hashes the data and the settings (the same keys `datagen eval` uses). Drawing the page only reads that
cache (a read-only evaluator), so changing a setting shows what is known for it at once and nothing is
recomputed by accident; only Compute computes, and only what is missing. Compute starts a background job of
the workspace (`datagen_core.evaluation.jobs`): a fine-tune takes about a minute, and the session, the other
pages and the other sessions stay usable meanwhile. The Provenance expander ties each figure to its key,
parameters and timing.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field

import pandas as pd
import streamlit as st

from datagen_core.errors import DatagenError
from datagen_core.evaluation.comparison import (
    COMPARED_SETS,
    ComparisonSettings,
    Step,
    parse_sizes,
    plan,
    run_step,
    step_title,
    subject_names,
)
from datagen_core.evaluation.evaluator import REAL, Evaluation, Evaluator, NotCached, comparison_table
from datagen_core.evaluation.jobs import EvaluationJob, JobStep
from datagen_core.evaluation.set_metrics import legend as metric_legend
from datagen_core.evaluation.trainers import TRAINERS, ProgressFn, Trainer
from datagen_core.ingest import clean_examples, read_upload
from datagen_core.store import RunInfo, Store
from studio import metrics_charts as charts
from studio import state
from studio.options_form import options_inputs
from studio.render import column_pickers, md

SETTING_WIDTH = 220  # px: a setting reads whole at any window width; its row wraps instead
FLASH_KEY = "metrics_flash"
JOB_KEY = "metrics_job"  # the id of the evaluation job this session started, until its outcome is shown
LIVE_SECONDS = 1.5
UPLOAD_KEY = "metrics_heldout_upload"
FIGURES = {"metrics": "table, bars, distributions, CMD per label", "downstream": "table, macro-F1 bars, confusion",
           "scale": "scale curve, confusion"}


@dataclass
class Figures:
    """What the page draws, by role, plus the steps not computed yet and the ones that cannot be."""

    metrics: list[Evaluation] = field(default_factory=list)
    downstream: list[Evaluation] = field(default_factory=list)
    curves: dict[str, list[Evaluation]] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)  # every step that can be computed: what Recompute redoes
    missing: list[Step] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def scale_points(self) -> list[Evaluation]:
        return [p for points in self.curves.values() for p in points]

    @property
    def evaluations(self) -> list[Evaluation]:
        return self.metrics + self.downstream + self.scale_points

    def by_role(self) -> list[tuple[str, Evaluation]]:
        return ([("metrics", ev) for ev in self.metrics] + [("downstream", ev) for ev in self.downstream]
                + [("scale", ev) for ev in self.scale_points])


# ------------------------------------------------------------------------------ what to show
def run_label(run: RunInfo) -> str:
    return f"{run.method} · {run.created_at:%Y-%m-%d %H:%M} · {run.id}"


def gather(evaluator: Evaluator, settings: ComparisonSettings, names: dict[str, str]) -> Figures:
    """Read every step from the cache (read-only evaluator); a miss or a user error is noted, not raised."""
    figures = Figures()
    steps = plan(settings)
    trainer = None
    if settings.downstream:
        try:
            trainer = evaluator.trainer(settings.trainer, **settings.trainer_options())
        except DatagenError as exc:
            figures.problems.append(str(exc))
            steps = [s for s in steps if s.role == "metrics"]
    failed: set[str] = set()
    for step in steps:
        if step.subject in failed:
            continue
        try:
            ev = run_step(evaluator, trainer, step, settings, None)
        except NotCached:
            figures.steps.append(step)
            figures.missing.append(step)
            continue
        except DatagenError as exc:
            figures.problems.append(f"{step_title(step, names)}: {exc}")
            if step.role == "metrics":  # no data to measure: its downstream steps would only fail the same way
                failed.add(step.subject)
            continue
        figures.steps.append(step)
        if step.role == "metrics":
            figures.metrics.append(ev)
        elif step.role == "downstream":
            figures.downstream.append(ev)
        else:
            figures.curves.setdefault(step.subject, []).append(ev)
    return figures


def job_steps(steps: list[Step], settings: ComparisonSettings, names: dict[str, str]) -> list[JobStep]:
    """The steps as a background job runs them; the trainer is made once, in the job's thread (a fine-tune's
    imports take seconds)."""

    @functools.cache
    def trainer(evaluator: Evaluator) -> Trainer | None:
        return evaluator.trainer(settings.trainer, **settings.trainer_options()) if settings.downstream else None

    def run(step: Step, evaluator: Evaluator, progress: ProgressFn) -> Evaluation:
        return run_step(evaluator, trainer(evaluator) if step.role != "metrics" else None, step, settings, progress)

    return [JobStep(step_title(step, names), functools.partial(run, step)) for step in steps]


# ---------------------------------------------------------------------------------- widgets
def heldout_section(store: Store) -> bool:
    """The held-out test data downstream F1 is scored on, and an upload to add some; True if there is any."""
    counts = store.heldout_counts()
    if counts:
        st.caption(f"Downstream F1 is scored on **{sum(counts.values())}** held-out real examples the generator "
                   "never saw: " + ", ".join(f"{md(label)} {n}" for label, n in sorted(counts.items())) + ".")
    else:
        st.warning("This project has no held-out real data, so there is no downstream F1: add labelled real "
                   "examples the generator never saw below (or create the project with a hold-out fraction). "
                   "Intrinsic metrics need none.", icon="⚠️")
    with st.expander("Add held-out test data", expanded=not counts):
        upload = st.file_uploader("Labelled real examples (CSV, TSV, JSONL or Parquet), never used as seeds",
                                  type=["csv", "tsv", "jsonl", "ndjson", "json", "parquet"], key=UPLOAD_KEY)
        if upload is not None:
            heldout_upload(store, upload.name, upload.getvalue())
    return bool(counts)


def heldout_upload(store: Store, filename: str, data: bytes) -> None:
    """Pick an upload's text and label columns, validate them as the Project page does, add the rows."""
    raw = state.attempt(lambda: read_upload(filename, data))
    if raw is None:
        return
    columns = [str(c) for c in raw.columns]
    raw = raw.set_axis(columns, axis=1)
    text_col, label_col = column_pickers(raw, "metrics_heldout_text", "metrics_heldout_label")
    examples = state.attempt(lambda: clean_examples(raw, text_col, label_col, filename))
    if examples is None or not st.button(f"Add {len(examples)} held-out example(s)", key="metrics_heldout_add"):
        return
    added = state.attempt(lambda: store.add_heldout(examples, filename))
    if added is not None:
        st.session_state[FLASH_KEY] = (f"Added {added} of {len(examples)} held-out example(s) from {md(filename)} "
                                       "(texts that are seeds or already held out are skipped).")
        st.session_state.pop(UPLOAD_KEY, None)
        st.rerun()


def choose(store: Store, has_heldout: bool) -> ComparisonSettings | None:
    """The runs, the real seeds and the settings; None when there is nothing to measure."""
    runs = {run.id: run for run in reversed(store.runs())}  # newest first
    row = st.container(horizontal=True, vertical_alignment="bottom")
    chosen = row.multiselect("Runs", list(runs), default=list(runs)[:2], format_func=lambda r: run_label(runs[r]),
                              key=f"metrics_runs:{state.project_name()}",
                              help="Each run's kept samples that are not rejected, with Review's edits applied.")
    real = row.checkbox("Real seeds", value=True, key="metrics_real", width="content",
                        help="The project's real examples as a row of their own: the reference.")
    with st.expander("Settings"):
        top = st.container(horizontal=True, vertical_alignment="bottom")  # rows wrap instead of cutting labels
        downstream = top.checkbox("Downstream F1", value=True, key="metrics_downstream", disabled=not has_heldout,
                                  width="content", help="Train a classifier on each set and score it on the "
                                                        "held-out data.")
        trainer = top.selectbox("Trainer", TRAINERS.names(), key="metrics_trainer", format_func=TRAINERS.title,
                                width=SETTING_WIDTH,
                                help="  \n".join(f"{t.title}: {t.summary}." for t in TRAINERS.values()))
        seed = top.number_input("Seed", min_value=0, max_value=2**31 - 1, value=0, step=1, key="metrics_seed",
                                width=SETTING_WIDTH)
        trainer_options = options_inputs(TRAINERS[trainer].Options, f"metrics_{trainer}_")
        middle = st.container(horizontal=True, vertical_alignment="bottom")
        modes = middle.multiselect("Training sets per run", COMPARED_SETS, default=["synthetic"],
                                   key="metrics_modes", width=SETTING_WIDTH,
                                   help="synthetic: the run alone; mixed: the run added to the real seeds.")
        mix_ratio = middle.number_input("Mix ratio (mixed)", min_value=0.0, value=None, step=0.5,
                                        key="metrics_mix_ratio", placeholder="all synthetic", width=SETTING_WIDTH,
                                        help="Synthetic samples per real one of the same label; empty: all.")
        sizes_text = middle.text_input("Scale curve: synthetic per label", key="metrics_sizes",
                                       placeholder="5, 10, 20 (empty: none)", width=SETTING_WIDTH)
        scale_mode = middle.radio("Scale curve trains on", COMPARED_SETS, horizontal=True, key="metrics_scale_mode",
                                  width="content")
        bottom = st.container(horizontal=True, vertical_alignment="bottom")
        bleu_sample = bottom.number_input("Self-BLEU sample", min_value=2, max_value=100_000, value=500, step=100,
                                          key="metrics_bleu", width=SETTING_WIDTH,
                                          help="Texts sampled for self-BLEU (it is quadratic).")
        refresh = bottom.checkbox("Recompute even if cached", key="metrics_refresh", width="content",
                                  help="Compute replaces the cached results of these settings.")
    sizes = state.attempt(lambda: parse_sizes(sizes_text))
    if downstream and has_heldout:
        st.caption(f"{TRAINERS.title(trainer)}: {TRAINERS[trainer].summary}. Each result is cached as soon as it is "
                   "done, so leaving the page keeps what is finished.")
    if not chosen and not real:
        st.info("Pick at least one run or the real seeds." if runs else
                "No runs yet: start one on the **Evolve** page, or tick *Real seeds* to measure the real data.")
        return None
    return ComparisonSettings(runs=tuple(chosen), real=real, downstream=downstream and has_heldout, trainer=trainer,
                              trainer_settings=tuple(trainer_options.items()), modes=tuple(modes),
                              mix_ratio=float(mix_ratio) if mix_ratio is not None else None, sizes=sizes or (),
                              scale_mode=scale_mode, bleu_sample=int(bleu_sample), seed=int(seed), refresh=refresh)


def compute(store: Store, settings: ComparisonSettings, figures: Figures, names: dict[str, str]) -> None:
    """Start computing what is missing (everything, with Recompute) in the background and redraw with its progress."""
    steps = figures.steps if settings.refresh else figures.missing
    job = state.attempt(lambda: state.workspace().evaluations.start(store, job_steps(steps, settings, names)))
    if job is not None:
        st.session_state[JOB_KEY] = job.id
        st.rerun()


def job_progress(live: bool) -> None:
    """The running job's progress and a Cancel button; reruns on its own every LIVE_SECONDS while it runs."""
    job = state.workspace().evaluations.job(state.store())
    if job is None or not (snap := job.snapshot()).active:
        if live:
            st.rerun()  # the job just ended: redraw the whole page with the results it cached
        return
    text = f"Step {min(snap.done + 1, snap.total)} of {snap.total}: {snap.step or 'starting'}"
    st.progress(snap.overall, text=md(f"{text} · {snap.message}" if snap.message else text))
    left, right = st.columns([4, 1], vertical_alignment="center")
    left.caption(f"{snap.done} result(s) computed in {snap.seconds:.0f} s; each is cached as it lands, so other "
                 "pages stay usable and leaving this one loses nothing."
                 + (" Cancelling after this step…" if snap.cancelling else ""))
    right.button("Cancel", key="metrics_cancel", disabled=snap.cancelling, on_click=job.cancel,
                 help="Stops after the step in progress; what is finished stays cached.")


def job_outcome(job: EvaluationJob | None) -> None:
    """Once, in the session that started it: how the job ended."""
    if job is None or st.session_state.get(JOB_KEY) != job.id:
        return
    snap = job.snapshot()
    if snap.active:
        return
    del st.session_state[JOB_KEY]
    fresh = sum(not ev.cached for ev in snap.results)
    done = f"Computed {fresh} result(s) in {snap.seconds:.1f} s" + (
        f"; {len(snap.results) - fresh} came from the cache." if len(snap.results) > fresh else ".")
    if snap.state == "completed":
        st.success(done)
    elif snap.state == "cancelled":
        st.info(f"Cancelled after {snap.done} of {snap.total} step(s). {done}")
    else:
        st.error(f"{md(snap.error)} ({done} Compute tries the rest again.)", icon="⚠️")


# ---------------------------------------------------------------------------------- drawing
def comparison(figures: Figures, names: dict[str, str]) -> None:
    st.subheader("Comparison")
    table = comparison_table(figures.metrics + figures.downstream)
    table["subject"] = table["subject"].map(names)
    floats = [c for c in table.columns if pd.api.types.is_float_dtype(table[c])]
    st.dataframe(table, hide_index=True, key="metrics_table",
                 column_config={c: st.column_config.NumberColumn(c, format="%.3f") for c in floats})
    st.caption(f"{metric_legend()} · F1: on the held-out real data.")


def charts_section(figures: Figures, names: dict[str, str]) -> None:
    if figures.metrics or figures.downstream:
        st.plotly_chart(charts.summary_bars(figures.metrics, figures.downstream, names), key="metrics_bars")
    if figures.metrics:
        left, right = st.columns(2)
        with left:
            st.plotly_chart(charts.label_distribution(figures.metrics, names), key="metrics_labels")
        with right:
            st.plotly_chart(charts.length_distribution(figures.metrics, names), key="metrics_lengths")
        runs = [ev for ev in figures.metrics if ev.result["cmd_per_label"]]
        if runs:
            st.plotly_chart(charts.cmd_per_label(runs, names), key="metrics_cmd_labels")


def curve_section(figures: Figures, names: dict[str, str]) -> None:
    if not figures.curves:
        return
    st.subheader("Scale curve")
    metric = st.radio("F1", ["macro_f1", "micro_f1"], horizontal=True, key="metrics_curve_f1",
                      format_func=lambda m: m.replace("_f1", "-F1"))
    reference = next((ev.result[metric] for ev in figures.downstream if ev.subject == REAL), None)
    st.plotly_chart(charts.scale_curve(figures.curves, names, metric, reference), key="metrics_curve")
    if reference is None:
        st.caption("Tick *Real seeds* (and compute) to draw the real seeds' F1 as a reference line.")


def confusion_section(figures: Figures, names: dict[str, str]) -> None:
    results = {ev.key: ev for ev in figures.downstream + figures.scale_points}
    if not results:
        return
    st.subheader("Confusion matrix")
    if st.session_state.get("metrics_confusion") not in results:
        st.session_state.pop("metrics_confusion", None)
    key = st.selectbox("Result", list(results), key="metrics_confusion",
                       format_func=lambda k: f"{names[results[k].subject]} · {charts.training_name(results[k])}")
    chosen = results[key]
    st.plotly_chart(charts.confusion(chosen.result, f"{names[chosen.subject]} · {charts.training_name(chosen)}"),
                    key="metrics_confusion_chart")
    st.caption(f"Trained on {chosen.result['n_train']} texts, scored on {chosen.result['n_test']} held-out ones · "
               f"micro-F1 {chosen.result['micro_f1']:.3f} · macro-F1 {chosen.result['macro_f1']:.3f} · "
               f"key `{chosen.key}`")


def provenance(store: Store, figures: Figures, names: dict[str, str]) -> None:
    """Every result on the page with the key, settings and timing that produced it, and all of it as JSON."""
    listing = store.evaluations().set_index("key")
    rows = [{"figures": FIGURES[role], "subject": names[ev.subject], "kind": ev.kind, "key": ev.key,
             "seconds": round(ev.seconds, 2),
             "computed at (UTC)": listing["created_at"].get(ev.key) if ev.key in listing.index else None,
             "from cache": ev.cached, "params": json.dumps(ev.params, sort_keys=True)}
            for role, ev in figures.by_role()]
    with st.expander(f"Provenance ({len(rows)} result(s))"):
        st.dataframe(pd.DataFrame(rows), hide_index=True, key="metrics_provenance")
        everything = [{"key": ev.key, "kind": ev.kind, "subject": ev.subject, "params": ev.params,
                       "result": ev.result, "seconds": ev.seconds} for ev in figures.evaluations]
        st.download_button("Download all results (JSON)", data=json.dumps(everything, indent=2, default=str),
                           file_name=f"{state.project_name()}-metrics.json", mime="application/json",
                           on_click="ignore", key="metrics_json")


def main() -> None:
    st.title("Metrics")
    store = state.store()
    if message := st.session_state.pop(FLASH_KEY, None):
        st.success(message)
    has_heldout = heldout_section(store)
    settings = choose(store, has_heldout)
    if settings is None:
        return
    names = subject_names(store, settings.subjects)
    figures = gather(Evaluator(store, state.workspace().embedder, read_only=True), settings, names)
    job = state.workspace().evaluations.job(store)
    running = job is not None and job.snapshot().active
    job_outcome(job)
    status, button = st.columns([4, 1], vertical_alignment="center")
    note = status.empty()
    if button.button("Compute", type="primary", key="metrics_compute",
                     disabled=running or (not figures.missing and not settings.refresh),
                     help="Computes what is not cached yet in the background; cached results are reused unless "
                          "*Recompute* is ticked. One evaluation per project runs at a time."):
        compute(store, settings, figures, names)
    st.fragment(job_progress, run_every=LIVE_SECONDS if running else None)(running)
    total = len(figures.evaluations) + len(figures.missing)
    note.caption(f"{len(figures.evaluations)} of {total} result(s) for these runs and settings are cached"
                 + (f"; Compute adds the other {len(figures.missing)}." if figures.missing else "."))
    for problem in figures.problems:
        st.warning(md(problem), icon="⚠️")
    if not figures.evaluations:
        if figures.missing and not running:
            st.info("Nothing is computed yet for these runs and settings: press **Compute**.")
        return
    comparison(figures, names)
    charts_section(figures, names)
    curve_section(figures, names)
    confusion_section(figures, names)
    provenance(store, figures, names)


if __name__ == "__main__":  # Streamlit runs pages as __main__; tests import the helpers
    main()
