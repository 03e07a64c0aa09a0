"""Numbered migrations: a project file written before them (tests/fixtures/project_v1.duckdb.gz, made by
tests/fixtures/make_v1_project.py with the studio of commit 353aac6) opens with today's code, keeps every row,
and never has its pickled map model unpickled; newer files and files that are not projects fail in one line."""

from __future__ import annotations

import gzip
import pickle
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from datagen_core.cli.app import main
from datagen_core.config import DEFAULT_MIN_WORDS
from datagen_core.embed import Embedder
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.errors import DatagenError
from datagen_core.projection import EmbeddingMap
from datagen_core.store import SCHEMA_VERSION, SampleFilter, Store, schema

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer
from .test_review_store import add_offspring

FIXTURE = Path(__file__).parent / "fixtures" / "project_v1.duckdb.gz"
TABLES = ("embeddings", "evaluations", "events", "gene_sets", "heldout", "kb_documents", "kb_terms", "labels",
          "llm_calls", "meta", "project", "projection_points", "projections", "runs", "sample_checks",
          "sample_edits", "samples", "value_sets")


@pytest.fixture
def v1_file(home: Path) -> Path:
    """A private copy of the version-1 project, as `datagen` finds it in `home`."""
    home.mkdir(parents=True)
    path = home / "v1.duckdb"
    with gzip.open(FIXTURE, "rb") as packed, path.open("wb") as raw:
        shutil.copyfileobj(packed, raw)
    return path


@pytest.fixture
def no_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("something was unpickled")

    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)


def raw_query(path: Path, sql: str) -> list[tuple[object, ...]]:
    connection = duckdb.connect(str(path), read_only=True)
    try:
        return connection.execute(sql).fetchall()
    finally:
        connection.close()


def counts(path: Path) -> dict[str, int]:
    return {table: int(raw_query(path, f"SELECT count(*) FROM {table}")[0][0]) for table in TABLES}


def columns(path: Path) -> list[tuple[object, ...]]:
    return raw_query(path, "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() "
                           "WHERE database_name = current_database() ORDER BY table_name, column_index")


def test_the_fixture_is_a_version_1_file_with_a_pickled_map(v1_file: Path) -> None:
    assert raw_query(v1_file, "SELECT value FROM meta WHERE key = 'schema_version'") == [("1",)]
    assert all(n > 0 for n in counts(v1_file).values()), counts(v1_file)
    (blob,) = raw_query(v1_file, "SELECT model FROM projections")[0]
    assert isinstance(blob, bytes) and blob.startswith(b"\x80")  # a pickle, which nothing may load
    assert raw_query(v1_file, "SELECT min_words FROM project") == [(None,)]


def test_a_version_1_project_upgrades_and_keeps_every_row(v1_file: Path, no_unpickling: None) -> None:
    before = counts(v1_file)
    with Store.open(v1_file) as store:
        assert store.cursor().execute("SELECT value FROM meta").fetchall() == [(str(SCHEMA_VERSION),)]
        (run,) = store.runs()
        assert store.run(run.id).config.per_label == 2 and run.config.seed == 7 and run.status == "completed"
        assert store.kept_counts(run.id) == {"HUM": 2, "LOC": 2}
        assert store.project().min_words == DEFAULT_MIN_WORDS and store.project().name == "v1"
        assert [lb.name for lb in store.labels()] == ["HUM", "LOC"] and store.heldout_counts() == {"HUM": 1, "LOC": 1}
        assert [g.name for g in store.gene_set().genes] == ["length", "subtopic", "style"]  # type: ignore[union-attr]
        assert store.value_set("topics").items == {"HUM": ("painters",), "LOC": ("lakes",)}  # type: ignore[union-attr]
        assert store.value_set("attributes").gene_set_version == 1  # type: ignore[union-attr]
        edited = store.cursor().execute("SELECT sample_id FROM sample_edits").fetchall()[0][0]
        assert list(store.sample_history(edited)["actor"]) == ["reviewer"]
        assert set(store.sample_checks(edited)["check"]) == {"dedup"}
        (evaluation,) = store.evaluations()["key"]
        assert store.evaluation(evaluation)["subject"] == run.id  # type: ignore[index]
        assert store.kb_count() == 1 and [doc for doc, _ in store.kb_bm25(["baikal"], 1)] == [1]
        assert store.run_usage(run.id)["calls"] == before["llm_calls"]
    assert counts(v1_file) == before  # every row is still there
    assert ("projections", "model") not in {row[:2] for row in columns(v1_file)}
    with Store.open(v1_file):  # nothing left to apply
        pass
    assert raw_query(v1_file, "SELECT value FROM meta") == [(str(SCHEMA_VERSION),)]


