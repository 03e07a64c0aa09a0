"""Evaluation: held-out data the generator never sees, training sets per mode, F1 by hand, and the cache."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datagen_core.config import Label, LLMConfig, ProjectSpec, RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.errors import DatagenError
from datagen_core.evaluation.comparison import ComparisonSettings, Step, parse_sizes, plan, run_step
from datagen_core.evaluation.evaluator import (
    REAL,
    Evaluator,
    TextSet,
    comparison_table,
    score,
    subject_set,
    training_set,
)
from datagen_core.ingest import split_heldout
from datagen_core.records import NewSample, utcnow
from datagen_core.store import Store, project_path

from .conftest import shared_csv
from .test_cli import run_cli

LABELS = ("HUM", "LOC", "NUM")


def trec_rows() -> pd.DataFrame:
    frame = pd.read_csv(shared_csv("trec_coarse.csv"), dtype=str)
    return frame[frame["label"].isin(LABELS)].reset_index(drop=True)


def add_run(store: Store, frame: pd.DataFrame, method: str = "zero_shot") -> str:
    """A finished run whose kept samples are `frame`'s texts (real questions standing in for generated ones)."""
    run_id = f"run{len(store.runs())}"
    config = RunConfig(method=method, per_label=len(frame), seed=0, sampling=SamplingParams())  # type: ignore[arg-type]
    store.create_run(run_id, config, None, LLMConfig())
    ids = store.allocate_sample_ids(len(frame))
    store.write_offspring([
        NewSample(id=i, run_id=run_id, label=row.label, text=row.text, method=method, parent_ids=(), gene_split=None,
                  prompt="p", model="m", sampling={}, raw_response=row.text, llm_call_id="c", prompt_tokens=1,
                  completion_tokens=1, requested_at=utcnow())
        for i, row in zip(ids, frame.itertuples(), strict=True)
    ], [], {}, "all-MiniLM-L6-v2")
    store.set_run_status(run_id, "completed")
    return run_id


@pytest.fixture
def project(tmp_path: Path) -> Store:
    """10 seeds and 20 held-out questions per label, and two runs of 12 per label from disjoint rows."""
    rows = trec_rows()
    per_label = [group.reset_index(drop=True) for _, group in rows.groupby("label", sort=False)]
    seeds = pd.concat([g.iloc[:10] for g in per_label])
    heldout = pd.concat([g.iloc[10:30] for g in per_label])
    store = Store.create(project_path(tmp_path, "eval"), ProjectSpec(name="eval", task="question type", text_kind="q"),
                         [Label(name=n) for n in LABELS], seeds, "trec", heldout=heldout)
    add_run(store, pd.concat([g.iloc[30:42] for g in per_label]))
    add_run(store, pd.concat([g.iloc[42:54] for g in per_label]), method="genetic")
    yield store
    store.close()


def test_split_heldout_is_stratified_seeded_and_keeps_enough_seeds() -> None:
    frame = pd.DataFrame({"text": [f"t{i}" for i in range(23)], "label": ["a"] * 20 + ["b"] * 3})
    seeds, held = split_heldout(frame, 0.25, seed=1)
    assert Counter(held["label"]) == {"a": 5, "b": 1}  # b: round(0.75) = 1, and 2 seeds remain for a population
    assert set(seeds["text"]).isdisjoint(held["text"]) and len(seeds) + len(held) == 23
    assert split_heldout(frame, 0.25, seed=1)[1].equals(held)
    assert not split_heldout(frame, 0.25, seed=2)[1].equals(held)
    assert split_heldout(frame, 0.0)[1].empty
    with pytest.raises(DatagenError):
        split_heldout(frame, 1.0)


def test_heldout_never_holds_a_seed_and_rejects_unknown_labels(project: Store) -> None:
    seeds = project.real_examples()
    before = sum(project.heldout_counts().values())
    extra = pd.DataFrame({"text": [seeds["text"].iloc[0], "Who painted the ceiling?", "Who painted the ceiling?"],
                          "label": [seeds["label"].iloc[0], "HUM", "HUM"]})
    assert project.add_heldout(extra, "file") == 1  # the seed and the repeat are skipped
    assert sum(project.heldout_counts().values()) == before + 1
    assert set(project.heldout()["text"]).isdisjoint(seeds["text"])
    with pytest.raises(DatagenError, match="unknown label"):
        project.add_heldout(pd.DataFrame({"text": ["x"], "label": ["NOPE"]}), "file")


def test_projects_from_an_earlier_version_gain_the_new_tables(tmp_path: Path) -> None:
    path = project_path(tmp_path, "old")
    Store.create(path, ProjectSpec(name="old", task="t"), [Label(name="a"), Label(name="b")],
                 pd.DataFrame({"text": ["1", "2", "3", "4"], "label": ["a", "a", "b", "b"]}), None).close()
    import duckdb

    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE heldout; DROP TABLE evaluations; UPDATE meta SET value = '1'")  # as schema 1 was
    with Store.open(path) as store:
        assert store.heldout_counts() == {} and store.evaluations().empty


