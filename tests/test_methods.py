"""The baseline generation methods of SPEC §2 (zero-shot, one/few-shot, zero-shot topic, AttrPrompt) end to end
against the loopback server: exact targets, prompt shapes, what each sample records, proposals, the CLI."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from datagen_core.config import RunConfig, SamplingParams
from datagen_core.embed import Embedder
from datagen_core.engine.progress import RunObserver
from datagen_core.engine.runner import run_generation
from datagen_core.engine.runs import start_run
from datagen_core.errors import DatagenError, LLMFatalError
from datagen_core.methods import METHODS, MethodContext, make_method, prepare_run_config
from datagen_core.methods.few_shot import FewShotOptions
from datagen_core.methods.topic import TopicOptions
from datagen_core.proposals.values import propose_attribute_values, propose_topics, save_values
from datagen_core.store import Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer, deterministic_text
from .test_cli import run_cli

SAMPLING = SamplingParams(max_tokens=64)
LABELS = ("HUM", "LOC", "NUM")
GENES = ("length", "subtopic", "style", "wh-word")


def config(per_label: int, method: str, **kwargs: Any) -> RunConfig:
    return RunConfig(per_label=per_label, seed=7, sampling=SAMPLING, method=method, **kwargs)


def description(label: str) -> str:
    return f"a question whose answer is of type {label}"


def asked(body: dict[str, Any]) -> tuple[str, str]:
    """The attribute and the real text a proposal question is about."""
    shown, question = body["messages"][-1]["content"].split("\n")
    attribute = re.fullmatch(r"What is the (.+?)(?: \(.*\))? of this .+\? Answer in 1 to 3 words\.", question)
    assert attribute and ": " in shown, body["messages"][-1]["content"]
    return attribute.group(1), shown.split(": ", 1)[1]


def phrase_for(attribute: str, text: str) -> str:
    """The loopback's answer about a text: the attribute and the text's longest word (so it can be traced)."""
    return f"{attribute} of {max(re.findall(r'[A-Za-z]+', text), key=len)}"


def proposals_answer(body: dict[str, Any]) -> str:
    """Structured requests (they carry a response_format) are proposal questions about one real text."""
    if not body.get("response_format"):
        return deterministic_text(body["messages"], body.get("seed"))
    attribute, text = asked(body)
    return json.dumps({attribute: phrase_for(attribute, text)})


def generate(home: Path, embedder: Embedder, run_config: RunConfig, *, genes: bool = True,
             answer: Callable[[dict[str, Any]], str] = proposals_answer, propose: str = "",
             in_flight: int = 4) -> tuple[Store, str]:
    """A project, optional proposals, then one run to its targets; returns the open store and the run id."""
    store = Store.open(make_project(home, genes=genes))
    with LoopbackServer(answer=answer, max_requests=2000) as server:
        llm_config = loopback_config(server, max_in_flight=in_flight)
        if propose == "topics":
            save_values(store, "topics", propose_topics(store, llm_config, count=5), "llm")
        elif propose == "attributes":
            save_values(store, "attributes", propose_attribute_values(store, llm_config, count=4), "llm")
        run_config = prepare_run_config(store, run_config)
        run_id = start_run(store, run_config, llm_config)
        stop = threading.Event()  # a method that only ever gets duplicates would otherwise ask forever
        deadline = threading.Timer(60, stop.set)
        deadline.start()
        try:
            summary = run_generation(store, llm_config, run_id, embedder=embedder, backoff_base_s=0.01, stop=stop)
        finally:
            deadline.cancel()
    assert summary.status == "completed", f"the run did not reach its targets: {store.kept_counts(run_id)}"
    return store, run_id


def prompt_lines(prompt: str, label: str) -> list[str]:
    """Check the frame every method shares and return the lines between it."""
    lines = prompt.splitlines()
    assert lines[0] == "You need to generate synthetic data for the question type classification task."
    assert lines[-2:] == [f"Category: {label}", "Text:"]
    assert f"1. it must be about {description(label)};" in lines
    return lines


def test_registry_matches_the_config_literal() -> None:
    assert set(METHODS) == {"genetic", "zero_shot", "few_shot", "topic", "attrprompt", "datagen"}
    with pytest.raises(ValueError, match="method"):
        RunConfig(per_label=1, seed=1, sampling=SAMPLING, method="evolution")  # type: ignore[arg-type]


def test_zero_shot_reaches_exact_targets_with_one_plain_prompt_and_distinct_answers(
    home: Path, embedder: Embedder
) -> None:
    store, run_id = generate(home, embedder, config(8, "zero_shot"), genes=False)
    with store:
        assert store.kept_counts(run_id) == {"HUM": 8, "LOC": 8, "NUM": 8}
        assert store.filtered_counts(run_id) == {}  # a repeated prompt still gets a fresh answer each time
        rows = store.samples(run_id=run_id)
        assert set(rows["method"]) == {"zero_shot"} and store.run(run_id).gene_set_version is None
        for label in LABELS:
            prompts = set(rows[rows["label"] == label]["prompt"])
            assert len(prompts) == 1  # SimPrompt: the same instruction every call
            lines = prompt_lines(prompts.pop(), label)
            assert lines[1] == f"Write a question of the '{label}' category. Requirements:"
            assert not any(line.startswith("Example") for line in lines)
        assert all(len(p) == 0 for p in rows["parent_ids"]) and rows["gene_split"].isna().all()
        assert all(json.loads(d) == {} for d in rows["details"])
        indexes = store.cursor().execute(
            "SELECT DISTINCT json_extract_string(params, '$.sample_index') FROM llm_calls WHERE run_id = ?", [run_id]
        ).fetchall()
        assert len(indexes) == 24 and all(i[0].startswith("seed:7:draw:") for i in indexes)


def test_zero_shot_with_the_same_seed_replays_from_the_cache(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home, genes=False)) as store, LoopbackServer() as server:
        llm_config = loopback_config(server, max_in_flight=1)
        texts = []
        for _ in range(2):
            run_id = start_run(store, config(3, "zero_shot"), llm_config)
            run_generation(store, llm_config, run_id, embedder=embedder)
            texts.append(sorted(store.samples(run_id=run_id)["text"]))
        assert texts[0] == texts[1] and store.run_usage(run_id)["cached_calls"] == 9


@pytest.mark.parametrize("k", [1, 3, 5])
def test_few_shot_shows_k_fresh_real_examples_of_the_label(home: Path, embedder: Embedder, k: int) -> None:
    store, run_id = generate(home, embedder, config(6, "few_shot", options=FewShotOptions(k=k)), genes=False)
    with store:
        assert store.kept_counts(run_id) == {"HUM": 6, "LOC": 6, "NUM": 6}
        real = store.real_examples()
        real_label = dict(zip(real["id"], real["label"], strict=True))
        real_text = dict(zip(real["id"], real["text"], strict=True))
        shown_sets = set()
        for row in store.samples(run_id=run_id).itertuples():
            parents = [int(p) for p in row.parent_ids]
            details = json.loads(row.details)
            assert details == {"example_ids": parents, "k": k} and len(set(parents)) == k
            assert all(real_label[p] == row.label for p in parents)  # real seeds of the same label only
            lines = prompt_lines(row.prompt, row.label)
            examples = [line for line in lines if line.startswith("Example ")]
            assert examples == [f"Example {i}: {real_text[p]}" for i, p in enumerate(parents, start=1)]
            assert lines[k + 1].endswith("Write a new question of the same category. Requirements:")
            assert "2. it must be different from every example;" in lines
            shown_sets.add((row.label, tuple(sorted(parents))))
        assert len(shown_sets) > 3  # examples are drawn afresh for each call


def test_few_shot_with_more_shots_than_seeds_shows_every_seed_and_never_an_offspring(home: Path) -> None:
    from datagen_core.store import PopulationMember

    with Store.open(make_project(home, genes=False)) as store:
        context = MethodContext(store.project(), store.labels(), None, config(5, "few_shot",
                                                                               options=FewShotOptions(k=10)))
        method = make_method(context, np.random.default_rng(0))
        seeds = [PopulationMember(int(r.id), r.text, "h", "real") for r in store.real_examples("HUM").itertuples()]
        method.observe("HUM", [*seeds, PopulationMember(999, "an offspring", "h2", "synthetic")], np.zeros((7, 2)))
        request = method.next_request("HUM")
        assert request is not None and sorted(request.parent_ids) == sorted(s.id for s in seeds)
        assert request.details["k"] == 6 and "an offspring" not in request.prompt
        assert method.next_request("LOC") is None  # nothing observed for that label


def test_topic_proposals_then_a_topic_run_records_the_topic_of_each_sample(home: Path, embedder: Embedder) -> None:
    store, run_id = generate(home, embedder, config(10, "topic"), propose="topics")
    with store:
        stored = store.value_set("topics")
        assert stored is not None and stored.source == "llm"
        for label in LABELS:  # one topic per real text of the label (5 of its 6), each traceable to its text
            from_texts = {phrase_for("topic", text) for text in store.real_examples(label)["text"]}
            assert len(stored.items[label]) == 5 and set(stored.items[label]) <= from_texts
        recorded = store.run(run_id).config.options
        assert recorded == TopicOptions(version=stored.version, topics=stored.items)  # the run keeps its own copy
        assert store.kept_counts(run_id) == {"HUM": 10, "LOC": 10, "NUM": 10}
        used: dict[str, set[str]] = {lb: set() for lb in LABELS}
        for row in store.samples(run_id=run_id).itertuples():
            details = json.loads(row.details)
            assert details["topics_version"] == stored.version and details["topic"] in stored.items[row.label]
            lines = prompt_lines(row.prompt, row.label)
            assert lines[1] == f"Write a question of the '{row.label}' category about this topic: {details['topic']}." \
                " Requirements:"
            assert len(row.parent_ids) == 0
            used[row.label].add(details["topic"])
        assert all(len(topics) > 1 for topics in used.values())  # each call samples a topic
        purposes = store.cursor().execute("SELECT purpose, count(*) FROM llm_calls GROUP BY purpose").fetchall()
        assert dict(purposes)["topics"] == 15  # one proposal call per text asked about


def test_topic_run_without_topics_fails_clearly_before_anything_is_recorded(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home)) as store:
        order = [lb.name for lb in store.labels()]
        with pytest.raises(DatagenError, match=re.escape(f"needs topics for label(s) {order}: run `datagen topics "
                                                         "propose trec`")):
            prepare_run_config(store, config(2, "topic"))
        save_values(store, "topics", {"HUM": ["sports people", "inventors"]}, "user")
        with pytest.raises(DatagenError, match=re.escape(str([lb for lb in order if lb != "HUM"]))):
            prepare_run_config(store, config(2, "topic"))
        prepared = prepare_run_config(store, config(2, "topic", labels=("HUM",)))  # a run of HUM only is fine
        assert prepared.options.topics == {"HUM": ("sports people", "inventors")}
        assert store.runs() == []
        # starting a run prepares its config: the same advice, and still no run recorded
        with LoopbackServer() as server, pytest.raises(DatagenError, match="datagen topics propose trec"):
            start_run(store, config(2, "topic"), loopback_config(server))
        assert store.runs() == []


def test_proposals_retry_unusable_answers_then_fail_clearly(home: Path) -> None:
    unusable = ["not json at all", '{"topic": 1}', '{"topics": ["a", "b"]}', '{"topic": "<topic>"}',
                '{"topic": "topic"}', '{"topic": "HUM"}', '{"topic": "angry"}', '{"topic": "the history of"}',
                '{"topic": "a whole sentence that never seems to stop"}']
    answers = iter(unusable)

    def flaky(body: dict[str, Any]) -> str:
        return next(answers) if body.get("response_format") else "OK"

    def once_bad(body: dict[str, Any]) -> str:
        """The first answer about each text is cut off, the retry is usable."""
        if not body.get("response_format"):
            return "OK"
        attribute, text = asked(body)
        seen.setdefault(text, 0)
        seen[text] += 1
        return json.dumps({attribute: "history of the" if seen[text] == 1 else phrase_for(attribute, text)})

    seen: dict[str, int] = {}
    with Store.open(make_project(home)) as store:
        with LoopbackServer(answer=flaky) as server, pytest.raises(  # 3 texts x 3 tries, every answer unusable
            DatagenError, match=r"fewer than two usable topics for label 'HUM' \(.+\); set them yourself with "
                                r"`datagen topics set trec HUM TOPIC...`"
        ):
            propose_topics(store, loopback_config(server), count=3, labels=["HUM"])
        assert next(answers, None) is None  # every text was asked until its tries ran out
        with LoopbackServer(answer=once_bad) as server:
            proposed = propose_topics(store, loopback_config(server), count=3, labels=["LOC"])
        texts = store.real_examples("LOC")["text"]
        assert len(proposed["LOC"]) == 3 and set(proposed["LOC"]) <= {phrase_for("topic", t) for t in texts}
        assert sorted(seen.values()) == [2, 2, 2]  # each of the 3 texts asked twice
        with LoopbackServer(answer=lambda b: '{"length": "short"}' if b.get("response_format") else "OK") as server:
            with pytest.raises(DatagenError, match=r"fewer than two usable values for attribute 'length' \(only one "
                                                   r"distinct phrase: \['short'\]\)"):
                propose_attribute_values(store, loopback_config(server), attributes=["length"], attempts=2)
            with pytest.raises(DatagenError, match="unknown label"):
                propose_topics(store, loopback_config(server), labels=["NOPE"])
        assert store.value_sets("topics") == []  # nothing saved: the caller saves


def test_proposal_phrases_must_be_short_finished_and_not_copied_from_the_prompt() -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from datagen_core.llm.embedded import schema_grammar
    from datagen_core.proposals.values import PHRASE_PATTERN, describe_messages, phrase_model

    model = phrase_model("wh-word")
    schema = model.model_json_schema()
    assert schema["required"] == ["wh-word"] and schema["properties"]["wh-word"]["pattern"] == PHRASE_PATTERN
    context = {"echoes": {"wh-word", "hum", "question", "angry"}, "text": "Who was the first American in space ?"}

    def check(phrase: object) -> str:
        return model.model_validate({"wh-word": phrase}, context=context).phrase

    assert check("  Who \n ") == "Who" and check("space travel.") == "space travel"
    assert check("U.S. presidents (1789-1850)") == "U.S. presidents (1789-1850)"  # an endpoint's phrase may be richer
    for bad in ("<value>", "...", "", "Wh-word", "HUM", "Angry", "history of the", "Who was the first",
                "one two three four five six seven", 3):
        with pytest.raises(ValueError):
            check(bad)
    # the embedded model is held to the pattern by a grammar; a schema llama.cpp cannot follow fails loudly
    assert "[A-Za-z0-9'.-]" in json_schema_to_gbnf(json.dumps(schema))
    with pytest.raises(LLMFatalError, match="cannot follow this JSON schema"):
        schema_grammar(json.dumps({"type": "object", "properties": {"a": {"$ref": "https://example.com/x"}}}))
    messages = describe_messages("question", "wh-word", "its first word", "Who was it ?")
    assert messages[-1]["content"] == ("Question: Who was it ?\nWhat is the wh-word (its first word) of this "
                                       "question? Answer in 1 to 3 words.")
    assert [m["role"] for m in messages[1:-1]] == ["user", "assistant"] * 5  # worked exchanges from other tasks


def test_attrprompt_samples_one_value_per_attribute(home: Path, embedder: Embedder) -> None:
    store, run_id = generate(home, embedder, config(8, "attrprompt"), propose="attributes")
    with store:
        stored = store.value_set("attributes")
        assert stored is not None and set(stored.items) == set(GENES) and stored.gene_set_version is None
        real = store.real_examples()
        by_label = [real[real["label"] == lb]["text"].tolist() for lb in LABELS]
        for name, values in stored.items.items():  # 4 texts spread over the labels, one value each
            assert len(values) == 4 and set(values) <= {phrase_for(name, t) for t in real["text"]}
            assert len({lb for lb, texts in zip(LABELS, by_label, strict=True)
                        if any(phrase_for(name, t) in values for t in texts)}) == 3
        assert store.kept_counts(run_id) == {"HUM": 8, "LOC": 8, "NUM": 8}
        assert store.run(run_id).config.options.values == stored.items
        chosen_values: set[str] = set()
        for row in store.samples(run_id=run_id).itertuples():
            details = json.loads(row.details)
            assert details["attributes_version"] == stored.version and set(details["attributes"]) == set(GENES)
            lines = prompt_lines(row.prompt, row.label)
            for name, value in details["attributes"].items():
                assert value in stored.items[name]
                assert any(re.fullmatch(rf"\d+\. its '{name}' must be: {value};", line) for line in lines)
                chosen_values.add(value)
            assert len(row.parent_ids) == 0
        assert len(chosen_values) > len(GENES)  # values vary between calls


def test_attrprompt_needs_values_and_proposals_need_genes(home: Path) -> None:
    with Store.open(make_project(home, "nogenes", genes=False)) as store:
        with pytest.raises(DatagenError, match="attributes propose nogenes"):
            prepare_run_config(store, config(2, "attrprompt"))
        with LoopbackServer(answer=proposals_answer) as server, pytest.raises(DatagenError, match="no genes"):
            propose_attribute_values(store, loopback_config(server))
        save_values(store, "attributes", {"tone": ["casual", "urgent"]}, "user")  # typed values need no genes
        assert prepare_run_config(store, config(2, "attrprompt")).options.values == {"tone": ("casual", "urgent")}


def test_value_sets_are_versioned_edits(home: Path) -> None:
    with Store.open(make_project(home)) as store:
        assert store.value_sets("topics") == [] and store.value_set("topics") is None
        first = save_values(store, "topics", {"HUM": [" inventors ", "Inventors", "", "athletes"], "LOC": ["x"]},
                            "llm")
        assert first.version == 1 and first.items == {"HUM": ("inventors", "athletes"), "LOC": ("x",)}
        second = save_values(store, "topics", {"LOC": []}, "user", note="cleared LOC")
        assert second.version == 2 and second.items == {"HUM": ("inventors", "athletes")}
        assert store.value_set("topics", 1) == first and store.value_set("attributes") is None
        with pytest.raises(DatagenError, match="no topics version 9"):
            store.value_set("topics", 9)


def test_cli_topics_attributes_and_run_method(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_project(home)
    with LoopbackServer(answer=proposals_answer) as server:
        endpoint = ["--base-url", server.base_url, "--model", "loopback"]
        code, out, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--method", "topic", *endpoint)
        assert code == 1 and "datagen topics propose trec" in err and err.count("\n") == 1
        code, out, err = run_cli(capsys, home, "topics", "propose", "trec", "--count", "3", *endpoint)
        assert code == 0, err
        assert re.search(r"HUM: topic of \w+; topic of \w+; topic of \w+\n", out), out
        code, out, err = run_cli(capsys, home, "topics", "set", "trec", "NUM", "dates", "prices")
        assert code == 0 and "version 2" in out and "NUM: dates; prices" in out
        assert run_cli(capsys, home, "topics", "set", "trec", "NOPE", "x")[2].startswith("error: unknown label")
        code, out, _ = run_cli(capsys, home, "topics", "list", "trec", "--all")
        assert "version 1" in out and "version 2" in out
        code, out, err = run_cli(capsys, home, "attributes", "propose", "trec", "--count", "2", *endpoint)
        assert code == 0 and re.search(r"wh-word: wh-word of \w+; wh-word of \w+\n", out), err
        code, out, err = run_cli(capsys, home, "attributes", "set", "trec", "STYLE", "terse", "chatty")
        assert code == 0 and "style: terse; chatty" in out and "STYLE" not in out
        for method, extra in (("topic", []), ("attrprompt", []), ("zero_shot", []), ("few_shot", ["--shots", "1"])):
            code, out, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--method", method, *extra,
                                     *endpoint)
            assert code == 0, err
            assert f": {method}, 2 per label" in out and "6 new offspring" in out
        code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--method", "magic", *endpoint)
        assert code == 1 and "--method must be one of genetic, zero_shot, few_shot, topic, attrprompt" in err
        code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--shots", "3", *endpoint)
        assert code == 1 and "--shots applies to --method few_shot only" in err
    with Store.open(home / "trec.duckdb") as store:
        runs = {run.method: run for run in store.runs()}
        assert list(runs) == ["topic", "attrprompt", "zero_shot", "few_shot"]
        assert runs["topic"].config.options.version == 2 and runs["topic"].config.options.topics["NUM"] == (
            "dates", "prices")
        assert runs["attrprompt"].config.options.values["style"] == ("terse", "chatty")
        assert runs["few_shot"].config.options.k == 1
        few = store.samples(run_id=runs["few_shot"].id)
        assert all(len(p) == 1 for p in few["parent_ids"])
        topics = store.samples(run_id=runs["topic"].id).query("label == 'NUM'")["details"].map(json.loads)
        assert {d["topic"] for d in topics} <= {"dates", "prices"}


def test_resume_keeps_the_topics_the_run_started_with(home: Path, embedder: Embedder) -> None:
    stop = threading.Event()

    class StopAtOnce(RunObserver):
        def on_batch(self, samples: object, progress: object) -> None:
            stop.set()

    with Store.open(make_project(home)) as store, LoopbackServer() as server:
        llm_config = loopback_config(server, max_in_flight=2)
        save_values(store, "topics", {lb: [f"{lb} old a", f"{lb} old b"] for lb in LABELS}, "user")
        run_id = start_run(store, prepare_run_config(store, config(4, "topic")), llm_config)
        run_generation(store, llm_config, run_id, embedder=embedder, observer=StopAtOnce(), stop=stop)
        save_values(store, "topics", {lb: [f"{lb} new"] for lb in LABELS}, "user")  # edited meanwhile
        assert store.run(run_id).status == "interrupted"
        run_generation(store, llm_config, run_id, embedder=embedder)
        assert store.kept_counts(run_id) == {"HUM": 4, "LOC": 4, "NUM": 4}
        topics = {json.loads(d)["topic"] for d in store.samples(run_id=run_id)["details"]}
        assert topics and all(" old " in t for t in topics)


def test_baseline_prompts_carry_the_users_constraints_and_skip_a_missing_description(home: Path) -> None:
    from datagen_core.config import Gene

    with Store.open(make_project(home, genes=False)) as store:
        store.set_label_description("HUM", "")
        gene_set = store.add_gene_set([Gene(name="tone")], "user", constraints=["under 20 words", "no names"])
        context = MethodContext(store.project(), store.labels(), gene_set, config(1, "zero_shot"))
        request = make_method(context, np.random.default_rng(0)).next_request("HUM")
        assert request is not None
        assert request.prompt.splitlines()[1:] == [
            "Write a question of the 'HUM' category. Requirements:",
            "1. it must respect this constraint: under 20 words;",
            "2. it must respect this constraint: no names;",
            "Category: HUM",
            "Text:",
        ]
        assert request.messages[0]["role"] == "system" and request.messages[-1]["content"] == request.prompt
