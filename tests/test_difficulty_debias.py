"""Difficulty enhancement on real MMLU rows and shortcut rephrasing on a handmade spam set, against loopback LLMs.

The scripted answers cover accepted rewrites, every refusal of the label guard, malformed JSON (retried, then
the original kept), and a shortcut that survives the retry; every verdict must be recorded and every
correction must leave the original in the sample's history.
"""

from __future__ import annotations

import json
import re
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from datagen_core.checks import CHECKS, CheckContext, DebiasCheck, DifficultyCheck, Item
from datagen_core.checks.apply import apply_check
from datagen_core.checks.debias import contains_phrase, detect_shortcuts
from datagen_core.checks.difficulty import PRINCIPLES, Rewrite, guard, lettered_options
from datagen_core.config import Label, ProjectSpec
from datagen_core.embed import Embedder
from datagen_core.llm import LLM
from datagen_core.records import NewSample, utcnow
from datagen_core.store import SampleFilter, Store, project_path

from .conftest import loopback_config, shared_csv
from .loopback_server import LoopbackServer

Answer = Callable[[dict[str, Any]], str]


def make_store(home: Path, name: str, labels: list[str], real: pd.DataFrame, task: str, kind: str) -> Store:
    spec = ProjectSpec(name=name, task=task, text_kind=kind)
    return Store.create(project_path(home, name), spec, [Label(name=n, description="") for n in labels], real, None)


def write_samples(store: Store, items: list[tuple[str, str]]) -> list[int]:
    ids = store.allocate_sample_ids(len(items))
    store.write_offspring([
        NewSample(id=i, run_id="r1", label=label, text=text, method="test", parent_ids=(), gene_split=None,
                  prompt="", model="m", sampling={}, raw_response=text, llm_call_id="c", prompt_tokens=0,
                  completion_tokens=0, requested_at=utcnow())
        for i, (text, label) in zip(ids, items, strict=True)], [], {}, "none")
    return ids


def details_of(store: Store, sample_id: int, check: str) -> dict[str, Any]:
    record = store.sample_checks(sample_id)
    record = record[record["check"] == check]
    assert len(record) == 1, record
    return json.loads(record["details"].iloc[0])


def make_llm(server: LoopbackServer, store: Store) -> LLM:
    return LLM.from_config(loopback_config(server), store, use_cache=False, max_retries=0)


# ------------------------------------------------------------------------------------------- difficulty
def split(text: str) -> tuple[str, dict[str, str]]:
    """A question's stem (everything before the options) and its options."""
    options = lettered_options(text)
    stem = "\n".join(line for line in text.splitlines() if not re.match(r"^[A-Z]\. ", line))
    return stem, options


def join(stem: str, options: dict[str, str]) -> str:
    return stem + "\n" + "\n".join(f"{letter}. {option}" for letter, option in options.items())


def harder(text: str, options: dict[str, str] | None = None, paraphrase: bool = True) -> str:
    stem, old = split(text)
    new = options if options is not None else {k: (f"roughly {v}" if paraphrase else v) for k, v in old.items()}
    return join("In a practice exam, a student meets this item. " + stem.replace("Which", "Which one"), new)


def reply(text: str, label: str, reason: str = "", same_as: str = "") -> str:
    return "Here you go: " + json.dumps({"text": text, "label": label, "reason": reason, "same_as": same_as})


@pytest.fixture(scope="module")
def mmlu() -> pd.DataFrame:
    return pd.read_csv(shared_csv("mmlu_sample.csv"), dtype=str)


