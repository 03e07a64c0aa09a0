"""The Evolve page in AppTest: start a run on the loopback server, watch its cards, pause, resume, stop."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from datagen_core.config import CheckSpec, Label, LLMConfig, ProjectSpec
from datagen_core.demo import DEMO_PROJECT
from datagen_core.engine.jobs import RunJob
from datagen_core.methods.datagen import DataGenOptions
from datagen_core.store import SampleFilter, Store

from .loopback_server import LoopbackServer, deterministic_text
from .studio_helpers import Studio, as_shown, studio_session

PAGE = "pages/evolve.py"
TIMEOUT = 120.0


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


def unescaped(at: AppTest) -> list[str]:
    """Markdown on the page with the page's escaping undone, to compare with stored texts."""
    return [as_shown(m.value) for m in at.markdown]


def open_evolve(studio: Studio, llm: LLMConfig, project: str | None = None) -> AppTest:
    at = studio.app()
    at.session_state["llm_config"] = llm
    if project is not None:
        at.session_state["project"] = project
    return studio.open_page(PAGE, at)


def start(at: AppTest, per_label: int, in_flight: int | None = None) -> None:
    at.number_input(key="evolve_per_label").set_value(per_label)
    if in_flight is not None:
        at.number_input(key="evolve_in_flight").set_value(in_flight)
    at.button(key="FormSubmitter:evolve_new_run-Start run").click().run()
    assert not at.exception, [e.value for e in at.exception]


def only_job(studio: Studio, store: Store) -> RunJob:
    (job,) = studio.workspace().runs.jobs(store)
    return job


def test_start_a_run_and_see_offspring_with_both_parents_and_the_gene_split(studio: Studio) -> None:
    with LoopbackServer(latency_s=0.02) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        assert "Start run" in [b.label for b in at.button]
        at.multiselect(key="evolve_labels").set_value(["spam"])
        start(at, per_label=4)
        store = studio.workspace().store(DEMO_PROJECT)
        job = only_job(studio, store)
        assert job.wait(TIMEOUT)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    (run,) = store.runs()
    assert run.status == "completed" and run.config.labels == ("spam",) and run.config.per_label == 4
    assert run.llm["model"] == "loopback" and not run.config.worked_example  # a real model needs no example
    assert at.selectbox(key="evolve_run").value == run.id
    assert [p.value for p in at.get("progress")] == [100]
    assert any("4/4 kept" in p.proto.text for p in at.get("progress"))
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Job"] == "completed" and metrics["LLM calls"] == "4" and metrics["Retries"] == "0"

    offspring = store.sample_page(SampleFilter(run_ids=(run.id,), include_filtered=True))
    assert len(offspring) == 4
    shown = unescaped(at)
    for row in offspring.itertuples():
        assert any(m.startswith(f"**#{row.id}** · spam") for m in shown)
        assert f"> {row.text}" in shown
        parents = store.samples_by_ids(list(row.parent_ids)).set_index("id")
        for parent_id in row.parent_ids:
            assert f"> {parents.loc[parent_id, 'text'].strip()}" in shown  # both parents' texts, in full
        split = json.loads(row.gene_split)
        line = (f"From parent 1: {', '.join(f'`{g}`' for g in split['parent1'])} · From parent 2: "
                f"{', '.join(f'`{g}`' for g in split['parent2'])} · Mutated: "
                f"{', '.join(f'`{g}`' for g in split['mutated'])}")
        assert line in shown
    captions = [c.value for c in at.caption]
    first = offspring.iloc[0]
    split = json.loads(first["gene_split"])
    assert any(c.startswith(f"Parent 1 · #{first['parent_ids'][0]} · real · gives") and split["parent1"][0] in c
               for c in captions)


