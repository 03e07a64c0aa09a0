"""Degenerate samples never count: each rule on real-looking answers, real data (almost) never flagged, the run
loop filtering them for every method with exact targets, and the project's minimum length as a setting."""

from __future__ import annotations

import itertools
import json
import re
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from datagen_core.config import (
    DEFAULT_MIN_WORDS,
    CheckSpec,
    Gene,
    GeneSet,
    Label,
    ProjectSpec,
    RunConfig,
    SamplingParams,
)
from datagen_core.embed import Embedder
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.engine.validity import REASONS, degenerate_reason, instruction_text, word_count
from datagen_core.methods import GenerationRequest, MethodContext, make_method
from datagen_core.methods.attrprompt import AttrPromptOptions
from datagen_core.methods.datagen import DataGenOptions
from datagen_core.methods.genetic import crossover_prompt, split_genes
from datagen_core.methods.topic import TopicOptions
from datagen_core.records import duplicate_key, text_hash
from datagen_core.store import PopulationMember, ProjectInfo, Store, project_path

from .conftest import loopback_config, make_project, shared_csv
from .loopback_server import LoopbackServer, deterministic_text
from .test_cli import run_cli
from .test_runner_checks import Roles, scripted, verdict

TREC_LABELS = [Label(name=n, description=f"a question whose answer is of type {n}") for n in ("HUM", "LOC", "NUM")]
PARENTS = ("Who wrote the song , `` Stardust '' ?",
           "What Russian composer 's Prelude in C Sharp Minor brought him fame ?")
SYSTEM = "You write one question for a labelled dataset. Reply with the text only: no title, no explanation, no quotes."


def genetic_messages() -> list[dict[str, str]]:
    """A crossover request for HUM as the run loop sends it, over two real TREC seeds."""
    split = split_genes(["length", "subtopic", "style", "wh-word"], np.random.default_rng(0), True)
    prompt = crossover_prompt(task="question type classification", text_kind="question", label="HUM",
                              label_description=TREC_LABELS[0].description, parent1=PARENTS[0], parent2=PARENTS[1],
                              split=split, constraints=("no named people",))
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}]


def reason(text: str, min_words: int = DEFAULT_MIN_WORDS) -> str | None:
    return degenerate_reason(text, labels=TREC_LABELS, min_words=min_words, sources=PARENTS,
                             instruction=instruction_text(genetic_messages(), PARENTS))


# ------------------------------------------------------------------------------------------- the rules
@pytest.mark.parametrize(("text", "expected"), [
    ("", "empty"), ("   ", "empty"), ("...", "empty"), ("``` ```", "empty"), ("?!", "empty"),
    ("HUM", "label_name"), ("hum.", "label_name"), (" 'LOC' ", "label_name"), ("NUM!", "label_name"),
    ("A question whose answer is of type HUM.", "label_name"),
    ("Who?", "single_token"), ("Stardust", "single_token"), ("1942", "single_token"),
    ("Rachmaninoff...", "single_token"),
    ("Who wrote the song, Stardust?", "source_copy"), ("WHO WROTE THE SONG `` STARDUST '' ?!", "source_copy"),
    ("what russian composer's prelude in c sharp minor brought him fame", "source_copy"),
    ("You need to generate synthetic data for the question type classification task.", "instruction_copy"),
    ("Write a question of the 'HUM' category.", "instruction_copy"),
    ("Write a question of the 'HUM' category about a famous scientist.", "instruction_copy"),
    ("it must respect this constraint: no named people", "instruction_copy"),
    ("Reply with the text only", "instruction_copy"), ("HUM category", "instruction_copy"),
    ("Category: HUM Text:", "instruction_copy"), ("its 'length' inherits from Example 1", "instruction_copy"),
    ("Who won ?", "too_short"), ("Name composers.", "too_short"),
])
def test_each_rule_names_what_is_wrong(text: str, expected: str) -> None:
    assert reason(text) == expected


@pytest.mark.parametrize("text", [
    "Who wrote Hamlet ?",  # three words: exactly the default minimum
    "Who composed Stardust ?", "Ok see you", "Name a famous composer.", "Who invented the telephone ?",
    "Who wrote the song Moonlight Serenade ?",  # shares words with a parent, but is a new question
    "What question type is the hardest to classify ?",  # words of the task, not an echo of it
    "東京はどこですか",  # eight characters of a script without spaces: eight words
])
def test_genuine_short_texts_pass(text: str) -> None:
    assert reason(text) is None


