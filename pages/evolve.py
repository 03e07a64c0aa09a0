"""Evolve: start, watch, pause, resume and stop Genetic Prompt runs.

A run executes in a background thread of the studio's process (`datagen_core.engine.jobs`), so it keeps going
while the user browses other pages; this page only starts it, steers it and draws what the store and the
job's snapshot say. The live feed is a fragment that reruns every few seconds while a job is active.
"""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from datagen_core.config import LLMConfig, RunConfig, in_run_check_names
from datagen_core.engine.build import build_run_config
from datagen_core.engine.jobs import JobSnapshot, run_state
from datagen_core.engine.progress import describe_faults
from datagen_core.engine.runs import missing_offspring, start_run
from datagen_core.methods import describe_options
from datagen_core.registry import CHECKS, METHODS
from datagen_core.store import RESUMABLE_STATUSES, RunInfo, SampleFilter, Store
from studio import state
from studio.options_form import merged_fields, option_widget, options_inputs, shared_options_inputs
from studio.render import gene_split, genes_text, md, parent_ids, quoted

LIVE_SECONDS = 2.0  # how often the feed redraws while a job is active
CARDS = 6  # newest offspring shown as cards
METRIC_WIDTH = 200  # px: the widest figure ("completed", "interrupted") reads whole; the row wraps instead
RUN_KEY = "evolve_run"
STOP_CONFIRM_KEY = "evolve_confirm_stop"
STARTED_KEY = "evolve_started"  # the run this session just started: selected and announced on the redraw
GROUP_CHECK = "dedup"  # in-run, the group check is the run's `dedup_distance` (against the label's population)


# --------------------------------------------------------------------------- new run
def new_run_form(store: Store, llm_config: LLMConfig) -> None:
    """The options of a new run; Start records it and launches it in the background. The method and the
    checks sit above the form because they decide which options the form asks for."""
    labels = [lb.name for lb in store.labels()]
    defaults = llm_config.default_sampling()
    with st.expander("New run", expanded=not store.runs()):
        if store.gene_set() is None:
            st.warning("This project has no genes yet: set them on the **Genes** page before starting a run.")
        method = st.selectbox(
            "Method", METHODS.names(), format_func=METHODS.title, key="evolve_method",
            help="Genetic Prompt, or a baseline of the papers to compare with. Topic and AttrPrompt runs use the "
                 "topics / attribute values proposed with `datagen topics|attributes propose`.")
        st.caption(METHODS.get(method).summary)
        checks = st.multiselect(
            "In-run quality checks", [GROUP_CHECK, *in_run_check_names()], key="evolve_checks",
            format_func=CHECKS.title,
            help="Applied in this order to each batch of offspring before it is stored: an offspring a check "
                 "rejects is kept in the store as filtered (`check:<name>`) and asked for again; a correction "
                 "replaces its text. Every verdict is recorded with the sample. Facts need a knowledge base.")
        with st.form("evolve_new_run"):
            chosen = st.multiselect("Labels", labels, default=labels, key="evolve_labels")
            left, middle, right = st.columns(3)
            per_label = left.number_input("Target per label", min_value=1, max_value=1_000_000, value=20, step=10,
                                          key="evolve_per_label")
            in_flight = middle.number_input("Requests in flight", min_value=1, max_value=4096,
                                            value=llm_config.max_in_flight, key="evolve_in_flight")
            seed = right.number_input("Seed (empty = random)", min_value=0, max_value=2**31 - 1, value=None, step=1,
                                      key="evolve_seed")
            options = options_inputs(METHODS.get(method).Options, f"evolve_{method}_")
            temperature = st.slider("Temperature", 0.0, 2.0, float(defaults.temperature), 0.05,
                                    key="evolve_temperature")
            distance = group_check_input() if GROUP_CHECK in checks else None
            check_options = shared_options_inputs(
                merged_fields({c: CHECKS.get(c).Options for c in checks if c != GROUP_CHECK}), "evolve_check_")
            submitted = st.form_submit_button("Start run", type="primary")
    if not submitted:
        return
    if not chosen:
        st.error("Pick at least one label.", icon="⚠️")
        return
    session_llm = llm_config.model_copy(update={"max_in_flight": int(in_flight)})

    def launch() -> str:
        config = build_run_config(
            session_llm, per_label=int(per_label), method=method, options=options, labels=chosen,
            project_labels=labels, seed=int(seed) if seed is not None else None,
            checks=[c for c in checks if c != GROUP_CHECK], check_options=check_options, dedup_distance=distance,
            temperature=float(temperature),
        )
        run_id = start_run(store, config, session_llm)
        state.workspace().runs.launch(store, run_id, session_llm)
        return run_id

    run_id = state.attempt(launch)
    if run_id is not None:
        st.session_state[STARTED_KEY] = run_id  # chosen in the Run selector on the redraw (drawn above, maybe)
        st.rerun()  # the page now leads with the run's feed


