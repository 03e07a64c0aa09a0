"""In-run quality modules against the loopback server: the judge's answers are scripted from the item's text,
so which offspring a check rejects or corrects is known, and every verdict can be traced in the store."""

from __future__ import annotations

import json
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from datagen_core.config import CheckSpec, Label, ProjectSpec, RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.engine.progress import LabelProgress, RunObserver
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.records import text_hash
from datagen_core.store import Store, project_path

from .conftest import loopback_config, make_project, shared_csv
from .loopback_server import LoopbackServer, deterministic_text
from .test_cli import run_cli

SAMPLING = SamplingParams(max_tokens=64)
ITEM = re.compile(r"Item: (.*)\nLabel: (.*)\n")


def config(per_label: int, checks: tuple[CheckSpec, ...], **kwargs: Any) -> RunConfig:
    return RunConfig(per_label=per_label, seed=7, sampling=SAMPLING, checks=checks, **kwargs)


class Roles:
    """The n-th distinct offspring the judge sees gets role n modulo the cycle, and keeps it: every role occurs
    whatever order concurrent offspring arrive in, and a test can ask which role a stored text had."""

    def __init__(self, *cycle: str) -> None:
        self.cycle = cycle
        self.of: dict[str, str] = {}
        self._lock = threading.Lock()  # the server answers on several threads

    def __call__(self, text: str) -> str:
        with self._lock:
            return self.of.setdefault(text, self.cycle[len(self.of) % len(self.cycle)])


def scripted(judge: Callable[[str, str], str], rewrite: Callable[[str, str], str] = lambda text, label: "{}",
             ) -> Callable[[dict[str, Any]], str]:
    """A server answer: offspring from `deterministic_text`, judge and rewrite answers from the given functions."""

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        item = ITEM.search(prompt)
        if item is None:
            return deterministic_text(body["messages"], body.get("seed"))
        return (rewrite if "A reviewer said" in prompt else judge)(*item.groups())

    return answer


def verdict(good: bool) -> str:
    return json.dumps({"reflection": "fine" if good else "unclear wording", "is_good": good})


def checks_of(store: Store, run_id: str) -> pd.DataFrame:
    return store.cursor().execute(
        'SELECT c.sample_id, c."check", c.keep, c.reason, c.details, c.options, s.filter_reason FROM sample_checks c '
        "JOIN samples s ON s.id = c.sample_id WHERE s.run_id = ? ORDER BY c.sample_id", [run_id]).df()


def test_a_rejecting_reflection_check_filters_offspring_and_the_target_stays_exact(home: Path,
                                                                                    embedder: Embedder) -> None:
    role = Roles("good", "good", "bad")  # one round: a bad offspring stays bad
    answer = scripted(lambda text, label: verdict(role(text) == "good"),
                      lambda text, label: json.dumps({"text": text, "label": label}))
    with Store.open(make_project(home)) as store, LoopbackServer(answer=answer) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config(6, (CheckSpec(name="reflection", rounds=1),)), llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed" and summary.new_offspring == 18
        assert store.kept_counts(run_id) == {"HUM": 6, "LOC": 6, "NUM": 6}

        rows = store.samples(run_id=run_id, include_filtered=True)
        rejected = rows[rows["filter_reason"] == "check:reflection"]
        kept = rows[rows["filter_reason"].isna()]
        assert len(rejected) > 0 and set(rows["filter_reason"].dropna()) == {"check:reflection"}
        assert {role.of[t] for t in rejected["text"]} == {"bad"} and {role.of[t] for t in kept["text"]} == {"good"}
        assert sum(p.filtered for p in summary.progress.values()) == len(rejected)
        used_parents = {int(p) for ids in rows["parent_ids"] for p in ids}
        assert used_parents.isdisjoint(set(rejected["id"]))  # never joined a population
        assert all(int(i) not in {m.id for lb in ("HUM", "LOC", "NUM") for m in store.population(lb, run_id)}
                   for i in rejected["id"])

        recorded = checks_of(store, run_id)
        assert sorted(recorded["sample_id"]) == sorted(rows["id"])  # one verdict on every offspring
        assert set(recorded["check"]) == {"reflection"}
        assert all(json.loads(o) == {"rounds": 1} for o in recorded["options"])
        assert (recorded["keep"] == recorded["filter_reason"].isna()).all()
        assert set(recorded[~recorded["keep"]]["reason"]) == {"not_good_after_1_rounds"}
        purposes = set(store.cursor().execute("SELECT purpose FROM llm_calls WHERE run_id = ?", [run_id])
                       .fetchnumpy()["purpose"])
        assert {"genetic", "reflection_judge", "reflection_rewrite"} <= purposes  # accounted to the run