def difficulty_script(rows: pd.DataFrame, seen: list[str]) -> Answer:
    """Row i of `rows` gets the i-th behaviour below; calls per row are counted for the retry case."""
    calls: Counter[int] = Counter()
    lock = threading.Lock()

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        index = next((i for i, text in enumerate(rows["text"]) if text.strip() in prompt), None)
        if index is None:
            return "OK"  # the connection check
        with lock:
            calls[index] += 1
            seen.append(prompt)
            attempt = calls[index]
        text, label = rows["text"][index], rows["label"][index]
        options = lettered_options(text)
        with_distractor = {**{k: f"roughly {v}" for k, v in options.items()}, "E": "none of the other options"}
        if index == 0:  # all four principles, label kept: accepted
            return reply(harder(text, with_distractor), label)
        if index == 1:  # the correct option moved from D to A, with a reason: accepted, label A
            moved = {"A": options["D"], "B": options["A"], "C": options["B"], "D": options["C"]}
            return reply(harder(text, moved), "A", reason="the correct option now comes first", same_as="D")
        if index == 2:  # the label changed to C without a reason: refused
            return reply(harder(text), "C")
        if index == 3:  # the label names the new distractor E, not a project label: refused
            return reply(harder(text, with_distractor), "E", reason="E is right now", same_as="B")
        if index == 4:  # the label is no option of the rewrite: refused
            return reply(harder(text), "F")
        if index == 5:  # never JSON: retried, then the original kept
            return "Sure! I made the question harder, it is much better now."
        if index == 6:  # broken JSON once, then a good rewrite
            return '{"text": "unterminated' if attempt == 1 else reply(harder(text), label)
        if index == 7:  # label changed with a reason, but the rewrite says the old answer was another letter
            return reply(harder(text), "A", reason="reordered", same_as="B")
        raise AssertionError(index)

    return answer


def test_difficulty_rewrites_mmlu_rows_and_guards_labels(home: Path, embedder: Embedder, mmlu: pd.DataFrame) -> None:
    rows = mmlu.head(8).reset_index(drop=True)
    seen: list[str] = []
    with make_store(home, "mmlu", ["A", "B", "C", "D"], mmlu.iloc[100:120], "multiple-choice question answering",
                    "multiple-choice question") as store, LoopbackServer(answer=difficulty_script(rows, seen)) as srv:
        ids = write_samples(store, list(zip(rows["text"], rows["label"], strict=True)))
        summary = apply_check(store, DifficultyCheck(), SampleFilter(origin="synthetic"), embedder,
                              make_llm(srv, store))
        assert summary.checked == 8 and summary.kept == 8 and not summary.rejected and summary.corrected == 3

        assert len(seen) == 8 + 2 + 1  # one call per item; row 5 retried twice more, row 6 once
        assert all(all(PRINCIPLES[p] in prompt for p in PRINCIPLES) for prompt in seen)  # one call names all four

        table = store.samples_by_ids(ids).set_index("id")
        first, moved = ids[0], ids[1]
        assert table.loc[first, "text"] == harder(rows["text"][0], {
            **{k: f"roughly {v}" for k, v in split(rows["text"][0])[1].items()}, "E": "none of the other options"})
        assert table.loc[first, "label"] == "B" and table.loc[first, "status"] == "pending"
        history = store.sample_history(first)
        assert list(history["field"]) == ["text"] and history["old_value"][0] == rows["text"][0]
        assert history["actor"][0] == "check:difficulty"

        assert table.loc[moved, "label"] == "A" and table.loc[moved, "text"].splitlines()[-4] == \
            "A. It is the differential survival and reproduction of the most-fit phenotypes."
        assert dict(zip(store.sample_history(moved)["field"], store.sample_history(moved)["old_value"],
                        strict=True)) == {"text": rows["text"][1], "label": "D"}
        assert table.loc[ids[6], "text"] != rows["text"][6]  # the retry's rewrite was used

        for index in (2, 3, 4, 5, 7):  # refused: the original stays untouched, with no history
            assert table.loc[ids[index], "text"] == rows["text"][index]
            assert table.loc[ids[index], "label"] == rows["label"][index]
            assert store.sample_history(ids[index]).empty

        refused = {index: details_of(store, ids[index], "difficulty")["refused"] for index in range(8)}
        assert refused == {0: None, 1: None, 2: "label_changed_without_reason", 3: "unknown_label",
                           4: "label_not_an_option", 5: "rewrite_unusable", 6: None,
                           7: "label_changed_option_mismatch"}
        accepted = details_of(store, first, "difficulty")
        assert accepted["principles"] == list(PRINCIPLES)
        assert accepted["original"] == {"text": rows["text"][0], "label": "B"}
        assert accepted["rewrite"]["label"] == "B" and accepted["rewrite"]["text"] == table.loc[first, "text"]
        assert details_of(store, moved, "difficulty")["rewrite"]["same_as"] == "D"
        unusable = details_of(store, ids[5], "difficulty")
        assert len(unusable["problems"]) == 3 and "rewrite" not in unusable and unusable["why"]
        assert len(details_of(store, ids[6], "difficulty")["problems"]) == 1
        assert "C" in details_of(store, ids[2], "difficulty")["why"]

        options = json.loads(store.sample_checks(first)["options"][0])
        assert options == {"principles": list(PRINCIPLES), "attempts": 3}
        purposes = dict(store.cursor().execute("SELECT purpose, count(*) FROM llm_calls GROUP BY purpose").fetchall())
        assert purposes["difficulty_rewrite"] == 11


