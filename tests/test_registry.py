"""A generation method, a check, a set metric and a trainer added from outside the package: one class each plus one
`register` call, and the CLI's flags and tables, the config's validation and the Evolve and Metrics pages know them
with no further code."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Literal

import pytest
from pydantic import Field, ValidationError

from datagen_core.checks.base import Check, CheckContext, Item, Verdict
from datagen_core.cli.app import main
from datagen_core.config import CheckSpec, LLMConfig, RunConfig, SamplingParams, in_run_check_names
from datagen_core.demo import DEMO_PROJECT, ensure_demo_project
from datagen_core.engine.build import build_run_config
from datagen_core.errors import DatagenError
from datagen_core.evaluation.set_metrics import Metric, MetricInput
from datagen_core.evaluation.trainers import LabelledTexts, ProgressFn, Trainer
from datagen_core.methods.base import BaselineMethod, GenerationRequest
from datagen_core.registry import CHECKS, METHODS, METRICS, TRAINERS, Options
from datagen_core.store import Store

from .conftest import make_project
from .loopback_server import LoopbackServer
from .studio_helpers import Studio, studio_session
from .test_cli import run_cli


class EchoOptions(Options):
    flavour: Literal["plain", "spicy"] = Field(default="plain", title="Flavour",
                                               description="How the request is worded.")
    repeats: int = Field(default=1, ge=1, le=3, description="Times the label is named in the prompt.")


class EchoMethod(BaselineMethod):
    name = "echo"
    title = "Echo (toy)"
    summary = "A toy method for the registry test."
    Options = EchoOptions
    options: EchoOptions

    def next_request(self, label: str) -> GenerationRequest | None:
        named = " ".join([label] * self.options.repeats)
        return self._request(label, prompt=self._prompt(label, instruction=f"A {self.options.flavour} text: {named}."),
                             details={"flavour": self.options.flavour})


class ShoutOptions(Options):
    limit: int = Field(default=2, ge=0, le=10, title="Exclamation marks allowed",
                       description="More than this many '!' rejects the item.", json_schema_extra={"flag": "shouts"})


class ShoutCheck(Check):
    name = "shout"
    title = "No shouting (toy)"
    summary = "A toy check for the registry test."
    Options = ShoutOptions
    needs_llm = False

    def __init__(self, limit: int = 2) -> None:
        self.limit = limit

    def options(self) -> dict[str, int]:
        return {"limit": self.limit}

    async def check(self, items: Sequence[Item], context: CheckContext) -> list[Verdict]:
        return [Verdict(keep=item.text.count("!") <= self.limit, reason=None if item.text.count("!") <= self.limit
                        else "shouting") for item in items]


class MajorityTrainer(Trainer):
    """Predicts the training set's most common label for every text (the first or last of a tie)."""

    name = "majority"
    title = "Majority (toy)"
    summary = "a toy trainer for the registry test"

    class Options(Options):
        tie: Literal["first", "last"] = Field(default="first", description="Which label of a tie wins.")

    def __init__(self, tie: str = "first") -> None:
        self.tie = tie

    def options(self) -> dict[str, str]:
        return {"tie": self.tie}

    def fit_predict(self, train: LabelledTexts, test_texts: Sequence[str],
                    progress: ProgressFn | None = None) -> list[str]:
        counts = Counter(sorted(train.labels))
        top = max(counts.values())
        winners = [label for label, n in counts.items() if n == top]
        return [winners[0] if self.tie == "first" else winners[-1]] * len(test_texts)


class ShareOfQuestionsMetric(Metric):
    name = "questions"
    title = "questions"
    summary = "a toy metric for the registry test: the share of texts that end with a question mark"
    columns = (("question_share", "question_share"),)
    reading = "just a share"
    charted = True

    def compute(self, data: MetricInput) -> dict[str, float]:
        return {"question_share": sum(text.rstrip().endswith("?") for text in data.texts) / max(1, len(data.texts))}


@pytest.fixture
def toys() -> Iterator[None]:
    METHODS.register(EchoMethod)
    CHECKS.register(ShoutCheck)
    TRAINERS.register(MajorityTrainer)
    METRICS.register(ShareOfQuestionsMetric)
    yield
    METHODS.unregister("echo")
    CHECKS.unregister("shout")
    TRAINERS.unregister("majority")
    METRICS.unregister("questions")


SAMPLING = SamplingParams()


def test_config_validation_reads_the_plugins_options(toys: None) -> None:
    config = RunConfig(method="echo", options={"flavour": "spicy"}, per_label=2, seed=1, sampling=SAMPLING,
                       checks=(CheckSpec(name="shout", limit=0),))
    assert config.options == EchoOptions(flavour="spicy") and config.checks[0].options == ShoutOptions(limit=0)
    assert RunConfig.model_validate_json(config.model_dump_json()) == config  # a stored run loads back
    assert "shout" in in_run_check_names()
    with pytest.raises(ValidationError, match="flavour"):
        RunConfig(method="echo", options={"flavour": "bland"}, per_label=2, seed=1, sampling=SAMPLING)
    with pytest.raises(ValidationError, match="repeats"):
        RunConfig(method="echo", options={"repeats": 4}, per_label=2, seed=1, sampling=SAMPLING)
    with pytest.raises(ValidationError, match="limit"):
        CheckSpec(name="shout", limit=11)
    with pytest.raises(DatagenError, match="the echo method has no option"):
        build_run_config(LLMConfig(), per_label=2, method="echo", options={"k": 3})
    with pytest.raises(ValidationError, match=r"unknown method 'nope'; use one of genetic.*echo"):
        RunConfig(method="nope", per_label=2, seed=1, sampling=SAMPLING)


