"""Degenerate samples: generated texts that must never count towards a target, whatever the method.

A model that does not follow a prompt answers with nothing, one word, a label's own name, a piece of the
instruction or a copy of an example it was shown. Such an answer passes the format filters (it is not empty
markup, not a refusal, not too long), so without this check it would be stored, bred from and exported as a
sample. `degenerate_reason` names what is wrong with a text (None when nothing is); the run loop stores the
text as filtered with that reason and asks again, so targets stay exact.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from datagen_core.config import Label
from datagen_core.records import folded_words

#: Every reason `degenerate_reason` returns, in the order the rules are tried.
REASONS = ("empty", "label_name", "single_token", "source_copy", "instruction_copy", "too_short")

#: A text of at least this many words is an echo of the instruction when word n-grams of this length that it
#: shares with the instruction cover more than COPY_SHARE of its words; a shorter one when the instruction holds
#: it whole. Genuine texts share at most a stock phrase with a prompt (see tests/test_validity.py).
COPY_NGRAM = 4
COPY_SHARE = 0.5

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"  # scripts written without spaces between words
_TOKEN = re.compile(rf"[{_CJK}]|[^\s{_CJK}]+")
_HAS_WORD = re.compile(r"\w")


def word_count(text: str) -> int:
    """Whitespace-separated words holding a letter or digit ("I'm" is one word, "..." none); a Chinese or
    Japanese character counts as one word, since those scripts put no spaces between words."""
    return sum(1 for token in _TOKEN.findall(text) if _HAS_WORD.search(token))


def instruction_text(messages: Sequence[Mapping[str, str]], sources: Sequence[str]) -> str:
    """What the model was told (its system and user turns) without the example texts it was shown: a copy of
    an example is a `source_copy`, and an example's own words must not make a text look like an echo."""
    told = "\n".join(m["content"] for m in messages if m.get("role") != "assistant")
    for source in sorted({s for s in sources if s.strip()}, key=len, reverse=True):
        told = re.sub(rf"(?<!\w){re.escape(source.strip())}(?!\w)", "\n", told)
    return told


def _echoes(words: Sequence[str], told: Sequence[str]) -> bool:
    """Whether the text's (folded) words are a stretch of the instruction's, or mostly made of its phrases."""
    n = COPY_NGRAM
    if len(words) < n:
        return any(list(told[i : i + len(words)]) == list(words) for i in range(len(told) - len(words) + 1))
    phrases = {tuple(told[i : i + n]) for i in range(len(told) - n + 1)}
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        if tuple(words[i : i + n]) in phrases:
            covered[i : i + n] = [True] * n
    return sum(covered) > COPY_SHARE * len(words)


def degenerate_reason(
    text: str, *, labels: Sequence[Label], min_words: int, instruction: str = "", sources: Sequence[str] = (),
) -> str | None:
    """Why `text` cannot count as a sample, or None.

    `labels` are all of the project's labels (a text that is any label's name or description says nothing),
    `min_words` the project's minimum length, `instruction` what the model was told and `sources` the texts it
    was shown (parents, examples); texts are compared with case, whitespace and punctuation folded, as the run
    loop's duplicate filter compares them.
    """
    words = folded_words(text)
    if not words:
        return "empty"
    folded = " ".join(words)
    names = {" ".join(folded_words(part)) for lb in labels for part in (lb.name, lb.description)}
    if folded in names:
        return "label_name"
    count = word_count(text)
    if count <= 1 < min_words:  # a project whose minimum is one word accepts one-word texts ("Wrong.")
        return "single_token"
    if any(folded == " ".join(folded_words(source)) for source in sources):
        return "source_copy"
    if instruction and _echoes(words, folded_words(instruction)):
        return "instruction_copy"
    if count < min_words:
        return "too_short"
    return None