def test_a_correcting_check_stores_the_corrected_text_and_keeps_the_original(home: Path,
                                                                            embedder: Embedder) -> None:
    other = {"HUM": "LOC", "LOC": "NUM", "NUM": "HUM"}

    role = Roles("good", "fix", "move")

    def rewrite(text: str, label: str) -> str:
        if role(text) == "move":  # the judge's rewrite moves the item to another label
            return json.dumps({"text": "MOVED " + text, "label": other[label]})
        return json.dumps({"text": "FIXED " + text, "label": label})

    answer = scripted(lambda text, label: verdict(text.startswith(("FIXED", "MOVED")) or role(text) == "good"),
                      rewrite)
    with Store.open(make_project(home)) as store, LoopbackServer(answer=answer) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config(6, (CheckSpec(name="reflection", rounds=2),)), llm_config)
        assert run_generation(store, llm_config, run_id, embedder=embedder).status == "completed"
        assert store.kept_counts(run_id) == {"HUM": 6, "LOC": 6, "NUM": 6}
        rows = store.samples(run_id=run_id, include_filtered=True).set_index("id")
        recorded = checks_of(store, run_id).set_index("sample_id")
        fixed = rows[rows["text"].str.startswith("FIXED ")]
        # what is embedded (and joins the population) is the corrected text
        assert len(store.embeddings(embedder.name, [text_hash(t) for t in fixed["text"]])) == len(fixed)

    assert len(fixed) > 0 and fixed["filter_reason"].isna().all()
    for sample_id, row in fixed.iterrows():
        original = row["text"].removeprefix("FIXED ")
        assert json.loads(row["details"])["original_text"] == original
        assert original in row["raw_response"] and "FIXED" not in row["raw_response"]  # the raw answer is kept
        trajectory = json.loads(recorded.loc[sample_id, "details"])["trajectory"]
        assert [step["is_good"] for step in trajectory] == [False, True]
        assert trajectory[0]["rewrite"] == row["text"]
    assert all("original_text" not in json.loads(d) for d in rows[~rows["text"].str.startswith("FIXED ")]["details"])

    moved = rows[rows["filter_reason"] == "check:reflection"]
    assert len(moved) > 0 and {role.of[t] for t in moved["text"]} == {"move"}
    for sample_id, row in moved.iterrows():
        assert not row["text"].startswith("MOVED")  # stored as it was asked for: its label, its text
        said = recorded.loc[sample_id]
        assert not said["keep"] and said["reason"] == "label_changed"
        proposed = json.loads(said["details"])["proposed"]
        assert proposed == {"text": "MOVED " + row["text"], "label": other[row["label"]], "reason": None}


# ------------------------------------------------------------------------------------------------ math
ASDIV_ROWS = {0: "print(54 - 16)", 3: "print(7 + 14)", 8: "print(6 + 5)"}  # the middle one is wrong: 7, not 21


def math_project(home: Path) -> tuple[Path, pd.DataFrame]:
    """An ASDiv-like project: a question is the text, its answer the label (as `datagen check --check math`
    reads items whose text has no 'Answer:' line)."""
    rows = pd.read_csv(shared_csv("asdiv_math.csv"), dtype=str).iloc[list(ASDIV_ROWS)]
    seeds = pd.DataFrame({"text": rows["question"], "label": rows["answer"]}).reset_index(drop=True)
    path = project_path(home, "asdiv")
    spec = ProjectSpec(name="asdiv", task="math word problems", text_kind="math word problem")
    with Store.create(path, spec, [Label(name=a) for a in seeds["label"]], seeds, "asdiv_math.csv"):
        pass
    return path, seeds


