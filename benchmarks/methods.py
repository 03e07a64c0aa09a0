"""Every generation method on the same seeds, generator and random seed, side by side.

    python benchmarks/methods.py [--labels 6] [--seeds 10] [--per-label 5] [--seed 0]
                                 [--base-url URL --model NAME] [--out table.csv|table.md]

Builds one temporary project from TREC coarse (the first `--seeds` rows of each of the first `--labels`
labels, four user genes), proposes topics and attribute values with the same generator (as
`datagen topics propose` / `datagen attributes propose` do), then runs genetic (and its two ablations),
zero-shot, few-shot k=1/3/5, topic and AttrPrompt with `--per-label` kept offspring per label each.
The table gives per method: diversity of the kept offspring (APS, vocabulary, remote-clique, self-BLEU),
closeness to the real seeds (CMD), cost (LLM calls, prompt+completion tokens, seconds per kept sample)
and kept/filtered counts. The "real seeds" row gives the seeds' own diversity. Without `--base-url` the
generator is the embedded model (SmolLM2-135M via llama.cpp), with the CLI's sampling and worked example.
The response cache is off so every method pays for its own calls.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from datagen_core.config import Gene, Label, LLMConfig, ProjectSpec, RunConfig  # noqa: E402
from datagen_core.embed import Embedder  # noqa: E402
from datagen_core.engine.runner import run_generation  # noqa: E402
from datagen_core.engine.runs import start_run  # noqa: E402
from datagen_core.evaluation.evaluator import REAL, TextSet, intrinsic_metrics  # noqa: E402
from datagen_core.methods.few_shot import FewShotOptions  # noqa: E402
from datagen_core.methods.genetic import GeneticOptions  # noqa: E402
from datagen_core.proposals.values import propose_attribute_values, propose_topics, save_values  # noqa: E402
from datagen_core.store import Store  # noqa: E402

TREC = ROOT.parent / "shared" / "data" / "trec_coarse.csv"
GENES = ("length", "subtopic", "style", "wh-word")

# (row name, RunConfig overrides); the genetic rows get the CLI's worked example on the embedded model
METHODS: list[tuple[str, dict[str, object]]] = [
    ("genetic", {"method": "genetic"}),
    ("genetic random parents", {"method": "genetic", "options": GeneticOptions(parent_selection="random")}),
    ("genetic no mutation", {"method": "genetic", "options": GeneticOptions(mutation=False)}),
    ("genetic word genes", {"method": "genetic", "options": GeneticOptions(word_genes=True)}),
    ("zero_shot", {"method": "zero_shot"}),
    ("few_shot k=1", {"method": "few_shot", "options": FewShotOptions(k=1)}),
    ("few_shot k=3", {"method": "few_shot", "options": FewShotOptions(k=3)}),
    ("few_shot k=5", {"method": "few_shot", "options": FewShotOptions(k=5)}),
    ("topic", {"method": "topic"}),
    ("attrprompt", {"method": "attrprompt"}),
    ("datagen", {"method": "datagen"}),
]
PROPOSAL_FOR = {"topic": "topics", "attrprompt": "attributes"}


@dataclass
class Cost:
    calls: int = 0
    tokens: int = 0
    seconds: float = 0.0


@dataclass
class Row:
    name: str
    metrics: dict[str, float] = field(default_factory=dict)
    calls: int | None = None
    tokens: int | None = None
    sec_per_kept: float | None = None
    kept: int | None = None
    filtered: int | None = None
    note: str = ""


def make_store(home: Path, labels: int, seeds: int) -> Store:
    frame = pd.read_csv(TREC, dtype=str)
    chosen = list(frame["label"].unique())[:labels]
    frame = frame[frame["label"].isin(chosen)].groupby("label").head(seeds).reset_index(drop=True)
    spec = ProjectSpec(name="methods", task="question type classification", text_kind="question")
    store = Store.create(home / "methods.duckdb", spec, [Label(name=lb) for lb in chosen], frame, str(TREC))
    store.add_gene_set([Gene(name=g) for g in GENES], "user")
    return store


def proposal_cost(store: Store, purpose: str) -> tuple[int, int]:
    """Calls and tokens of the proposals (recorded without a run id), retries included."""
    calls, tokens = store.cursor().execute(
        "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0) FROM llm_calls "
        "WHERE run_id IS NULL AND purpose = ?", [purpose],
    ).fetchall()[0]
    return int(calls), int(tokens)


def propose(store: Store, llm_config: LLMConfig, kind: str) -> tuple[Cost | None, str]:
    """Topics or attribute values from the generator, saved as the project's current version."""
    started = time.perf_counter()
    try:
        if kind == "topics":
            save_values(store, "topics", propose_topics(store, llm_config), "llm", note="proposed by the LLM")
        else:
            gene_set = store.gene_set()
            save_values(store, "attributes", propose_attribute_values(store, llm_config), "llm",
                        note="proposed by the LLM", gene_set_version=gene_set.version if gene_set else None)
    except Exception as exc:  # a small model may never produce the JSON asked for
        calls, tokens = proposal_cost(store, kind)
        return None, (f"{kind} proposal failed after {calls} calls, {tokens} tokens, "
                      f"{time.perf_counter() - started:.0f}s: {exc}")
    calls, tokens = proposal_cost(store, kind)
    return Cost(calls, tokens, time.perf_counter() - started), ""


