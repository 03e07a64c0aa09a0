"""Pydantic models of what a user declares: projects, labels, genes, LLM settings and runs.

Validation of user input happens here so every interface (CLI, studio, library) gets the same
clear messages; the engine only ever sees validated objects.
"""

from __future__ import annotations

import os
import re
from typing import Any, Literal
from urllib.parse import unquote, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    SerializeAsAny,
    field_serializer,
    field_validator,
    model_validator,
)

from datagen_core.registry import CHECKS, METHODS, Options

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
    source: Literal["llm", "user", "demo", "library"]
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


#: What stands for a credential taken out of a URL.
REDACTED = "***"
#: Query parameters whose value is a credential (api_key, key, token, access_token, secret, password, sig, ...).
_SECRET_PARAM = re.compile(r"key|token|secret|pass|pwd|auth|sig|credential", re.IGNORECASE)


def redact_url(url: str) -> str:
    """`url` with the credentials written into it replaced by ***: the password (or a lone user name, often a
    token) of its user-info and the values of secret-looking query parameters. For what is stored or shown."""
    scheme_less = "://" not in url
    try:
        parts = urlsplit("//" + url if scheme_less else url)
    except ValueError:  # not a URL that can be taken apart: show none of it
        return REDACTED
    userinfo, at, host = parts.netloc.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    netloc = (f"{user}:{REDACTED}@{host}" if colon else f"{REDACTED}@{host}") if at else parts.netloc
    params = (param.partition("=") for param in parts.query.split("&"))
    query = "&".join(f"{name}={REDACTED if value and _SECRET_PARAM.search(unquote(name)) else value}" if eq else name
                     for name, eq, value in params)
    redacted = urlunsplit(parts._replace(netloc=netloc, query=query))
    return redacted.removeprefix("//") if scheme_less else redacted


class LLMConfig(Frozen):
    """Which model answers. The API key is read from the environment and never stored."""

    backend: Literal["embedded", "openai"] = "embedded"
    base_url: str | None = None
    model: str = "SmolLM2-135M-Instruct"
    api_key_env: str = "OPENAI_API_KEY"
    #: A key typed into the studio for this session only: never serialised, never stored.
    session_api_key: SecretStr | None = Field(default=None, exclude=True, repr=False)
    #: A request with no byte of answer after this long is a timeout (a non-streamed answer's first byte is its
    #: last, so on most servers this bounds the whole generation).
    first_byte_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    #: The whole request, answer included.
    timeout_s: float = Field(default=300.0, gt=0, le=7200)
    #: Attempts after the first one for a transient fault (429, 5xx, timeout, dropped connection).
    max_retries: int = Field(default=5, ge=0, le=20)
    max_in_flight: int = Field(default=16, ge=1, le=4096)
    #: A run stops (resumable) when the endpoint has answered nothing for this long while requests were waiting.
    give_up_after_s: float = Field(default=300.0, gt=0, le=86400)

    @field_serializer("base_url")
    def _redacted_url(self, url: str | None) -> str | None:
        """A stored run or a display never carries a key written into the URL; requests read the field itself."""
        return redact_url(url) if url else url

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
        **limits: float | None,
    ) -> LLMConfig:
        """Explicit arguments win over DATAGEN_BASE_URL / DATAGEN_MODEL and the timeout variables
        (`TIMEOUT_ENV`); no URL means the embedded model."""
        url = base_url or os.environ.get("DATAGEN_BASE_URL")
        chosen_model = model or os.environ.get("DATAGEN_MODEL")
        chosen = {key: value for key, value in limits_from_env().items() if key not in limits or limits[key] is None}
        chosen.update({key: value for key, value in limits.items() if value is not None})
        if not url:
            return cls(backend="embedded", max_in_flight=max_in_flight or 2, **chosen)
        if not chosen_model:
            raise ValueError("a base URL needs a model name too (--model or DATAGEN_MODEL)")
        return cls(backend="openai", base_url=url, model=chosen_model, max_in_flight=max_in_flight or 16, **chosen)

    def default_sampling(self) -> SamplingParams:
        return EMBEDDED_SAMPLING if self.backend == "embedded" else SamplingParams()


#: The settings that say how long to wait for an endpoint and how often to try again, and their variables.
TIMEOUT_ENV = {
    "first_byte_timeout_s": "DATAGEN_FIRST_BYTE_TIMEOUT",
    "timeout_s": "DATAGEN_TIMEOUT",
    "max_retries": "DATAGEN_RETRIES",
    "give_up_after_s": "DATAGEN_GIVE_UP_AFTER",
}
TIMEOUT_FIELDS = frozenset(TIMEOUT_ENV)


