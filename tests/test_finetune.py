"""The fine-tuning trainer: a tiny random encoder checks the mechanics fast, the real MiniLM checks it learns."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from sklearn.metrics import f1_score

from datagen_core.errors import DatagenError
from datagen_core.evaluation.trainers import finetune
from datagen_core.evaluation.trainers.base import LabelledTexts
from datagen_core.evaluation.trainers.finetune import FineTuneTrainer

from .conftest import shared_csv

TOY = LabelledTexts(
    ("Who wrote Hamlet ?", "Where is Lima ?", "Who painted the Mona Lisa ?", "Where is the Nile ?",
     "Who invented the telephone ?", "Where was Mozart born ?"),
    ("HUM", "LOC", "HUM", "LOC", "HUM", "LOC"),
)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-layer random BERT with MiniLM's tokenizer: the training loop runs in well under a second."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-encoder")
    AutoTokenizer.from_pretrained(finetune._model_path(), local_files_only=True).save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    BertModel(config).save_pretrained(path)
    return path


@pytest.fixture
def tiny(tiny_encoder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(finetune, "_model_path", lambda: str(tiny_encoder))


def fit_recording(trainer: FineTuneTrainer, train: LabelledTexts, test: list[str]) -> tuple[list[str], list]:
    calls: list[tuple[float, str]] = []
    predicted = trainer.fit_predict(train, test, lambda fraction, message: calls.append((fraction, message)))
    return predicted, calls


@pytest.mark.usefixtures("tiny")
def test_progress_counts_optimisation_steps_up_to_one() -> None:
    predicted, calls = fit_recording(FineTuneTrainer(epochs=3, batch_size=4), TOY, ["Who is Pele ?"] * 70)
    assert len(predicted) == 70 and set(predicted) <= {"HUM", "LOC"}
    assert [f for f, _ in calls] == pytest.approx([i / 6 for i in range(1, 7)])  # 2 batches x 3 epochs
    assert calls[0][1].startswith("epoch 1/3, loss ") and calls[-1][1].startswith("epoch 3/3, loss ")


@pytest.mark.usefixtures("tiny")
def test_same_seed_same_run_and_global_state_untouched() -> None:
    threads, rng = torch.get_num_threads(), torch.random.get_rng_state()
    first = fit_recording(FineTuneTrainer(epochs=2, batch_size=4, seed=3), TOY, list(TOY.texts))
    assert torch.get_num_threads() == threads and torch.equal(torch.random.get_rng_state(), rng)
    assert fit_recording(FineTuneTrainer(epochs=2, batch_size=4, seed=3), TOY, list(TOY.texts)) == first
    assert fit_recording(FineTuneTrainer(epochs=2, batch_size=4, seed=4), TOY, list(TOY.texts))[1] != first[1]


@pytest.mark.parametrize(
    ("train", "message"),
    [
        (LabelledTexts((), ()), "there are none"),
        (LabelledTexts(("Who ?", "Who is he ?"), ("HUM", "HUM")), "two labels"),
    ],
)
def test_refuses_training_data_it_cannot_learn_from(train: LabelledTexts, message: str) -> None:
    with pytest.raises(DatagenError, match=message):
        FineTuneTrainer().fit_predict(train, ["Where is Rome ?"])


@pytest.mark.parametrize("setting", [{"epochs": 0}, {"learning_rate": 0.0}, {"threads": 0}, {"max_length": 1}])
def test_refuses_settings_that_cannot_train(setting: dict) -> None:
    with pytest.raises(DatagenError, match="positive epochs"):
        FineTuneTrainer(**setting)


def test_options_name_every_setting() -> None:
    options = FineTuneTrainer(epochs=2, learning_rate=3e-5).options()
    assert options["epochs"] == 2 and options["learning_rate"] == 3e-5
    assert {"batch_size", "max_length", "seed", "weight_decay", "warmup_ratio", "model"} <= options.keys()


@pytest.mark.slow
def test_real_minilm_learns_question_types_deterministically() -> None:
    frame = pd.read_csv(shared_csv("trec_coarse.csv"), dtype=str)
    frame = frame[frame["label"].isin(["HUM", "LOC", "NUM"])]
    train = frame.groupby("label").head(20)
    test = frame.drop(train.index).groupby("label").head(15)
    data = LabelledTexts(tuple(train["text"]), tuple(train["label"]))
    predicted, calls = fit_recording(FineTuneTrainer(), data, list(test["text"]))
    # Chance is about 0.33 and predicting one label scores 0.17; seeds 0, 1 and 2 reach 0.84 to 0.89.
    assert f1_score(test["label"], predicted, average="macro") > 0.7
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and len(set(fractions)) == len(fractions)
    assert fit_recording(FineTuneTrainer(), data, list(test["text"])) == (predicted, calls)
