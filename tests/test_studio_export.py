"""The studio's Export page and the bytes behind its downloads: every format keeps the lineage."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from datagen_core.config import LLMConfig, RunConfig, SamplingParams
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.errors import DatagenError
from datagen_core.export import build_export, dataset_card, export_bytes, export_frame, train_ready_frame, write_export
from datagen_core.store import Store

from .loopback_server import LoopbackServer
from .studio_helpers import Studio, as_shown, studio_session

DEMO = "sms-spam-demo"
LINEAGE = ("parent_ids", "gene_split", "prompt", "model", "raw_response", "sampling", "run_id", "llm_call_id")


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


def evolve(studio: Studio, per_label: int = 3) -> tuple[Store, str]:
    """A real run of the demo project against the loopback server; its 2nd answer is a refusal (filtered)."""
    workspace = studio.workspace()
    store = workspace.store(DEMO)
    with LoopbackServer(faults=lambda number, _body: "refusal" if number == 2 else None) as server:
        config = LLMConfig(backend="openai", base_url=server.base_url, model="loopback", max_in_flight=1)
        run_id = start_run(store, RunConfig(per_label=per_label, seed=7, sampling=SamplingParams(max_tokens=64)),
                           config)
        summary = run_generation(store, config, run_id, embedder=workspace.embedder)
    assert summary.status == "completed"
    return store, run_id


def metric(at: AppTest) -> str:
    assert len(at.metric) == 1, [m.value for m in at.metric]
    return at.metric[0].value


def test_export_bytes_round_trip_every_format(studio: Studio, tmp_path: Path) -> None:
    store, run_id = evolve(studio)
    frame = export_frame(store, run_id=run_id)
    assert len(frame) == 6
    with_filtered = export_frame(store, run_id=run_id, include_filtered=True)
    assert len(with_filtered) == 7 and with_filtered["filter_reason"].dropna().tolist() == ["refusal"]

    csv = pd.read_csv(io.BytesIO(export_bytes(frame, "csv")))
    jsonl = pd.read_json(io.BytesIO(export_bytes(frame, "jsonl")), lines=True)
    parquet = pd.read_parquet(io.BytesIO(export_bytes(frame, "parquet")))
    for fmt, back in (("csv", csv), ("jsonl", jsonl), ("parquet", parquet)):
        assert len(back) == 6 and set(LINEAGE) <= set(back.columns), fmt
        assert sorted(back["text"]) == sorted(frame["text"]), fmt
        assert set(back["model"]) == {"loopback"} and back["raw_response"].str.len().min() > 0, fmt
    # structure survives: lists and objects in JSONL/Parquet, JSON text in CSV
    assert all(len(p) == 2 for p in jsonl["parent_ids"]) and all(len(p) == 2 for p in parquet["parent_ids"])
    assert all(len(json.loads(p)) == 2 for p in csv["parent_ids"])
    for split in [*jsonl["gene_split"], *map(json.loads, csv["gene_split"])]:
        assert sorted(split["parent1"] + split["parent2"] + split["mutated"]) == sorted(
            ["length", "tone", "subtopic", "writing style"])
    assert set(parquet["gene_split"].iloc[0]) == {"parent1", "parent2", "mutated"}
    assert all(json.loads(s)["max_tokens"] == 64 for s in csv["sampling"])

    # write_export writes exactly the download's bytes
    for fmt in ("csv", "jsonl", "parquet"):
        target = tmp_path / "out" / f"export.{fmt}"
        write_export(frame, target, fmt)  # type: ignore[arg-type]
        assert target.read_bytes() == export_bytes(frame, fmt)  # type: ignore[arg-type]
    with pytest.raises(DatagenError, match="unknown export format 'xlsx'"):
        write_export(frame, tmp_path / "bad" / "export.xlsx", "xlsx")  # type: ignore[arg-type]
    assert not (tmp_path / "bad").exists()  # nothing half-written


def test_dataset_card_names_the_model_and_the_genes(studio: Studio) -> None:
    store, run_id = evolve(studio)
    card = as_shown(dataset_card(store, export_frame(store, run_id=run_id), run_id))
    assert "# Dataset card: sms-spam-demo" in card and "SMS spam detection" in card
    assert "- model: loopback (openai, http://127.0.0.1:" in card
    assert "genes (version 1): length (number of words); tone (" in card and "writing style" in card
    assert "| ham | 3 | 0 | 3 | 0 | 30 |" in card  # 3 pending offspring, 30 real seeds


def test_export_page_counts_filters_and_offers_downloads(studio: Studio) -> None:
    at = studio.open_page("pages/export.py")
    assert any("No synthetic samples yet" in i.value for i in at.info)
    assert not at.download_button and not at.metric

    store, run_id = evolve(studio)
    first_ids = store.samples(run_id=run_id)["id"].tolist()[:2]
    for sample_id in first_ids:
        store.edit_sample(sample_id, status="accepted")
    at.run()
    assert not at.exception
    assert metric(at) == "6"
    labels = [b.label for b in at.download_button]
    assert labels == ["Download CSV", "Download JSONL", "Download Parquet", "Download dataset card"]
    assert sorted(at.dataframe[0].value["id"]) == sorted(store.samples(run_id=run_id)["id"])
    card = at.expander[0]
    assert card.label == "Dataset card"
    assert any("loopback" in m.value and "writing style" in m.value for m in card.markdown)

    at.selectbox(key="export_status").select("accepted only").run()
    assert metric(at) == "2" and sorted(at.dataframe[0].value["id"]) == sorted(first_ids)
    at.selectbox(key="export_status").select("rejected only").run()
    assert not at.metric and any("No samples match" in i.value for i in at.info)
    assert not at.exception

    at.selectbox(key="export_status").select("every status")
    at.selectbox(key="export_run").select(run_id)
    at.checkbox(key="export_filtered").check().run()
    assert metric(at) == "7"
    assert at.dataframe[0].value["filter_reason"].dropna().tolist() == ["refusal"]


def test_exports_hold_what_review_kept_unless_asked(studio: Studio, tmp_path: Path) -> None:
    """Rejected samples never ship by default; real seeds, a train-ready mix and the edit history on request."""
    store, run_id = evolve(studio)
    ids = store.samples(run_id=run_id)["id"].tolist()
    store.edit_sample(ids[0], status="rejected")
    store.edit_sample(ids[1], status="accepted")
    store.edit_sample(ids[1], text="an edited offspring text")
    default = export_frame(store)
    assert sorted(default["id"]) == sorted(ids[1:]) and set(default["source"]) == {"synthetic"}
    assert len(export_frame(store, statuses=())) == 6 and list(export_frame(store, statuses=("rejected",))["id"]) \
        == [ids[0]]
    with_real = export_frame(store, with_real=True, history=True)
    real = with_real[with_real["source"] == "real"]
    assert len(real) == 60 and real["run_id"].isna().all() and set(real["status"]) == {"accepted"}
    edits = with_real.set_index("id")["history"]
    assert [(e["field"], e["new"]) for e in edits[ids[1]]] == [("status", "accepted"),
                                                                ("text", "an edited offspring text")]
    assert edits[ids[2]] == [] and all(isinstance(e["at"], str) for e in edits[ids[1]])
    ready = train_ready_frame(with_real, seed=3)
    assert list(ready.columns) == ["text", "label", "source"] and len(ready) == 65
    assert ready["source"].value_counts().to_dict() == {"real": 60, "synthetic": 5}
    assert list(ready["text"]) != list(with_real["text"]) and ready.equals(train_ready_frame(with_real, seed=3))
    for fmt in ("csv", "jsonl", "parquet"):  # the history survives every format
        export_bytes(with_real, fmt)  # type: ignore[arg-type]
    card = dataset_card(store, with_real, statuses=("accepted", "pending"), train_ready_seed=3)
    assert "5 synthetic samples (accepted, pending) and the 60 real seeds" in card
    assert "Train-ready: the columns text, label, source, rows shuffled with seed 3." in card

    at = studio.open_page("pages/export.py")
    assert at.selectbox(key="export_status").value == "accepted + pending" and metric(at) == "5"
    assert ids[0] not in set(at.dataframe[0].value["id"])
    at.checkbox(key="export_train_ready").check().run()
    assert metric(at) == "5" and list(at.dataframe[0].value.columns) == ["source", "label", "text"]
    assert len(at.dataframe[0].value) == 65 and at.checkbox(key="export_history").disabled


def test_cli_export_options(studio: Studio, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from .test_cli import run_cli

    store, run_id = evolve(studio)
    ids = store.samples(run_id=run_id)["id"].tolist()
    store.edit_sample(ids[0], status="rejected")
    home = studio.workspace().home
    studio.workspace().close()  # the CLI opens the file itself
    target, card = tmp_path / "out.jsonl", tmp_path / "card.md"
    code, out, err = run_cli(capsys, home, "export", DEMO, "--out", str(target), "--card", str(card))
    assert code == 0, err
    assert "wrote 5 samples to" in out and len(target.read_text().splitlines()) == 5 and "5 synthetic" in \
        card.read_text()
    code, out, _ = run_cli(capsys, home, "export", DEMO, "--out", str(target), "--status", "all")
    assert "wrote 6 samples" in out
    code, out, _ = run_cli(capsys, home, "export", DEMO, "--out", str(tmp_path / "t.csv"), "--format", "csv",
                           "--train-ready", "--seed", "1")
    frame = pd.read_csv(tmp_path / "t.csv")
    assert "wrote 5 samples and 60 real seeds" in out and list(frame.columns) == ["text", "label", "source"]
    code, _, err = run_cli(capsys, home, "export", DEMO, "--train-ready", "--history")
    assert code == 1 and "drop --history" in err
    code, _, err = run_cli(capsys, home, "export", DEMO, "--status", "accepted,nope")
    assert code == 1 and "--status must be one of pending, accepted, rejected" in err


def test_build_export_is_what_both_interfaces_write(studio: Studio) -> None:
    """The CLI and the Export page share one rule: a train-ready file holds the real seeds and no history."""
    store, _ = evolve(studio)
    plain = build_export(store)
    assert plain.synthetic == 6 and plain.rows is plain.frame and "6 synthetic samples" in plain.card
    ready = build_export(store, train_ready_seed=1)
    assert list(ready.rows.columns) == ["text", "label", "source"] and len(ready.rows) == 66
    assert ready.synthetic == 6 and "rows shuffled with seed 1" in ready.card
    with pytest.raises(DatagenError, match="train-ready file keeps only text, label and source"):
        build_export(store, history=True, train_ready_seed=1)
