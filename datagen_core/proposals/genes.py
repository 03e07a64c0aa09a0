"""Gene proposals (SPEC §1.1) and gene-set edits: a proposal is a draft the user accepts, edits or discards.

The LLM is asked for exactly COUNT genes in one structured call; its answer is vetted (placeholders, copies and
filler are refused) and returned unsaved. Saving — a proposal, a table edit, a library set, an earlier
version restored — always makes a new gene-set version, so runs keep the version they used.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from datagen_core.config import Gene, GeneSet, LLMConfig, SamplingParams
from datagen_core.errors import DatagenError
from datagen_core.llm import LLM
from datagen_core.llm.structured import parse_json_object
from datagen_core.records import STOP_WORDS
from datagen_core.store import Store


class ProposedGene(BaseModel):
    """One gene as the model wrote it, before vetting (a placeholder or over-long name is refused there)."""

    name: str
    description: str = ""


class GeneProposal(BaseModel):
    genes: list[ProposedGene] = Field(min_length=1)


def gene_schema(count: int) -> dict[str, Any]:
    """The JSON schema of an answer of exactly `count` genes (backends that constrain output enforce it)."""
    item = {"type": "object", "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
            "required": ["name", "description"], "additionalProperties": False}
    return {"type": "object", "required": ["genes"], "additionalProperties": False,
            "properties": {"genes": {"type": "array", "minItems": count, "maxItems": count, "items": item}}}


def gene_prompt(task: str, text_kind: str, labels: list[str], samples: list[tuple[str, str]], count: int) -> str:
    shown = "\n".join(f"- [{label}] {text}" for text, label in samples)
    return (
        f"We are building a dataset for the {task} task. Each sample is a {text_kind} with one of these "
        f"labels: {', '.join(labels)}.\nSome real samples:\n{shown}\n\n"
        "If the attributes of a text were genes, which genes matter most for this task? A gene is a property "
        "that varies between texts of the same label, such as length, style, tone, subtopic, or audience. "
        f"List exactly {count} genes, the most important first, each with a real name and a one-line description "
        'of what varies, as JSON: {"genes": [{"name": "<short gene name>", "description": "<what varies>"}]}'
    )


# --- vetting: what makes a proposed gene a placeholder or filler ------------------------------------------------

#: Words that name no attribute on their own: a name made only of these (and numbers, single letters and
#: function words) is a placeholder — "gene_1", "attribute 2", "Gene A", "name", "short gene name".
_GENERIC_TEXT = """
gene attribute attr feature property trait name item factor dimension characteristic variable field param
parameter placeholder example sample untitled unnamed tbd todo foo bar baz short new another other
"""
GENERIC_WORDS = frozenset(_GENERIC_TEXT.split())
#: Words of descriptions that say nothing: a description made only of these (with the above) is a placeholder.
_FILLER_TEXT = """
description desc describe none null na nil tbd etc varies something stuff thing things blah lorem ipsum insert
"""
FILLER_WORDS = GENERIC_WORDS | frozenset(_FILLER_TEXT.split())
#: Kinds of attribute a gene may name. A description that shares no word with the task, the labels or the text
#: kind is still fine when the gene's name or description contains one of these (as part of a word: "formality",
#: "informal" and "formal" all contain "formal"); otherwise it is unrelated filler. Deliberately short: it tells
#: "a very important gene that helps me to eat a sandwich" from a gene, not a good gene from a poor one.
ATTRIBUTE_WORDS = (
    "length", "long", "short", "word", "sentence", "tone", "style", "topic", "subject", "domain", "sentiment",
    "polarity", "emotion", "opinion", "intensity", "formal", "polite", "structure", "syntax", "grammar", "voice",
    "tense", "negat", "entit", "verb", "modifier", "location", "place", "time", "audience", "reader",
    "perspective", "vocabular", "slang", "jargon", "spelling", "punctuation", "capital", "emoji", "format",
    "genre", "detail", "specific", "complex", "readab", "urgen", "intent", "purpose", "question", "phras",
    "proximity",
)
_BRACKETED = re.compile(r"[<\[{].*[>\]}]", re.DOTALL)
_PIECE = re.compile(r"[^\W\d_]+|\d+")


def _pieces(text: str) -> list[str]:
    """Case-folded runs of letters or of digits: "Gene_1", "gene1" and "gene 1" all give ["gene", "1"]."""
    return _PIECE.findall(text.casefold())


def _content(text: str) -> list[str]:
    return [w for w in _pieces(text) if w not in STOP_WORDS]


def _singular(word: str) -> str:
    return word[:-1] if len(word) > 3 and word.endswith("s") else word


def _only(words: list[str], vocabulary: frozenset[str]) -> bool:
    """Every word is in `vocabulary`, a number or a single letter (and there is at least one)."""
    return bool(words) and all(w.isdigit() or len(w) == 1 or w in vocabulary or _singular(w) in vocabulary
                                  for w in words)


def _related(word: str, others: frozenset[str]) -> bool:
    """The same word, or one is the other plus an ending ("question" / "questions", "sport" / "sports")."""
    return word in others or (len(word) >= 4 and any(len(o) >= 4 and (o.startswith(word) or word.startswith(o))
                                                     for o in others))


@dataclass(frozen=True)
class GeneContext:
    """The words a gene's description may share with the project: its task, text kind and labels."""

    words: frozenset[str]

    @classmethod
    def of(cls, task: str, text_kind: str, labels: Iterable[str]) -> GeneContext:
        return cls(frozenset(_content(" ".join([task, text_kind, *labels]))))

    @classmethod
    def of_store(cls, store: Store) -> GeneContext:
        project = store.project()
        return cls.of(project.task, project.text_kind,
                      [f"{lb.name} {lb.description}" for lb in store.labels()])


