"""The Map page in AppTest: the demo project's scatter, filters, incremental placement, lineage and refit.

The first UMAP fit of a process costs ~15-20 s (numba), so everything is one test on one fitted map.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pandas as pd
import plotly.io as pio
import pytest
from streamlit.testing.v1 import AppTest

from datagen_core.demo import DEMO_PROJECT

from .studio_helpers import Studio, as_shown, studio_session
from .test_review_store import SPLIT, add_offspring, new_run

PAGE = "pages/map.py"
FIT_TIMEOUT = 240.0  # first `import umap` ever ~23 s, then ~12 s of JIT on the first fit of a process


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


def traces(at: AppTest) -> list[str]:
    (chart,) = at.get("plotly_chart")
    return [trace.get("name", "") for trace in json.loads(chart.proto.spec)["data"]]


def unescaped(at: AppTest) -> list[str]:
    return [as_shown(m.value) for m in at.markdown]


def shown_caption(at: AppTest) -> str:
    return next(c.value for c in at.caption if "point(s) shown" in c.value)


def test_map_draws_filters_places_new_offspring_and_shows_lineage(studio: Studio) -> None:
    # the demo project (60 real SMS) with three kept offspring of one run
    at = studio.open_page("pages/evolve.py")
    store = studio.workspace().store(DEMO_PROJECT)
    new_run(store, "r1")
    spam = add_offspring(store, "r1", "spam", ["URGENT! Your mobile won a 2000 prize, call 09061 now",
                                               "Free ringtone for you, reply TONE to 8007"])
    ham = add_offspring(store, "r1", "ham", ["Sorry, stuck on the bus, be home by 7"])

    at.switch_page(PAGE).run(timeout=FIT_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    assert sorted(traces(at)) == ["ham · real", "ham · synthetic", "spam · real", "spam · synthetic"]
    assert shown_caption(at).startswith("63 point(s) shown · the map was fitted on 63 text(s); of the points "
                                        "shown, 63 come from the fit and 0 were placed")
    assert at.button(key="map_refit")

    # filters narrow what is drawn; the map is not fitted again
    at.multiselect(key="map_labels").set_value(["spam"]).run()
    assert sorted(traces(at)) == ["spam · real", "spam · synthetic"]
    at.selectbox(key="map_origin").set_value("synthetic").run()
    assert traces(at) == ["spam · synthetic"] and shown_caption(at).startswith("2 point(s) shown")
    at.multiselect(key="map_labels").set_value([]).run()
    at.selectbox(key="map_origin").set_value("real and synthetic").run()

    # an offspring landing after the fit is placed into the existing map
    late = add_offspring(store, "r1", "spam", ["Claim your FREE holiday voucher now, txt GO to 80100"])
    at.run()
    assert "64 point(s) shown · the map was fitted on 63 text(s)" in shown_caption(at)
    assert "63 come from the fit and 1 were placed incrementally" in shown_caption(at)

    # selecting an offspring (what the chart's click stores) draws its lineage and the three texts
    at.session_state["map_focus"] = spam[0]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert traces(at)[-3:] == ["parent 1", "parent 2", "selected"]
    child = store.samples_by_ids([spam[0]]).iloc[0]
    parents = store.samples_by_ids(list(child["parent_ids"])).set_index("id")
    shown = unescaped(at)
    assert f"**Selected #{spam[0]}** · spam · synthetic · pending" in shown
    assert f"> {child['text']}" in shown
    for parent_id in child["parent_ids"]:
        assert f"> {parents.loc[parent_id, 'text'].strip()}" in shown
    assert (f"Gene split: from parent 1 **{', '.join(SPLIT.parent1)}** · from parent 2 "
            f"**{', '.join(SPLIT.parent2)}** · mutated **{', '.join(SPLIT.mutated)}**") in shown
    captions = [c.value for c in at.caption]
    assert f"Parent 1 · #{child['parent_ids'][0]} · real · gives: {', '.join(SPLIT.parent1)}" in captions
    # the lineage stays drawn when the offspring itself is filtered out (its parents are real seeds)
    at.selectbox(key="map_origin").set_value("real").run()
    assert traces(at)[-3:] == ["parent 1", "parent 2", "selected"]
    at.button(key="map_clear").click().run()
    assert "map_focus" not in at.session_state and "selected" not in traces(at)
    at.session_state["map_focus"] = int(parents.index[0])  # a real seed has no parents
    at.run()
    assert any("A real seed: it has no parents." in c.value for c in at.caption)

    # refit takes in everything the project holds now
    at.selectbox(key="map_origin").set_value("real and synthetic").run()
    at.button(key="map_refit").click().run(timeout=FIT_TIMEOUT)
    assert not at.exception, [e.value for e in at.exception]
    assert shown_caption(at).startswith("64 point(s) shown · the map was fitted on 64 text(s); of the points "
                                        "shown, 64 come from the fit and 0 were placed")
    assert late and ham


def load_page() -> ModuleType:
    """pages/map.py as a module (its name is not __main__, so the page itself does not draw)."""
    spec = importlib.util.spec_from_file_location("map_page", Path(__file__).resolve().parents[1] / PAGE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_click_on_a_point_selects_its_sample() -> None:
    page = load_page()
    points = pd.DataFrame({
        "id": [4, 9, 12], "label": ["ham", "spam", "spam"], "origin": ["real", "real", "synthetic"],
        "status": ["accepted", "accepted", "rejected"], "text": ["hi <b>there</b>", "WIN " * 100, "call now"],
        "x": [0.0, 1.0, 2.0], "y": [0.0, 1.0, 0.5], "parent_ids": [None, None, [4, 9]],
    })
    fig = page.figure(points, ["ham", "spam"], None)
    by_name = {trace.name: trace for trace in fig.data}
    assert [list(c) for c in by_name["spam · synthetic"].customdata] == [[12]]
    assert by_name["spam · synthetic"].marker.symbol == "diamond" and by_name["ham · real"].marker.symbol == "circle"
    assert "hi &lt;b&gt;there&lt;/b&gt;" in by_name["ham · real"].hovertext[0]  # texts cannot inject HTML
    assert "…" in by_name["spam · real"].hovertext[0] and by_name["spam · real"].hovertext[0].count("<br>") <= 6
    # what st.plotly_chart returns for a click: customdata comes back as a list per point
    event = {"selection": {"points": [{"curve_number": 2, "point_index": 0, "x": 2.0, "y": 0.5,
                                       "customdata": [12]}], "point_indices": [0], "box": [], "lasso": []}}
    assert page.selected_id(event) == 12
    assert page.selected_id({"selection": {"points": [{"x": 1.0, "y": 1.0}, {"customdata": 9}]}}) == 9
    assert page.selected_id({"selection": {"points": [], "box": [], "lasso": []}}) is None
    assert page.selected_id(None) is None
    # numpy customdata would reach the browser as a typed array and come back as a dict: never sent, and ignored
    assert page.selected_id({"selection": {"points": [{"customdata": {"dtype": "i1", "bdata": "DA=="}}]}}) is None
    spec = json.loads(pio.to_json(fig))
    assert [t["customdata"] for t in spec["data"]] == [[[4]], [[9]], [[12]]]
    lineage = pd.concat([points.iloc[[2]], points.iloc[[0]], points.iloc[[1]]], ignore_index=True)
    with_lines = page.figure(points, ["ham", "spam"], lineage)
    lines = [t for t in with_lines.data if t.name in ("parent 1", "parent 2")]
    assert [(list(t.x), list(t.y)) for t in lines] == [([2.0, 0.0], [0.5, 0.0]), ([2.0, 1.0], [0.5, 1.0])]


def test_a_large_map_draws_a_fixed_subset_that_keeps_the_selection() -> None:
    from studio.map_chart import drawn

    points = pd.DataFrame({"id": range(1, 50_001), "label": ["a", "b"] * 25_000})
    first = drawn(points, 10_000, keep=[7, 49_999])
    assert 10_000 <= len(first) <= 10_002 and {7, 49_999} <= set(first["id"])
    assert abs((first["label"] == "a").mean() - 0.5) < 0.03  # every label in proportion
    narrowed = drawn(points[points["label"] == "a"], 10_000, keep=[])
    assert set(first[first["label"] == "a"]["id"]) - {7, 49_999} <= set(narrowed["id"])  # drawn points stay drawn
    assert drawn(points, None, keep=[]) is points and len(drawn(points.head(5), 10, keep=[])) == 5