def test_the_minimum_length_is_the_projects() -> None:
    assert reason("Who wrote Hamlet ?", min_words=4) == "too_short"
    assert reason("Who wrote Hamlet first ?", min_words=4) is None
    assert reason("Who won ?", min_words=2) is None
    assert reason("Wrong.", min_words=1) is None  # a minimum of one word accepts one-word texts
    assert reason("HUM", min_words=1) == "label_name" and reason("...", min_words=1) == "empty"


def test_word_count_counts_words_not_punctuation() -> None:
    assert [word_count(t) for t in ("I'm ok", "Ok lar... Joking wif u oni...", "- - -", "U2 rocks", "你好世界")] == \
        [2, 6, 0, 2, 4]


def test_examples_shown_are_copies_not_echoes() -> None:
    """The instruction is what the model was told without the examples it was shown; a worked answer (an
    assistant turn) is not part of it."""
    messages = [*genetic_messages(), {"role": "assistant", "content": "Who painted the Mona Lisa ?"}]
    told = instruction_text(messages, PARENTS)
    assert "Stardust" not in told and "Mona Lisa" not in told and "question type classification" in told
    assert "Category: HUM" in told


# ----------------------------------------------------------------------------------------- real data
REAL = {  # file, task, kind, label descriptions (as a user would type them)
    "trec_coarse": ("question type classification", "question", {
        "ABBR": "a question asking for an abbreviation or what one stands for",
        "DESC": "a question asking for a description, definition or reason",
        "ENTY": "a question whose answer is an entity such as an animal, colour or product",
        "HUM": "a question whose answer is a person or group", "LOC": "a question whose answer is a place",
        "NUM": "a question whose answer is a number, date or amount"}),
    "sms_spam": ("SMS spam detection", "SMS message", {
        "ham": "an ordinary personal message", "spam": "an unsolicited advertisement or scam"}),
    "nyt_editorial_sentiment": ("sentiment of newspaper editorials", "sentence", {"positive": "", "negative": ""}),
}
REAL_METHODS: dict[str, dict[str, Any]] = {
    "genetic": {"worked_example": True}, "zero_shot": {}, "few_shot": {}, "datagen": {},
    "topic": {}, "attrprompt": {"options": AttrPromptOptions(values={"style": ("formal", "casual")})},
}