def test_pause_resume_and_stop_from_the_page(studio: Studio) -> None:
    with LoopbackServer(latency_s=0.1) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        start(at, per_label=60, in_flight=2)
        store = studio.workspace().store(DEMO_PROJECT)
        job = only_job(studio, store)
        (run,) = store.runs()
        deadline = time.monotonic() + TIMEOUT
        while sum(store.kept_counts(run.id).values()) < 2:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        at.run()
        assert not at.button(key="evolve_pause").disabled and at.button(key="evolve_resume").disabled

        at.button(key="evolve_pause").click().run()
        assert job.wait(TIMEOUT) and job.snapshot().state == "paused"
        at.run()
        assert store.run(run.id).status == "interrupted"
        assert at.button(key="evolve_pause").disabled and not at.button(key="evolve_resume").disabled
        assert {m.label: m.value for m in at.metric}["Job"] == "paused"
        paused_at = sum(store.kept_counts(run.id).values())

        at.button(key="evolve_resume").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert job.snapshot().active
        while sum(store.kept_counts(run.id).values()) <= paused_at:
            assert time.monotonic() < deadline
            time.sleep(0.05)

        at.button(key="evolve_stop").click().run()
        assert any("for good" in w.value for w in at.warning)
        at.button(key="evolve_stop_yes").click().run()
        assert job.wait(TIMEOUT)
        at.run()
    assert job.snapshot().state == "stopped" and store.run(run.id).status == "stopped"
    assert 0 < sum(store.kept_counts(run.id).values()) < 120
    for key in ("evolve_pause", "evolve_resume", "evolve_stop"):
        assert at.button(key=key).disabled, key
    assert {m.label: m.value for m in at.metric}["Job"] == "stopped"


def test_no_genes_and_a_dead_endpoint_are_clear_messages(studio: Studio) -> None:
    dead = LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="loopback", max_retries=0)
    at = open_evolve(studio, dead)
    workspace = studio.workspace()
    examples = pd.DataFrame({"text": ["hi there", "see you", "WIN cash", "free prize"],
                             "label": ["ham", "ham", "spam", "spam"]})
    workspace.create_project(ProjectSpec(name="bare", task="spam"), [Label(name="ham"), Label(name="spam")],
                             examples, None)
    at.session_state["project"] = "bare"
    at.run()
    assert any("no genes yet" in w.value for w in at.warning)
    start(at, per_label=2)
    assert any("no genes" in e.value for e in at.error)
    assert workspace.store("bare").runs() == []

    at.session_state["project"] = DEMO_PROJECT
    at.run()
    start(at, per_label=2)
    store = workspace.store(DEMO_PROJECT)
    job = only_job(studio, store)
    assert job.wait(TIMEOUT)
    at.run()
    (run,) = store.runs()
    assert store.run(run.id).status == "failed"
    errors = [as_shown(e.value) for e in at.error]
    assert any("cannot reach the LLM endpoint http://127.0.0.1:9/v1" in e for e in errors), errors
    assert {m.label: m.value for m in at.metric}["Job"] == "failed"
    assert not at.button(key="evolve_resume").disabled  # a failed run may be retried, e.g. after fixing the URL


def test_a_few_shot_run_shows_the_examples_it_was_given(studio: Studio) -> None:
    with LoopbackServer(latency_s=0.02) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        at.selectbox(key="evolve_method").set_value("few_shot").run()  # the form asks for the method's options
        at.number_input(key="evolve_few_shot_k").set_value(3)
        at.multiselect(key="evolve_labels").set_value(["ham"])
        start(at, per_label=3)
        store = studio.workspace().store(DEMO_PROJECT)
        assert only_job(studio, store).wait(TIMEOUT)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    (run,) = store.runs()
    assert run.status == "completed" and run.method == "few_shot" and run.config.options.k == 3
    offspring = store.sample_page(SampleFilter(run_ids=(run.id,)))
    real_ham = set(store.real_examples("ham")["id"])
    captions = [c.value for c in at.caption]
    assert any(c.startswith("Few-shot · model loopback · 3 examples per call") for c in captions)
    for row in offspring.itertuples():
        assert len(row.parent_ids) == 3 and set(row.parent_ids) <= real_ham  # real examples of its own label
        assert any(c.startswith(f"Example 3 · #{row.parent_ids[2]} · real") for c in captions)


