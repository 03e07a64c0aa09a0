"""Code-checked math (SPEC §3): the LLM writes Python that computes an item's answer; the sandbox runs it.

Why code: an LLM's arithmetic in prose is unreliable, its programs much less so. The computed number is
compared with the stated answer; a mismatch is flagged, or in `correct` mode the computed answer is
proposed as the correction. The reference implementation ran the code unsandboxed, without a timeout,
and overwrote answers blindly; here the code runs in `datagen_core.checks.sandbox`, and an item whose code
failed (no code, an error, a timeout, no number printed) is never corrected, only reported.

`check_items` is the plain async API; `MathCheck` wraps it as a check (`checks.base`).
"""

from __future__ import annotations

import ast
import asyncio
import math
import os
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from typing import Any, Literal

from pydantic import Field

from datagen_core.checks.base import Check, CheckContext, Item, Verdict
from datagen_core.checks.sandbox import run_python
from datagen_core.config import SamplingParams
from datagen_core.errors import DatagenError, LLMError, LLMFatalError
from datagen_core.llm import LLM
from datagen_core.registry import Options

MathStatus = Literal["match", "mismatch", "code_failed", "no_number"]
Mode = Literal["flag", "correct"]
MATH_MODES: tuple[Mode, ...] = ("flag", "correct")

SYSTEM_PROMPT = "You write short, correct Python 3 programs that solve math word problems."
USER_PROMPT = """Write a Python 3 program that computes the answer to this question and prints it.

Question: {question}

Rules:
- Use only the Python standard library (math, fractions, decimal, itertools); no input(), files or network.
- Compute the answer in code, step by step; do not print a number you worked out in your head.
- The last line the program prints must be the final answer as a bare number (an integer, a decimal, a
  fraction like 3/4 or a ratio like 9:8), without units. If the question asks for several quantities, print
  them all on that last line, separated by "; ", in the order the question asks for them.

Reply with one ```python code block."""

DEFAULT_SAMPLING = SamplingParams(temperature=0.0, max_tokens=768)