def test_training_sets_per_mode() -> None:
    real = TextSet(REAL, ("r1", "r2", "r3", "r4"), ("a", "a", "b", "b"))
    synthetic = TextSet("run", tuple(f"s{i}" for i in range(10)), ("a",) * 6 + ("b",) * 4)
    assert training_set("real", real, None) is real
    assert training_set("synthetic", real, synthetic) == synthetic
    five = training_set("synthetic", real, synthetic, per_label=3, seed=0)
    assert Counter(five.labels) == {"a": 3, "b": 3} and set(five.texts) <= set(synthetic.texts)
    assert training_set("synthetic", real, synthetic, per_label=3, seed=0) == five
    mixed = training_set("mixed", real, synthetic, mix_ratio=1.5, seed=0)
    assert mixed.texts[:4] == real.texts
    assert Counter(mixed.labels[4:]) == {"a": 3, "b": 3}  # 1.5 synthetic per real example of the label
    assert len(training_set("mixed", real, synthetic)) == 14  # no ratio: every synthetic sample
    with pytest.raises(DatagenError):
        training_set("synthetic", real, None)
    with pytest.raises(DatagenError):
        training_set("both", real, synthetic)


def test_score_against_a_hand_count() -> None:
    labels = ["a", "b", "c"]
    truth = ["a", "a", "b", "b", "c", "c", "c"]
    predicted = ["a", "b", "b", "b", "c", "a", "x"]  # 'x' is a label the model invented: always an error
    result = score(truth, predicted, labels)
    confusion = [[sum(t == row and p == col for t, p in zip(truth, predicted, strict=True)) for col in labels]
                 for row in labels]
    assert result["confusion"] == confusion == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    f1s = []
    for label in labels:
        tp = sum(t == p == label for t, p in zip(truth, predicted, strict=True))
        fp = sum(p == label != t for t, p in zip(truth, predicted, strict=True))
        fn = sum(t == label != p for t, p in zip(truth, predicted, strict=True))
        f1s.append(2 * tp / (2 * tp + fp + fn))
    assert result["per_label_f1"] == pytest.approx(dict(zip(labels, f1s, strict=True)))
    assert result["macro_f1"] == pytest.approx(np.mean(f1s))
    # micro-F1 over the known labels: tp over (tp + (fp + fn) / 2) summed
    tp = sum(t == p for t, p in zip(truth, predicted, strict=True))
    fp = sum(p != t and p in labels for t, p in zip(truth, predicted, strict=True))
    fn = sum(p != t for t, p in zip(truth, predicted, strict=True))
    assert result["micro_f1"] == pytest.approx(2 * tp / (2 * tp + fp + fn))


def test_metrics_per_label_cmd_and_cache(project: Store, embedder: Embedder) -> None:
    evaluator = Evaluator(project, embedder)
    run_id = project.runs()[0].id
    first = evaluator.metrics(run_id)
    assert not first.cached and first.result["n"] == 36
    assert set(first.result["cmd_per_label"]) == set(LABELS) and first.result["cmd"] > 0
    data, real = subject_set(project, run_id), subject_set(project, REAL)
    from datagen_core.evaluation.metrics import cmd

    hum = [i for i, lb in enumerate(data.labels) if lb == "HUM"]
    real_hum = [i for i, lb in enumerate(real.labels) if lb == "HUM"]
    expected = cmd(embedder.encode([data.texts[i] for i in hum]), embedder.encode([real.texts[i] for i in real_hum]))
    assert first.result["cmd_per_label"]["HUM"] == pytest.approx(expected, abs=1e-5)
    again = evaluator.metrics(run_id)
    assert again.cached and again.key == first.key and again.result == json.loads(json.dumps(first.result))
    assert len(project.evaluations()) == 1
    # An edit changes the data, hence the key: the figure is recomputed, the old one stays traceable.
    sample_id = int(project.kept_synthetic(run_id)["id"].iloc[0])
    project.edit_sample(sample_id, text="An entirely new question about who wrote Hamlet?")
    edited = evaluator.metrics(run_id)
    assert not edited.cached and edited.key != first.key
    project.edit_sample(int(project.kept_synthetic(run_id)["id"].iloc[1]), status="rejected")
    assert evaluator.metrics(run_id).result["n"] == 35
    assert len(project.evaluations(subject=run_id)) == 3