def _name_problem(name: str) -> str | None:
    if not name.strip():
        return "empty name"
    pieces = _pieces(name)
    if not pieces or _BRACKETED.fullmatch(name.strip()):
        return "placeholder name"
    if len(pieces) == 1 and len(pieces[0]) == 1:
        return "a single character, not a name"
    if _only([w for w in pieces if w not in STOP_WORDS], GENERIC_WORDS):
        return "placeholder name"
    if len(" ".join(name.split())) > 80:
        return "name longer than 80 characters"
    return None


def _description_problem(name: str, description: str, context: GeneContext) -> str | None:
    if not _pieces(description):
        return "no description"
    words = _content(description)  # empty for "what it is about": vague, but judged by the name's attribute below
    if _BRACKETED.fullmatch(description.strip()) or _only(words, FILLER_WORDS):
        return "placeholder description"
    if words and {_singular(w) for w in words} <= {_singular(w) for w in _pieces(name)}:
        return "description repeats the name"
    if len(description) > 500:
        return "description longer than 500 characters"
    gene_words = _content(f"{name} {description}")
    if not any(_related(w, context.words) for w in words) and not any(
            stem in w for w in gene_words for stem in ATTRIBUTE_WORDS):
        return "description names no attribute of the text and no word of the task, labels or text kind"
    return None


def gene_problem(gene: ProposedGene | Gene, context: GeneContext, earlier: Iterable[str] = ()) -> str | None:
    """Why a proposed gene is refused (None when it is fine); `earlier` are the folded names already kept."""
    problem = _name_problem(gene.name)
    if problem is None and "".join(_pieces(gene.name)) in set(earlier):
        problem = "the same name as an earlier gene"
    return problem or _description_problem(gene.name, gene.description, context)


def vet_genes(candidates: Sequence[ProposedGene | Gene], context: GeneContext, count: int) -> list[Gene]:
    """The first `count` acceptable genes, or one line naming the refused ones.

    A longer answer is cut to `count` good genes; a shorter one, or one whose placeholders leave fewer than
    `count`, is refused as a whole."""
    kept: list[Gene] = []
    keys: list[str] = []
    refused: list[str] = []
    for candidate in candidates:
        if len(kept) == count:
            break
        problem = gene_problem(candidate, context, keys)
        if problem:
            refused.append(f"{candidate.name.strip()[:40]!r} ({problem})")
            continue
        kept.append(Gene(name=candidate.name, description=" ".join(candidate.description.split())))
        keys.append("".join(_pieces(candidate.name)))
    if len(kept) < count:
        if refused:
            raise DatagenError(f"only {len(kept)} of {count} genes usable; refused: " + "; ".join(refused))
        raise DatagenError(f"only {len(kept)} genes proposed, {count} asked")
    return kept


def parse_genes(text: str) -> list[ProposedGene]:
    """The genes of a model's answer as written, in order; raises DatagenError when it is unusable."""
    try:
        proposal = parse_json_object(text, GeneProposal)
    except ValueError as exc:
        raise DatagenError(f"the model's genes are invalid: {exc}") from None
    if len({"".join(_pieces(g.name)) for g in proposal.genes}) < 2:
        raise DatagenError("the model proposed fewer than two distinct genes")
    return proposal.genes


