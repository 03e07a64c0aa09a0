"""Code-checked math on real ASDiv rows, with the loopback server writing the programs we choose.

Each question gets a fixed reply: correct code, wrong code, an endless loop, prose without code, code that
crashes or reaches for a file outside its directory. The LLM is only reached through the facade.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from datagen_core.checks import CHECKS, CheckContext, Item
from datagen_core.checks.math import (
    MathCheck,
    MathCheckResult,
    check_items,
    extract_code,
    numbers_match,
    parse_numbers,
    propose_answer,
)
from datagen_core.errors import LLMFatalError
from datagen_core.llm import LLM
from datagen_core.store import Store

from .conftest import loopback_config, make_project, shared_csv
from .loopback_server import LoopbackServer

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the sandbox's limits are Linux's")


def fenced(code: str) -> str:
    return f"Here is the program.\n\n```python\n{code.strip()}\n```\n\nIt prints the answer."


# What the "LLM" writes for the first rows of asdiv_math.csv, by row.
REPLIES: dict[int, str] = {
    0: fenced("start = 54 - 16\nprint(start)"),  # 38 pieces: right
    1: fenced("from fractions import Fraction\nr = Fraction(153 - 72, 72)\nprint(f'{r.numerator}:{r.denominator}')"),
    2: fenced("down = 8 / (40 / 60)\nup = 8 / 1\nprint(f'{(down + up) / 2}; {(down - up) / 2}')"),  # 10; 2: right
    3: fenced("print(7 + 14)"),  # wrong: 21, not 7 arrangements
    4: fenced("total = 75\nwhile True:\n    total += 1\nprint(total)"),  # never ends
    5: "Megan needs about 8 hours, I think. Let me know if you need anything else!",  # no code at all
    6: fenced("import math\nprint(math.ceil(56 / 0))"),  # crashes
    7: fenced("print(open('/etc/passwd').read())"),  # reaches outside its directory
    8: "```\nprint(6 + 5)\n```",  # an untagged block still counts: 11 pieces of mail
    9: fenced("print('2 + 2 + 7 =', 2 + 2 + 7)"),  # 11 bowls: the last number of the line
}


@pytest.fixture(scope="module")
def rows() -> pd.DataFrame:
    return pd.read_csv(shared_csv("asdiv_math.csv"), dtype=str).head(len(REPLIES))


def replier(rows: pd.DataFrame, replies: dict[int, str] = REPLIES) -> Callable[[dict[str, Any]], str]:
    def answer(body: dict[str, Any]) -> str:
        prompt = body["messages"][-1]["content"]
        for index, question in enumerate(rows["question"]):
            if question.strip() in prompt:
                return replies[index]
        return "I do not know this question."

    return answer


def run_check(server: LoopbackServer, items: list[tuple[str, str]], mode: str = "flag", store: Store | None = None,
              **kwargs: Any) -> list[MathCheckResult]:
    llm = LLM.from_config(loopback_config(server), store, use_cache=False, max_in_flight=4, backoff_base_s=0.01,
                          backoff_cap_s=0.02, max_retries=kwargs.pop("max_retries", 2))

    async def go() -> list[MathCheckResult]:
        try:
            return await check_items(llm, items, mode, timeout_s=3.0, cpu_s=1, **kwargs)  # type: ignore[arg-type]
        finally:
            await llm.aclose()

    return asyncio.run(go())


def items_of(rows: pd.DataFrame) -> list[tuple[str, str]]:
    return list(zip(rows["question"], rows["answer"], strict=True))


EXPECTED = {0: "match", 1: "match", 2: "match", 3: "mismatch", 4: "code_failed", 5: "code_failed",
            6: "code_failed", 7: "code_failed", 8: "match", 9: "match"}


def test_flag_mode_statuses_on_asdiv_rows(rows: pd.DataFrame) -> None:
    with LoopbackServer(answer=replier(rows), latency_s=0.05) as server:
        started = time.monotonic()
        results = run_check(server, items_of(rows), "flag")
        elapsed = time.monotonic() - started
        assert server.stats.requests == len(rows)
        assert 1 < server.stats.peak_in_flight <= 4  # concurrent, within the facade's limit
    assert [r.status for r in results] == [EXPECTED[i] for i in range(len(rows))]
    assert all(r.mode == "flag" and r.corrected is None for r in results)  # flag mode never proposes
    assert [r.answer for r in results] == list(rows["answer"])  # and keeps every stated answer

    right, ratio, two, wrong, loop, prose, crash, escape = results[:8]
    assert right.computed == "38" and right.stated == "38 pieces" and right.sandbox_reason == "ok"
    assert ratio.computed == "9:8" and two.computed == "10.0; 2.0"
    assert wrong.computed == "21" and "7 flower arrangements" in wrong.detail
    assert loop.sandbox_reason in ("cpu_limit", "timeout") and loop.code and "while True" in loop.code
    assert prose.code is None and prose.sandbox_reason is None and "no Python code" in prose.detail
    assert crash.sandbox_reason == "error" and "ZeroDivisionError" in crash.detail
    assert escape.sandbox_reason == "forbidden" and "root:" not in (escape.computed or "")
    assert all(r.llm_call_id for r in results)
    assert elapsed < 15  # the endless loop costs its CPU second, not the batch


def test_correct_mode_proposes_only_for_mismatches_whose_code_ran(rows: pd.DataFrame) -> None:
    with LoopbackServer(answer=replier(rows)) as server:
        results = run_check(server, items_of(rows), "correct")
    by_status = {i: r for i, r in enumerate(results)}
    assert by_status[3].status == "mismatch" and by_status[3].corrected == "21 flower arrangements"
    assert by_status[3].answer == "21 flower arrangements"
    for i, result in by_status.items():
        if i != 3:
            assert result.corrected is None, result  # matches stay; failed code never overwrites
            assert result.answer == rows["answer"][i]


def test_wrong_multi_value_and_ratio_answers_are_corrected_in_their_own_form(rows: pd.DataFrame) -> None:
    replies = {**REPLIES, 1: fenced("print(153 / 72)"), 2: fenced("print('12; 4')")}
    with LoopbackServer(answer=replier(rows, replies)) as server:
        ratio, pair = run_check(server, items_of(rows)[1:3], "correct")
    assert ratio.status == "mismatch" and ratio.corrected == "17:8"
    assert pair.status == "mismatch" and pair.corrected == "12 km/hour; 4 km/hour"


def test_a_stated_answer_without_a_number_is_not_sent_to_the_llm() -> None:
    with LoopbackServer(answer=lambda body: fenced("print(1)")) as server:
        (result,) = run_check(server, [("What colour is the sky?", "blue")], "correct")
        assert server.stats.requests == 0
    assert result.status == "no_number" and result.llm_call_id is None and result.corrected is None


def test_a_failed_llm_call_is_one_failed_item_and_a_fatal_one_stops_the_batch(rows: pd.DataFrame) -> None:
    with LoopbackServer(faults=lambda n, _: "500") as server:
        results = run_check(server, items_of(rows)[:2], max_retries=0)
    assert [r.status for r in results] == ["code_failed", "code_failed"]
    assert all("LLM call failed" in r.detail and r.llm_call_id is None for r in results)
    with LoopbackServer(api_key="right") as server, pytest.raises(LLMFatalError):
        run_check(server, items_of(rows)[:2])


def test_llm_calls_are_recorded_in_the_store(home: Path, rows: pd.DataFrame) -> None:
    make_project(home)
    with Store.open(home / "trec.duckdb") as store, LoopbackServer(answer=replier(rows)) as server:
        results = run_check(server, items_of(rows)[:3], store=store)
        recorded = dict(store.cursor().execute("SELECT id, purpose FROM llm_calls").fetchall())
    assert {r.llm_call_id for r in results} <= set(recorded)
    assert set(recorded.values()) == {"math_check"}


def test_the_quality_module_flags_or_corrects_label_and_text_answers(rows: pd.DataFrame) -> None:
    assert CHECKS["math"] is MathCheck
    items = [Item(1, row.answer, row.question) for row in rows.head(4).itertuples()]
    items.append(Item(None, "math", f"{rows['question'][3]}\nAnswer: 7 flower arrangements"))
    with LoopbackServer(answer=replier(rows)) as server:
        llm = LLM.from_config(loopback_config(server), None, use_cache=False)

        async def judge(check: MathCheck) -> list[Any]:
            return await check.check(items, CheckContext(store=None, embedder=None, llm=llm))  # type: ignore[arg-type]

        flagged = asyncio.run(judge(MathCheck(mode="flag", cpu_s=1, timeout_s=3)))
        corrected = asyncio.run(judge(MathCheck(mode="correct", cpu_s=1, timeout_s=3)))
    assert all(v.keep for v in flagged + corrected)  # the math check flags, it never drops
    assert [v.reason for v in flagged] == [None, None, None, "math_mismatch", "math_mismatch"]
    assert all(v.label is None and v.text is None for v in flagged)
    assert corrected[3].reason == "math_corrected" and corrected[3].label == "21 flower arrangements"
    assert corrected[4].label is None and corrected[4].text.endswith("\nAnswer: 21 flower arrangements")
    assert corrected[3].details["status"] == "mismatch" and corrected[3].details["code"] == "print(7 + 14)"
    assert MathCheck(mode="correct").options()["mode"] == "correct"
    with pytest.raises(ValueError):
        MathCheck(mode="overwrite")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------------ helpers
@pytest.mark.parametrize(("text", "values"), [
    ("12 (apples)", ["12"]), ("$1,200", ["1200"]), ("3/4", ["3/4"]), ("9:8", ["9/8"]), ("2 1/2 cups", ["5/2"]),
    ("10 km/hour; 2 km/hour", ["10", "2"]), ("-3.5 degrees", ["-7/2"]), ("25%", ["25"]), ("no number", []),
    ("54 - 16 = 38", ["54", "16", "38"]),
])
def test_numbers_are_parsed_out_of_answers(text: str, values: list[str]) -> None:
    assert [str(n.value) for n in parse_numbers(text)] == values


def test_numbers_match_with_tolerance_order_and_stated_precision() -> None:
    assert numbers_match(parse_numbers("9:8"), [Fraction("1.125")])
    assert numbers_match(parse_numbers("0.3"), [Fraction("0.30000000000000004")])
    assert numbers_match(parse_numbers("3.33 m"), [Fraction("3.3333333")])
    assert numbers_match(parse_numbers("10; 2"), [Fraction(2), Fraction(10)])
    assert numbers_match(parse_numbers("25%"), [Fraction("0.25")])
    assert not numbers_match(parse_numbers("38 pieces"), [Fraction(39)])
    assert not numbers_match(parse_numbers("10; 2"), [Fraction(10)])
    assert propose_answer("3.33 m", parse_numbers("3.33 m"), [Fraction("4.5678")], "") == "4.57 m"


def test_code_is_extracted_robustly() -> None:
    assert extract_code(fenced("print(1)")) == "print(1)"
    two = "```python\nprint('draft')\n```\nBetter:\n```python\nprint(1 + 1)\n```\nOutput:\n```\n2\n```"
    assert extract_code(two) == "print(1 + 1)"
    assert extract_code("```Python3\nprint(2)\n") == "print(2)"  # cut off before the closing fence
    assert extract_code("print(3)") == "print(3)"  # bare code
    assert extract_code("The answer is 5. Please print this page.") is None
    assert extract_code("") is None