class ItemsOrVerdicts:
    """DataGen answers (the items asked for) and self-reflection verdicts: the first two distinct offspring the
    judge sees are bad for good (their rewrites are unusable), every later one is fine."""

    def __init__(self) -> None:
        self.bad: set[str] = set()
        self.seen: set[str] = set()
        self._lock = threading.Lock()

    def __call__(self, body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        if "A reviewer said" in prompt:
            return "{}"
        item = re.search(r"Item: (.*)\nLabel:", prompt)
        if item is not None:
            with self._lock:
                if item[1] not in self.seen and len(self.seen) < 2:
                    self.bad.add(item[1])
                self.seen.add(item[1])
            good = item[1] not in self.bad
            return json.dumps({"reflection": "fine" if good else "not an SMS", "is_good": good})
        asked = re.search(r"Write (\d+) new items", prompt)
        if asked is not None:
            digest = hashlib.sha256((prompt + str(body.get("seed"))).encode()).hexdigest()
            return json.dumps({"items": [{"text": f"Offer {digest[:8]}-{i}: reply now"}
                                         for i in range(int(asked[1]))]})
        return deterministic_text(body["messages"], body.get("seed"))


def test_a_datagen_run_with_its_options_from_the_page(studio: Studio) -> None:
    with LoopbackServer(answer=ItemsOrVerdicts()) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        assert "evolve_datagen_items_per_call" not in [n.key for n in at.number_input]  # genetic: no DataGen options
        at.selectbox(key="evolve_method").set_value("datagen").run()
        assert "evolve_genetic_parent_selection" not in [r.key for r in at.radio]  # nor Genetic Prompt's
        at.number_input(key="evolve_datagen_items_per_call").set_value(2)
        at.number_input(key="evolve_datagen_examples").set_value(2)
        at.radio(key="evolve_datagen_selection").set_value("kmeans")
        at.text_area(key="evolve_datagen_description").set_value("  SMS messages for a spam filter  ")
        at.multiselect(key="evolve_labels").set_value(["spam"])
        start(at, per_label=3)
        store = studio.workspace().store(DEMO_PROJECT)
        assert only_job(studio, store).wait(TIMEOUT)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    (run,) = store.runs()
    assert run.status == "completed" and run.method == "datagen"
    assert run.config.options == DataGenOptions(items_per_call=2, examples=2, selection="kmeans",
                                                description="SMS messages for a spam filter")
    assert store.kept_counts(run.id) == {"spam": 3} and run.config.checks == ()
    captions = [c.value for c in at.caption]
    assert any(c.startswith("DataGen (several per call) · model loopback · 2 items per call · 2 kmeans examples")
               for c in captions), captions


def test_a_run_with_an_in_run_reflection_check_from_the_page(studio: Studio) -> None:
    with LoopbackServer(answer=ItemsOrVerdicts()) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        assert "evolve_check_rounds" not in [n.key for n in at.number_input]
        at.multiselect(key="evolve_checks").set_value(["reflection"]).run()
        assert "evolve_check_mode" not in [r.key for r in at.radio]  # reflection reads rounds, not a mode
        at.number_input(key="evolve_check_rounds").set_value(2)
        at.multiselect(key="evolve_labels").set_value(["ham"])
        start(at, per_label=6)
        store = studio.workspace().store(DEMO_PROJECT)
        assert only_job(studio, store).wait(TIMEOUT)
        at.run()
    assert not at.exception, [e.value for e in at.exception]
    (run,) = store.runs()
    assert run.status == "completed" and run.config.checks == (CheckSpec(name="reflection", rounds=2),)
    assert run.config.dedup_distance is None
    assert store.kept_counts(run.id) == {"ham": 6}
    assert store.filtered_counts(run.id) == {"check:reflection": 2}  # asked again: the target stays exact
    captions = [c.value for c in at.caption]
    assert any("checks: self-reflection (2 rounds)" in c for c in captions), captions
    assert "Filtered: check:reflection 2" in captions
    offspring = store.sample_page(SampleFilter(run_ids=(run.id,), include_filtered=True))
    for sample_id in offspring["id"]:
        assert len(store.sample_checks(int(sample_id))) == 1  # every offspring carries its verdict


def test_top_up_after_review_asks_again_for_exactly_the_rejected_offspring(studio: Studio) -> None:
    with LoopbackServer(latency_s=0.02) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        at.multiselect(key="evolve_labels").set_value(["spam"])
        start(at, per_label=4)
        store = studio.workspace().store(DEMO_PROJECT)
        assert only_job(studio, store).wait(TIMEOUT)
        at.run()
        assert "Top up" not in " ".join(b.label for b in at.button)  # nothing rejected yet
        (run,) = store.runs()
        rejected = [int(i) for i in store.sample_page(SampleFilter(run_ids=(run.id,)))["id"][:2]]
        for sample_id in rejected:
            store.edit_sample(sample_id, status="rejected", actor="reviewer")
        at.run()
        asked_before = server.stats.completions
        at.button(key="evolve_top_up").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert only_job(studio, store).wait(TIMEOUT)
        at.run()
    assert store.run(run.id).status == "completed"
    assert store.counted_offspring(run.id) == {"spam": 4} and store.rejected_offspring(run.id) == {"spam": 2}
    assert server.stats.completions - asked_before == 1 + 2  # the connection check and the two asked again
    assert "Top up" not in " ".join(b.label for b in at.button)  # the rejected ones are replaced


def sidebar_lines(studio: Studio, llm: LLMConfig) -> list[str]:
    """The sidebar's captions as a new session of the studio draws them (AppTest draws the sidebar of the first
    page a session opens)."""
    home = studio.app()
    home.session_state["llm_config"] = llm
    home.run()
    return [c.value for c in home.sidebar.caption]


def test_a_starting_run_leads_the_page_says_what_it_does_and_its_state_is_never_stale(studio: Studio) -> None:
    """Issue 14.5/14.6: once a run starts its feed comes before the New-run form, a line says what it is doing
    until the first offspring land, the Run selector and the sidebar show the job's own state (paused, not the
    store's 'interrupted'), and the sidebar's count moves while the run goes on."""
    answer = threading.Event()

    def hold_the_first_answers(number: int, body: dict[str, Any]) -> str | None:
        if body["messages"][-1]["content"] != "Say OK.":
            answer.wait(TIMEOUT)
        return None

    with LoopbackServer(latency_s=0.2, faults=hold_the_first_answers) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        start(at, per_label=30, in_flight=2)
        store = studio.workspace().store(DEMO_PROJECT)
        job = only_job(studio, store)
        deadline = time.monotonic() + TIMEOUT
        while job.snapshot().phase != "waiting for the first answers":
            assert time.monotonic() < deadline, job.snapshot()
            time.sleep(0.05)
        at.run()
        blocks = [type(e).__name__ for e in at.main]
        order = [e for e in at.main if getattr(e, "key", None) == "evolve_run" or
                 getattr(getattr(e, "proto", None), "label", "") == "New run"]
        assert [getattr(e, "key", None) for e in order] == ["evolve_run", None], blocks  # the feed first
        assert any("is waiting for the first answers" in i.value for i in at.info)
        assert any(line.startswith(f"Run {job.run_id}: running, 0/60") for line in sidebar_lines(studio, llm))
        answer.set()
        while sum(store.kept_counts(job.run_id).values()) < 4:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        at.run()
        assert not any("waiting for the first answers" in i.value for i in at.info)  # cards now say it
        moved = [line for line in sidebar_lines(studio, llm) if line.startswith(f"Run {job.run_id}")]
        assert moved and ", 0/60" not in moved[0], moved
        at.button(key="evolve_pause").click().run()
        assert job.wait(TIMEOUT) and store.run(job.run_id).status == "interrupted"
        at.run()
    assert any(m.value.startswith(f"**Run {job.run_id}: paused**") for m in at.markdown)  # not 'interrupted'
    assert at.expander[0].proto.label == "New run"  # nothing going on: the form is back on top


def test_a_second_run_starts_from_the_form_below_a_running_one(studio: Studio) -> None:
    """While a run goes on the form sits below its feed (and the Run selector): starting another from there
    selects the new run instead of failing on a selector already drawn."""
    with LoopbackServer(latency_s=0.3) as server:
        llm = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = open_evolve(studio, llm)
        start(at, per_label=40, in_flight=1)
        store = studio.workspace().store(DEMO_PROJECT)
        (first,) = store.runs()
        at.run()
        assert at.expander[0].proto.label == "New run" and at.selectbox(key="evolve_run").value == first.id
        start(at, per_label=1, in_flight=1)  # the form below the running run's feed
        second = next(r for r in store.runs() if r.id != first.id)
        assert at.selectbox(key="evolve_run").value == second.id
        for job in studio.workspace().runs.jobs(store):
            job.stop()
            assert job.wait(TIMEOUT)
