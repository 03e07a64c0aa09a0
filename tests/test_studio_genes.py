"""The studio's Genes & constraints page: LLM proposals, table edits and constraints, all as new versions."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from datagen_core.config import Gene, Label, LLMConfig, ProjectSpec
from datagen_core.errors import DatagenError
from datagen_core.proposals.genes import constraints_from_text, genes_from_rows
from datagen_core.store import Store

from .loopback_server import LoopbackServer
from .studio_helpers import Studio, button, errors, studio_session

DEMO = "sms-spam-demo"
DEMO_GENES = ["length", "tone", "subtopic", "writing style"]


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


def names(store: Store) -> list[str]:
    gene_set = store.gene_set()
    assert gene_set is not None
    return [g.name for g in gene_set.genes]


def edit(at: AppTest, edited: dict[int, dict[str, object]] | None = None, added: list[dict[str, object]] | None = None,
         deleted: list[int] | None = None) -> None:
    """What the browser's data editor sends; AppTest cannot type into the grid itself."""
    at.session_state["gene_editor"] = {"edited_rows": edited or {}, "added_rows": added or [],
                                       "deleted_rows": deleted or []}


def test_genes_from_rows_orders_validates_and_skips_blank_rows() -> None:
    rows = [
        {"position": 3, "name": " tone ", "description": "casual or urgent"},
        {"position": 1, "name": "length", "description": None},
        {"position": pd.NA, "name": "audience", "description": pd.NA},  # a new row: no position, goes last
        {"position": None, "name": None, "description": float("nan")},  # an empty new row
        {"position": 2, "name": "sub  topic", "description": ""},
    ]
    assert genes_from_rows(rows) == [Gene(name="length"), Gene(name="sub topic"),
                                     Gene(name="tone", description="casual or urgent"), Gene(name="audience")]
    with pytest.raises(DatagenError, match="'Tone' appears twice"):
        genes_from_rows([{"name": "tone"}, {"name": "Tone"}])
    with pytest.raises(DatagenError, match="row 2 has a description"):
        genes_from_rows([{"name": "tone"}, {"name": " ", "description": "who reads it"}])
    with pytest.raises(DatagenError, match="at least one gene"):
        genes_from_rows([{"name": "", "description": ""}])
    with pytest.raises(DatagenError, match="at most 80 characters"):
        genes_from_rows([{"name": "x" * 81}])
    assert constraints_from_text("no named people\n\n  under 40 words \nno named people\n") == [
        "no named people", "under 40 words"]


def test_propose_genes_with_the_llm_keeps_the_constraints(studio: Studio) -> None:
    at = studio.open_page("pages/genes.py")
    store = studio.workspace().store(DEMO)
    assert any("**Version 1** · demo" in m.value for m in at.markdown)
    store.add_gene_set(store.gene_set().genes, "user", constraints=["no named people"])  # type: ignore[union-attr]
    with LoopbackServer() as server:
        at.session_state["llm_config"] = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at.run()
        button(at, "Propose genes with the LLM").click()
        at.run()
        assert server.stats.completions >= 1
    assert not at.exception and not errors(at), errors(at)
    assert any("Saved 4 proposed genes as version 3" in s.value for s in at.success)
    latest = store.gene_set()
    assert latest is not None and latest.version == 3 and latest.source == "llm"
    assert [g.name for g in latest.genes] == ["length", "tone", "subtopic", "style"]
    assert latest.constraints == ("no named people",) and latest.note == "proposed by loopback"
    # the page shows the new version, and the editor starts from it
    assert any("**Version 3** · llm" in m.value for m in at.markdown)
    assert list(at.data_editor[0].value["name"]) == ["length", "tone", "subtopic", "style"]


def test_propose_against_a_dead_endpoint_shows_an_error(studio: Studio) -> None:
    at = studio.open_page("pages/genes.py")
    at.session_state["llm_config"] = LLMConfig(backend="openai", base_url="http://127.0.0.1:9/v1", model="x")
    at.run()
    button(at, "Propose genes with the LLM").click()
    at.run()
    assert not at.exception and any("cannot reach" in e for e in errors(at))
    assert studio.workspace().store(DEMO).gene_set().version == 1  # type: ignore[union-attr]
    assert button(at, "Save as new version")  # the page still works


