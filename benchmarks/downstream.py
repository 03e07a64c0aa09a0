"""Does the data train a classifier? Genetic Prompt vs zero-shot vs few-shot, scored on held-out real data.

    python benchmarks/downstream.py [--home DIR] [--labels 6] [--seeds 10] [--heldout 50] [--per-label 30]
                                    [--methods genetic,zero_shot,few_shot] [--trainers logistic,finetune]
                                    [--scale 5,10,20,30] [--mix-ratio 1] [--base-url URL --model NAME]

Builds a project from TREC coarse: `--seeds` real questions per label are the seeds the generator sees,
the next `--heldout` per label are held-out test data it never sees. Generates `--per-label` kept samples
per label with each method (skipped when `--home` already holds a completed run of that method, so the
evaluation can be repeated with other trainers), then measures every run with `datagen_core.evaluation.evaluator`
(the same code as `datagen eval` and the Metrics page; results are cached in the project): intrinsic
metrics, downstream micro/macro-F1 trained on synthetic only, on real seeds only, on both mixed, and a
scale curve. The project stays in `--home` and can be opened in the studio
(`DATAGEN_HOME=DIR bash scripts/start.sh`). Without `--base-url` the generator is the embedded model.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from datagen_core.config import Gene, Label, LLMConfig, ProjectSpec, RunConfig  # noqa: E402
from datagen_core.embed import Embedder  # noqa: E402
from datagen_core.engine.runner import run_generation  # noqa: E402
from datagen_core.engine.runs import start_run  # noqa: E402
from datagen_core.evaluation.evaluator import REAL, Evaluation, Evaluator, comparison_table  # noqa: E402
from datagen_core.methods.few_shot import FewShotOptions  # noqa: E402
from datagen_core.store import Store, project_path  # noqa: E402

TREC = ROOT.parent / "shared" / "data" / "trec_coarse.csv"
GENES = ("length", "subtopic", "style", "wh-word")
OVERRIDES: dict[str, dict[str, object]] = {
    "genetic": {"method": "genetic"},
    "zero_shot": {"method": "zero_shot"},
    "few_shot": {"method": "few_shot", "options": FewShotOptions(k=3)},
    "datagen": {"method": "datagen"},
}


def open_project(home: Path, labels: int, seeds: int, heldout: int) -> Store:
    path = project_path(home, "trec-downstream")
    if path.exists():
        return Store.open(path)
    frame = pd.read_csv(TREC, dtype=str)
    chosen = list(frame["label"].unique())[:labels]
    groups = [frame[frame["label"] == label].reset_index(drop=True) for label in chosen]
    spec = ProjectSpec(name="trec-downstream", task="question type classification", text_kind="question")
    store = Store.create(path, spec, [Label(name=lb) for lb in chosen], pd.concat([g.iloc[:seeds] for g in groups]),
                         str(TREC), heldout=pd.concat([g.iloc[seeds:seeds + heldout] for g in groups]))
    store.add_gene_set([Gene(name=g) for g in GENES], "user")
    return store


def generate(store: Store, llm_config: LLMConfig, embedder: Embedder, method: str, per_label: int,
             seed: int) -> str:
    for run in store.runs():
        if run.method == method and run.status == "completed" and run.config.per_label == per_label:
            return run.id
    config = RunConfig(per_label=per_label, seed=seed, sampling=llm_config.default_sampling(),
                       worked_example=llm_config.backend == "embedded", **OVERRIDES[method])  # type: ignore[arg-type]
    run_id = start_run(store, config, llm_config)
    summary = run_generation(store, llm_config, run_id, embedder=embedder)
    print(f"  {method}: {summary.status}, {summary.new_offspring} kept in {summary.seconds:.0f}s", file=sys.stderr)
    return run_id


def markdown(frame: pd.DataFrame) -> str:
    """A markdown table (index as the first column), floats to three places."""
    def cell(value: object) -> str:
        if isinstance(value, float):
            if pd.isna(value):
                return "–"
            return f"{value:.0f}" if value > 1 and value.is_integer() else f"{value:.3f}"
        return "–" if value is None else str(value)

    lines = ["| " + " | ".join(["", *map(str, frame.columns)]) + " |", "|---" * (len(frame.columns) + 1) + "|"]
    lines += ["| " + " | ".join([str(index), *map(cell, row)]) + " |" for index, row in zip(
        frame.index, frame.itertuples(index=False), strict=True)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="keep the project here (default: a temp dir)")
    parser.add_argument("--labels", type=int, default=6)
    parser.add_argument("--seeds", type=int, default=10, help="real seeds per label (what the generator sees)")
    parser.add_argument("--heldout", type=int, default=50, help="held-out real test questions per label")
    parser.add_argument("--per-label", type=int, default=30, help="kept synthetic samples per label per method")
    parser.add_argument("--methods", default="genetic,zero_shot,few_shot")
    parser.add_argument("--trainers", default="logistic")
    parser.add_argument("--scale", default="5,10,20,30", help="scale curve: synthetic samples per label ('' for none)")
    parser.add_argument("--mix-ratio", type=float, default=None, help="mixed: synthetic per real (default all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base-url", default=None)
    parser.add_argument("--model", default=None)
    parser.add_argument("--in-flight", type=int, default=None)
    args = parser.parse_args()

    started = time.perf_counter()
    llm_config = LLMConfig.from_env(args.base_url, args.model, args.in_flight)
    embedder = Embedder()
    with tempfile.TemporaryDirectory() as tmp:
        store = open_project(args.home or Path(tmp), args.labels, args.seeds, args.heldout)
        runs: dict[str, str] = {}
        for method in args.methods.split(","):
            runs[method] = generate(store, llm_config, embedder, method, args.per_label, args.seed)
        evaluator = Evaluator(store, embedder)
        results: list[Evaluation] = [evaluator.metrics(REAL)] + [evaluator.metrics(r) for r in runs.values()]
        curves: dict[tuple[str, str], list[Evaluation]] = {}
        for trainer_name in args.trainers.split(","):
            trainer = evaluator.trainer(trainer_name)
            results.append(evaluator.downstream(REAL, trainer, mode="real", seed=args.seed))
            for method, run_id in runs.items():
                print(f"  {trainer_name} on {method}", file=sys.stderr, flush=True)
                results.append(evaluator.downstream(run_id, trainer, seed=args.seed))
                results.append(evaluator.downstream(run_id, trainer, mode="mixed", mix_ratio=args.mix_ratio,
                                                    seed=args.seed))
                if args.scale:
                    curves[(method, trainer_name)] = [evaluator.downstream(run_id, trainer, per_label=n, seed=args.seed)
                                                      for n in sorted({int(n) for n in args.scale.split(",")})]
        table = comparison_table(results)
        table["subject"] = table["subject"].map({REAL: "real seeds", **{r: m for m, r in runs.items()}})
        usage = {m: store.run_usage(r) for m, r in runs.items()}
        store.close()

    labels = args.labels
    print(f"TREC coarse, {labels} labels, {args.seeds} seeds + {args.heldout} held-out per label, "
          f"{args.per_label} synthetic per label per method, seed {args.seed}, generator {llm_config.backend} "
          f"{llm_config.model}; F1 on the held-out questions")
    print(markdown(table.set_index("subject").T))
    if curves:
        print()
        print("scale curve (macro-F1, synthetic only; columns: synthetic samples per label)")
        curve_rows = {f"{m} ({t})": {p.params["per_label"]: p.result["macro_f1"] for p in points}
                      for (m, t), points in curves.items()}
        print(markdown(pd.DataFrame(curve_rows).T))
    print()
    print("LLM calls / tokens: " + "; ".join(
        f"{m} {int(u['calls'])} / {int(u['prompt_tokens'] + u['completion_tokens'])}" for m, u in usage.items()))
    cached = sum(ev.cached for ev in results) + sum(p.cached for pts in curves.values() for p in pts)
    print(f"wall time {time.perf_counter() - started:.0f}s ({cached} results from the cache)")


if __name__ == "__main__":
    main()