def test_the_old_map_is_reused_and_new_texts_are_placed_without_unpickling(
    v1_file: Path, embedder: Embedder, no_unpickling: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = pd.DataFrame(raw_query(v1_file, "SELECT text_hash, x, y FROM projection_points"),
                          columns=["text_hash", "x", "y"]).set_index("text_hash").sort_index()
    with Store.open(v1_file) as store:
        def refuse(self: EmbeddingMap) -> None:
            raise AssertionError("the map was fitted again")

        monkeypatch.setattr(EmbeddingMap, "_fit", refuse)
        emap = EmbeddingMap(store, embedder)
        assert emap.is_fitted and emap.fitted_on == len(stored)
        points = emap.points(SampleFilter())
        assert points["fitted"].all()
        pd.testing.assert_frame_equal(points.set_index("text_hash")[["x", "y"]].sort_index(), stored)
        (run,) = store.runs()
        (new,) = add_offspring(store, run.id, "LOC", ["Where is the deepest lake in Siberia ?"])
        points = emap.points(SampleFilter())
        placed = points.set_index("id").loc[new]
        assert not placed["fitted"] and np.isfinite([placed["x"], placed["y"]]).all()
        assert len(points) == len(stored) + 1


def test_an_upgraded_run_resumes_and_new_runs_write_into_the_file(v1_file: Path, embedder: Embedder) -> None:
    with Store.open(v1_file) as store, LoopbackServer() as server:
        (run,) = store.runs()
        store.set_run_status(run.id, "interrupted")
        llm = loopback_config(server, max_in_flight=2)
        assert run_generation(store, llm, run.id, embedder=embedder).status == "completed"
        assert store.kept_counts(run.id) == {"HUM": 2, "LOC": 2}
        again = start_run(store, store.run(run.id).config, llm)
        assert run_generation(store, llm, again, embedder=embedder).status == "completed"
        assert store.kept_counts(again) == {"HUM": 2, "LOC": 2} and store.run_usage(again)["calls"] > 0


def test_a_new_project_has_the_same_schema_as_an_upgraded_one(v1_file: Path, home: Path) -> None:
    Store.open(v1_file).close()
    fresh = make_project(home, "fresh")
    assert raw_query(fresh, "SELECT value FROM meta") == [(str(SCHEMA_VERSION),)]
    assert columns(fresh) == columns(v1_file)


def test_a_failed_migration_leaves_the_file_as_it_was(v1_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    Store.open(v1_file).close()
    broken = schema.Migration(SCHEMA_VERSION + 1, "broken", "CREATE TABLE half_done (x INTEGER); SELECT error('no');")
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", broken.version)
    with pytest.raises(duckdb.Error):
        Store.open(v1_file)
    assert raw_query(v1_file, "SELECT value FROM meta") == [(str(SCHEMA_VERSION),)]
    assert not raw_query(v1_file, "SELECT * FROM duckdb_tables() WHERE table_name = 'half_done'")


def one_line_error(capsys: pytest.CaptureFixture[str], home: Path, name: str) -> str:
    with pytest.raises(SystemExit) as exited:
        main(["labels", "list", name, "--home", str(home)])
    assert exited.value.code == 1
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_a_file_from_a_newer_version_fails_in_one_line(v1_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Store.open(v1_file).close()
    connection = duckdb.connect(str(v1_file))
    connection.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", [str(SCHEMA_VERSION + 1)])
    connection.close()
    with pytest.raises(DatagenError, match=f"newer version of the studio \\(schema {SCHEMA_VERSION + 1}"):
        Store.open(v1_file)
    assert "upgrade the studio" in one_line_error(capsys, v1_file.parent, "v1")
    assert raw_query(v1_file, "SELECT value FROM meta") == [(str(SCHEMA_VERSION + 1),)]  # left untouched


@pytest.mark.parametrize("content", ["duckdb without meta", "duckdb without version", "not duckdb"])
def test_a_file_that_is_not_a_project_fails_in_one_line(
    home: Path, content: str, capsys: pytest.CaptureFixture[str]
) -> None:
    home.mkdir(parents=True)
    path = home / "other.duckdb"
    if content == "not duckdb":
        path.write_text("name,label\nhello,x\n")
    else:
        connection = duckdb.connect(str(path))
        connection.execute("CREATE TABLE notes (text VARCHAR)")
        if content == "duckdb without version":
            connection.execute("CREATE TABLE meta (key VARCHAR, value VARCHAR)")
        connection.close()
    with pytest.raises(DatagenError, match=str(path)):
        Store.open(path)
    assert str(path) in one_line_error(capsys, home, "other")
