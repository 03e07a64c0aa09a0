"""Genetic Prompt (SPEC §1): crossover of two distant parents on chosen genes, mutation of the rest."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

import numpy as np
from pydantic import Field

from datagen_core.engine.selection import ParentSelector, make_selector
from datagen_core.errors import DatagenError
from datagen_core.methods.base import GenerationMethod, GenerationRequest, MethodContext
from datagen_core.records import GeneSplit
from datagen_core.registry import Options
from datagen_core.store import PopulationMember


class GeneticOptions(Options):
    """Options of the Genetic Prompt method, including the paper's ablations."""

    parent_selection: Literal["farthest", "random"] = Field(
        default="farthest", title="Parent selection", description="The paper's active selection, or its "
        "random-parents ablation.",
        json_schema_extra={"flag": "selection", "labels": {"farthest": "farthest pair (active)",
                                                            "random": "random pair"}})
    mutation: bool = Field(default=True, title="Mutation", description="Off: the no-mutation ablation (every gene "
                           "inherited).")
    word_genes: bool = Field(default=False, title="Word genes", description="Ablation: the genes are words of the "
                             "parents, not attributes.")
    approx_above: int = Field(default=20_000, ge=2, description="population size above which selection is "
                              "approximate", json_schema_extra={"shown": False})


def split_genes(genes: Sequence[str], rng: np.random.Generator, mutation: bool) -> GeneSplit:
    """Shuffle, mutate the last gene (unless the no-mutation ablation), alternate the rest between parents.

    Four genes give 2/1/1 as in the reference code; the shuffle makes every gene take every role.
    """
    shuffled = [genes[i] for i in rng.permutation(len(genes))]
    mutated = [shuffled.pop()] if mutation and shuffled else []
    return GeneSplit(parent1=tuple(shuffled[0::2]), parent2=tuple(shuffled[1::2]), mutated=tuple(mutated))


_CONTENT_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


def split_words(parent1: str, parent2: str, genes: int, rng: np.random.Generator, mutation: bool) -> GeneSplit:
    """The "word as gene" ablation: as many genes as the attribute split has, each a word of a parent.

    Inherited genes are words the offspring must use; a mutated gene is a parent's word it must avoid.
    """
    shape = split_genes([str(i) for i in range(genes)], rng, mutation)

    def words(text: str, k: int, taken: set[str]) -> list[str]:
        pool = sorted({w.lower() for w in _CONTENT_WORD.findall(text)} - taken)
        return [pool[i] for i in rng.permutation(len(pool))[:k]]

    first = words(parent1, len(shape.parent1), set())
    second = words(parent2, len(shape.parent2), set(first))
    avoided = words(parent1 + " " + parent2, len(shape.mutated), set(first) | set(second))
    return GeneSplit(parent1=tuple(first), parent2=tuple(second), mutated=tuple(avoided))


def crossover_prompt(
    *, task: str, text_kind: str, label: str, label_description: str, parent1: str, parent2: str, split: GeneSplit,
    constraints: Sequence[str] = (), word_genes: bool = False,
) -> str:
    """The crossover + mutation prompt of SPEC §1.5, with the user's constraints as further requirements."""
    requirements: list[str] = []
    if label_description:
        requirements.append(f"it must be about {label_description}")
    if word_genes:
        requirements += [f"it must use the word '{word}' from Example 1" for word in split.parent1]
        requirements += [f"it must use the word '{word}' from Example 2" for word in split.parent2]
        requirements += [f"it must not use the word '{word}'" for word in split.mutated]
    else:
        requirements += [f"its '{gene}' inherits from Example 1" for gene in split.parent1]
        requirements += [f"its '{gene}' inherits from Example 2" for gene in split.parent2]
        requirements += [f"its '{gene}' must be different from both examples" for gene in split.mutated]
    requirements += [f"it must respect this constraint: {constraint}" for constraint in constraints]
    numbered = "\n".join(f"{i}. {req};" for i, req in enumerate(requirements, start=1))
    return (
        f"You need to generate synthetic data for the {task} task.\n"
        f"Example 1: {parent1}\n"
        f"Example 2: {parent2}\n"
        f"Write a {text_kind} of the '{label}' category. Requirements:\n"
        f"{numbered}\n"
        f"Category: {label}\n"
        "Text:"
    )


