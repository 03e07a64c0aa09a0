"""The generation-method plug-in interface and the output filters every method shares."""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from datagen_core.config import GeneSet, Label, RunConfig, SamplingParams
from datagen_core.records import GeneSplit
from datagen_core.registry import NoOptions, Options, asked_fields, field_title
from datagen_core.store import PopulationMember, ProjectInfo, Store

REFUSAL_MARKERS = (
    "i apologize", "i'm sorry", "i am sorry", "as an ai", "as a language model", "i cannot", "i can't",
    "i can not", "i'm unable", "i am unable", "i won't", "i will not",
)
_PREFIX = re.compile(r"^\s*(?:text|output|answer|message|example|sample|offspring)\s*\d*\s*:\s*", re.IGNORECASE)
_STOP_MARKER = re.compile(
    r"(?:^|\s)(?:category|label|type|example \d+|requirements?|note|explanation)\s*:", re.IGNORECASE
)


@dataclass(frozen=True)
class GenerationRequest:
    """What a method asks the LLM for one sample, plus the lineage it must keep."""

    label: str
    messages: list[dict[str, str]]
    prompt: str
    parent_ids: tuple[int, ...] = ()
    #: Other samples the messages show besides the parents (a worked example's): the run loop filters a copy of
    #: any of them as a `source_copy`, as it filters a copy of a parent.
    shown_ids: tuple[int, ...] = ()
    gene_split: GeneSplit | None = None
    details: dict[str, Any] = field(default_factory=dict)
    #: Tells apart requests whose messages repeat (zero-shot asks the same prompt every time): it enters the
    #: response-cache key and the seed sent, so a repeated prompt gets a fresh answer instead of a duplicate.
    sample_index: str = ""
    #: How many samples the answer holds (DataGen asks for several per call); the runner counts them in flight.
    items: int = 1
    #: JSON schema the answer must follow and sampling for this request (None: the run's own, no schema).
    schema: dict[str, Any] | None = None
    sampling: SamplingParams | None = None

    def record(self) -> dict[str, Any]:
        """What is stored with the call beside its messages, so a resume can make the answer into its sample."""
        return {
            "label": self.label, "prompt": self.prompt, "parent_ids": list(self.parent_ids),
            "shown_ids": list(self.shown_ids), "gene_split": self.gene_split.as_dict() if self.gene_split else None,
            "details": self.details, "sample_index": self.sample_index, "items": self.items, "schema": self.schema,
            "sampling": self.sampling.model_dump() if self.sampling else None,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any], messages: list[dict[str, str]]) -> GenerationRequest:
        split = record["gene_split"]
        return cls(
            label=record["label"], messages=messages, prompt=record["prompt"],
            parent_ids=tuple(record["parent_ids"]), shown_ids=tuple(record["shown_ids"]),
            gene_split=GeneSplit(**{k: tuple(v) for k, v in split.items()}) if split else None,
            details=record["details"], sample_index=record["sample_index"], items=record["items"],
            schema=record["schema"], sampling=SamplingParams(**record["sampling"]) if record["sampling"] else None,
        )


@dataclass(frozen=True)
class MethodContext:
    project: ProjectInfo
    labels: Sequence[Label]
    gene_set: GeneSet | None
    config: RunConfig

    def label(self, name: str) -> Label:
        return next(lb for lb in self.labels if lb.name == name)


class GenerationMethod(ABC):
    """Turns the live population of a label into LLM requests, one sample per request.

    A plug-in: `name`, `title`, `summary` and `Options` are what the config, the CLI and the studio read
    (`datagen_core.registry`); register it in `datagen_core/methods/__init__.py` (one line).
    """

    name: ClassVar[str]
    title: ClassVar[str]
    summary: ClassVar[str]
    Options: ClassVar[type[Options]] = NoOptions
    #: The run must have genes (the method's prompts are built from them).
    needs_genes: ClassVar[bool] = False
    #: On a small local model, open each chat with one worked exchange (`RunConfig.worked_example`).
    worked_example: ClassVar[bool] = False

    def __init__(self, context: MethodContext, rng: np.random.Generator) -> None:
        self.context = context
        self.rng = rng
        self.options: Any = context.config.options

    @classmethod
    def describe(cls, options: Any) -> str:
        """The options in a few words, for a run's settings line and its data card ("" for none)."""
        return " · ".join(f"{field_title(name, field).lower()} {getattr(options, name)}"
                          for name, field in asked_fields(cls.Options).items())

    @classmethod
    def prepare(cls, store: Store, config: RunConfig) -> RunConfig:
        """The config to record for a new run: inputs read from the store (topics, attribute values) are
        copied into it so the run describes itself; raises DatagenError when the project lacks them."""
        return config

    def observe(self, label: str, members: Sequence[PopulationMember], vectors: np.ndarray) -> None:  # noqa: B027
        """New members joined the label's population (seeds at start, offspring as they land)."""

    def mark_used(self, label: str, parent_ids: tuple[int, ...]) -> None:  # noqa: B027
        """Inputs an earlier session of this run already used (on resume)."""

    @abstractmethod
    def next_request(self, label: str) -> GenerationRequest | None:
        """The next request for `label`, or None when the method has nothing new to ask."""

    def next_request_for(self, label: str, room: int) -> GenerationRequest | None:
        """The next request asking for at most `room` samples (what the label still needs)."""
        return self.next_request(label)

    def parse(self, request: GenerationRequest, raw: str) -> tuple[str, str | None]:
        """The sample text in a raw answer, and why it is rejected (None when it is kept)."""
        return clean_output(raw, self.context.config.max_chars)

    def parse_many(self, request: GenerationRequest, raw: str) -> list[tuple[str, str | None]]:
        """Every sample an answer holds, each with why it is rejected (one per answer unless overridden)."""
        return [self.parse(request, raw)]