def test_downstream_modes_scale_curve_and_table(project: Store, embedder: Embedder) -> None:
    evaluator = Evaluator(project, embedder)
    logistic = evaluator.trainer("logistic")
    run_id = project.runs()[0].id
    seen: list[float] = []
    real = evaluator.downstream(REAL, logistic, mode="real", progress=lambda f, _m: seen.append(f))
    assert seen[-1] == 1.0 and real.result["n_train"] == 30 and real.result["n_test"] == 60
    assert real.result["macro_f1"] > 0.6  # three easy labels; chance is 1/3
    assert sum(map(sum, real.result["confusion"])) == 60
    synthetic = evaluator.downstream(run_id, logistic)
    assert synthetic.result["train_counts"] == dict.fromkeys(LABELS, 12)
    mixed = evaluator.downstream(run_id, logistic, mode="mixed", mix_ratio=0.5)
    assert mixed.result["n_train"] == 30 + 15 and mixed.params["mix_ratio"] == 0.5
    settings = ComparisonSettings(runs=(run_id,), real=False, sizes=(2, 6, 12))
    points = [step for step in plan(settings) if step.role == "scale"]
    curve = [run_step(evaluator, logistic, step, settings) for step in points]
    assert [p.result["n_train"] for p in curve] == [6, 18, 36]
    assert curve[-1].result["macro_f1"] == pytest.approx(synthetic.result["macro_f1"])
    assert all(run_step(evaluator, logistic, step, settings).cached for step in points)
    with pytest.raises(DatagenError, match="real seeds can only"):
        evaluator.downstream(REAL, logistic, mode="synthetic")
    table = comparison_table([evaluator.metrics(REAL), real, evaluator.metrics(run_id), synthetic, mixed])
    assert list(table["subject"]) == [REAL, run_id]
    assert table.set_index("subject").loc[run_id, "macro-F1 mixed logistic ×0.5"] == mixed.result["macro_f1"]
    assert pd.isna(table.set_index("subject").loc[REAL, "CMD"])


def test_downstream_needs_heldout_data(tmp_path: Path, embedder: Embedder) -> None:
    rows = trec_rows().groupby("label").head(4)
    with Store.create(project_path(tmp_path, "p"), ProjectSpec(name="p", task="t"),
                      [Label(name=n) for n in LABELS], rows, None) as store:
        evaluator = Evaluator(store, embedder)
        with pytest.raises(DatagenError, match="no held-out real data"):
            evaluator.downstream(REAL, evaluator.trainer("logistic"), mode="real")


def test_cli_init_holdout_and_eval(tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "trec.csv"
    trec_rows().groupby("label").head(20).to_csv(data, index=False)
    code, out, err = run_cli(capsys, home, "init", "t", "--data", str(data), "--task", "question type",
                             "--holdout", "0.25")
    assert code == 0, err
    assert "held out 15 for evaluation" in out
    with Store.open(home / "t.duckdb") as store:
        assert sum(store.heldout_counts().values()) == 15 and sum(store.real_counts().values()) == 45
        run_id = add_run(store, trec_rows().groupby("label").nth(list(range(30, 40))))
    extra = tmp_path / "extra.csv"
    trec_rows().groupby("label").nth([50, 51]).to_csv(extra, index=False)
    code, out, err = run_cli(capsys, home, "heldout", "load", "t", "--data", str(extra))
    assert code == 0 and "added 6 of 6" in out, err
    report = tmp_path / "eval.json"
    code, out, err = run_cli(capsys, home, "eval", "t", "--modes", "synthetic,mixed", "--scale", "3,10",
                             "--confusion", "--json", str(report))
    assert code == 0, err
    assert "macro-F1 synthetic logistic" in out and "scale curve" in out and "confusion" in out
    assert "0 from the cache" in out
    written = json.loads(report.read_text())
    kinds = Counter(item["kind"] for item in written)
    assert kinds == {"metrics": 2, "downstream": 5}  # real + run; real, synthetic, mixed, 2 scale points
    assert {item["subject"] for item in written} == {REAL, run_id}
    code, out, _ = run_cli(capsys, home, "eval", "t", "--modes", "synthetic,mixed", "--scale", "3,10")
    assert "7 results, 7 from the cache" in out
    code, _, err = run_cli(capsys, home, "eval", "t", "--modes", "real")
    assert code == 1 and "--modes takes" in err


def test_f1_pairs_are_consistent_with_sklearn_on_random_labels() -> None:
    """A second independent check: micro-F1 equals accuracy when every prediction is a known label."""
    rng = np.random.default_rng(5)
    labels = ["a", "b", "c", "d"]
    for truth, predicted in itertools.islice(
        ((rng.choice(labels, 40).tolist(), rng.choice(labels, 40).tolist()) for _ in itertools.count()), 10
    ):
        result = score(truth, predicted, labels)
        assert result["micro_f1"] == pytest.approx(np.mean(np.asarray(truth) == np.asarray(predicted)))


def test_comparison_plan_and_sizes() -> None:
    settings = ComparisonSettings(runs=("r1",), modes=("synthetic", "mixed"), sizes=(5, 10))
    assert plan(settings) == [
        Step("metrics", REAL), Step("downstream", REAL, "real"), Step("metrics", "r1"),
        Step("downstream", "r1", "synthetic"), Step("downstream", "r1", "mixed"),
        Step("scale", "r1", "synthetic", 5), Step("scale", "r1", "synthetic", 10),
    ]
    assert plan(ComparisonSettings(runs=("r1",), real=False, downstream=False)) == [Step("metrics", "r1")]
    assert parse_sizes("20, 5;5") == (5, 20) and parse_sizes("") == ()
    for bad in ("5, x", "0"):
        with pytest.raises(DatagenError):
            parse_sizes(bad)
    with pytest.raises(DatagenError):
        ComparisonSettings(runs=(), modes=("real",))
