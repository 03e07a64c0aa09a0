"""Self-reflection against a loopback judge: good items stay, bad ones are rewritten, broken answers reject."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from datagen_core.checks import ReflectionCheck
from datagen_core.checks.apply import apply_check
from datagen_core.embed import Embedder
from datagen_core.llm import LLM
from datagen_core.records import NewSample, utcnow
from datagen_core.store import SampleFilter, Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer

ITEMS = {
    "Who painted the Mona Lisa ?": "HUM",  # good at once
    "BAD how far moon": "NUM",  # rewritten once, then good
    "BAD BAD where paris": "LOC",  # the rewrite claims a label the project lacks, then good
    "GARBAGE what is this": "HUM",  # the judge never answers JSON
    "BAD FOREVER who is it": "HUM",  # never good
}


def judge(body: dict[str, Any]) -> str:
    prompt = body["messages"][-1]["content"]
    item = re.search(r"Item: (.*)\nLabel:", prompt)
    if item is None:  # the connection check
        return "OK"
    text = item.group(1)
    if "A reviewer said" in prompt:
        if "BAD BAD" in text:
            return json.dumps({"text": text.replace("BAD BAD ", "FIXED "), "label": "CITY"})
        return json.dumps({"text": text.replace("BAD ", "FIXED ", 1) if "FOREVER" not in text else text,
                           "label": "NUM" if "moon" in text else "LOC" if "paris" in text else "HUM"})
    if text.startswith("GARBAGE"):
        return "I think it is fine, honestly."
    bad = text.startswith("BAD")
    return json.dumps({"reflection": "unclear wording" if bad else "fine", "is_good": not bad})


def write_items(store: Store) -> dict[str, int]:
    ids = store.allocate_sample_ids(len(ITEMS))
    samples = [NewSample(id=i, run_id="r1", label=label, text=text, method="test", parent_ids=(), gene_split=None,
                         prompt="", model="m", sampling={}, raw_response=text, llm_call_id="c", prompt_tokens=0,
                         completion_tokens=0, requested_at=utcnow())
               for i, (text, label) in zip(ids, ITEMS.items(), strict=True)]
    store.write_offspring(samples, [], {}, "none")
    return dict(zip(ITEMS, ids, strict=True))


def test_reflection_keeps_rewrites_and_rejects(home: Path, embedder: Embedder) -> None:
    with Store.open(make_project(home)) as store, LoopbackServer(answer=judge) as server:
        ids = write_items(store)
        llm = LLM.from_config(loopback_config(server), store, use_cache=False, max_retries=0)
        summary = apply_check(store, ReflectionCheck(rounds=3), SampleFilter(origin="synthetic"), embedder, llm)
        assert summary.checked == 5 and summary.kept == 3 and summary.corrected == 2
        assert dict(summary.rejected) == {"judge_unusable": 1, "not_good_after_3_rounds": 1}
        rows = store.samples_by_ids(list(ids.values())).set_index("id")
        assert rows.loc[ids["Who painted the Mona Lisa ?"], "status"] == "pending"
        assert rows.loc[ids["BAD how far moon"], "text"] == "FIXED how far moon"
        assert rows.loc[ids["BAD BAD where paris"], "text"] == "FIXED where paris"
        assert rows.loc[ids["BAD BAD where paris"], "label"] == "LOC"  # the unknown label 'CITY' was refused
        assert rows.loc[ids["GARBAGE what is this"], "status"] == "rejected"
        assert rows.loc[ids["BAD FOREVER who is it"], "status"] == "rejected"

        history = store.sample_history(ids["BAD how far moon"])
        assert list(history["old_value"]) == ["BAD how far moon"] and history["actor"][0] == "check:reflection"
        record = store.sample_checks(ids["BAD BAD where paris"])
        trajectory = json.loads(record["details"][0])["trajectory"]
        assert [step["is_good"] for step in trajectory] == [False, True]
        assert trajectory[0]["unknown_label"] == "CITY" and trajectory[0]["rewrite"] == "FIXED where paris"
        forever = json.loads(store.sample_checks(ids["BAD FOREVER who is it"])["details"][0])
        assert len(forever["trajectory"]) == 3
        garbage = json.loads(store.sample_checks(ids["GARBAGE what is this"])["details"][0])
        assert len(garbage["trajectory"][0]["judge_problems"]) == 3  # retried, then rejected with the reason
        usage = store.cursor().execute(
            "SELECT purpose, count(*) FROM llm_calls GROUP BY purpose ORDER BY purpose").fetchall()
        assert dict(usage)["reflection_judge"] >= 5 and dict(usage)["reflection_rewrite"] >= 2