def propose_genes(store: Store, llm_config: LLMConfig, count: int = 4, attempts: int = 3) -> list[Gene]:
    """Ask the LLM for exactly `count` genes; nothing is saved (the caller shows a draft to accept or discard).

    An answer that is malformed or whose placeholders leave fewer than `count` genes is a failed attempt."""
    project = store.project()
    labels = [lb.name for lb in store.labels()]
    samples = [(row.text, row.label) for label in labels
               for row in store.real_examples(label, limit=3).itertuples()]
    prompt = gene_prompt(project.task, project.text_kind, labels, samples, count)
    messages = [
        {"role": "system", "content": "You are a careful data scientist. Answer with JSON only."},
        {"role": "user", "content": prompt},
    ]
    sampling = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=120 + 80 * count)
    context = GeneContext.of_store(store)
    llm = LLM.from_config(llm_config, store, use_cache=False)  # asking again should give new genes

    async def ask() -> list[Gene]:
        problems: list[str] = []
        try:
            await llm.check()
            for attempt in range(attempts):
                completion = await llm.complete(messages, sampling=sampling, schema=gene_schema(count),
                                                purpose="genes", sample_index=str(attempt))
                try:
                    return vet_genes(parse_genes(completion.text), context, count)
                except DatagenError as exc:
                    problems.append(str(exc))
        finally:
            await llm.aclose()
        raise DatagenError(
            f"the model gave no usable genes in {attempts} tries ({problems[-1]}); set them yourself with "
            "`datagen genes set NAME ...` or start from the library (`datagen genes library`)"
        )

    return asyncio.run(ask())


def accept_genes(store: Store, genes: Sequence[Gene], source: str, note: str) -> GeneSet:
    """Save reviewed genes as a new version that keeps the current constraints (they are not part of a draft)."""
    current = store.gene_set()
    return store.add_gene_set(genes, source, note=note, constraints=current.constraints if current else ())


def restore_gene_set(store: Store, version: int) -> GeneSet:
    """Save an earlier version's genes and constraints again as the newest version, noting where they came from.

    Restoring what is already current would only add a copy, so it is refused."""
    earlier, current = store.gene_set(version), store.gene_set()
    assert earlier is not None and current is not None  # gene_set(version) raises for an unknown version
    if (earlier.genes, earlier.constraints) == (current.genes, current.constraints):
        raise DatagenError(f"version {version} holds the current genes and constraints (version {current.version}): "
                           "nothing to restore")
    return store.add_gene_set(earlier.genes, earlier.source, note=f"restored v{version}",
                              constraints=earlier.constraints)


def _cell(value: object) -> str:
    """A table cell as text; empty for None/NaN/NA (what a fresh row of an editable table holds)."""
    if value is None or (not isinstance(value, str) and bool(pd.isna(value))):
        return ""
    return str(value).strip()


def genes_from_rows(rows: Iterable[Mapping[str, object]]) -> list[Gene]:
    """Genes from an edited table (name, description, optional position), checked as a whole.

    Rows are ordered by `position` where given (rows without one keep their place after the numbered
    ones); blank rows are ignored. A description without a name or a name used twice is an error, so
    a half-finished edit never becomes a gene-set version.
    """
    numbered: list[tuple[float, int, str, str]] = []
    for index, row in enumerate(rows):
        name, description = _cell(row.get("name")), _cell(row.get("description"))
        if not name and not description:
            continue
        if not name:
            raise DatagenError(f"row {index + 1} has a description ({description[:40]!r}) but no gene name")
        position = _cell(row.get("position"))
        try:
            order = float(position) if position else math.inf
        except ValueError:
            raise DatagenError(f"gene {name!r}: position {position!r} is not a number") from None
        numbered.append((order, index, name, description))
    genes: list[Gene] = []
    seen: set[str] = set()
    for _, _, name, description in sorted(numbered):
        try:
            gene = Gene(name=name, description=description)
        except ValidationError as exc:
            raise DatagenError(f"gene {name[:40]!r}: {exc.errors()[0]['msg']}") from None
        if gene.name.lower() in seen:
            raise DatagenError(f"gene {gene.name!r} appears twice; rename or delete one")
        seen.add(gene.name.lower())
        genes.append(gene)
    if not genes:
        raise DatagenError("a gene set needs at least one gene")
    return genes


def constraints_from_text(text: str) -> list[str]:
    """Free-text constraints, one per line ("no named people", "under 40 words"); blank lines dropped."""
    return list(dict.fromkeys(line.strip() for line in text.splitlines() if line.strip()))
