"""Offspring per second of the run loop against the loopback server, next to its limits.

    python benchmarks/engine.py [--latency 0.2] [--in-flight 64] [--per-label 200] [--labels 3]

Prints three rows: the theoretical ceiling (in-flight / latency), the studio's run loop (requests
kept in flight, parents chosen from the live population) and a batch-of-20-then-wait loop like the
Genetic Prompt reference code, both writing through the same store, embedder and filters.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import pandas as pd  # noqa: E402

from datagen_core.config import Gene, Label, LLMConfig, ProjectSpec, RunConfig, SamplingParams  # noqa: E402
from datagen_core.embed import Embedder  # noqa: E402
from datagen_core.engine.progress import LabelProgress, RunObserver  # noqa: E402
from datagen_core.engine.runner import Runner  # noqa: E402
from datagen_core.engine.runs import start_run  # noqa: E402
from datagen_core.llm import LLM  # noqa: E402
from datagen_core.store import Store  # noqa: E402
from tests.loopback_server import LoopbackServer  # noqa: E402

TREC = ROOT.parent / "shared" / "data" / "trec_coarse.csv"


def make_store(home: Path, name: str, labels: int, seeds: int) -> Store:
    frame = pd.read_csv(TREC, dtype=str)
    chosen = [lb for lb in frame["label"].unique() if lb != "ABBR"][:labels]
    frame = frame[frame["label"].isin(chosen)].groupby("label").head(seeds).reset_index(drop=True)
    spec = ProjectSpec(name=name, task="question type classification", text_kind="question")
    store = Store.create(home / f"{name}.duckdb", spec, [Label(name=lb) for lb in chosen], frame, str(TREC))
    store.add_gene_set([Gene(name=g) for g in ("length", "subtopic", "style", "wh-word")], "user")
    return store


def make_runner(store: Store, server: LoopbackServer, per_label: int, in_flight: int, embedder: Embedder) -> Runner:
    llm_config = LLMConfig(backend="openai", base_url=server.base_url, model="loopback", max_in_flight=in_flight)
    config = RunConfig(per_label=per_label, seed=1, sampling=SamplingParams(max_tokens=64), use_cache=False)
    run_id = start_run(store, config, llm_config)
    llm = LLM.from_config(llm_config, store, run_id=run_id, use_cache=False, autoflush=False)
    return Runner(store, store.run(run_id), llm, embedder)


async def batch_then_wait(runner: Runner, batch: int) -> tuple[int, float]:
    """The reference code's loop: ask for `batch` offspring, wait for all, add them, repeat."""
    await runner.llm.check()
    await asyncio.to_thread(runner._load_populations)
    started = time.perf_counter()
    made = 0
    while any(state.needed > 0 for state in runner.progress.values()):
        requests = []
        for label, state in runner.progress.items():
            while state.needed > 0 and len(requests) < batch:
                request = runner.method.next_request(label)
                if request is None:
                    break
                state.in_flight += 1
                requests.append(request)
        landed = await asyncio.gather(*[runner._ask(r) for r in requests])
        made += sum(s.filter_reason is None for s in await runner._persist(landed))
    await runner.llm.aclose()
    return made, time.perf_counter() - started


class _StartClock(RunObserver):
    """Starts the clock once populations are loaded, as the baseline's does."""

    started = 0.0

    def on_start(self, run_id: str, progress: dict[str, LabelProgress]) -> None:
        self.started = time.perf_counter()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--in-flight", type=int, default=64)
    parser.add_argument("--per-label", type=int, default=200)
    parser.add_argument("--labels", type=int, default=3)
    parser.add_argument("--seeds", type=int, default=50)
    args = parser.parse_args()

    embedder = Embedder()
    embedder.encode(["warm up the model"])
    rows = [("ceiling: in-flight / latency", args.in_flight / args.latency, float("nan"), "")]
    with tempfile.TemporaryDirectory() as tmp, LoopbackServer(latency_s=args.latency) as server:
        home = Path(tmp)
        store = make_store(home, "live", args.labels, args.seeds)
        runner = make_runner(store, server, args.per_label, args.in_flight, embedder)
        clock = _StartClock()
        runner.observer = clock
        summary = asyncio.run(runner.execute())
        seconds = time.perf_counter() - clock.started
        rows.append(("run loop (in flight, live population)", summary.new_offspring / seconds, seconds,
                     f"peak in flight {server.stats.peak_in_flight}"))
        store.close()

        store = make_store(home, "batch", args.labels, args.seeds)
        runner = make_runner(store, server, args.per_label, args.in_flight, embedder)
        made, seconds = asyncio.run(batch_then_wait(runner, 20))
        rows.append(("batch of 20, then wait (reference)", made / seconds, seconds, ""))
        store.close()

    total = args.per_label * args.labels
    print(f"{total} offspring ({args.labels} labels x {args.per_label}), {args.seeds} seeds per label, "
          f"latency {args.latency * 1000:.0f} ms, in flight {args.in_flight}")
    print(f"{'loop':<40} {'offspring/s':>12} {'seconds':>8}  note")
    for name, rate, seconds, note in rows:
        print(f"{name:<40} {rate:>12.1f} {seconds:>8.1f}  {note}")


if __name__ == "__main__":
    main()
