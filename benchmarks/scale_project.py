"""Build a 100,000-sample project with embeddings and a cached map, for the scale benchmarks.

    python benchmarks/scale_project.py --home /tmp/scale [--samples 100000] [--projection umap|direct] [--force]
    python benchmarks/scale_studio.py --home /tmp/scale          # then measure the studio against it

No LLM is called and no text is embedded with the real model: texts are recombined from the TREC questions
in ../shared/data (the label's own questions crossed over, with words of Wikipedia paragraphs mutated in),
and each text gets a random normalised 384-d float32 vector near its label's and subtopic's centre. Everything
is written through the store API the way the runner writes it (`Store.create`, `create_run`,
`allocate_sample_ids`, `write_offspring` with the LLM call records and the embeddings of the kept texts, in
batches). The project:

- 5 labels (DESC, ENTY, HUM, LOC, NUM), 40 real seeds each and 20 held-out examples each, one gene set;
- two completed genetic runs, A (60% of the samples) and B (40%); every offspring has two parents from its
  run's population (seeds first, then earlier offspring), a gene split, a crossover prompt, a call record;
- ~7% filtered outputs (duplicate, refusal, too_long, too_short, source_copy, near_duplicate), no embedding;
- statuses mixed on the kept ones (accepted 45%, pending 35%, rejected 20%), each review in the history as
  the Review page writes it; run B's 10,000 kept NUM offspring all pending (the bulk-action benchmark's set);
- a few hundred edits through `Store.edit_sample` (texts and labels; edited texts get vectors too);
- the Map's projection cached: `--projection umap` (default) runs the product's own `EmbeddingMap` (UMAP on
  its `max_fit` = 5,000 sampled texts, the rest placed among their fitted neighbours), `--projection direct`
  writes coordinates (a fixed random 2-D projection of the vectors) straight into the store instead.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import random
import re
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._scale_common import (
    BULK_LABEL,
    BULK_RUN,
    BULK_SIZE,
    LABELS,
    PROJECT,
    RUN_A,
    RUN_B,
    SHARED_DATA,
    load,
)
from datagen_core.config import Gene, Label, LLMConfig, ProjectSpec, RunConfig, SamplingParams
from datagen_core.embed import EMBED_DIM, EMBED_MODEL, Embedder
from datagen_core.methods.genetic import crossover_prompt, split_genes
from datagen_core.projection import EmbeddingMap, MapParams
from datagen_core.records import LLMCallRecord, NewSample, text_hash, utcnow
from datagen_core.store import SampleFilter, Store, project_path

SEEDS_PER_LABEL, HELDOUT_PER_LABEL = 40, 20
GENES = ("length", "subtopic", "style", "wh-word")
TASK, TEXT_KIND = "question type classification", "question"
DESCRIPTIONS = {
    "DESC": "a question asking for a description, definition or reason",
    "ENTY": "a question whose answer is an entity (animal, colour, food, product, ...)",
    "HUM": "a question whose answer is a person or a group of people",
    "LOC": "a question whose answer is a place",
    "NUM": "a question whose answer is a number, a date or a quantity",
}
FILTER_SHARE = 0.07
FILTER_REASONS = ("duplicate", "refusal", "too_long", "too_short", "source_copy", "near_duplicate")
STATUS_SHARES = (("accepted", 0.45), ("pending", 0.35), ("rejected", 0.20))
REFUSALS = ("I'm sorry, but I can't help with that.", "As an AI language model, I cannot write that question.",
            "I cannot comply with this request.", "Sorry, I am unable to generate this content.")
BATCH = 2_000
SUBTOPICS = 40
SAMPLING = SamplingParams(temperature=0.9, top_p=0.95, max_tokens=120)
SYSTEM = f"You write one {TEXT_KIND} for a labelled dataset. Reply with the text only: no title, no explanation."
_WORD = re.compile(r"[A-Za-z][A-Za-z'-]{3,}")


class Texts:
    """Synthetic questions: a label's questions crossed over, with words from Wikipedia paragraphs mutated in."""

    def __init__(self, questions: dict[str, list[str]], paragraphs: list[str], rng: random.Random) -> None:
        self.words = {label: [q.split() for q in qs] for label, qs in questions.items()}
        self.vocabulary = sorted({w.lower() for p in paragraphs for w in _WORD.findall(p)})
        self.sentences = [s.strip() for p in paragraphs for s in p.split(". ") if len(s.split()) >= 12]
        self.rng = rng

    def question(self, label: str) -> str:
        rng, pool = self.rng, self.words[label]
        first, second = rng.choice(pool), rng.choice(pool)
        head = first[: rng.randint(2, 4)]
        start = rng.randint(1, max(1, len(second) // 2))
        middle = [w for w in second[start : start + rng.randint(3, 10)] if w != "?"]
        body = head + middle
        for _ in range(rng.randint(1, 4)):
            body.insert(rng.randint(1, len(body)), rng.choice(self.vocabulary))
        text = " ".join(body) + " ?"
        if rng.random() < 0.06:  # a chatty model adds context now and then
            text = f"{rng.choice(self.sentences)}. {text}"
        return text

    def too_long(self, label: str) -> str:
        return " ".join(self.rng.sample(self.sentences, 12)) + " " + self.question(label)


class Vectors:
    """Random normalised vectors near a label's centre and one of its subtopics' (so the map has structure)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.centres = {label: _unit(rng.standard_normal(EMBED_DIM)) for label in LABELS}
        self.subtopics = {label: _unit(rng.standard_normal((SUBTOPICS, EMBED_DIM))) for label in LABELS}

    def near(self, label: str, n: int) -> np.ndarray:
        topics = self.subtopics[label][self.rng.integers(SUBTOPICS, size=n)]
        noise = self.rng.standard_normal((n, EMBED_DIM)) / np.sqrt(EMBED_DIM)
        return _unit(self.centres[label][None, :] + 0.8 * topics + 0.7 * noise).astype(np.float32)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def read_questions() -> dict[str, list[str]]:
    frame = pd.read_csv(SHARED_DATA / "trec_coarse.csv", dtype=str)
    return {label: frame.loc[frame["label"] == label, "text"].tolist() for label in LABELS}


def read_paragraphs() -> list[str]:
    with (SHARED_DATA / "wiki_paragraphs.csv").open(newline="", encoding="utf-8") as handle:
        return [row["text"] for row in csv.DictReader(handle) if row["text"].strip()]


def quotas(total: int) -> dict[tuple[str, str], int]:
    """Offspring (kept + filtered) per (run, label): A gets 60%, B 40% with exactly BULK_SIZE kept NUM."""
    a_total = round(total * 0.6)
    b_total = total - a_total
    out = {(RUN_A, label): a_total // len(LABELS) + (i < a_total % len(LABELS)) for i, label in enumerate(LABELS)}
    bulk = round(BULK_SIZE / (1 - FILTER_SHARE))
    others = [label for label in LABELS if label != BULK_LABEL]
    rest = b_total - bulk
    out.update({(RUN_B, label): rest // len(others) + (i < rest % len(others)) for i, label in enumerate(others)})
    out[(RUN_B, BULK_LABEL)] = bulk
    return out


def build(home: Path, total: int, seed: int) -> tuple[Store, dict[str, float]]:
    marks: dict[str, float] = {}
    started = time.perf_counter()
    rng, nrng = random.Random(seed), np.random.default_rng(seed)
    questions, paragraphs = read_questions(), read_paragraphs()
    texts, vectors = Texts(questions, paragraphs, rng), Vectors(nrng)

    seeds = pd.DataFrame([(q, label) for label in LABELS for q in questions[label][:SEEDS_PER_LABEL]],
                         columns=["text", "label"])
    heldout = pd.DataFrame(
        [(q, label) for label in LABELS
         for q in questions[label][SEEDS_PER_LABEL : SEEDS_PER_LABEL + HELDOUT_PER_LABEL]],
        columns=["text", "label"])
    spec = ProjectSpec(name=PROJECT, task=TASK, text_kind=TEXT_KIND)
    labels = [Label(name=label, description=DESCRIPTIONS[label]) for label in LABELS]
    store = Store.create(project_path(home, PROJECT), spec, labels, seeds, "trec_coarse.csv (scale benchmark)",
                         heldout=heldout)
    gene_set = store.add_gene_set([Gene(name=g) for g in GENES], "user", note="scale benchmark")
    llm = LLMConfig(backend="openai", base_url="http://127.0.0.1:8000/v1", model="scale-synthetic")
    real = store.real_examples()
    store.put_embeddings(EMBED_MODEL, {text_hash(t): v for t, v, in zip(
        real["text"], np.concatenate([vectors.near(lb, 1) for lb in real["label"]]), strict=True)})
    text_of = dict(zip(real["id"].astype(int), real["text"], strict=True))
    for run_id in (RUN_A, RUN_B):
        store.create_run(run_id, RunConfig(per_label=total, seed=seed, sampling=SAMPLING), gene_set.version, llm)
    marks["project, seeds, runs"] = time.perf_counter() - started

    # The population parents are drawn from, per (run, label): the label's seeds, then the run's kept offspring.
    population = {(run, label): [int(i) for i in real.loc[real["label"] == label, "id"]]
                  for run in (RUN_A, RUN_B) for label in LABELS}
    remaining = quotas(total)
    clock = utcnow() - timedelta(days=2)
    written = bulk_kept = 0
    while any(remaining.values()):
        run = RUN_A if any(remaining[(RUN_A, label)] for label in LABELS) else RUN_B  # A first, then B
        open_labels = [label for label in LABELS if remaining[(run, label)] > 0]
        weights = [remaining[(run, label)] for label in open_labels]
        chosen = rng.choices(open_labels, weights=weights, k=min(BATCH, sum(weights)))
        counts = {label: 0 for label in LABELS}
        for label in chosen:
            counts[label] += 1
        chosen = [label for label in LABELS for _ in range(min(counts[label], remaining[(run, label)]))]
        rng.shuffle(chosen)
        ids = store.allocate_sample_ids(len(chosen))
        samples, calls, fresh = [], [], {}
        kept_rows: list[tuple[str, str]] = []
        for sample_id, label in zip(ids, chosen, strict=True):
            pool = population[(run, label)]
            p1, p2 = rng.sample(pool, 2)
            split = split_genes(list(GENES), nrng, mutation=True)
            prompt = crossover_prompt(task=TASK, text_kind=TEXT_KIND, label=label,
                                      label_description=DESCRIPTIONS[label], parent1=text_of[p1],
                                      parent2=text_of[p2], split=split)
            reason = rng.choice(FILTER_REASONS) if rng.random() < FILTER_SHARE else None
            if run == BULK_RUN and label == BULK_LABEL:  # exactly BULK_SIZE of this group pass the filters
                needed = BULK_SIZE - bulk_kept
                if needed >= remaining[(run, label)]:
                    reason = None
                elif needed == 0:
                    reason = reason or rng.choice(FILTER_REASONS)
                bulk_kept += reason is None
            text = {
                None: lambda label=label: texts.question(label),
                "duplicate": lambda p1=p1: text_of[p1],
                "refusal": lambda: rng.choice(REFUSALS),
                "too_long": lambda label=label: texts.too_long(label),
                "too_short": lambda label=label: f"{label} ?",
                "source_copy": lambda p2=p2: text_of[p2],
                "near_duplicate": lambda p1=p1: text_of[p1].replace(" ?", " exactly ?"),
            }[reason]()
            clock += timedelta(milliseconds=rng.randint(50, 400))
            call = LLMCallRecord(
                id=uuid.uuid4().hex, run_id=run, purpose="generate", backend="openai", model=llm.model,
                cache_key=hashlib.sha256(prompt.encode()).hexdigest(),
                messages=[{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}],
                params={**SAMPLING.model_dump(), "schema": None, "sample_index": 0}, response=text,
                finish_reason="stop", prompt_tokens=len(prompt) // 4, completion_tokens=max(1, len(text) // 4),
                latency_ms=rng.uniform(300, 2500), attempts=1, cached=False, error=None, created_at=clock,
                request={"label": label, "parent_ids": [p1, p2], "gene_split": split.as_dict()},
            )
            calls.append(call)
            samples.append(NewSample(
                id=sample_id, run_id=run, label=label, text=text, method="genetic", parent_ids=(p1, p2),
                gene_split=split, prompt=prompt, model=llm.model, sampling=SAMPLING.model_dump(),
                raw_response=text, llm_call_id=call.id, prompt_tokens=call.prompt_tokens,
                completion_tokens=call.completion_tokens, requested_at=clock - timedelta(seconds=1),
                details={"parent_selection": "farthest"}, filter_reason=reason, created_at=clock,
            ))
            remaining[(run, label)] -= 1
            if reason is None:
                kept_rows.append((text_hash(text), label))
                text_of[sample_id] = text
                population[(run, label)].append(sample_id)
        for label in LABELS:
            hashes = [h for h, lb in kept_rows if lb == label]
            fresh.update(zip(hashes, vectors.near(label, len(hashes)), strict=True))
        store.write_offspring(samples, calls, fresh, EMBED_MODEL)
        written += len(samples)
        if written % 10_000 < BATCH:
            print(f"  {written:,}/{total:,} offspring written ({time.perf_counter() - started:.0f} s)", flush=True)
    for run_id in (RUN_A, RUN_B):
        store.set_run_status(run_id, "completed")
    marks["offspring (write_offspring)"] = time.perf_counter() - started - sum(marks.values())

    review(store, rng)
    marks["reviews and edits"] = time.perf_counter() - started - sum(marks.values())
    return store, marks


def review(store: Store, rng: random.Random) -> None:
    """Mixed statuses on the kept offspring (history rows as the Review page writes them), then some edits."""
    kept = store.cursor().execute(
        "SELECT id, run_id, label FROM samples WHERE origin = 'synthetic' AND filter_reason IS NULL ORDER BY id"
    ).df()
    reviewable = kept[~((kept["run_id"] == BULK_RUN) & (kept["label"] == BULK_LABEL))]
    names, shares = zip(*STATUS_SHARES, strict=True)
    statuses = rng.choices(names, weights=shares, k=len(reviewable))
    frame = pd.DataFrame({"id": reviewable["id"].to_numpy(), "status": statuses})
    frame = frame[frame["status"] != "pending"]
    frame["edited_at"] = utcnow()
    with store.transaction() as cur:  # what Store.set_status_where writes, one status per sample
        cur.register("reviewed", frame)
        cur.execute("INSERT INTO sample_edits SELECT id, 'status', 'pending', status, 'studio', edited_at "
                    "FROM reviewed")
        cur.execute("UPDATE samples SET status = r.status FROM reviewed r WHERE samples.id = r.id")
        cur.unregister("reviewed")
    # A few hundred edits through the API the Review page uses: reworded texts, relabelled samples.
    vectors = Vectors(np.random.default_rng(rng.randint(0, 2**31)))
    chosen = rng.sample(reviewable["id"].astype(int).tolist(), 300)
    edited = store.samples_by_ids(chosen)
    fresh = {}
    for sample_id, text, label in zip(edited["id"], edited["text"], edited["label"], strict=True):
        new_text = text.replace(" ?", ", roughly speaking ?") if " ?" in text else text + " (reworded)"
        store.edit_sample(int(sample_id), text=new_text, actor="studio")
        fresh[text_hash(new_text)] = vectors.near(label, 1)[0]
    store.put_embeddings(EMBED_MODEL, fresh)
    run_a = reviewable[(reviewable["run_id"] == RUN_A) & ~reviewable["id"].isin(chosen)]  # B's NUM set stays
    for sample_id, label in run_a.sample(n=100, random_state=rng.randint(0, 2**31))[["id", "label"]].itertuples(
            index=False):
        store.edit_sample(int(sample_id), label=rng.choice([lb for lb in LABELS if lb != label]), actor="studio")


def project_map(store: Store, how: str) -> tuple[float, int]:
    """Cache the Map page's projection for the samples it shows by default; (seconds, points)."""
    started = time.perf_counter()
    emap = EmbeddingMap(store, Embedder(), MapParams())
    if how == "umap":
        points = emap.points(SampleFilter())
        return time.perf_counter() - started, len(points)
    shown = store.map_samples(SampleFilter()).drop_duplicates("text_hash")
    hashes = shown["text_hash"].tolist()
    stored = store.embeddings(EMBED_MODEL, hashes)
    matrix = np.stack([stored[h] for h in hashes])
    axes = np.random.default_rng(0).standard_normal((EMBED_DIM, 2))
    store.save_projection(emap.projection_id, EMBED_MODEL, {"direct": True}, hashes, matrix @ axes)
    return time.perf_counter() - started, len(hashes)


def summary(store: Store) -> str:
    rows = store.cursor().execute(
        "SELECT coalesce(run_id, '(real)'), count(*), count(*) FILTER (WHERE filter_reason IS NOT NULL), "
        "count(*) FILTER (WHERE status = 'accepted' AND filter_reason IS NULL), "
        "count(*) FILTER (WHERE status = 'pending' AND filter_reason IS NULL), "
        "count(*) FILTER (WHERE status = 'rejected' AND filter_reason IS NULL) FROM samples GROUP BY ALL ORDER BY 1"
    ).fetchall()
    lines = [f"{'run':<8} {'samples':>8} {'filtered':>9} {'accepted':>9} {'pending':>8} {'rejected':>9}"]
    lines += [f"{r[0]:<8} {r[1]:>8,} {r[2]:>9,} {r[3]:>9,} {r[4]:>8,} {r[5]:>9,}" for r in rows]
    counts = store.cursor().execute(
        "SELECT (SELECT count(*) FROM embeddings), (SELECT count(*) FROM sample_edits), "
        "(SELECT count(*) FROM llm_calls), (SELECT count(*) FROM projection_points)").fetchall()[0]
    lines.append(f"embeddings {counts[0]:,} · edits in history {counts[1]:,} · LLM calls {counts[2]:,} · "
                 f"map points {counts[3]:,}")
    bulk = store.count_samples(SampleFilter(run_ids=(BULK_RUN,), labels=(BULK_LABEL,)))
    lines.append(f"bulk set (run {BULK_RUN}, label {BULK_LABEL}): {bulk:,} samples")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="project folder (DATAGEN_HOME); default: a new temporary one")
    parser.add_argument("--samples", type=int, default=100_000, help="offspring to write (default 100,000)")
    parser.add_argument("--projection", choices=("umap", "direct"), default="umap",
                        help="umap: the product's EmbeddingMap (fit on 5,000, place the rest); direct: write "
                             "coordinates straight into the store")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--force", action="store_true", help="replace an existing scale project in --home")
    args = parser.parse_args()
    if args.samples < 3 * BULK_SIZE:
        parser.error(f"--samples must be at least {3 * BULK_SIZE} (run B holds the {BULK_SIZE}-sample bulk set)")
    home = args.home or Path(tempfile.mkdtemp(prefix="datagen-scale-"))
    path = project_path(home, PROJECT)
    if path.exists():
        if not args.force:
            sys.exit(f"{path} exists: pass --force to rebuild it")
        path.unlink()
        Path(f"{path}.wal").unlink(missing_ok=True)
    print(f"building {args.samples:,} samples in {path} ({load()})")
    store, marks = build(home, args.samples, args.seed)
    with store:
        seconds, points = project_map(store, args.projection)
        marks[f"map projection ({args.projection}, {points:,} points)"] = seconds
        store.cursor().execute("CHECKPOINT")
        print(summary(store))
    for name, seconds in marks.items():
        print(f"{name:<44} {seconds:7.1f} s")
    size = path.stat().st_size + (Path(f"{path}.wal").stat().st_size if Path(f"{path}.wal").exists() else 0)
    print(f"project file {size / 2**20:.0f} MiB · {load()}")
    print(f"DATAGEN_HOME={home}")


if __name__ == "__main__":
    main()
