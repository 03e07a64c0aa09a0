"""The embedding map: one UMAP fit kept in the store as coordinates, placement among neighbours, stable under
filters, refit.

UMAP pays ~12 s of numba compilation per process on its first fit, so one fit is shared: a module fixture
fits a project once and every test works on its own copy of that file.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from datagen_core import projection
from datagen_core.config import Label, ProjectSpec
from datagen_core.embed import Embedder
from datagen_core.errors import DatagenError
from datagen_core.projection import EmbeddingMap
from datagen_core.store import SampleFilter, Store

from .conftest import make_project
from .test_review_store import add_offspring, new_run

EVERYTHING = SampleFilter()


def xy(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.set_index("id")[["x", "y"]].sort_index()


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder) -> tuple[Path, pd.DataFrame]:
    """A project (18 real seeds, 6 kept offspring, 1 filtered) with its map fitted once; its file and points."""
    home = tmp_path_factory.mktemp("projection")
    path = make_project(home)
    with Store.open(path) as store:
        new_run(store, "r1")
        add_offspring(store, "r1", "HUM", [f"Which painter signed canvas number {i} ?" for i in range(3)])
        add_offspring(store, "r1", "LOC", [f"In which country is the city of Lakeside {i} ?" for i in range(3)])
        add_offspring(store, "r1", "LOC", ["I cannot answer that."], "refusal")
        emap = EmbeddingMap(store, embedder)
        assert not emap.is_fitted and emap.fitted_on == 0
        points = emap.points(EVERYTHING)
        assert emap.is_fitted
    return path, points


@pytest.fixture
def store(fitted: tuple[Path, pd.DataFrame], tmp_path: Path) -> Iterator[Store]:
    """A private copy of the fitted project (as a studio restarted on it: nothing of the fit in memory)."""
    copy = tmp_path / "copy.duckdb"
    shutil.copy(fitted[0], copy)
    with Store.open(copy) as opened:
        yield opened


def no_refit(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: EmbeddingMap) -> None:
        raise AssertionError("the map was fitted again")

    monkeypatch.setattr(EmbeddingMap, "_fit", refuse)


def test_first_points_fit_every_kept_sample(fitted: tuple[Path, pd.DataFrame]) -> None:
    _, points = fitted
    assert len(points) == 24 and points["id"].is_unique
    assert points["fitted"].all() and np.isfinite(points[["x", "y"]].to_numpy()).all()
    assert {"id", "label", "text", "origin", "status", "run_id", "parent_ids", "x", "y"} <= set(points.columns)
    assert (points["origin"] == "synthetic").sum() == 6
    assert points[["x", "y"]].drop_duplicates().shape[0] > 20  # a real layout, not one collapsed point


def test_the_fit_is_cached_in_the_store_and_reused(
    fitted: tuple[Path, pd.DataFrame], store: Store, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    emap = EmbeddingMap(store, embedder)
    assert emap.fitted_on == store.projection_info(emap.projection_id)[0] == 24  # type: ignore[index]
    columns = {c for (c,) in store.cursor().execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = 'projections'").fetchall()}
    assert "model" not in columns  # only plain numbers are in the file, never a pickled reducer
    created = store.cursor().execute("SELECT created_at FROM projections").fetchall()
    no_refit(monkeypatch)
    again = EmbeddingMap(store, embedder).points(EVERYTHING)
    pd.testing.assert_frame_equal(xy(again), xy(fitted[1]))
    assert store.cursor().execute("SELECT created_at FROM projections").fetchall() == created
    assert EmbeddingMap(store, embedder).fitted_on == 24
    # other parameters are another map, fitted separately
    assert EmbeddingMap(store, embedder, projection.MapParams(n_neighbors=5)).projection_id != emap.projection_id


def test_new_and_edited_samples_are_placed_without_refitting(
    fitted: tuple[Path, pd.DataFrame], store: Store, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = xy(fitted[1])
    new_ids = add_offspring(store, "r1", "NUM", ["How many legs does a spider have ?", "How tall is Everest ?"])
    edited = int(store.real_examples("HUM")["id"][0])
    store.edit_sample(edited, text="Who was the first woman to fly across the Atlantic ?")
    no_refit(monkeypatch)
    emap = EmbeddingMap(store, embedder)
    points = emap.points(EVERYTHING)
    assert len(points) == 26 and emap.fitted_on == 24
    placed = set(points.loc[~points["fitted"], "id"])
    assert placed == {*new_ids, edited}
    assert np.isfinite(points[["x", "y"]].to_numpy()).all()
    unchanged = before.drop(index=edited)
    pd.testing.assert_frame_equal(xy(points).loc[unchanged.index], unchanged)  # nothing else moved
    # placement is stored: asking again gives the same coordinates and places nothing more
    pd.testing.assert_frame_equal(xy(emap.points(EVERYTHING)), xy(points))
    assert len(store.projection_points(emap.projection_id)) == 24 + 3


def test_filters_never_move_points(
    fitted: tuple[Path, pd.DataFrame], store: Store, embedder: Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    everything = xy(fitted[1])
    no_refit(monkeypatch)
    emap = EmbeddingMap(store, embedder)
    filters = [
        SampleFilter(labels=("HUM",)), SampleFilter(origin="synthetic"), SampleFilter(run_ids=("r1",)),
        SampleFilter(labels=("LOC",), origin="real"), SampleFilter(search="painter"),
    ]
    for chosen in filters:
        points = emap.points(chosen)
        assert set(points["id"]) == {int(i) for i in store.sample_page(chosen)["id"]}, chosen
        pd.testing.assert_frame_equal(xy(points), everything.loc[sorted(points["id"])])
    assert emap.points(SampleFilter(search="no such text")).empty
    # a filtered output (not part of the fit) is placed on demand; the fitted ones stay put
    with_filtered = emap.points(SampleFilter(include_filtered=True))
    assert len(with_filtered) == 25 and (~with_filtered["fitted"]).sum() == 1
    # locate: the coordinates of given ids whatever the filter (the parents of a selected offspring)
    some = [int(i) for i in everything.index[:3]]
    pd.testing.assert_frame_equal(xy(emap.locate(some)), everything.loc[some])


def test_refit_replaces_the_map(store: Store, embedder: Embedder) -> None:
    add_offspring(store, "r1", "NUM", [f"How many kilometres is it to town {i} ?" for i in range(4)])
    emap = EmbeddingMap(store, embedder)
    assert (~emap.points(EVERYTHING)["fitted"]).sum() == 4
    old_fit = store.projection_info(emap.projection_id)[1]  # type: ignore[index]
    emap.refit()
    assert emap.fitted_on == 28
    points = emap.points(EVERYTHING)
    assert len(points) == 28 and points["fitted"].all()
    assert len(store.projection_points(emap.projection_id)) == 28  # the old points were replaced, not kept
    assert store.projection_info(emap.projection_id)[1] != old_fit  # type: ignore[index]
    pd.testing.assert_frame_equal(xy(EmbeddingMap(store, embedder).points(EVERYTHING)), xy(points))


def test_too_few_samples_is_a_clear_error(home: Path, embedder: Embedder) -> None:
    examples = pd.DataFrame({"text": ["hello there", "see you soon", "WIN cash now", "free prize call"],
                             "label": ["ham", "ham", "spam", "spam"]})
    path = home / "tiny.duckdb"
    with Store.create(path, ProjectSpec(name="tiny", task="spam"), [Label(name="ham"), Label(name="spam")],
                      examples, None) as store:
        emap = EmbeddingMap(store, embedder)
        with pytest.raises(DatagenError, match="at least 5 distinct samples"):
            emap.points(EVERYTHING)
        assert not emap.is_fitted and store.projection_points(emap.projection_id).empty


def test_a_new_text_lands_among_its_nearest_fitted_texts(monkeypatch: pytest.MonkeyPatch) -> None:
    fitted_vectors = np.array([[1.0, 0.0], [0.99, 0.14], [0.0, 1.0], [0.14, 0.99]], dtype=np.float32)
    fitted_xy = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 10.0], [11.0, 10.0]])
    new = np.array([[1.0, 0.0], [0.1, 0.995]], dtype=np.float32)
    placed = projection.place_among_neighbours(new, fitted_vectors, fitted_xy, k=2)
    assert np.allclose(placed[0], [0.0, 0.0], atol=1e-3)  # the same embedding lands on its fitted text
    assert 10.0 <= placed[1][0] <= 11.0 and placed[1][1] == pytest.approx(10.0)  # between its two neighbours
    monkeypatch.setattr(projection, "_PLACE_CHUNK", 1)
    np.testing.assert_allclose(projection.place_among_neighbours(new, fitted_vectors, fitted_xy, k=2), placed)
