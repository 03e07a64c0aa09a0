"""Gene proposals are drafts: vetted (placeholders and filler refused), the count honoured, saved only on accept;
the library of gene sets per task kind that needs no LLM; earlier versions restored. Core and CLI."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datagen_core.cli.app import main
from datagen_core.config import Gene
from datagen_core.errors import DatagenError
from datagen_core.proposals.gene_library import LIBRARY, library_set, use_library_set
from datagen_core.proposals.genes import (
    GeneContext,
    ProposedGene,
    accept_genes,
    gene_schema,
    propose_genes,
    restore_gene_set,
    vet_genes,
)
from datagen_core.store import Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer
from .test_cli import run_cli

SPAM = GeneContext.of("SMS spam detection", "SMS message", ["ham", "spam an unsolicited commercial message"])
NEUTRAL = GeneContext.of("classification", "text", [])
GOOD = [("length", "number of words"), ("tone", "casual or urgent"), ("subtopic", "what it is about"),
        ("style", "spelling and punctuation"), ("audience", "who the message is for")]


def genes(*pairs: tuple[str, str]) -> list[ProposedGene]:
    return [ProposedGene(name=n, description=d) for n, d in pairs]


def refusal(*pairs: tuple[str, str], context: GeneContext = SPAM) -> str:
    """The one-line message vetting these genes gives."""
    with pytest.raises(DatagenError) as caught:
        vet_genes(genes(*pairs), context, len(pairs))
    message = str(caught.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("bad", "why"), [
    (("gene_1", "number of words"), "placeholder name"),
    (("gene1", "number of words"), "placeholder name"),
    (("Attribute 2", "number of words"), "placeholder name"),
    (("Gene A", "number of words"), "placeholder name"),
    (("name", "number of words"), "placeholder name"),
    (("<gene>", "number of words"), "placeholder name"),
    (("short gene name", "number of words"), "placeholder name"),
    (("...", "number of words"), "placeholder name"),
    (("  ", "number of words"), "empty name"),
    (("E", "number of words"), "a single character"),
    (("Tone!", "casual or urgent"), "the same name as an earlier gene"),  # a copy of 'tone' (folded)
    (("sub-topic", "what it is about"), "the same name as an earlier gene"),  # a copy of 'subtopic'
    (("register", ""), "no description"),
    (("register", "..."), "no description"),
    (("register", "<what varies>"), "placeholder description"),
    (("register", "TBD"), "placeholder description"),
    (("register", "n/a"), "placeholder description"),
    (("register", "Register."), "description repeats the name"),
    (("lunch", "a very important gene that helps me to eat a sandwich"), "description names no attribute of the text"),
])
def test_each_kind_of_placeholder_is_refused_naming_the_gene(bad: tuple[str, str], why: str) -> None:
    message = refusal(*GOOD[:4], bad)
    assert f"{bad[0].strip()!r} ({why}" in message and "only 4 of 5 genes usable" in message
    for good, _ in GOOD[:4]:
        assert repr(good) not in message


def test_the_users_report_is_refused_with_every_gene_named() -> None:
    numbered = [(f"gene_{i}", f"gene number {i}") for i in range(1, 6)]
    message = refusal(*numbered)
    assert all(f"'gene_{i}' (placeholder name)" in message for i in range(1, 6))
    sandwich = [(letter, "a very important gene that helps me to eat a sandwich") for letter in "ABCDE"]
    assert "'A' (a single character" in refusal(*sandwich) and "'E' (a single character" in refusal(*sandwich)
    # the filler alone is refused too, whatever the name
    assert "'flavour' (description names no attribute" in refusal(
        ("flavour", "a very important gene that helps me to eat a sandwich"), ("length", "number of words"))


def test_descriptions_may_relate_to_the_task_instead_of_naming_an_attribute() -> None:
    assert vet_genes(genes(("prize", "which prize or offer the spam message dangles")), SPAM, 1)[0].name == "prize"
    assert "'prize'" in refusal(("prize", "which prize or offer it dangles"), context=NEUTRAL)


@pytest.mark.parametrize("kind", sorted(LIBRARY))
def test_every_library_set_passes_the_vetting_and_says_its_source(kind: str) -> None:
    chosen = library_set(kind)
    for context in (SPAM, NEUTRAL, GeneContext.of(chosen.title, "text", [])):
        assert vet_genes(chosen.genes, context, len(chosen.genes)) == list(chosen.genes)
    assert all(g.description for g in chosen.genes) and 4 <= len(chosen.genes) <= 7
    assert chosen.source.startswith("Genetic Prompt paper") == (kind in {"topic", "relation"})
    assert chosen.source in chosen.note() and kind in chosen.note()


def test_the_library_holds_the_papers_genes_and_the_asked_kinds() -> None:
    assert {"sentiment", "topic", "relation", "intent", "question", "spam", "generic"} <= set(LIBRARY)
    assert [g.name for g in library_set("topic").genes] == ["length", "location", "style", "subtopic"]
    assert library_set("topic").source == "Genetic Prompt paper, AG News"
    assert [g.name for g in library_set("relation").genes] == [
        "length", "voice", "sentence structure", "interaction verb", "modifier", "negation", "entity proximity"]
    assert library_set(" Spam ").kind == "spam"
    with pytest.raises(DatagenError, match="no gene set for 'poetry' in the library; kinds are sentiment"):
        library_set("poetry")


def gene_server(*answers: list[tuple[str, str]]) -> LoopbackServer:
    """A loopback endpoint answering each gene request with the next list (the last one repeats)."""
    queue = list(answers)

    def answer(body: dict[str, Any]) -> str:
        if not body.get("response_format"):
            return "OK"  # the connection check
        pairs = queue.pop(0) if len(queue) > 1 else queue[0]
        return json.dumps({"genes": [{"name": n, "description": d} for n, d in pairs]})

    return LoopbackServer(answer=answer)


def test_the_count_is_asked_for_and_honoured(home: Path) -> None:
    make_project(home)
    assert gene_schema(3)["properties"]["genes"]["minItems"] == gene_schema(3)["properties"]["genes"]["maxItems"] == 3
    with Store.open(home / "trec.duckdb") as store:
        with gene_server(GOOD) as server:  # five genes when four are asked: the first four are kept
            proposed = propose_genes(store, loopback_config(server), count=4)
            assert [g.name for g in proposed] == ["length", "tone", "subtopic", "style"]
            assert server.stats.completions == 2  # the connection check and one answer
        with gene_server([("gene_1", "x"), *GOOD[:4]]) as server:  # a placeholder is skipped, not counted
            assert [g.name for g in propose_genes(store, loopback_config(server), count=4)] == [
                "length", "tone", "subtopic", "style"]
        # too few usable genes: asked again within the attempts, then one line
        with gene_server(GOOD[:2], GOOD[:3]) as server:
            assert len(propose_genes(store, loopback_config(server), count=3)) == 3
            assert server.stats.completions == 1 + 2
        with gene_server(GOOD[:2]) as server, pytest.raises(DatagenError) as caught:
            propose_genes(store, loopback_config(server), count=3, attempts=2)
        assert "no usable genes in 2 tries (only 2 genes proposed, 3 asked)" in str(caught.value)
        assert "`datagen genes library`" in str(caught.value) and "\n" not in str(caught.value)
        with gene_server([(f"gene_{i}", f"gene {i}") for i in range(5)]) as server, pytest.raises(
                DatagenError, match=r"refused: 'gene_0' \(placeholder name\); 'gene_1'"):
            propose_genes(store, loopback_config(server), count=4, attempts=2)
        assert [s.version for s in store.gene_sets()] == [1]  # proposing never saves


def test_accept_keeps_constraints_and_restore_saves_an_earlier_version_again(home: Path) -> None:
    make_project(home)
    with Store.open(home / "trec.duckdb") as store:
        first = store.gene_set()
        assert first is not None
        store.add_gene_set(first.genes, "user", constraints=["no named people"])
        accepted = accept_genes(store, [Gene(name="tone", description="casual")], "llm", "proposed by m")
        assert (accepted.version, accepted.source, accepted.constraints) == (3, "llm", ("no named people",))
        restored = restore_gene_set(store, 1)
        assert (restored.version, restored.genes, restored.constraints) == (4, first.genes, ())
        assert (restored.source, restored.note) == ("user", "restored v1")
        with pytest.raises(DatagenError, match="version 1 holds the current genes and constraints"):
            restore_gene_set(store, 1)
        with pytest.raises(DatagenError, match="no gene set version 9"):
            restore_gene_set(store, 9)
        used = use_library_set(store, "question")
        assert used.genes == library_set("question").genes and used.constraints == ()
        assert used.note == "library v1: question (studio default)"
        assert len(store.gene_sets()) == 5


def cli(capsys: pytest.CaptureFixture[str], home: Path) -> Callable[..., tuple[int, str, str]]:
    return lambda *args: run_cli(capsys, home, *args)


def test_cli_propose_shows_a_draft_and_saves_only_with_accept(home: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    make_project(home)
    run = cli(capsys, home)
    with gene_server(GOOD) as server:
        endpoint = ["--base-url", server.base_url, "--model", "loopback"]
        code, out, err = run("genes", "propose", "trec", "--count", "3", *endpoint)
        assert code == 0, err
        assert "- length: number of words" in out and "- subtopic: what it is about" in out
        assert "style" not in out and "audience" not in out  # three asked, three shown
        assert "not saved: review it, then `datagen genes propose trec --accept` or `datagen genes set trec ...`" in out
        assert "datagen genes set trec 'length: number of words' 'tone: casual or urgent'" in out
        with Store.open(home / "trec.duckdb") as store:
            assert [s.version for s in store.gene_sets()] == [1]
        code, out, err = run("genes", "propose", "trec", "--accept", *endpoint)  # five answered, four asked
        assert code == 0, err
    assert "version 2 (llm) proposed by loopback" in out and "not saved" not in out
    with Store.open(home / "trec.duckdb") as store:
        latest = store.gene_set()
        assert latest is not None and [g.name for g in latest.genes] == ["length", "tone", "subtopic", "style"]
    with gene_server([("A", "a very important gene that helps me to eat a sandwich"), ("B", "same")]) as server:
        code, _, err = run("genes", "propose", "trec", "--accept", "--base-url", server.base_url, "--model", "m")
    assert code == 1 and err.count("\n") == 1 and "'A' (a single character" in err
    with Store.open(home / "trec.duckdb") as store:
        assert len(store.gene_sets()) == 2


def library(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """`datagen genes library` opens no project, so it takes no --home."""
    try:
        main(["genes", "library", *args])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_library_use_and_restore(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(home)
    run = cli(capsys, home)
    code, out, _ = library(capsys)
    assert code == 0 and "gene library v1" in out
    assert "topic · Topic / news category · Genetic Prompt paper, AG News" in out
    assert "  - entity proximity: how many words separate the two entities" in out
    assert all(kind in out for kind in LIBRARY)
    code, out, _ = library(capsys, "spam")
    assert code == 0 and "call to action" in out and "entity proximity" not in out
    code, out, err = run("genes", "use", "trec", "question")
    assert code == 0, err
    assert "version 2 (library) library v1: question (studio default)" in out and "- question form:" in out
    code, out, err = run("genes", "restore", "trec", "1")
    assert code == 0, err
    assert "version 3 (user) restored v1" in out and "- wh-word" in out
    code, _, err = run("genes", "restore", "trec", "3")
    assert code == 1 and "nothing to restore" in err and err.count("\n") == 1
    code, _, err = run("genes", "use", "trec", "poetry")
    assert code == 1 and "no gene set for 'poetry'" in err and err.count("\n") == 1
    with Store.open(home / "trec.duckdb") as store:
        assert [s.note for s in store.gene_sets()] == ["", "library v1: question (studio default)", "restored v1"]