def test_difficulty_subset_keeps_the_correct_option_verbatim(home: Path, embedder: Embedder,
                                                             mmlu: pd.DataFrame) -> None:
    rows = mmlu.iloc[[0, 3]].reset_index(drop=True)
    seen: list[str] = []

    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        if rows["text"][0] in prompt:
            seen.append(prompt)
            return reply(harder(rows["text"][0], paraphrase=False), "B")  # options untouched: accepted
        if rows["text"][1] in prompt:
            seen.append(prompt)
            return reply(harder(rows["text"][1]), "B")  # reworded the options although told not to: refused
        return "OK"

    check = DifficultyCheck(principles=("add_context", "paraphrase_question"))
    with make_store(home, "mmlu2", ["A", "B", "C", "D"], mmlu.iloc[100:110], "multiple-choice question answering",
                    "multiple-choice question") as store, LoopbackServer(answer=answer) as server:
        ids = write_samples(store, list(zip(rows["text"], rows["label"], strict=True)))
        summary = apply_check(store, check, SampleFilter(origin="synthetic"), embedder, make_llm(server, store))
        assert summary.corrected == 1 and summary.kept == 2
        assert all(PRINCIPLES["add_context"] in p and PRINCIPLES["paraphrase_question"] in p for p in seen)
        assert not any(PRINCIPLES["add_distractor"] in p or PRINCIPLES["paraphrase_choices"] in p for p in seen)
        kept, refused = details_of(store, ids[0], "difficulty"), details_of(store, ids[1], "difficulty")
        assert kept["principles"] == ["paraphrase_question", "add_context"] and kept["refused"] is None
        assert refused["refused"] == "answer_option_changed" and "product-oriented" in refused["why"]
        assert store.samples_by_ids([ids[1]])["text"][0] == rows["text"][1]


def test_difficulty_guard_and_options_without_llm() -> None:
    assert lettered_options("I. first\nII. second\nWhich?\nA. one\nB) two\n(C) three\nE. skipped") == {
        "A": "one", "B": "two", "C": "three"}
    assert lettered_options("A. only one option") == {}
    plain = Item(1, "NUM", "How far is the moon?")
    check = DifficultyCheck()
    assert check.principles_for(plain) == ["paraphrase_question", "add_context"]  # no choices to work on
    assert guard(plain, Rewrite(text="In km, how far away is the moon?", label="NUM"), ["add_context"], {"NUM"}) \
        is None
    changed = guard(plain, Rewrite(text="Who went to the moon?", label="HUM", reason="r", same_as="x"),
                    ["add_context"], {"NUM", "HUM"})
    assert changed is not None and changed.code == "label_changed"
    mc = Item(2, "B", "Pick one.\nA. red\nB. blue\nC. green")
    lost = guard(mc, Rewrite(text="Pick.\nA. red\nB. blue", label="B"), list(PRINCIPLES), {"A", "B", "C"})
    assert lost is not None and lost.code == "options_lost"
    same = guard(mc, Rewrite(text=mc.text, label="B"), list(PRINCIPLES), {"A", "B", "C"})
    assert same is not None and same.code == "unchanged"
    with pytest.raises(ValueError, match="principles"):
        DifficultyCheck(principles=("make_it_hard",))
    assert CHECKS["difficulty"] is DifficultyCheck and CHECKS["debias"] is DebiasCheck