def group_check_input() -> float:
    """The in-run group check's distance, with the bounds and default of the dedup check's own option."""
    field = CHECKS.get(GROUP_CHECK).Options.model_fields["distance"]
    return float(option_widget(st, "Group check distance", field, "evolve_dedup"))


# ------------------------------------------------------------------------ the feed
def run_caption(run: RunInfo) -> str:
    """What never changes about a run (its state is drawn by the live feed: a choice's label would go stale)."""
    return (f"{run.id} · {METHODS.title(run.method)} · {run.config.per_label} per label · "
            f"{run.created_at:%Y-%m-%d %H:%M}")


def controls(store: Store, run: RunInfo, snap: JobSnapshot | None, llm_config: LLMConfig) -> None:
    """Pause / resume / stop, always in this order; each action redraws the whole page."""
    runs = state.workspace().runs
    job = runs.job(store, run.id)
    active = snap is not None and snap.active
    finished = run.status in ("completed", "stopped") or (snap is not None and snap.state in ("completed", "stopped"))
    can_resume = not active and not finished and run.status in RESUMABLE_STATUSES
    buttons = st.container(horizontal=True)
    if buttons.button("Pause", key="evolve_pause", disabled=not active or snap.state not in ("starting", "running")):
        if job is not None:
            job.pause()
        st.rerun()
    resumed = buttons.button("Resume", key="evolve_resume", disabled=not can_resume,
                            type="primary" if can_resume else "secondary")
    if resumed and state.attempt(lambda: runs.launch(store, run.id, llm_config)) is not None:
        st.rerun()
    if buttons.button("Stop…", key="evolve_stop", disabled=finished or not (active or can_resume)):
        st.session_state[STOP_CONFIRM_KEY] = run.id
    if st.session_state.get(STOP_CONFIRM_KEY) == run.id and not finished:
        st.warning(f"Stop run {run.id} for good? What landed stays; the run cannot be resumed afterwards.")
        yes, no, _ = st.columns([1, 1, 4])
        if yes.button("Yes, stop it", key="evolve_stop_yes", type="primary"):
            st.session_state.pop(STOP_CONFIRM_KEY, None)
            if job is None:  # no live job (studio restarted): the store is the only state to change
                store.set_run_status(run.id, "stopped")
            else:
                job.stop()
            st.rerun()
        if no.button("Cancel", key="evolve_stop_no"):
            st.session_state.pop(STOP_CONFIRM_KEY, None)
            st.rerun()
    missing = sum(missing_offspring(store, run).values()) if run.status == "completed" and not active else 0
    if missing and buttons.button(
            f"Top up {missing}", key="evolve_top_up",
            help=f"Ask again for the {missing} offspring rejected in review: same run, same lineage rules; "
                 "rejected offspring are no parents.") \
            and state.attempt(lambda: runs.top_up(store, run.id, llm_config)) is not None:
        st.rerun()
    if can_resume and run.llm.get("model") != llm_config.model:
        st.caption(f"Resuming uses this session's model **{md(llm_config.model)}**; the run started with "
                   f"**{md(run.llm.get('model'))}**.")


def checks_text(config: RunConfig) -> str:
    """The in-run checks in the order they apply, with the options each one reads."""
    shown = [f"group check < {config.dedup_distance}"] if config.dedup_distance is not None else []
    for check in config.checks:
        plugin = CHECKS.get(check.name)
        options = plugin.describe(check.options)
        shown.append(plugin.title.lower() + (f" ({options})" if options else ""))
    return "checks: " + " → ".join(shown) + " · " if shown else ""