def diversity(data: TextSet, vectors: np.ndarray, real: TextSet, real_vectors: np.ndarray) -> dict[str, float]:
    """The table's columns from the same metrics `datagen eval` computes (CMD to the real seeds)."""
    m = intrinsic_metrics(data, vectors, real, real_vectors)
    return {"aps": m["aps"], "vocab": m["vocabulary"], "rc": m["remote_clique"], "sbleu": m["self_bleu"],
            "cmd": m["cmd"] or 0.0}


def run_method(store: Store, llm_config: LLMConfig, embedder: Embedder, real: tuple[TextSet, np.ndarray],
               name: str, overrides: dict[str, object], args: argparse.Namespace, extra: Cost) -> Row:
    config = RunConfig(
        per_label=args.per_label, seed=args.seed, sampling=llm_config.default_sampling(), use_cache=False,
        worked_example=llm_config.backend == "embedded", **overrides,  # type: ignore[arg-type]
    )
    run_id = start_run(store, config, llm_config)
    summary = run_generation(store, llm_config, run_id, embedder=embedder)
    kept_frame = store.samples(run_id=run_id, origin="synthetic")
    texts = kept_frame["text"].tolist()
    kept = sum(state.kept for state in summary.progress.values())
    filtered = sum(state.filtered for state in summary.progress.values())
    usage = summary.usage
    row = Row(name, kept=kept, filtered=filtered)
    row.calls = int(usage["calls"]) + extra.calls
    row.tokens = int(usage["prompt_tokens"] + usage["completion_tokens"]) + extra.tokens
    row.sec_per_kept = (summary.seconds + extra.seconds) / kept if kept else float("nan")
    if texts:
        kept_set = TextSet(run_id, tuple(texts), tuple(kept_frame["label"]))
        row.metrics = diversity(kept_set, embedder.encode(texts), *real)
    reasons = store.filtered_counts(run_id)
    notes = [", ".join(f"{r} {n}" for r, n in sorted(reasons.items()))] if reasons else []
    if summary.status != "completed" or kept < args.per_label * len(summary.progress):
        notes.append(f"status {summary.status}, {kept}/{args.per_label * len(summary.progress)} kept")
    failed = int(usage["failed_calls"])
    if failed:
        notes.append(f"{failed} failed calls")
    row.note = "; ".join(notes)
    return row


def fmt(value: float | int | None, spec: str) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "-"
    return format(value, spec)


COLUMNS = [("method", "<24"), ("APS", ">6"), ("CMD", ">6"), ("vocab", ">6"), ("RC", ">6"), ("sBLEU", ">6"),
           ("calls", ">6"), ("tokens", ">8"), ("s/kept", ">7"), ("kept", ">5"), ("filt", ">5"), ("note", "")]


def cells(row: Row) -> list[str]:
    m = row.metrics
    return [row.name, fmt(m.get("aps"), ".3f"), fmt(m.get("cmd"), ".3f"), fmt(m.get("vocab"), "d"),
            fmt(m.get("rc"), ".3f"), fmt(m.get("sbleu"), ".3f"), fmt(row.calls, "d"), fmt(row.tokens, "d"),
            fmt(row.sec_per_kept, ".2f"), fmt(row.kept, "d"), fmt(row.filtered, "d"), row.note]


