"""Pydantic models of what a user declares: projects, labels, genes, LLM settings and runs.

Validation of user input happens here so every interface (CLI, studio, library) gets the same
clear messages; the engine only ever sees validated objects.
"""

from __future__ import annotations

import os
import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

_PROJECT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Gene(Frozen):
    """A semantic attribute of a text (length, style, subtopic, ...) that offspring inherit or mutate."""

    name: str = Field(min_length=1, max_length=80)
    description: str = Field(default="", max_length=500)

    @field_validator("name")
    @classmethod
    def _strip_name(cls, value: str) -> str:
        value = " ".join(value.split())
        if not value:
            raise ValueError("gene name is empty")
        return value


class GeneSet(Frozen):
    """One version of a project's genes and free-text constraints; runs record the version they used."""

    version: int
    genes: tuple[Gene, ...]
    source: Literal["llm", "user", "demo"]
    note: str = ""
    constraints: tuple[str, ...] = ()

    @field_validator("constraints")
    @classmethod
    def _clean_constraints(cls, constraints: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(dict.fromkeys(c.strip() for c in constraints if c.strip()))

    @field_validator("genes")
    @classmethod
    def _unique_names(cls, genes: tuple[Gene, ...]) -> tuple[Gene, ...]:
        seen: set[str] = set()
        for gene in genes:
            key = gene.name.lower()
            if key in seen:
                raise ValueError(f"gene {gene.name!r} appears twice")
            seen.add(key)
        return genes


class Label(Frozen):
    name: str = Field(min_length=1)
    description: str = ""


#: Generated texts shorter than this many words never count as samples (projects made before the setting get it).
DEFAULT_MIN_WORDS = 3


class ProjectSpec(Frozen):
    """What `datagen init` needs to create a project, and the project settings every run reads."""

    name: str
    task: str = Field(min_length=1, description="e.g. 'question type classification'")
    text_kind: str = Field(default="text", description="what one sample is: 'SMS message', 'question'")
    min_words: int = Field(default=DEFAULT_MIN_WORDS, description="shorter generated texts are filtered as too_short")

    @field_validator("min_words")
    @classmethod
    def _at_least_one_word(cls, value: int) -> int:
        if value < 1:
            raise ValueError(f"the minimum length of a sample must be at least 1 word, not {value}")
        return value

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _PROJECT_NAME.match(value):
            raise ValueError(
                f"project name {value!r} must be 1-64 letters, digits, '_', '-' or '.', "
                "starting with a letter or digit"
            )
        return value


class SamplingParams(Frozen):
    """Sampling parameters sent with every completion; part of the response-cache key."""

    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(default=256, ge=1, le=8192)
    repeat_penalty: float | None = Field(default=None, ge=0.5, le=2.0)


EMBEDDED_SAMPLING = SamplingParams(temperature=0.8, top_p=0.95, max_tokens=90, repeat_penalty=1.1)


class LLMConfig(Frozen):
    """Which model answers. The API key is read from the environment and never stored."""

    backend: Literal["embedded", "openai"] = "embedded"
    base_url: str | None = None
    model: str = "SmolLM2-135M-Instruct"
    api_key_env: str = "OPENAI_API_KEY"
    #: A key typed into the studio for this session only: never serialised, never stored.
    session_api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    timeout_s: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=5, ge=0, le=20)
    max_in_flight: int = Field(default=16, ge=1, le=4096)

    @model_validator(mode="after")
    def _openai_needs_url(self) -> LLMConfig:
        if self.backend == "openai" and not self.base_url:
            raise ValueError("an OpenAI-compatible backend needs a base URL (e.g. http://localhost:8000/v1)")
        return self

    def api_key(self) -> str:
        # Local servers (vLLM, Ollama, llama.cpp) accept any key; the client insists on one.
        if self.session_api_key is not None and self.session_api_key.get_secret_value():
            return self.session_api_key.get_secret_value()
        return os.environ.get(self.api_key_env) or os.environ.get("DATAGEN_API_KEY") or "not-needed"

    @classmethod
    def from_env(
        cls,
        base_url: str | None = None,
        model: str | None = None,
        max_in_flight: int | None = None,
    ) -> LLMConfig:
        """Explicit arguments win over DATAGEN_BASE_URL / DATAGEN_MODEL; no URL means the embedded model."""
        url = base_url or os.environ.get("DATAGEN_BASE_URL")
        chosen_model = model or os.environ.get("DATAGEN_MODEL")
        if not url:
            return cls(backend="embedded", max_in_flight=max_in_flight or 2)
        if not chosen_model:
            raise ValueError("a base URL needs a model name too (--model or DATAGEN_MODEL)")
        return cls(backend="openai", base_url=url, model=chosen_model, max_in_flight=max_in_flight or 16)

    def default_sampling(self) -> SamplingParams:
        return EMBEDDED_SAMPLING if self.backend == "embedded" else SamplingParams()


class GeneticOptions(Frozen):
    """Options of the Genetic Prompt method, including the paper's ablations."""

    parent_selection: Literal["farthest", "random"] = "farthest"
    mutation: bool = True
    word_genes: bool = Field(default=False, description="ablation: the genes are words of the parents, not attributes")
    approx_above: int = Field(default=20_000, ge=2, description="population size above which selection is approximate")


def _clean_values(values: tuple[str, ...]) -> tuple[str, ...]:
    """Whitespace-normalised, blank-free, case-insensitively unique values in their given order."""
    kept: dict[str, str] = {}
    for value in values:
        value = " ".join(value.split())
        if value:
            kept.setdefault(value.casefold(), value)
    return tuple(kept.values())