def test_the_cli_offers_and_runs_them(toys: None, home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, home, "run", "--help")
    assert code == 0 and "--flavour" in out and "--repeats" in out and "--shouts" in out
    main(["methods"])
    assert "Echo (toy)" in capsys.readouterr().out
    main(["checks"])
    assert "No shouting (toy)" in capsys.readouterr().out
    make_project(home, genes=False)
    endpoint = ["--base-url", "http://127.0.0.1:9/v1", "--model", "m"]
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--method", "echo", "--flavour",
                           "bland", *endpoint)
    assert code == 1 and "--flavour must be 'plain' or 'spicy', not 'bland'" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--method", "echo", "--shots", "2",
                           *endpoint)
    assert code == 1 and "--shots applies to --method few_shot only" in err
    with LoopbackServer() as server:
        code, out, err = run_cli(capsys, home, "run", "trec", "--per-label", "2", "--labels", "HUM", "--method",
                                 "echo", "--flavour", "spicy", "--repeats", "2", "--check", "shout", "--shouts",
                                 "1", "--base-url", server.base_url, "--model", "loopback")
    assert code == 0, err
    with Store.open(home / "trec.duckdb") as store:
        (run,) = store.runs()
        assert run.method == "echo" and run.config.options == EchoOptions(flavour="spicy", repeats=2)
        assert run.config.checks == (CheckSpec(name="shout", limit=1),)
        samples = store.samples(run_id=run.id)
        assert len(samples.query("filter_reason.isna()")) == 2
        assert all(json.loads(d)["flavour"] == "spicy" for d in samples["details"])
        assert all("A spicy text: HUM HUM." in prompt for prompt in samples["prompt"])


@pytest.fixture
def studio(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Studio]:
    yield from studio_session(tmp_path, monkeypatch)


def test_the_evolve_page_draws_their_widgets(toys: None, studio: Studio) -> None:
    with LoopbackServer() as server:
        at = studio.app()
        at.session_state["llm_config"] = LLMConfig(backend="openai", base_url=server.base_url, model="loopback")
        at = studio.open_page("pages/evolve.py", at)
        assert "Echo (toy)" in at.selectbox(key="evolve_method").options  # options as the user reads them
        assert "No shouting (toy)" in at.multiselect(key="evolve_checks").options
        at.selectbox(key="evolve_method").set_value("echo").run()
        at.multiselect(key="evolve_checks").set_value(["shout"]).run()
        assert at.radio(key="evolve_echo_flavour").options == ["plain", "spicy"]
        at.radio(key="evolve_echo_flavour").set_value("spicy")
        at.number_input(key="evolve_echo_repeats").set_value(3)
        at.number_input(key="evolve_check_limit").set_value(0)
        at.multiselect(key="evolve_labels").set_value(["spam"])
        at.number_input(key="evolve_per_label").set_value(1)
        at.button(key="FormSubmitter:evolve_new_run-Start run").click().run()
        assert not at.exception, [e.value for e in at.exception]
        store = studio.workspace().store(DEMO_PROJECT)
        (run,) = store.runs()
        job = studio.workspace().runs.job(store, run.id)
        assert job is not None and job.wait(60)
    assert run.config.options == EchoOptions(flavour="spicy", repeats=3)
    assert run.config.checks == (CheckSpec(name="shout", limit=0),)


def test_a_trainer_is_offered_by_eval_and_the_metrics_page(toys: None, home: Path, studio: Studio,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, home, "eval", "--help")
    assert code == 0 and "--tie" in out and "majority" in out
    main(["trainers"])
    assert "Majority (toy)" in capsys.readouterr().out
    ensure_demo_project(home)
    code, _, err = run_cli(capsys, home, "eval", DEMO_PROJECT, "--tie", "last")
    assert code == 1 and "--tie applies to --trainer majority only" in err and err.count("\n") == 1
    code, _, err = run_cli(capsys, home, "eval", DEMO_PROJECT, "--trainer", "majority", "--tie", "middle")
    assert code == 1 and "--tie must be 'first' or 'last', not 'middle'" in err
    code, out, err = run_cli(capsys, home, "eval", DEMO_PROJECT, "--trainer", "majority", "--tie", "last")
    assert code == 0, err
    assert "micro-F1 real majority" in out and "0.500" in out  # 50 ham, 50 spam held out: one label always
    assert "question_share" in out and "questions: just a share" in out  # the toy metric: its row and legend
    with Store.open(home / f"{DEMO_PROJECT}.duckdb") as store:
        (downstream,) = [e for e in store.evaluations().itertuples() if e.kind == "downstream"]
        assert json.loads(downstream.params)["trainer_options"] == {"tie": "last"}
    at = studio.open_page("pages/metrics.py")
    assert "Majority (toy)" in at.selectbox(key="metrics_trainer").options
    at.selectbox(key="metrics_trainer").set_value("majority").run()
    assert at.radio(key="metrics_majority_tie").options == ["first", "last"]
    assert not at.exception, [e.value for e in at.exception]
    assert "question_share" in at.dataframe[0].value.columns  # computed by eval above, read from the cache
    assert any("questions: just a share" in c.value for c in at.caption)