def run_settings(run: RunInfo) -> str:
    config = run.config
    options = describe_options(config)
    return (f"{METHODS.title(config.method)} · model {run.llm.get('model')} · "
            f"{options + ' · ' if options else ''}{checks_text(config)}temperature {config.sampling.temperature} · "
            f"seed {config.seed} · gene set v{run.gene_set_version}")


def progress_bars(store: Store, run: RunInfo, snap: JobSnapshot | None) -> None:
    """Per label: kept/target from the store (the truth), failed and in flight from the live job; then what
    was filtered, by reason (the engine's filters and the in-run checks)."""
    counts = store.label_counts(run.id)
    labels = list(run.config.labels) or [lb.name for lb in store.labels()]
    target = run.config.per_label
    for label in labels:
        kept, filtered = counts.get(label, (0, 0))
        live = snap.progress.get(label) if snap is not None else None
        failed, in_flight = (live.failed, live.in_flight if snap.active else 0) if live is not None else (0, 0)
        st.progress(min(kept / target, 1.0),
                    text=f"**{md(label)}**: {kept}/{target} kept · {filtered} filtered · {failed} failed · "
                         f"{in_flight} in flight")
    reasons = sorted(store.filtered_counts(run.id).items(), key=lambda item: (-item[1], item[0]))
    if reasons:
        st.caption("Filtered: " + " · ".join(f"{md(reason)} {count}" for reason, count in reasons))


def compact(count: float) -> str:
    """999 -> '999', 7715 -> '7.7k', 4321000 -> '4.3M': a metric that fits its column in a narrow window."""
    count = int(count)
    if count < 1000:
        return str(count)
    return f"{count / 1000:.1f}k" if count < 1_000_000 else f"{count / 1_000_000:.1f}M"


def usage_metrics(store: Store, run: RunInfo, snap: JobSnapshot | None) -> None:
    usage = store.run_usage(run.id)
    row = st.container(horizontal=True)  # wraps into as many rows as the window needs; no figure is cut
    row.metric("Job", snap.state if snap is not None else "idle", width=METRIC_WIDTH,
               help=None if snap is not None else "No job of this studio runs this run now.")
    row.metric("LLM calls", int(usage["calls"]), width=METRIC_WIDTH,
               help=f"Answered from the cache: {int(usage['cached_calls'])}")
    row.metric("Failed calls", int(usage["failed_calls"]), width=METRIC_WIDTH)
    faults = store.run_faults(run.id)
    row.metric("Retries", int(usage["retries"]), width=METRIC_WIDTH,
               help="Extra attempts after 429s, 5xx, timeouts and dropped connections"
                    + (f": {describe_faults(faults)}; {usage['lost_s']:.1f} s lost to them." if faults else "."))
    row.metric("Tokens", compact(usage["prompt_tokens"] + usage["completion_tokens"]), width=METRIC_WIDTH,
               help=f"{int(usage['prompt_tokens']):,} in (prompts), {int(usage['completion_tokens']):,} out")
    if snap is not None and snap.seconds > 0:
        row.metric("Offspring / s", f"{snap.landed / snap.seconds:.2f}", width=METRIC_WIDTH,
                   help=f"{snap.seconds:.0f} s running")
    if faults:
        st.caption(f"Retries by kind: {describe_faults(faults)} · {usage['lost_s']:.1f} s lost to them")


def messages(run: RunInfo, snap: JobSnapshot | None) -> None:
    """The job's error and recent warnings (retries that gave up, refusals, exhausted labels)."""
    error = (snap.error if snap is not None else None) or run.error
    if error:
        st.error(f"Run {run.id}: {md(error)}", icon="⚠️")
    if snap is None or not snap.messages:
        return
    notable = [m for m in snap.messages if m.level in ("warning", "error")]
    with st.expander(f"Messages ({len(notable)} warnings or errors, {len(snap.messages)} in all)",
                     expanded=bool(notable) and not snap.active):
        for message in reversed(snap.messages[-30:]):
            st.caption(f"{message.at:%H:%M:%S} · {message.level} · {md(message.text)}")