# ----------------------------------------------------------------------------------------------- debias
def test_detect_shortcuts_on_a_handmade_corpus() -> None:
    spam = ["limited offer on shoes today", "limited offer for new phones", "grab this limited offer quickly",
            "a limited offer just for members", "limited offer ends at midnight", "the weather is nice, buy a hat"]
    ham = ["limited parking near the office", "the job offer came through", "limited seats at the meeting",
           "I will accept the offer", "meeting moved to friday", "meeting notes attached", "see you at the meeting",
           "weather looks nice for a walk"]
    corpus = [(t, "spam") for t in spam] + [(t, "ham") for t in ham]
    found = detect_shortcuts(corpus, threshold=0.9, min_count=5)
    assert [(s.phrase, s.label, s.count, s.precision) for s in found] == [("limited offer", "spam", 5, 1.0)]
    assert found[0].prior == round(6 / 14, 4) and found[0].lift == round(14 / 6, 4)  # the words alone are 5/7
    assert {s.phrase for s in detect_shortcuts(corpus, min_count=4)} == {"limited offer", "meeting"}
    assert detect_shortcuts(corpus, max_ngram=1, min_count=4)[0].phrase == "meeting"  # unigrams only
    # A word that only says "this is the majority label" is no shortcut: its lift over the prior is too small.
    skewed = [(f"hello number {i}", "ham") for i in range(19)] + [("buy now", "spam")]
    assert detect_shortcuts(skewed, min_count=5) == []
    # A bigram explained by one of its words is not reported twice; stop words are never shortcuts.
    urgent = [(f"URGENT call {w}", "spam") for w in ("alpha", "beta", "gamma", "delta", "omega")] + \
             [(f"your {w} is here", "ham") for w in ("tea", "cab", "book", "mail", "bag")]
    assert [s.phrase for s in detect_shortcuts(urgent)] == ["call", "urgent"]
    assert contains_phrase("URGENT!!! Call me", "urgent call") and not contains_phrase("urgently", "urgent")


SPAM_REAL = pd.DataFrame({"text": ["Congratulations, you have been selected for a free cruise",
                                   "Win a brand new phone, text WIN to 80082", "See you at the cinema at eight",
                                   "Mum says dinner is ready", "Can you send me the slides from today"],
                          "label": ["spam", "spam", "ham", "ham", "ham"]})
SPAM_ITEMS = [
    ("URGENT: you won a cash prize, reply to claim it", "spam"),  # rewritten
    ("URGENT your bank account is locked, click the link", "spam"),  # rewritten
    ("Urgent! Claim your free voucher before midnight", "spam"),  # first rewrite keeps it, the retry does not
    ("URGENT final notice about your parcel delivery", "spam"),  # the rewrite never drops it
    ("URGENT lottery winnings are waiting for you", "spam"),  # the answers are never JSON
    ("Are we still meeting for lunch tomorrow?", "ham"),
    ("The train is late again, save me a seat", "ham"),
    ("Happy birthday! Have a lovely day", "ham"),
    ("Thanks for the notes from class", "ham"),
    ("Running late, start the meeting without me", "ham"),
]


def debias_script(seen: list[list[dict[str, str]]]) -> Answer:
    def answer(body: dict[str, Any]) -> str:
        messages = body["messages"]
        match = re.search(r"Item: (.*)\nLabel:", messages[0]["content"])
        if match is None:
            return "OK"
        seen.append(messages)
        text, retry = match.group(1), len(messages) > 1
        clean = re.sub(r"(?i)urgent[:!]?\s*", "", text)
        clean = clean[0].upper() + clean[1:]
        if text.startswith("URGENT lottery"):
            return "Of course, here is a friendlier version without that word."
        if text.startswith("URGENT final"):
            return json.dumps({"text": "Final URGENT notice about your parcel delivery"})
        if text.startswith("Urgent!") and not retry:
            return json.dumps({"text": "Please, urgently... no: urgent - claim your free voucher before midnight"})
        return json.dumps({"text": clean})

    return answer