def real_requests(frame: pd.DataFrame, task: str, kind: str,
                  descriptions: dict[str, str]) -> Iterator[tuple[str, GenerationRequest, dict[int, str]]]:
    """Every real text with, for each method, a request of its label built over the other half of the label's
    texts (so a text is never its own example), as the run loop would send it."""
    labels = [Label(name=n, description=d) for n, d in descriptions.items()]
    project = ProjectInfo("real", task, kind, None, datetime(2025, 1, 1), DEFAULT_MIN_WORDS)
    genes = GeneSet(version=1, genes=tuple(Gene(name=g) for g in ("length", "subtopic", "style", "wh-word")),
                    source="user", constraints=("no named people", "under 40 words"))
    rng = np.random.default_rng(0)
    texts = dict(enumerate(frame["text"]))
    for fold in (0, 1):
        for name, options in REAL_METHODS.items():
            topics = TopicOptions(topics={n: ("history", "sport") for n in descriptions})
            config = RunConfig(method=name, per_label=1, seed=fold, sampling=SamplingParams(), topic=topics,
                               **options)
            method = make_method(MethodContext(project, labels, genes, config), rng)
            for label, rows in frame.groupby("label"):
                seeds = [int(i) for i in rows.index if i % 2 != fold]
                members = [PopulationMember(i, texts[i], text_hash(texts[i]), "real") for i in seeds]
                vectors = rng.normal(size=(len(members), 8))
                method.observe(str(label), members, vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
                for i in rows.index:
                    request = method.next_request(str(label)) if i % 2 == fold else None
                    if request is not None:
                        yield texts[i], request, texts


@pytest.mark.parametrize("name", list(REAL))
def test_real_texts_are_only_ever_flagged_for_being_short(name: str) -> None:
    """Real data stands in for good generated text: no rule but the length rules may flag it, and those only
    flag texts under the minimum (one SMS in 200, one editorial sentence in 120 at the default of 3 words).
    Rows that repeat another row (16 SMS messages, one TREC question) are copies by any measure: dropped."""
    task, kind, descriptions = REAL[name]
    frame = pd.read_csv(shared_csv(f"{name}.csv"), dtype=str)
    frame = frame[~frame["text"].map(duplicate_key).duplicated()].reset_index(drop=True)
    labels = [Label(name=n, description=d) for n, d in descriptions.items()]
    flagged: dict[str, set[str]] = {}
    checked = 0
    for text, request, texts in real_requests(frame, task, kind, descriptions):
        sources = [texts[i] for i in (*request.parent_ids, *request.shown_ids)]
        assert text not in sources
        for min_words in (1, DEFAULT_MIN_WORDS):
            found = degenerate_reason(text, labels=labels, min_words=min_words, sources=sources,
                                      instruction=instruction_text(request.messages, sources))
            if found is not None:
                flagged.setdefault(f"{found}@{min_words}", set()).add(text)
        checked += 1
    assert checked >= len(frame) * (len(REAL_METHODS) - 1)  # each text against (nearly) every method's prompt
    assert set(flagged) <= {f"single_token@{DEFAULT_MIN_WORDS}", f"too_short@{DEFAULT_MIN_WORDS}"}, flagged
    short = set().union(*flagged.values()) if flagged else set()
    assert all(word_count(text) < DEFAULT_MIN_WORDS for text in short)
    assert len(short) <= 0.01 * len(frame)


# --------------------------------------------------------------------------------------------- run loop
def cycling(*kinds: str) -> Callable[[], str]:
    """The next answer kind of a fixed cycle, shared by the server's threads (every kind occurs whatever the
    order requests arrive in)."""
    counter, lock = itertools.count(), threading.Lock()

    def next_kind() -> str:
        with lock:
            return kinds[next(counter) % len(kinds)]

    return next_kind


DEGENERATE = ("good", "empty", "label", "other_label", "one_word", "parent", "instruction", "short", "description")


def degenerate_answer(kind: str, prompt: str, good: str) -> str:
    """What a model that does not follow the prompt answers, by kind (`good` when it does); "OK" to anything
    but a generation prompt (the connection check)."""
    label, parent = re.search(r"of the '(.+?)' category", prompt), re.search(r"Example 1: (.+)\n", prompt)
    if label is None or parent is None:
        return "OK"
    return {
        "good": good, "empty": "  ...  ", "label": label[1], "other_label": "NUM" if label[1] != "NUM" else "LOC",
        "one_word": "Who?", "parent": parent[1].upper(), "instruction": prompt.splitlines()[0],
        "short": "Who won ?", "description": f"A question whose answer is of type {label[1]}.",
    }[kind]


def assert_reasons_are_the_rules(store: Store, run_id: str) -> pd.DataFrame:
    """Every stored offspring's filter reason is what the validity rules say of its text and prompt."""
    rows = store.samples(run_id=run_id, include_filtered=True)
    texts = dict(zip(store.samples()["id"], store.samples()["text"], strict=True))
    texts.update(zip(store.real_examples()["id"], store.real_examples()["text"], strict=True))
    for row in rows.itertuples():
        sources = [texts[int(p)] for p in row.parent_ids]
        expected = degenerate_reason(row.text, labels=store.labels(), min_words=store.project().min_words,
                                     sources=sources, instruction=instruction_text(
                                         [{"role": "user", "content": row.prompt}], sources))
        stored = None if pd.isna(row.filter_reason) else row.filter_reason
        if stored is None or stored in REASONS:  # duplicates and the like are the loop's other filters
            assert expected == stored, row
    return rows


def test_genetic_runs_filter_degenerate_answers_and_reach_exact_targets(home: Path, embedder: Embedder) -> None:
    next_kind = cycling(*DEGENERATE)

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        return degenerate_answer(next_kind(), prompt, deterministic_text(body["messages"], body.get("seed")))

    # 20 seeds: 190 parent pairs per label, and each answer, filtered or not, uses one up
    with Store.open(make_project(home, per_label=20)) as store, LoopbackServer(answer=answer) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, RunConfig(per_label=3, seed=1, sampling=SamplingParams(max_tokens=64)), llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed" and store.kept_counts(run_id) == {"HUM": 3, "LOC": 3, "NUM": 3}
        filtered = store.filtered_counts(run_id)
        assert set(REASONS) <= set(filtered) <= {*REASONS, "duplicate"}, filtered
        assert filtered["label_name"] >= 3  # its own label's name, another's, a description
        assert sum(p.filtered for p in summary.progress.values()) == sum(filtered.values())
        rows = assert_reasons_are_the_rules(store, run_id)
        kept = rows[rows["filter_reason"].isna()]
        assert all(" message " in text for text in kept["text"])  # only the good answers count
        population = {m.id for lb in ("HUM", "LOC", "NUM") for m in store.population(lb, run_id)}
        assert population.isdisjoint(set(rows[rows["filter_reason"].notna()]["id"]))  # never bred from


def test_datagen_items_are_filtered_one_by_one(home: Path, embedder: Embedder) -> None:
    next_kind = cycling(*DEGENERATE)

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        asked = re.search(r"Write (\d+) new items", prompt)
        if asked is None:  # the connection check
            return "OK"
        good = deterministic_text(body["messages"], body.get("seed"))
        items = [degenerate_answer(next_kind(), prompt, f"{good} ({i})") for i in range(int(asked[1]))]
        return json.dumps({"items": [{"text": text} for text in items]})

    config = RunConfig(per_label=4, seed=2, sampling=SamplingParams(max_tokens=40), method="datagen",
                       options=DataGenOptions(items_per_call=3, examples=3))
    with Store.open(make_project(home)) as store, LoopbackServer(answer=answer) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config, llm_config)
        assert run_generation(store, llm_config, run_id, embedder=embedder).status == "completed"
        assert store.kept_counts(run_id) == {"HUM": 4, "LOC": 4, "NUM": 4}
        assert set(REASONS) <= set(store.filtered_counts(run_id)) <= {*REASONS, "duplicate"}
        rows = assert_reasons_are_the_rules(store, run_id)
        copies = rows[rows["filter_reason"] == "source_copy"]
        assert all(len(row.parent_ids) == 3 for row in copies.itertuples())  # a copy of one example shown