# ------------------------------------------------------------------------------------------ numbers
_NUMBER = re.compile(
    r"""
    (?P<sign>(?<![\w.)])-)?
    (?:
        (?P<whole>\d+)\s+(?P<mnum>\d+)\s*/\s*(?P<mden>\d+)(?![\d.])             # mixed: 2 1/2
      | (?P<a>\d+(?:\.\d+)?)(?:(?P<colon>:)|\s*/\s*)(?P<b>\d+(?:\.\d+)?)(?![\d.])    # ratio 9:8, fraction 3/4
      | (?P<num>(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?P<exp>[eE][-+]?\d+)?  # 1,200  3.5  1e6
    )
    (?P<pct>\s*%)?
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Number:
    """One number found in a text: its exact value, how it was written, and where."""

    value: Fraction
    kind: Literal["integer", "decimal", "fraction", "ratio", "percent"]
    decimals: int
    start: int
    end: int


def parse_numbers(text: str) -> list[Number]:
    """Every number in `text`: '12 (apples)' -> 12, '$1,200' -> 1200, '3/4', '9:8' -> 9/8, '2 1/2', '25%'."""
    found: list[Number] = []
    for match in _NUMBER.finditer(text):
        sign = -1 if match["sign"] else 1
        decimals = 0
        try:
            if match["whole"] is not None:
                value = Fraction(int(match["whole"])) + Fraction(int(match["mnum"]), int(match["mden"]))
                kind = "fraction"
            elif match["b"] is not None:
                denominator = Fraction(match["b"])
                if denominator == 0:
                    continue
                value = Fraction(match["a"]) / denominator
                kind = "ratio" if match["colon"] else "fraction"
            else:
                digits = match["num"].replace(",", "")
                value = Fraction(digits + (match["exp"] or ""))
                decimals = 0 if match["exp"] else len(digits.partition(".")[2])
                kind = "decimal" if decimals or match["exp"] or "." in digits else "integer"
        except (ValueError, ZeroDivisionError, OverflowError):
            continue
        if match["pct"]:
            kind = "percent"
        found.append(Number(sign * value, kind, decimals, match.start(), match.end()))
    return found


def _close(stated: Number, computed: Fraction) -> bool:
    """Equal up to float noise, or to the precision the stated answer was written with."""
    candidates = [computed]
    if stated.kind == "percent":
        candidates.append(computed * 100)  # 25% stated, 0.25 computed
    for value in candidates:
        if math.isclose(float(value), float(stated.value), rel_tol=1e-6, abs_tol=1e-9):
            return True
        if stated.decimals and round(value, stated.decimals) == stated.value:
            return True
    return False


def numbers_match(stated: Sequence[Number], computed: Sequence[Fraction]) -> bool:
    """Same count and pairwise close, in order or in any order."""
    if len(stated) != len(computed) or not stated:
        return False
    if all(_close(s, c) for s, c in zip(stated, computed, strict=True)):
        return True
    remaining = list(computed)
    for s in stated:
        hit = next((i for i, c in enumerate(remaining) if _close(s, c)), None)
        if hit is None:
            return False
        remaining.pop(hit)
    return True


def computed_numbers(stdout: str, wanted: int) -> tuple[str | None, list[Fraction]]:
    """The last printed line, and the last `wanted` numbers of the output (the last line first)."""
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    if not lines:
        return None, []
    values = [n.value for n in parse_numbers(lines[-1])]
    if len(values) < wanted:
        values = [n.value for line in lines for n in parse_numbers(line)]
    return lines[-1], values[-wanted:] if wanted else []


def format_like(value: Fraction, stated: Number) -> str:
    """`value` written the way the stated number was (ratio, fraction, percent, decimals, integer)."""
    if stated.kind == "ratio":
        approx = value.limit_denominator(1000)
        return f"{approx.numerator}:{approx.denominator}"
    if stated.kind == "percent" and abs(value) <= 1 < abs(stated.value):
        value *= 100  # the program printed a share, the answer is written in percent
    if value.denominator == 1:
        return str(value.numerator)
    if stated.kind == "fraction":
        approx = value.limit_denominator(10**6)
        return f"{approx.numerator}/{approx.denominator}"
    if stated.decimals:
        return f"{float(value):.{stated.decimals}f}"
    return f"{float(value):.4f}".rstrip("0").rstrip(".")


def propose_answer(stated_text: str, stated: Sequence[Number], computed: Sequence[Fraction], line: str) -> str:
    """The stated answer with its numbers replaced by the computed ones, so units and wording stay."""
    if len(stated) != len(computed):
        return line
    pieces, last = [], 0
    for number, value in zip(stated, computed, strict=True):
        pieces += [stated_text[last : number.start], format_like(value, number)]
        last = number.end
        if number.kind == "percent":
            pieces.append("%")
    pieces.append(stated_text[last:])
    return "".join(pieces)


# --------------------------------------------------------------------------------------------- code
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+.-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(reply: str) -> str | None:
    """The program in an LLM reply: the last ```python block that prints, else the last fenced block, else
    the whole reply when it parses as Python and prints something; None when there is no code."""
    blocks = [(language.lower(), body.strip()) for language, body in _FENCE.findall(reply)]
    blocks = [(language, body) for language, body in blocks if body]
    python = [body for language, body in blocks if language in ("python", "python3", "py")]
    for candidates in (python, [body for _, body in blocks]):
        printing = [body for body in candidates if "print" in body]
        if printing:
            return printing[-1]
        if candidates:
            return candidates[-1]
    text = reply.strip()
    if "print" in text and len(text) < 20_000:
        try:
            ast.parse(text)  # parsing runs nothing; the text is bounded by the model's max_tokens
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            return None
        return text
    return None


# -------------------------------------------------------------------------------------------- check
@dataclass(frozen=True)
class MathCheckResult:
    """The outcome for one item; `corrected` is only set in `correct` mode, for a mismatch whose code ran."""

    question: str
    stated: str
    status: MathStatus
    mode: Mode = "flag"
    computed: str | None = None
    corrected: str | None = None
    code: str | None = None
    sandbox_reason: str | None = None
    detail: str = ""
    llm_call_id: str | None = None

    @property
    def answer(self) -> str:
        """The answer to keep: the proposed correction if there is one, else the stated answer."""
        return self.corrected if self.corrected is not None else self.stated

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def math_messages(question: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM_PROMPT},
            {"role": "user", "content": USER_PROMPT.format(question=question.strip())}]


async def check_items(
    llm: LLM,
    items: Sequence[tuple[str, str]],
    mode: Mode = "flag",
    *,
    sampling: SamplingParams = DEFAULT_SAMPLING,
    timeout_s: float = 5.0,
    cpu_s: int = 3,
    memory_mb: int = 256,
    max_sandboxes: int | None = None,
) -> list[MathCheckResult]:
    """Check (question, stated answer) pairs concurrently; one result per item, in order.

    LLM calls are bounded by the facade's own in-flight limit, sandboxes by `max_sandboxes` (default: the
    number of cores, at most 4). A failed LLM call or program makes that item `code_failed`, never the
    batch; only an LLMFatalError (bad key, unreachable endpoint) stops everything.
    """
    if mode not in MATH_MODES:
        raise ValueError(f"mode must be one of {MATH_MODES}, not {mode!r}")
    slots = asyncio.Semaphore(max_sandboxes or min(4, os.cpu_count() or 1))

    async def check_one(question: str, stated_text: str) -> MathCheckResult:
        base = {"question": question, "stated": stated_text, "mode": mode}
        stated = parse_numbers(stated_text)
        if not stated:
            return MathCheckResult(status="no_number", detail="the stated answer has no number to check", **base)
        try:
            completion = await llm.complete(math_messages(question), sampling=sampling, purpose="math_check")
        except LLMFatalError:
            raise
        except LLMError as exc:
            return MathCheckResult(status="code_failed", detail=f"the LLM call failed: {exc}", **base)
        call_id = completion.call.id
        code = extract_code(completion.text)
        if code is None:
            return MathCheckResult(status="code_failed", detail="the reply has no Python code",
                                   llm_call_id=call_id, **base)
        async with slots:
            ran = await asyncio.to_thread(run_python, code, timeout_s=timeout_s, cpu_s=cpu_s, memory_mb=memory_mb)
        common = {"code": code, "sandbox_reason": ran.reason, "llm_call_id": call_id, **base}
        if not ran.ok:
            return MathCheckResult(status="code_failed", computed=ran.answer, detail=ran.detail, **common)
        line, values = computed_numbers(ran.stdout, len(stated))
        if len(values) < len(stated):
            return MathCheckResult(status="code_failed", computed=line,
                                   detail=f"the program printed {len(values)} number(s), {len(stated)} expected",
                                   **common)
        if numbers_match(stated, values):
            return MathCheckResult(status="match", computed=line, **common)
        corrected = propose_answer(stated_text, stated, values, line or "") if mode == "correct" else None
        return MathCheckResult(status="mismatch", computed=line, corrected=corrected,
                               detail=f"stated {stated_text!r}, computed {line!r}", **common)

    tasks = [asyncio.ensure_future(check_one(question, answer)) for question, answer in items]
    try:
        return list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise


# ------------------------------------------------------------------------------- quality-module form
_ANSWER_LINE = re.compile(r"^\s*(?:final\s+)?answer\s*[:=]\s*(?P<answer>.+?)\s*$", re.IGNORECASE | re.MULTILINE)


def split_item(item: Item) -> tuple[str, str, bool]:
    """(question, stated answer, answer is in the text?): an 'Answer: ...' line in the text wins over the label."""
    found = list(_ANSWER_LINE.finditer(item.text))
    if found:
        last = found[-1]
        return item.text[: last.start()].strip(), last["answer"], True
    return item.text, item.label, False


class MathOptions(Options):
    mode: Mode = Field(default="flag", title="Math mismatches", description="Flag mismatches, or "
                       "correct them.", json_schema_extra={"labels": {"flag": "flag", "correct": "correct"}})


class MathCheck(Check):
    """Keeps every item; flags mismatches, or proposes the computed answer as a correction (`mode="correct"`)."""

    name = "math"
    title = "Code-checked math"
    summary = "A sandboxed program the LLM writes computes each answer; mismatches are flagged or corrected."
    Options = MathOptions

    def __init__(self, mode: Mode = "flag", timeout_s: float = 5.0, cpu_s: int = 3, memory_mb: int = 256) -> None:
        if mode not in MATH_MODES:
            raise ValueError(f"mode must be one of {MATH_MODES}, not {mode!r}")
        self.mode: Mode = mode
        self.timeout_s = timeout_s
        self.cpu_s = cpu_s
        self.memory_mb = memory_mb

    def options(self) -> dict[str, Any]:
        return {"mode": self.mode, "timeout_s": self.timeout_s, "cpu_s": self.cpu_s, "memory_mb": self.memory_mb}

    async def check(self, items: Sequence[Item], context: CheckContext) -> list[Verdict]:
        if context.llm is None:
            raise DatagenError("the math check needs an LLM to write the programs")
        split = [split_item(item) for item in items]
        results = await check_items(context.llm, [(q, a) for q, a, _ in split], self.mode, timeout_s=self.timeout_s,
                                    cpu_s=self.cpu_s, memory_mb=self.memory_mb)
        answer_in_text = [in_text for _, _, in_text in split]
        return [self._verdict(item, in_text, result)
                for item, in_text, result in zip(items, answer_in_text, results, strict=True)]

    @staticmethod
    def _verdict(item: Item, answer_in_text: bool, result: MathCheckResult) -> Verdict:
        details = result.to_dict()
        if result.status == "match":
            return Verdict(keep=True, details=details)
        if result.status == "no_number":
            return Verdict(keep=True, reason="math_no_number", details=details)
        if result.status == "code_failed":
            return Verdict(keep=True, reason="math_unchecked", details=details)
        if result.corrected is None:
            return Verdict(keep=True, reason="math_mismatch", details=details)
        if answer_in_text:
            last = list(_ANSWER_LINE.finditer(item.text))[-1]
            text = item.text[: last.start("answer")] + result.corrected + item.text[last.end("answer") :]
            return Verdict(keep=True, reason="math_corrected", text=text, details=details)
        return Verdict(keep=True, reason="math_corrected", label=result.corrected, details=details)


__all__ = ["MATH_MODES", "MathCheck", "MathCheckResult", "Number", "check_items", "extract_code", "math_messages",
           "numbers_match", "parse_numbers", "propose_answer"]