def math_server(seeds: pd.DataFrame) -> LoopbackServer:
    """Writes the seed question of the asked-for label (reworded, else it would be a duplicate of the seed), and for
    each question the program of ASDIV_ROWS."""
    programs = dict(zip(seeds["text"], ASDIV_ROWS.values(), strict=True))
    questions = dict(zip(seeds["label"], seeds["text"], strict=True))

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        for question, program in programs.items():
            if "Python 3 program" in prompt and question in prompt:
                return f"```python\n{program}\n```"
        category = re.search(r"Category: (.+)\n", prompt)
        return f"In class today: {questions[category.group(1)]}" if category else "OK"

    return LoopbackServer(answer=answer)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's limits are Linux's")
def test_an_in_run_math_check_flags_a_wrong_answer_and_a_correction_of_the_label_rejects(
        home: Path, embedder: Embedder) -> None:
    path, seeds = math_project(home)
    wrong = seeds["label"][1]
    with Store.open(path) as store, math_server(seeds) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config(1, (CheckSpec(name="math"),), method="zero_shot"), llm_config)
        assert run_generation(store, llm_config, run_id, embedder=embedder).status == "completed"
        assert store.kept_counts(run_id) == dict.fromkeys(seeds["label"], 1)  # flag mode keeps every item
        recorded = checks_of(store, run_id)
        labels = dict(zip(store.samples(run_id=run_id)["id"], store.samples(run_id=run_id)["label"], strict=True))
        reasons = {labels[i]: r if isinstance(r, str) else None
                   for i, r in zip(recorded["sample_id"], recorded["reason"], strict=True)}
        assert reasons == {seeds["label"][0]: None, wrong: "math_mismatch", seeds["label"][2]: None}
        flagged = json.loads(recorded[recorded["reason"] == "math_mismatch"]["details"].iloc[0])
        assert flagged["status"] == "mismatch" and flagged["computed"] == "21" and flagged["code"] == "print(7 + 14)"
        assert json.loads(recorded["options"].iloc[0])["mode"] == "flag"

        # Correct mode: the computed answer is the label; an offspring cannot move to another label in-run,
        # so it is rejected, and the label (asking again, getting the same question) stops after max_failures.
        run_id = start_run(store, config(1, (CheckSpec(name="math", mode="correct"),), method="zero_shot",
                                         labels=(wrong,), max_failures=3), llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed" and summary.progress[wrong].exhausted
        assert store.kept_counts(run_id) == {} and store.filtered_counts(run_id) == {"check:math": 1, "duplicate": 2}
        (said,) = checks_of(store, run_id).itertuples()
        assert said.reason == "label_changed" and json.loads(said.details)["proposed"]["label"] == "21 flower " \
            "arrangements"


# ---------------------------------------------------------------------------------------------- resume
class StopAfterFirstBatch(RunObserver):
    def __init__(self) -> None:
        self.stop = threading.Event()

    def on_batch(self, samples: object, progress: dict[str, LabelProgress]) -> None:
        self.stop.set()


def test_resume_keeps_the_checks_the_run_started_with(home: Path, embedder: Embedder,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    role = Roles("good", "good", "bad")
    checks = (CheckSpec(name="reflection", rounds=1),)
    with LoopbackServer(answer=scripted(lambda text, label: verdict(role(text) == "good")), latency_s=0.01) as server:
        with Store.open(make_project(home)) as store:
            llm_config = loopback_config(server, max_in_flight=2)
            run_id = start_run(store, config(20, checks), llm_config)
            observer = StopAfterFirstBatch()
            summary = run_generation(store, llm_config, run_id, embedder=embedder, observer=observer,
                                     stop=observer.stop)
            assert summary.status == "interrupted"
            before = len(store.samples(run_id=run_id, include_filtered=True))
            assert 0 < before < 60
        code, out, err = run_cli(capsys, home, "run", "trec", "--resume", "--base-url", server.base_url,
                                 "--model", "loopback")
        assert code == 0, err
        assert f"resuming run {run_id}" in out and "checks reflection" in out
    with Store.open(project_path(home, "trec")) as store:
        run = store.run(run_id)
        assert run.status == "completed" and run.config.checks == checks
        assert store.kept_counts(run_id) == {"HUM": 20, "LOC": 20, "NUM": 20}
        rows = store.samples(run_id=run_id, include_filtered=True)
        assert len(rows) > before
        recorded = checks_of(store, run_id)
        assert sorted(recorded["sample_id"]) == sorted(rows["id"])  # the resumed part was checked too
        assert {role.of[t] for t in rows[rows["filter_reason"] == "check:reflection"]["text"]} == {"bad"}


# ------------------------------------------------------------------------------------------- malformed
def test_malformed_judge_answers_reject_items_and_never_crash_the_run(home: Path, embedder: Embedder) -> None:
    role = Roles("good", "good", "garbage")
    answer = scripted(lambda text, label: "Looks fine to me!" if role(text) == "garbage" else verdict(True))
    with Store.open(make_project(home)) as store, LoopbackServer(answer=answer) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config(4, (CheckSpec(name="reflection"),)), llm_config)
        assert run_generation(store, llm_config, run_id, embedder=embedder).status == "completed"
        assert store.kept_counts(run_id) == {"HUM": 4, "LOC": 4, "NUM": 4}
        recorded = checks_of(store, run_id)
        unusable = recorded[recorded["reason"] == "judge_unusable"]
        assert len(unusable) > 0 and (unusable["filter_reason"] == "check:reflection").all()
        problems = json.loads(unusable["details"].iloc[0])["trajectory"][0]["judge_problems"]
        assert problems == ["no JSON object in the answer"] * 3  # retried, then rejected with the reason


def test_a_judge_that_never_answers_usably_stops_the_label_instead_of_asking_forever(home: Path,
                                                                                     embedder: Embedder) -> None:
    with (Store.open(make_project(home)) as store,
          LoopbackServer(answer=scripted(lambda text, label: "no idea"), max_requests=400) as server):
        llm_config = loopback_config(server, max_in_flight=2)
        run_id = start_run(store, config(5, (CheckSpec(name="reflection"),), labels=("HUM",), max_failures=4),
                           llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed" and summary.progress["HUM"].exhausted
        assert store.kept_counts(run_id) == {}
        # what was asked before the label stopped still lands: at most the target's worth (in flight or landed
        # while the judge was busy with an earlier batch), never an endless stream
        assert 4 <= store.filtered_counts(run_id)["check:reflection"] <= 4 + 5
        assert "(last: check:reflection)" in " ".join(store.events(run_id)["message"])


# ------------------------------------------------------------------------------------------- configs
def test_runs_stored_before_in_run_checks_still_load(home: Path, loopback: LoopbackServer) -> None:
    with Store.open(make_project(home)) as store:
        run_id = start_run(store, config(2, ()), loopback_config(loopback))
        stored = json.loads(store.cursor().execute("SELECT config FROM runs").fetchall()[0][0])
        del stored["checks"]
        store.cursor().execute("UPDATE runs SET config = ?", [json.dumps(stored)])
        assert store.run(run_id).config.checks == ()


def test_only_per_item_modules_run_in_run_each_once_with_a_clear_message() -> None:
    for name, why in (("debias", "whole dataset"), ("dedup", "dedup_distance"), ("spelling", "unknown in-run")):
        with pytest.raises(ValueError, match=why):
            CheckSpec(name=name)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="more than once"):
        config(2, (CheckSpec(name="math"), CheckSpec(name="math", mode="correct")))
    assert [c.name for c in config(2, (CheckSpec(name="facts"), CheckSpec(name="difficulty"))).checks] == \
        ["facts", "difficulty"]