def test_a_model_that_only_answers_the_label_stops_the_label_with_one_message(home: Path,
                                                                               embedder: Embedder) -> None:
    with (Store.open(make_project(home)) as store,
          LoopbackServer(answer=lambda body: "HUM") as server):
        llm_config = loopback_config(server, max_in_flight=2)
        config = RunConfig(per_label=5, seed=1, sampling=SamplingParams(max_tokens=64), labels=("HUM",),
                           max_failures=4, method="zero_shot")
        run_id = start_run(store, config, llm_config)
        summary = run_generation(store, llm_config, run_id, embedder=embedder)
        assert summary.status == "completed" and summary.progress["HUM"].exhausted
        assert store.kept_counts(run_id) == {} and set(store.filtered_counts(run_id)) == {"label_name"}
        assert store.filtered_counts(run_id)["label_name"] >= 4
        events = store.events(run_id)
        stopped = events[events["message"].str.contains(r"4 answers in a row were filtered \(last: label_name\)")]
        assert len(stopped) == 1
        # What was already asked still lands (how much depends on the machine's speed), but nothing is asked for
        # the label once it is stopped.
        asked = store.samples(run_id=run_id, include_filtered=True)["requested_at"]
        assert (asked <= stopped["created_at"].iloc[0]).all()


def test_a_correction_that_is_degenerate_does_not_count(home: Path, embedder: Embedder) -> None:
    """An in-run check that 'corrects' an offspring into its label's name: the correction is filtered."""
    role = Roles("good", "fix")
    answer = scripted(lambda text, label: verdict(text == label or role(text) == "good"),
                      lambda text, label: json.dumps({"text": label, "label": label}))
    config = RunConfig(per_label=3, seed=7, sampling=SamplingParams(max_tokens=64),
                       checks=(CheckSpec(name="reflection", rounds=2),))
    with Store.open(make_project(home)) as store, LoopbackServer(answer=answer) as server:
        llm_config = loopback_config(server, max_in_flight=4)
        run_id = start_run(store, config, llm_config)
        assert run_generation(store, llm_config, run_id, embedder=embedder).status == "completed"
        assert store.kept_counts(run_id) == {"HUM": 3, "LOC": 3, "NUM": 3}
        rows = store.samples(run_id=run_id, include_filtered=True)
        corrected = rows[rows["filter_reason"] == "label_name"]
        assert len(corrected) > 0 and set(store.filtered_counts(run_id)) == {"label_name"}
        for row in corrected.itertuples():
            assert row.text == row.label and role.of[json.loads(row.details)["original_text"]] == "fix"


