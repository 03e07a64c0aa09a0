"""Gene proposal (SPEC §1.1): one structured LLM call from the task, the labels and a few samples."""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Mapping

import pandas as pd
from pydantic import BaseModel, Field, ValidationError

from datagen_core.config import Gene, LLMConfig, SamplingParams
from datagen_core.errors import DatagenError
from datagen_core.llm import LLM
from datagen_core.llm.structured import parse_json_object
from datagen_core.store import Store


class GeneProposal(BaseModel):
    genes: list[Gene] = Field(min_length=2, max_length=8)


GENE_SCHEMA = {
    "type": "object",
    "properties": {
        "genes": {
            "type": "array",
            "minItems": 3,
            "maxItems": 6,
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
                "required": ["name", "description"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["genes"],
    "additionalProperties": False,
}


def gene_prompt(task: str, text_kind: str, labels: list[str], samples: list[tuple[str, str]], count: int) -> str:
    shown = "\n".join(f"- [{label}] {text}" for text, label in samples)
    return (
        f"We are building a dataset for the {task} task. Each sample is a {text_kind} with one of these "
        f"labels: {', '.join(labels)}.\nSome real samples:\n{shown}\n\n"
        "If the attributes of a text were genes, which genes matter most for this task? A gene is a property "
        "that varies between texts of the same label, such as length, style, tone, subtopic, or audience. "
        f"List the {count} most important genes as JSON: "
        '{"genes": [{"name": "<short gene name>", "description": "<what varies>"}]}'
    )


def parse_genes(text: str) -> list[Gene]:
    """Validate a model's answer; raise DatagenError with the reason when it is unusable."""
    try:
        proposal = parse_json_object(text, GeneProposal)
    except ValueError as exc:
        raise DatagenError(f"the model's genes are invalid: {exc}") from None
    unique: dict[str, Gene] = {}
    for gene in proposal.genes:
        unique.setdefault(gene.name.lower(), gene)
    if len(unique) < 2:
        raise DatagenError("the model proposed fewer than two distinct genes")
    return list(unique.values())


def propose_genes(store: Store, llm_config: LLMConfig, count: int = 4, attempts: int = 3) -> list[Gene]:
    """Ask the LLM for genes; retries with fresh samples of the answer when one is malformed."""
    project = store.project()
    labels = [lb.name for lb in store.labels()]
    samples = [(row.text, row.label) for label in labels
               for row in store.real_examples(label, limit=3).itertuples()]
    prompt = gene_prompt(project.task, project.text_kind, labels, samples, count)
    messages = [
        {"role": "system", "content": "You are a careful data scientist. Answer with JSON only."},
        {"role": "user", "content": prompt},
    ]
    sampling = SamplingParams(temperature=0.7, top_p=0.95, max_tokens=400)
    llm = LLM.from_config(llm_config, store, use_cache=False)  # asking again should give new genes

    async def ask() -> list[Gene]:
        problems: list[str] = []
        try:
            await llm.check()
            for attempt in range(attempts):
                completion = await llm.complete(messages, sampling=sampling, schema=GENE_SCHEMA, purpose="genes",
                                                sample_index=str(attempt))
                try:
                    return parse_genes(completion.text)
                except DatagenError as exc:
                    problems.append(str(exc))
        finally:
            await llm.aclose()
        raise DatagenError(
            f"the model gave no usable genes in {attempts} tries ({problems[-1]}); set them yourself with "
            "`datagen genes set NAME ...`"
        )

    return asyncio.run(ask())


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
