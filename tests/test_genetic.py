"""Gene split, crossover prompt, output filters and gene proposal parsing."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from datagen_core.errors import DatagenError
from datagen_core.methods.base import clean_output
from datagen_core.methods.genetic import crossover_prompt, split_genes
from datagen_core.proposals.genes import parse_genes, propose_genes
from datagen_core.store import Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer

GENES = ["length", "location", "style", "subtopic"]


def test_split_covers_every_gene_once_and_matches_the_reference_shape() -> None:
    rng = np.random.default_rng(0)
    roles: Counter[tuple[str, str]] = Counter()
    for _ in range(400):
        split = split_genes(GENES, rng, mutation=True)
        assert sorted(split.parent1 + split.parent2 + split.mutated) == sorted(GENES)
        assert (len(split.parent1), len(split.parent2), len(split.mutated)) == (2, 1, 1)
        roles.update((g, "mutated") for g in split.mutated)
    assert all(roles[(g, "mutated")] > 50 for g in GENES)  # the shuffle gives every gene every role


def test_split_without_mutation_and_with_one_gene() -> None:
    rng = np.random.default_rng(1)
    split = split_genes(GENES, rng, mutation=False)
    assert not split.mutated and len(split.parent1) == 2 and len(split.parent2) == 2
    single = split_genes(["tone"], rng, mutation=True)
    assert single.mutated == ("tone",) and not single.parent1 and not single.parent2


def test_prompt_follows_spec_shape() -> None:
    split = split_genes(GENES, np.random.default_rng(2), mutation=True)
    prompt = crossover_prompt(task="news topic classification", text_kind="news article", label="Sports",
                              label_description="sports news", parent1="P1 text", parent2="P2 text", split=split)
    lines = prompt.splitlines()
    assert lines[0] == "You need to generate synthetic data for the news topic classification task."
    assert lines[1] == "Example 1: P1 text" and lines[2] == "Example 2: P2 text"
    assert lines[3] == "Write a news article of the 'Sports' category. Requirements:"
    assert lines[4] == "1. it must be about sports news;"
    assert lines[5] == f"2. its '{split.parent1[0]}' inherits from Example 1;"
    assert lines[7] == f"4. its '{split.parent2[0]}' inherits from Example 2;"
    assert lines[8] == f"5. its '{split.mutated[0]}' must be different from both examples;"
    assert lines[-2:] == ["Category: Sports", "Text:"]


@pytest.mark.parametrize(
    ("raw", "text", "reason"),
    [
        ("  Win a free cruise now!  ", "Win a free cruise now!", None),
        ('Text: "Call me later"\nCategory: ham', "Call me later", None),
        ("\n\nSee you at 5\n\nExplanation: it is casual", "See you at 5", None),
        ("", "", "empty"),
        ("Text:", "", "empty"),
        ("I'm sorry, but I cannot help with that.", "I'm sorry, but I cannot help with that.", "refusal"),
        ("As an AI language model I won't", "As an AI language model I won't", "refusal"),
        ("x" * 50, "x" * 50, "too_long"),
    ],
)
def test_clean_output(raw: str, text: str, reason: str | None) -> None:
    assert clean_output(raw, max_chars=40) == (text, reason)


def test_parse_genes_accepts_valid_and_rejects_malformed() -> None:
    genes = parse_genes('Sure! {"genes": [{"name": "tone", "description": "d"}, {"name": "length"}]}')
    assert [g.name for g in genes] == ["tone", "length"]
    for bad in ("no json here", '{"genes": [}', '{"genes": [{"name": "x"}]}', '{"genes": "tone"}',
                '{"genes": [{"name": "a", "description": ""}, {"name": "A", "description": ""}]}'):
        with pytest.raises(DatagenError):
            parse_genes(bad)


def test_propose_retries_malformed_answers_then_gives_a_clear_error(home: Path) -> None:
    make_project(home)
    answers = iter(["not json", json.dumps({"genes": [{"name": "tone", "description": "casual or formal"},
                                                      {"name": "topic", "description": "what it asks about"}]})])
    with Store.open(home / "trec.duckdb") as store:
        with LoopbackServer(answer=lambda body: "OK" if body["max_tokens"] == 2 else next(answers)) as server:
            genes = propose_genes(store, loopback_config(server), count=2)
            assert [g.name for g in genes] == ["tone", "topic"]
            assert server.stats.completions == 1 + 2  # the connection check, a malformed and a valid answer
        with LoopbackServer(answer=lambda body: "[]") as server, pytest.raises(DatagenError, match="no usable genes"):
            propose_genes(store, loopback_config(server), attempts=2)


def test_word_genes_come_from_each_parent_and_shape_the_prompt() -> None:
    from datagen_core.methods.genetic import split_words

    parent1, parent2 = "Where is the tallest mountain in Europe ?", "How many moons circle planet Jupiter today ?"
    split = split_words(parent1, parent2, genes=4, rng=np.random.default_rng(3), mutation=True)
    assert (len(split.parent1), len(split.parent2), len(split.mutated)) == (2, 1, 1)
    assert set(split.parent1) <= {"where", "tallest", "mountain", "europe"}
    assert set(split.parent2) <= {"many", "moons", "circle", "planet", "jupiter", "today"}
    assert len({*split.parent1, *split.parent2, *split.mutated}) == 4  # four different words
    prompt = crossover_prompt(task="t", text_kind="question", label="LOC", label_description="", parent1=parent1,
                              parent2=parent2, split=split, word_genes=True)
    assert f"1. it must use the word '{split.parent1[0]}' from Example 1;" in prompt
    assert f"3. it must use the word '{split.parent2[0]}' from Example 2;" in prompt
    assert f"4. it must not use the word '{split.mutated[0]}';" in prompt
    without = split_words(parent1, parent2, genes=4, rng=np.random.default_rng(3), mutation=False)
    assert without.mutated == () and len(without.parent1) + len(without.parent2) == 4