def test_a_run_uses_the_projects_minimum_length(home: Path, embedder: Embedder) -> None:
    """Three-word and four-word questions in turn: with a minimum of 4 words only the longer ones count."""
    next_kind = cycling("short", "long")

    def answer(body: dict[str, Any]) -> str:
        made = deterministic_text(body["messages"], body.get("seed")).split()[2].rstrip(":")  # unique per call
        return f"Who invented {made} ?" if next_kind() == "short" else f"Who invented {made} first ?"

    path = make_project(home)
    with Store.open(path) as store:
        store.set_project_details(store.project().task, store.project().text_kind, min_words=4)
    with Store.open(path) as store, LoopbackServer(answer=answer) as server:
        llm_config = loopback_config(server, max_in_flight=1)
        config = RunConfig(per_label=3, seed=1, sampling=SamplingParams(max_tokens=64), labels=("HUM",),
                           method="zero_shot")
        run_id = start_run(store, config, llm_config)
        assert run_generation(store, llm_config, run_id, embedder=embedder).status == "completed"
        assert store.kept_counts(run_id) == {"HUM": 3}
        rows = store.samples(run_id=run_id, include_filtered=True)
        assert set(rows["filter_reason"].dropna()) <= {"too_short", "duplicate"}
        assert (rows[rows["filter_reason"] == "too_short"]["text"].map(word_count) == 3).all()
        assert (rows[rows["filter_reason"].isna()]["text"].map(word_count) == 4).all()  # the minimum itself counts


# --------------------------------------------------------------------------------------------- setting
def test_the_minimum_length_is_validated_and_round_trips(home: Path) -> None:
    with pytest.raises(ValidationError, match="at least 1 word, not 0"):
        ProjectSpec(name="p", task="t", min_words=0)
    assert ProjectSpec(name="p", task="t").min_words == DEFAULT_MIN_WORDS == 3
    seeds = pd.DataFrame({"text": ["Who wrote Emma ?", "Who painted it ?", "Where is Oslo ?", "Where is Rome ?"],
                          "label": ["HUM", "HUM", "LOC", "LOC"]})
    path = project_path(home, "p")
    with Store.create(path, ProjectSpec(name="p", task="t", min_words=5), [Label(name="HUM"), Label(name="LOC")],
                      seeds, None) as store:
        assert store.project().min_words == 5
        store.set_project_details("question type", "question")  # no minimum given: it stays
        assert store.project().min_words == 5
        store.set_project_details("question type", "question", min_words=1)
        with pytest.raises(ValidationError, match="at least 1 word"):
            store.set_project_details("question type", "question", min_words=-2)
    with Store.open(path) as store:
        assert (store.project().task, store.project().min_words) == ("question type", 1)


def test_projects_made_before_the_setting_open_with_the_default(home: Path) -> None:
    path = make_project(home)
    with Store.open(path) as store:  # the project table as an earlier version created it (before migration 3)
        store.cursor().execute("ALTER TABLE project DROP COLUMN min_words")
        store.cursor().execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
        assert "min_words" not in store.cursor().execute("SELECT * FROM project").df().columns
    with Store.open(path) as store:
        assert store.project().min_words == DEFAULT_MIN_WORDS
        store.set_project_details(store.project().task, store.project().text_kind, min_words=6)
    with Store.open(path) as store:
        assert store.project().min_words == 6


def test_datagen_init_takes_the_minimum_length(tmp_path: Path, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "seeds.csv"
    pd.read_csv(shared_csv("sms_spam.csv")).groupby("label").head(4).to_csv(data, index=False)
    common = ["--data", str(data), "--task", "spam detection", "--kind", "SMS message"]
    code, _, err = run_cli(capsys, home, "init", "sms", *common, "--min-words", "5")
    assert code == 0, err
    code, _, err = run_cli(capsys, home, "init", "plain", *common)
    assert code == 0, err
    code, _, err = run_cli(capsys, home, "init", "bad", *common, "--min-words", "0")
    assert code == 1 and err.strip().splitlines() == ["error: --min-words: the minimum length of a sample must be at "
                                                      "least 1 word, not 0"], err
    assert not project_path(home, "bad").exists()
    with Store.open(project_path(home, "sms")) as sms, Store.open(project_path(home, "plain")) as plain:
        assert (sms.project().min_words, plain.project().min_words) == (5, DEFAULT_MIN_WORDS)