def limits_from_env() -> dict[str, float]:
    """The timeout settings set in the environment; a value that is not a number is one clear error."""
    chosen: dict[str, float] = {}
    for key, variable in TIMEOUT_ENV.items():
        value = os.environ.get(variable, "").strip()
        if value:
            try:
                chosen[key] = float(value)
            except ValueError:
                raise ValueError(f"{variable} must be a number, not {value!r}") from None
    return chosen


def clean_values(values: tuple[str, ...]) -> tuple[str, ...]:
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
        cleaned = {" ".join(key.split()): clean_values(values) for key, values in items.items()}
        return {key: values for key, values in cleaned.items() if key and values}


def _plugin_options(registry: Any, name: object, data: dict[str, Any], legacy: dict[str, Any]) -> Any:
    """`data` with `options` validated by the named plug-in's own model. `legacy` holds what a config written
    before options moved into one field said (runs are stored as JSON and must keep loading)."""
    if not isinstance(name, str) or name not in registry:
        return data
    options = data.get("options", legacy)
    if not isinstance(options, Options):
        options = registry.get(name).Options.model_validate(options or {})
    return {**data, "options": options}


class CheckSpec(Frozen):
    """A check the run applies to each batch of fresh offspring, with the options it reads."""

    name: str
    options: SerializeAsAny[Options]

    @model_validator(mode="before")
    @classmethod
    def _options_of_the_check(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        name = data.get("name")
        if name not in CHECKS:
            raise ValueError(f"unknown in-run check {name!r}; use one of {', '.join(in_run_check_names())}")
        reason = CHECKS.get(name).not_in_run
        if reason:
            raise ValueError(f"the {name} check cannot run in-run: {reason}")
        if "options" in data:
            return _plugin_options(CHECKS, name, data, {})
        # Keyword form (CheckSpec(name="math", mode="correct")) and configs stored before `options`: the keys
        # the check declares are its options; a stored spec also carries other checks' keys, ignored.
        fields = CHECKS.get(name).Options.model_fields
        given = {key: value for key, value in data.items() if key != "name"}
        unknown = [key for key in given if key not in fields and key not in _LEGACY_CHECK_KEYS]
        if unknown:
            raise ValueError(f"the {name} check has no option(s) {unknown}; it reads {list(fields) or 'none'}")
        return {"name": name, "options": CHECKS.get(name).Options.model_validate(
            {key: value for key, value in given.items() if key in fields})}


#: Keys every check spec carried before options moved into one field (a stored run's spec has all of them).
_LEGACY_CHECK_KEYS = ("rounds", "mode")


def in_run_check_names() -> tuple[str, ...]:
    """The checks a run may apply to fresh offspring (the group check is `dedup_distance`, see RunConfig)."""
    return tuple(name for name, check in CHECKS.items() if not check.not_in_run)


#: Per-method option fields of configs stored before options moved into one field.
_LEGACY_METHOD_KEYS = ("genetic", "zero_shot", "few_shot", "topic", "attrprompt", "datagen")


class RunConfig(Frozen):
    """Everything that determines a run; stored with the run so it can be resumed and compared.

    `options` is the method's own options model (see its plug-in), validated against the method named.
    """

    method: str = "genetic"
    options: SerializeAsAny[Options]
    per_label: int = Field(ge=1, le=1_000_000)
    labels: tuple[str, ...] = ()
    seed: int
    sampling: SamplingParams
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
        default=(), description="checks applied in order to each batch of offspring before it is stored",
    )

    @model_validator(mode="before")
    @classmethod
    def _options_of_the_method(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        method = data.get("method", "genetic")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; use one of {', '.join(METHODS.names())}")
        legacy = {key: data[key] for key in _LEGACY_METHOD_KEYS if key in data}
        rest = {key: value for key, value in data.items() if key not in _LEGACY_METHOD_KEYS}
        own = legacy.get(method, {})
        if isinstance(own, BaseModel) and not isinstance(own, Options):
            own = own.model_dump()
        return _plugin_options(METHODS, method, {**rest, "method": method}, own)

    @field_validator("checks")
    @classmethod
    def _each_check_once(cls, checks: tuple[CheckSpec, ...]) -> tuple[CheckSpec, ...]:
        names = [check.name for check in checks]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"in-run check(s) {twice} appear more than once")
        return checks