def test_edit_reorder_and_constrain_then_save_a_new_version(studio: Studio) -> None:
    at = studio.open_page("pages/genes.py")
    store = studio.workspace().store(DEMO)
    assert list(at.data_editor[0].value["name"]) == DEMO_GENES
    # rename tone -> mood, move length last, delete "writing style", add "audience"
    edit(at, edited={1: {"name": "mood"}, 0: {"position": 9}}, deleted=[3],
         added=[{"name": "audience", "description": "who the message is for"}])
    at.text_area(key="gene_constraints").input("no named people\n\nunder 40 words\n")
    button(at, "Save as new version").click()
    at.run()
    assert not at.exception and not errors(at), errors(at)
    latest = store.gene_set()
    assert latest is not None and latest.version == 2 and latest.source == "user"
    assert latest.note == "edited in the studio"
    assert [g.name for g in latest.genes] == ["mood", "subtopic", "length", "audience"]
    assert latest.genes[1].description == "what the message is about"  # untouched cells keep their value
    assert latest.genes[3].description == "who the message is for"
    assert latest.constraints == ("no named people", "under 40 words")
    assert any("Saved version 2: 4 genes, 2 constraints" in s.value for s in at.success)
    # the editor and the constraints now start from version 2; version 1 is in the history
    assert list(at.data_editor[0].value["name"]) == ["mood", "subtopic", "length", "audience"]
    assert at.text_area(key="gene_constraints").value == "no named people\nunder 40 words"
    history = at.expander[0]
    assert "Earlier versions (1)" in history.label
    assert any("**Version 1** · demo" in m.value for m in history.markdown)

    button(at, "Save as new version").click()  # nothing changed: no version 3
    at.run()
    assert any("Nothing changed" in i.value for i in at.info) and store.gene_set().version == 2  # type: ignore[union-attr]


def test_invalid_edits_save_nothing(studio: Studio) -> None:
    at = studio.open_page("pages/genes.py")
    store = studio.workspace().store(DEMO)
    edit(at, edited={1: {"name": "Length"}})
    at.text_area(key="gene_constraints").input("under 40 words")
    button(at, "Save as new version").click()
    at.run()
    assert not at.exception and any("'Length' appears twice" in e for e in errors(at))
    edit(at, added=[{"description": "a gene without a name"}])
    button(at, "Save as new version").click()
    at.run()
    assert any("row 5 has a description" in e for e in errors(at))
    assert len(store.gene_sets()) == 1 and names(store) == DEMO_GENES
    assert store.gene_set().constraints == ()  # type: ignore[union-attr]


def test_a_project_without_genes_starts_from_an_empty_table(studio: Studio) -> None:
    examples = pd.DataFrame({"text": ["where is Rome", "where is Oslo", "who wrote Emma", "who painted it"],
                             "label": ["LOC", "LOC", "HUM", "HUM"]})
    studio.workspace().create_project(ProjectSpec(name="bare", task="question type", text_kind="question"),
                                      [Label(name="LOC"), Label(name="HUM")], examples, source="inline")
    at = studio.app()
    at.session_state["project"] = "bare"
    at = studio.open_page("pages/genes.py", at)
    assert any("no genes yet" in i.value for i in at.info) and at.data_editor[0].value.empty
    edit(at, added=[{"name": "wh-word"}, {"name": "subtopic", "description": "what it asks about"}])
    button(at, "Save as new version").click()
    at.run()
    assert not at.exception and not errors(at), errors(at)
    assert names(studio.workspace().store("bare")) == ["wh-word", "subtopic"]


def test_topics_and_attribute_values_are_proposed_and_edited_as_versions(studio: Studio) -> None:
    from .test_methods import proposals_answer

    at = studio.open_page("pages/genes.py")
    store = studio.workspace().store(DEMO)
    with LoopbackServer(answer=proposals_answer) as server:
        at.session_state["llm_config"] = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at.run()
        at.button(key="propose_attributes").click().run()
    assert not at.exception and not errors(at), errors(at)
    values = store.value_set("attributes")
    assert values is not None and values.source == "llm" and values.gene_set_version == 1
    assert 2 <= len(values.items["tone"]) <= 6 and all(v.startswith("tone of ") for v in values.items["tone"])
    assert any("Saved attributes version 1" in s.value for s in at.success)

    at.text_area(key=f"topics_{DEMO}_0").set_value("meeting up\n\nfamily news \n")
    at.text_area(key=f"topics_{DEMO}_1").set_value("prize draws\nringtones")
    at.button(key="FormSubmitter:edit_topics-Save topics as a new version").click().run()
    assert not at.exception and not errors(at), errors(at)
    topics = store.value_set("topics")
    assert topics is not None and topics.version == 1 and topics.source == "user"
    assert topics.items == {"ham": ("meeting up", "family news"), "spam": ("prize draws", "ringtones")}
    # a topic run can now start from the studio's topics
    from datagen_core.config import RunConfig, SamplingParams
    from datagen_core.engine.runs import start_run

    run_id = start_run(store, RunConfig(per_label=1, seed=1, sampling=SamplingParams(), method="topic"), LLMConfig())
    assert store.run(run_id).config.options.topics == topics.items