def test_debias_rewrites_only_items_carrying_the_shortcut(home: Path, embedder: Embedder) -> None:
    seen: list[list[dict[str, str]]] = []
    check = DebiasCheck(min_count=3)
    with make_store(home, "spam", ["spam", "ham"], SPAM_REAL, "spam detection", "text message") as store, \
            LoopbackServer(answer=debias_script(seen)) as server:
        ids = write_samples(store, SPAM_ITEMS)
        items = [Item(i, label, text) for i, (text, label) in zip(ids, SPAM_ITEMS, strict=True)]
        shortcuts = check.detect(items, CheckContext(store, embedder))
        assert [(s.phrase, s.label, s.count, s.precision) for s in shortcuts] == [("urgent", "spam", 5, 1.0)]

        summary = apply_check(store, check, SampleFilter(origin="synthetic"), embedder, make_llm(server, store))
        assert summary.checked == 10 and summary.kept == 10 and summary.corrected == 3 and not summary.rejected
        # five spam items once each, one retry for the voucher and one for the parcel, two more for the lottery
        assert len(seen) == 5 + 1 + 1 + 2
        assert all('"urgent"' in messages[0]["content"] for messages in seen)

        table = store.samples_by_ids(ids).set_index("id")
        assert table.loc[ids[0], "text"] == "You won a cash prize, reply to claim it"
        assert table.loc[ids[1], "text"] == "Your bank account is locked, click the link"
        assert table.loc[ids[2], "text"] == "Claim your free voucher before midnight"
        assert (table.loc[ids, "label"] == [label for _, label in SPAM_ITEMS]).all()  # labels never change
        for index in range(3):
            history = store.sample_history(ids[index])
            assert list(history["field"]) == ["text"] and history["old_value"][0] == SPAM_ITEMS[index][0]
            assert history["actor"][0] == "check:debias"

        voucher = details_of(store, ids[2], "debias")
        assert [step["still_contains"] for step in voucher["attempts"]] == [["urgent"], []]
        assert voucher["shortcuts"][0]["phrase"] == "urgent" and voucher["original"] == SPAM_ITEMS[2][0]
        retries = [messages for messages in seen if len(messages) > 1]  # the voucher's and the parcel's
        assert len(retries) == 2 and all('still contains "urgent"' in m[-1]["content"] for m in retries)
        parcel = details_of(store, ids[3], "debias")
        assert parcel["refused"] == "shortcut_still_present" and len(parcel["attempts"]) == 2
        assert table.loc[ids[3], "text"] == SPAM_ITEMS[3][0] and store.sample_history(ids[3]).empty
        lottery = details_of(store, ids[4], "debias")
        assert lottery["refused"] == "rewrite_unusable" and len(lottery["attempts"][0]["problems"]) == 3
        assert table.loc[ids[4], "text"] == SPAM_ITEMS[4][0]
        for index in range(5, 10):
            assert details_of(store, ids[index], "debias") == {"shortcuts": []}
            assert table.loc[ids[index], "text"] == SPAM_ITEMS[index][0]

        options = json.loads(store.sample_checks(ids[0])["options"][0])
        assert options["min_count"] == 3 and options["threshold"] == 0.9 and options["include_real"] is True


def test_debias_needs_no_llm_when_nothing_is_biased(home: Path, embedder: Embedder) -> None:
    with make_store(home, "clean", ["spam", "ham"], SPAM_REAL, "spam detection", "text message") as store:
        write_samples(store, SPAM_ITEMS[5:])
        summary = apply_check(store, DebiasCheck(), SampleFilter(origin="synthetic"), embedder, None)
        assert summary.checked == 5 and summary.kept == 5 and summary.corrected == 0
