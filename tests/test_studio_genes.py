"""The studio's Genes & constraints page: LLM proposals and library sets as drafts, table edits, constraints and
restores, each saved as a new version."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


def test_a_proposal_is_a_draft_saved_only_on_accept_and_keeps_the_constraints(studio: Studio) -> None:
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
    # a draft: shown in its own table, nothing saved yet
    assert store.gene_set().version == 2  # type: ignore[union-attr]
    assert any("Draft (not saved)" in h.value for h in at.subheader)
    draft = at.data_editor[0]
    assert draft.key.startswith("gene_draft_editor_")  # type: ignore[union-attr]
    assert list(draft.value["name"]) == ["length", "tone", "subtopic", "style"]
    assert list(at.data_editor(key="gene_editor").value["name"]) == DEMO_GENES  # the editor still holds version 2
    button(at, "Accept as new version").click()
    at.run()
    assert not at.exception and not errors(at), errors(at)
    assert any("Saved 4 proposed genes as version 3" in s.value for s in at.success)
    latest = store.gene_set()
    assert latest is not None and latest.version == 3 and latest.source == "llm"
    assert [g.name for g in latest.genes] == ["length", "tone", "subtopic", "style"]
    assert latest.constraints == ("no named people",) and latest.note == "proposed by loopback"
    # the page shows the new version, the editor starts from it, and the draft is gone
    assert any("**Version 3** · llm" in m.value for m in at.markdown)
    assert list(at.data_editor[0].value["name"]) == ["length", "tone", "subtopic", "style"]
    assert len(at.data_editor) == 1 and not any("Draft" in h.value for h in at.subheader)


def answer_genes(pairs: list[tuple[str, str]]) -> Callable[[dict[str, Any]], str]:
    """A loopback answer: these genes to a gene request, "OK" to the connection check."""
    genes = json.dumps({"genes": [{"name": n, "description": d} for n, d in pairs]})
    return lambda body: genes if body.get("response_format") else "OK"


def test_the_draft_honours_the_count_can_be_edited_or_discarded(studio: Studio) -> None:
    at = studio.open_page("pages/genes.py")
    store = studio.workspace().store(DEMO)
    five = [("length", "number of words"), ("tone", "casual or urgent"), ("subtopic", "what it is about"),
            ("style", "spelling and punctuation"), ("audience", "who the message is for")]
    with LoopbackServer(answer=answer_genes(five)) as server:
        at.session_state["llm_config"] = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at.number_input(key="propose_count").set_value(3)
        at.run()
        button(at, "Propose genes with the LLM").click()
        at.run()
        assert list(at.data_editor[0].value["name"]) == ["length", "tone", "subtopic"]  # 3 asked, 3 kept
        button(at, "Discard the draft").click()
        at.run()
        assert any("Discarded the draft: nothing was saved" in s.value for s in at.success)
        assert len(at.data_editor) == 1 and len(store.gene_sets()) == 1
        # propose again, rename a gene in the draft, accept: the note says it was edited
        button(at, "Propose genes with the LLM").click()
        at.run()
    draft_key = at.data_editor[0].key
    at.session_state[draft_key] = {"edited_rows": {1: {"name": "mood"}}, "added_rows": [], "deleted_rows": []}
    button(at, "Accept as new version").click()
    at.run()
    assert not at.exception and not errors(at), errors(at)
    latest = store.gene_set()
    assert latest is not None and latest.version == 2 and [g.name for g in latest.genes] == ["length", "mood",
                                                                                             "subtopic"]
    assert latest.note == "proposed by loopback, edited in the studio"


def test_a_placeholder_proposal_is_refused_and_saves_nothing(studio: Studio) -> None:
    at = studio.open_page("pages/genes.py")
    sandwich = [(letter, "a very important gene that helps me to eat a sandwich") for letter in "ABCDE"]
    with LoopbackServer(answer=answer_genes(sandwich)) as server:
        at.session_state["llm_config"] = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at.run()
        button(at, "Propose genes with the LLM").click()
        at.run()
    assert not at.exception and any("no usable genes in 3 tries" in e and "'A' (a single character" in e
                                    for e in errors(at)), errors(at)
    assert len(at.data_editor) == 1 and len(studio.workspace().store(DEMO).gene_sets()) == 1


def test_start_from_the_library_then_accept(studio: Studio) -> None:
    at = studio.open_page("pages/genes.py")
    store = studio.workspace().store(DEMO)
    store.add_gene_set(store.gene_set().genes, "user", constraints=["no named people"])  # type: ignore[union-attr]
    at.run()
    at.selectbox(key="library_kind").set_value("topic").run()
    assert any("Source: Genetic Prompt paper, AG News" in c.value for c in at.caption)
    preview = [d for d in at.dataframe if d not in list(at.data_editor)]
    assert any(list(d.value["name"]) == ["length", "location", "style", "subtopic"] for d in preview)
    button(at, "Load into the draft").click()
    at.run()
    assert list(at.data_editor[0].value["name"]) == ["length", "location", "style", "subtopic"]
    assert store.gene_set().version == 2  # type: ignore[union-attr]
    button(at, "Accept as new version").click()
    at.run()
    assert not at.exception and not errors(at), errors(at)
    assert any("Saved 4 library genes as version 3" in s.value for s in at.success)
    latest = store.gene_set()
    assert latest is not None and [g.name for g in latest.genes] == ["length", "location", "style", "subtopic"]
    assert latest.note == "library v1: topic (Genetic Prompt paper, AG News)"
    assert latest.constraints == ("no named people",)


def test_restore_an_earlier_version(studio: Studio) -> None:
    at = studio.open_page("pages/genes.py")
    store = studio.workspace().store(DEMO)
    store.add_gene_set([Gene(name="tone", description="casual or urgent")], "user", constraints=["short"])
    at.run()
    assert "Earlier versions (1)" in at.expander[0].label
    at.button(key="restore_1").click().run()
    assert not at.exception and not errors(at), errors(at)
    assert any("Restored version 1 as version 3" in s.value for s in at.success)
    latest = store.gene_set()
    assert latest is not None and latest.version == 3 and [g.name for g in latest.genes] == DEMO_GENES
    assert (latest.source, latest.note, latest.constraints) == ("demo", "restored v1", ())
    assert any("**Version 3** · demo · restored v1" in m.value for m in at.markdown)
    assert list(at.data_editor[0].value["name"]) == DEMO_GENES
    at.button(key="restore_1").click().run()  # version 1 is the current genes again: nothing to restore
    assert any("nothing to restore" in e for e in errors(at)) and len(store.gene_sets()) == 3


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