class ValueSet(Frozen):
    """One version of a project's topics per label or values per attribute (the baselines' inputs).

    Versioned like gene sets so a run can record exactly what it sampled and an edit never rewrites history.
    """

    kind: Literal["topics", "attributes"]
    version: int
    items: dict[str, tuple[str, ...]]
    source: Literal["llm", "user"]
    note: str = ""
    gene_set_version: int | None = Field(default=None, description="attributes: the gene set they were proposed for")

    @field_validator("items")
    @classmethod
    def _clean_items(cls, items: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        cleaned = {" ".join(key.split()): _clean_values(values) for key, values in items.items()}
        return {key: values for key, values in cleaned.items() if key and values}


class FewShotOptions(Frozen):
    """One-shot (k=1) and few-shot (the paper's k=3, 5): k real examples of the label per call."""

    k: int = Field(default=3, ge=1, le=10)


class TopicOptions(Frozen):
    """The topics a zero-shot-topic run samples from, copied from the store when the run is prepared.

    Kept in the run's config (not only referenced by version) so the run is self-describing and a resume
    samples from exactly the same topics even after the user edits them.
    """

    version: int | None = None
    topics: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("topics")
    @classmethod
    def _clean(cls, topics: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {label: _clean_values(values) for label, values in topics.items() if _clean_values(values)}


class AttrPromptOptions(Frozen):
    """The attribute values an AttrPrompt run samples from (one value per attribute per call), copied like topics."""

    version: int | None = None
    values: dict[str, tuple[str, ...]] = Field(default_factory=dict)

    @field_validator("values")
    @classmethod
    def _clean(cls, values: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        return {name: _clean_values(vals) for name, vals in values.items() if _clean_values(vals)}


class DataGenOptions(Frozen):
    """DataGen-style generation: diverse few-shot examples, a dataset description, several items per call."""

    items_per_call: int = Field(default=5, ge=1, le=20)
    examples: int = Field(default=3, ge=1, le=10)
    selection: Literal["greedy", "kmeans"] = Field(
        default="greedy", description="greedy cosine threshold raised by 0.05 until enough, or one per k-means cluster"
    )
    description: str = Field(default="", description="what the dataset is for; the project's task when empty")


MethodName = Literal["genetic", "zero_shot", "few_shot", "topic", "attrprompt", "datagen"]
METHOD_NAMES: tuple[str, ...] = get_args(MethodName)

InRunCheckName = Literal["reflection", "math", "facts", "difficulty"]
IN_RUN_CHECKS: tuple[str, ...] = get_args(InRunCheckName)
#: Modules that cannot judge a batch of fresh offspring on its own, and what to use instead.
_NOT_IN_RUN = {
    "dedup": "use the in-run group check (dedup_distance, `--dedup`) instead",
    "debias": "it looks for shortcuts across the whole dataset: apply it afterwards with `datagen check`",
}


class CheckSpec(Frozen):
    """A quality module the run applies to each batch of fresh offspring, with the options it reads.

    `rounds` is read by reflection; `mode` by math (flag or correct) and facts (correct = rewrite a
    contradicted item instead of rejecting it); difficulty has no options here.
    """

    name: InRunCheckName
    rounds: int = Field(default=5, ge=1, le=10, description="reflection: judge/rewrite rounds at most")
    mode: Literal["flag", "correct"] = Field(default="flag", description="math, facts: flag or correct")

    @field_validator("name", mode="before")
    @classmethod
    def _in_run_module(cls, name: object) -> object:
        if isinstance(name, str) and name in _NOT_IN_RUN:
            raise ValueError(f"the {name} check cannot run in-run: {_NOT_IN_RUN[name]}")
        if name not in IN_RUN_CHECKS:
            raise ValueError(f"unknown in-run check {name!r}; use one of {', '.join(IN_RUN_CHECKS)}")
        return name


class RunConfig(Frozen):
    """Everything that determines a run; stored with the run so it can be resumed and compared."""

    method: MethodName = "genetic"
    per_label: int = Field(ge=1, le=1_000_000)
    labels: tuple[str, ...] = ()
    seed: int
    sampling: SamplingParams
    genetic: GeneticOptions = GeneticOptions()
    few_shot: FewShotOptions = FewShotOptions()
    topic: TopicOptions = TopicOptions()
    attrprompt: AttrPromptOptions = AttrPromptOptions()
    datagen: DataGenOptions = DataGenOptions()
    max_chars: int = Field(default=1000, ge=10, description="longer outputs are filtered as too_long")
    worked_example: bool = Field(
        default=False,
        description="open each chat with one worked exchange answered by a real seed; keeps small models on format",
    )
    use_cache: bool = True
    dedup_distance: float | None = Field(
        default=None, ge=0.0, le=2.0,
        description="in-run group check: filter offspring closer than this (Euclidean, normalised) to the population",
    )
    max_failures: int = Field(default=50, ge=1, description="consecutive failed calls before the run stops")
    checks: tuple[CheckSpec, ...] = Field(
        default=(), description="quality modules applied in order to each batch of offspring before it is stored",
    )

    @field_validator("checks")
    @classmethod
    def _each_check_once(cls, checks: tuple[CheckSpec, ...]) -> tuple[CheckSpec, ...]:
        names = [check.name for check in checks]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"in-run check(s) {twice} appear more than once")
        return checks