def write_out(path: Path, rows: list[Row], footnotes: list[str]) -> None:
    header = [name for name, _ in COLUMNS]
    body = [cells(row) for row in rows]
    if path.suffix == ".md":
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(c.replace("|", "/") for c in line) + " |" for line in body]
        path.write_text("\n".join([*lines, "", *footnotes]) + "\n")
    else:
        pd.DataFrame(body, columns=header).to_csv(path, index=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--labels", type=int, default=6, help="first N TREC coarse labels (6 = all)")
    parser.add_argument("--seeds", type=int, default=10, help="real seeds per label")
    parser.add_argument("--per-label", type=int, default=5, help="kept offspring per label per method")
    parser.add_argument("--seed", type=int, default=0, help="random seed of every run")
    parser.add_argument("--base-url", default=None, help="OpenAI-compatible endpoint (default: embedded model)")
    parser.add_argument("--model", default=None)
    parser.add_argument("--in-flight", type=int, default=None)
    parser.add_argument("--methods", default=None, help="comma-separated subset of the row names")
    parser.add_argument("--out", type=Path, default=None, help="also write the table (.csv or .md)")
    args = parser.parse_args()

    llm_config = LLMConfig.from_env(args.base_url, args.model, args.in_flight)
    chosen = [m for m in METHODS if args.methods is None or m[0] in args.methods.split(",")]
    embedder = Embedder()
    started = time.perf_counter()
    rows: list[Row] = []
    footnotes: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        store = make_store(Path(tmp), args.labels, args.seeds)
        seeds = store.real_examples()
        real_set = TextSet(REAL, tuple(seeds["text"]), tuple(seeds["label"]))
        real = (real_set, embedder.encode(real_set.texts))
        rows.append(Row("real seeds", diversity(*real, *real), kept=len(seeds)))
        labels = [lb.name for lb in store.labels()]
        proposals: dict[str, tuple[Cost | None, str]] = {}
        for kind in sorted({PROPOSAL_FOR[c[1]["method"]] for c in chosen if c[1]["method"] in PROPOSAL_FOR}):
            proposals[kind] = propose(store, llm_config, kind)
            cost, problem = proposals[kind]
            if cost is not None:
                footnotes.append(f"{kind} proposal: {cost.calls} calls, {cost.tokens} tokens, "
                                 f"{cost.seconds:.1f}s (included in that row's calls, tokens and s/kept)")
                value_set = store.value_set(kind)
                shown = "; ".join(f"{k}: {', '.join(v[:4])}{' ...' if len(v) > 4 else ''}"
                                  for k, v in (value_set.items.items() if value_set else []))
                footnotes.append(f"  {kind}: {shown}")
        for name, overrides in chosen:
            kind = PROPOSAL_FOR.get(str(overrides["method"]))
            extra = Cost()
            if kind is not None:
                cost, problem = proposals[kind]
                if cost is None:
                    rows.append(Row(name, note=f"SKIPPED: {problem}"))
                    continue
                extra = cost
            print(f"... {name}", file=sys.stderr, flush=True)
            try:
                rows.append(run_method(store, llm_config, embedder, real, name, overrides, args, extra))
            except Exception as exc:
                traceback.print_exc(file=sys.stderr)
                rows.append(Row(name, note=f"SKIPPED: {type(exc).__name__}: {exc}"))
        store.close()
    wall = time.perf_counter() - started

    print(f"TREC coarse, {len(labels)} labels ({', '.join(labels)}), {args.seeds} seeds per label, "
          f"{args.per_label} kept per label per method, seed {args.seed}, generator {llm_config.backend} "
          f"{llm_config.model}, in flight {llm_config.max_in_flight}")
    widths = [max(len(name), *(len(cells(r)[i]) for r in rows)) if i == 0 else len(format(name, spec))
              for i, (name, spec) in enumerate(COLUMNS)]
    specs = [f"<{widths[0]}"] + [spec for _, spec in COLUMNS[1:]]
    print("  ".join(format(name, spec) for (name, _), spec in zip(COLUMNS, specs, strict=True)).rstrip())
    for row in rows:
        print("  ".join(format(c, spec) for c, spec in zip(cells(row), specs, strict=True)).rstrip())
    footnotes = [
        "APS: mean pairwise cosine (lower = more diverse); CMD: central moment discrepancy to the real seeds "
        "(lower = closer); vocab: distinct words; RC: remote-clique (higher = more diverse); sBLEU: self-BLEU-4 "
        "(lower = more diverse); tokens: prompt+completion; s/kept: run seconds (plus proposal seconds) per kept "
        "sample; filt: answers filtered (reasons in note).",
        *footnotes,
        f"wall time {wall:.0f}s",
    ]
    for line in footnotes:
        print(line)
    if args.out:
        write_out(args.out, rows, footnotes)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