class GeneticMethod(GenerationMethod):
    name = "genetic"
    title = "Genetic Prompt"
    summary = "Crossover of the two most distant unused parents on chosen genes, mutation of the rest."
    Options = GeneticOptions
    needs_genes = True
    worked_example = True
    options: GeneticOptions

    @classmethod
    def describe(cls, options: GeneticOptions) -> str:
        words = " · word genes" if options.word_genes else ""
        return f"{options.parent_selection} parents · mutation {'on' if options.mutation else 'off'}{words}"

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        super().__init__(context, rng)
        if context.gene_set is None or not context.gene_set.genes:
            raise DatagenError("the project has no genes: start from the library (`datagen genes library`, then "
                           "`datagen genes use`), type them (`datagen genes set`) or accept a proposal "
                           "(`datagen genes propose --accept`)")
        self.genes = [gene.name for gene in context.gene_set.genes]
        self.constraints = context.gene_set.constraints
        self._selectors: dict[str, ParentSelector] = {}
        self._texts: dict[int, str] = {}
        self._real: dict[str, list[int]] = {}

    def _selector(self, label: str, incoming: int) -> ParentSelector:
        if label not in self._selectors:
            self._selectors[label] = make_selector(
                self.options.parent_selection,
                seed=int(self.rng.integers(2**31)),
                approx_above=self.options.approx_above,
                expected_size=incoming + self.context.config.per_label,
            )
        return self._selectors[label]

    def observe(self, label: str, members: Sequence[PopulationMember], vectors: np.ndarray) -> None:
        self._selector(label, len(members)).add_many([m.id for m in members], vectors)
        self._texts.update((m.id, m.text) for m in members)
        self._real.setdefault(label, []).extend(m.id for m in members if m.origin == "real")

    def mark_used(self, label: str, parent_ids: tuple[int, ...]) -> None:
        if len(parent_ids) == 2 and all(p in self._texts for p in parent_ids):
            self._selectors[label].mark_used(*parent_ids)

    def _prompt(self, label: str, parent1: int, parent2: int, split: GeneSplit) -> str:
        return crossover_prompt(
            task=self.context.project.task, text_kind=self.context.project.text_kind, label=label,
            label_description=self.context.label(label).description, parent1=self._texts[parent1],
            parent2=self._texts[parent2], split=split, constraints=self.constraints,
            word_genes=self.options.word_genes,
        )

    def _worked_example(self, label: str, parents: tuple[int, int]) -> tuple[list[dict[str, str]], list[int]]:
        """One crossover prompt over two real seeds answered by a third: shows a small model the format."""
        others = [i for i in self._real[label] if i not in parents]
        if len(others) < 3:
            return [], []
        a, b, answer = (others[i] for i in self.rng.choice(len(others), size=3, replace=False))
        split = self._split((a, b))
        exchange = [{"role": "user", "content": self._prompt(label, a, b, split)},
                    {"role": "assistant", "content": self._texts[answer]}]
        return exchange, [a, b, answer]

    def _split(self, pair: tuple[int, int]) -> GeneSplit:
        if self.options.word_genes:
            return split_words(self._texts[pair[0]], self._texts[pair[1]], len(self.genes), self.rng,
                               self.options.mutation)
        return split_genes(self.genes, self.rng, self.options.mutation)

    def next_request(self, label: str) -> GenerationRequest | None:
        pair = self._selectors[label].select() if label in self._selectors else None
        if pair is None:
            return None
        split = self._split(pair)
        prompt = self._prompt(label, pair[0], pair[1], split)
        system = (
            f"You write one {self.context.project.text_kind} for a labelled dataset. "
            "Reply with the text only: no title, no explanation, no quotes."
        )
        exchange, example_ids = self._worked_example(label, pair) if self.context.config.worked_example else ([], [])
        return GenerationRequest(
            label=label,
            messages=[{"role": "system", "content": system}, *exchange, {"role": "user", "content": prompt}],
            prompt=prompt,
            parent_ids=pair,
            shown_ids=tuple(example_ids),
            gene_split=split,
            details={"worked_example_ids": example_ids} if example_ids else {},
        )