def offspring_card(row: pd.Series, parents: dict[int, pd.Series]) -> None:
    """One offspring with both parents side by side and which genes came from where (for a baseline: the
    examples it was shown and the topic or attribute values it was asked for)."""
    split = gene_split(row["gene_split"])
    genetic = row["method"] == "genetic"
    details = json.loads(row["details"]) if isinstance(row["details"], str) and row["details"] else {}
    with st.container(border=True):
        head = f"**#{row['id']}** · {md(row['label'])} · {row['status']}"
        if isinstance(row["filter_reason"], str) and row["filter_reason"]:
            head += f" · :orange[filtered: {md(row['filter_reason'])}]"
        st.markdown(head)
        st.markdown(quoted(row["text"]))
        if "original_text" in details:
            st.caption("Corrected by an in-run check; as generated:")
            st.markdown(quoted(details["original_text"]))
        if genetic:
            st.markdown(f"From parent 1: {genes_text(split['parent1'])} · From parent 2: "
                        f"{genes_text(split['parent2'])} · Mutated: {genes_text(split['mutated'])}")
        else:
            asked = {k: v for k, v in details.items() if k in ("topic", "attributes", "k")}
            st.caption(f"{METHODS.title(row['method'])}"
                       + "".join(f" · {key}: {md(value)}" for key, value in asked.items()))
        ids = parent_ids(row["parent_ids"])
        columns = st.columns(max(1, min(len(ids), 3)))
        for position, (column, parent_id) in enumerate(zip(columns, ids, strict=False), start=1):
            parent = parents.get(parent_id)
            name = f"Parent {position}" if genetic else f"Example {position}"
            with column:
                if parent is None:
                    st.caption(f"{name} #{parent_id}: no longer in the store")
                    continue
                gives = f" · gives {genes_text(split[f'parent{position}'])}" if genetic and position <= 2 else ""
                st.caption(f"{name} · #{parent_id} · {parent['origin']}{gives}")
                st.markdown(quoted(parent["text"]))


def newest_offspring(store: Store, run: RunInfo) -> None:
    page = store.sample_page(SampleFilter(run_ids=(run.id,), include_filtered=True), limit=CARDS)
    if page.empty:
        st.caption("No offspring yet.")
        return
    wanted = {p for ids in page["parent_ids"] for p in parent_ids(ids)}
    found = store.samples_by_ids(sorted(wanted))
    parents = {int(r["id"]): r for _, r in found.iterrows()}
    st.subheader("Newest offspring")
    for _, row in page.iterrows():
        offspring_card(row, parents)


def live_feed(run_id: str, live: bool) -> None:
    """Everything that changes while a run goes on; reruns on its own every LIVE_SECONDS while live."""
    store = state.store()
    run = store.run(run_id)
    job = state.workspace().runs.job(store, run_id)
    snap = job.snapshot() if job is not None else None
    if live and (snap is None or not snap.active):
        st.rerun()  # the job just ended: redraw the page so the feed stops ticking and buttons update
    st.markdown(f"**Run {run.id}: {run_state(run.status, snap)}**")
    st.caption(md(run_settings(run)))
    if snap is not None and snap.phase:
        st.info(f"Run {run.id} is {md(snap.phase)}…", icon="⏳")
    controls(store, run, snap, state.llm_config())
    messages(run, snap)
    progress_bars(store, run, snap)
    usage_metrics(store, run, snap)
    newest_offspring(store, run)


def main() -> None:
    st.title("Evolve")
    store = state.store()
    llm_config = state.llm_config()
    jobs = state.workspace().runs
    # While a run goes on, its feed comes first and the form for another run waits below it.
    if (started := st.session_state.pop(STARTED_KEY, None)) is not None:
        st.session_state[RUN_KEY] = started  # before the selector exists in this run
        st.toast(f"Run {started} started")
    going = any(jobs.active(store))
    if not going:
        new_run_form(store, llm_config)

    runs = list(reversed(store.runs()))
    if not runs:
        st.info("No runs yet: pick labels and a target above, then **Start run**.")
        return
    ids = [r.id for r in runs]
    if st.session_state.get(RUN_KEY) not in ids:
        st.session_state[RUN_KEY] = ids[0]
    by_id = {r.id: r for r in runs}
    run_id = st.selectbox("Run", ids, key=RUN_KEY, format_func=lambda i: run_caption(by_id[i]))
    job = jobs.job(store, run_id)
    live = job is not None and job.snapshot().active
    st.fragment(live_feed, run_every=LIVE_SECONDS if live else None)(run_id, live)
    if going:
        st.divider()
        new_run_form(store, llm_config)


if __name__ == "__main__":  # Streamlit runs pages as __main__; tests import the helpers
    main()