def clean_output(raw: str, max_chars: int) -> tuple[str, str | None]:
    """The generated text and None, or the best-effort text and why it is rejected."""
    lines = raw.strip().strip("`").splitlines()
    kept: list[str] = []
    for line in lines:
        if kept and not line.strip():
            break
        if line.strip():
            kept.append(line.strip())
    text = _PREFIX.sub("", " ".join(kept)).strip()
    stop = _STOP_MARKER.search(text)
    if stop:  # small models echo the prompt's scaffolding after the text
        text = text[: stop.start()].strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    if not text:
        return text, "empty"
    lowered = text.lower()
    if any(marker in lowered[:80] for marker in REFUSAL_MARKERS):
        return text, "refusal"
    if len(text) > max_chars:
        return text, "too_long"
    return text, None


def system_message(text_kind: str) -> str:
    """The system turn every one-sample method sends: keeps answers to the bare text."""
    return (f"You write one {text_kind} for a labelled dataset. "
            "Reply with the text only: no title, no explanation, no quotes.")


def labelled_prompt(
    *, task: str, text_kind: str, label: str, label_description: str, instruction: str = "",
    examples: Sequence[str] = (), requirements: Sequence[str] = (), constraints: Sequence[str] = (),
) -> str:
    """The prompt shape the baselines share with Genetic Prompt (task, examples, numbered requirements,
    `Category:`/`Text:` tail), so prompts of different methods differ only in what the method adds."""
    wanted = [f"it must be about {label_description}"] if label_description else []
    wanted += list(requirements)
    wanted += [f"it must respect this constraint: {constraint}" for constraint in constraints]
    lines = [f"You need to generate synthetic data for the {task} task."]
    lines += [f"Example {i}: {text}" for i, text in enumerate(examples, start=1)]
    instruction = instruction or f"Write a {text_kind} of the '{label}' category."
    lines.append(f"{instruction} Requirements:" if wanted else instruction)
    lines += [f"{i}. {req};" for i, req in enumerate(wanted, start=1)]
    lines += [f"Category: {label}", "Text:"]
    return "\n".join(lines)


class BaselineMethod(GenerationMethod):
    """A baseline: each request is built from the label and what the method samples for it, so it never runs
    dry (returns None only when a label has nothing to sample from)."""

    def _request(
        self, label: str, *, prompt: str, parent_ids: tuple[int, ...] = (), details: dict[str, Any] | None = None
    ) -> GenerationRequest:
        system = system_message(self.context.project.text_kind)
        return GenerationRequest(
            label=label,
            messages=[{"role": "system", "content": system}, {"role": "user", "content": prompt}],
            prompt=prompt,
            parent_ids=parent_ids,
            details=details or {},
            sample_index=f"draw:{int(self.rng.integers(2**62))}",
        )

    def _prompt(self, label: str, **parts: Any) -> str:
        gene_set = self.context.gene_set
        return labelled_prompt(
            task=self.context.project.task, text_kind=self.context.project.text_kind, label=label,
            label_description=self.context.label(label).description,
            constraints=gene_set.constraints if gene_set else (), **parts,
        )


def stored_items(
    store: Store, kind: str, items: dict[str, tuple[str, ...]], version: int | None
) -> tuple[int | None, dict[str, tuple[str, ...]]]:
    """A run's own copy of its topics / attribute values when it has one, else the latest stored version."""
    if items:
        return version, items
    latest = store.value_set(kind)
    return (latest.version, dict(latest.items)) if latest else (None, {})
