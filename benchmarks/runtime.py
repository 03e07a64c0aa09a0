"""The embedded model's runtime: decode speed of llama.cpp builds side by side, and time to the first offspring.

    .venv/bin/python benchmarks/runtime.py                                  # this venv's build, + first offspring
    .venv/bin/python benchmarks/runtime.py --compare /path/to/native/bin/python --rounds 5

Each build is measured in a child process of its own interpreter (a build this CPU cannot run dies there, not
here), rounds alternating between builds so the machine's load hits both alike: model load, prompt processing
and decoding of a fixed number of tokens (generation does not stop at end-of-text, so every round decodes the
same count). Then, through the product: the seconds from `run_generation` to the first kept offspring on the
demo project with the embedded server cold (stopped first) and warm.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CHILD = r"""
import json, sys, time
import llama_cpp
from llama_cpp import Llama
path, tokens, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
started = time.perf_counter()
llm = Llama(model_path=path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
load = time.perf_counter() - started
prompt = llm.tokenize(("Write a short text message to a friend about the weekend, the weather and the food. " * 6)
                      .encode())
started = time.perf_counter()
generator = llm.generate(prompt, temp=0.0, reset=True)
next(generator)
first = time.perf_counter() - started
started = time.perf_counter()
for _ in range(tokens - 1):
    next(generator)
decode = time.perf_counter() - started
print(json.dumps({"version": llama_cpp.__version__, "system": llama_cpp.llama_print_system_info().decode(),
                  "load_s": load, "prompt_tokens": len(prompt), "prompt_tok_s": len(prompt) / first,
                  "decode_tok_s": (tokens - 1) / decode}))
"""


def measure(python: str, model: Path, tokens: int, threads: int) -> dict[str, object]:
    done = subprocess.run([python, "-c", CHILD, str(model), str(tokens), str(threads)], capture_output=True,
                          text=True, timeout=600)
    if done.returncode != 0:
        from datagen_core.llm.model_server import describe_exit

        return {"error": f"{describe_exit(done.returncode)}: {done.stderr.strip()[-300:]}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def first_offspring_seconds(cold: bool) -> float:
    from datagen_core.config import LLMConfig, RunConfig
    from datagen_core.demo import ensure_demo_project
    from datagen_core.embed import Embedder
    from datagen_core.engine.progress import RunObserver
    from datagen_core.engine.runner import run_generation
    from datagen_core.engine.runs import start_run
    from datagen_core.llm.embedded import embedded_runtime
    from datagen_core.store import Store

    if cold:
        embedded_runtime().stop()
    llm_config = LLMConfig.from_env()
    first = threading.Event()

    class Watch(RunObserver):
        def on_batch(self, samples, progress) -> None:  # type: ignore[no-untyped-def, override]
            if any(s.filter_reason is None for s in samples):
                first.set()

    stop = threading.Event()
    with tempfile.TemporaryDirectory() as home, Store.open(ensure_demo_project(Path(home))) as store:
        embedder = Embedder()
        embedder.encode(["warm up"])  # the studio has its embedder loaded before anyone presses Start run
        config = RunConfig(per_label=3, seed=1, sampling=llm_config.default_sampling(), worked_example=True)
        run_id = start_run(store, config, llm_config)
        started = time.perf_counter()
        seconds: list[float] = []

        def stop_at_first() -> None:
            first.wait(300)
            seconds.append(time.perf_counter() - started)
            stop.set()

        watcher = threading.Thread(target=stop_at_first)
        watcher.start()
        run_generation(store, llm_config, run_id, embedder=embedder, observer=Watch(), stop=stop)
        first.set()
        watcher.join()
    return seconds[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--compare", action="append", default=[], help="another interpreter with its own build")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-offspring", action="store_true", help="skip the first-offspring timing")
    args = parser.parse_args()
    from datagen_core.llm.embedded import embedded_model_path

    model = embedded_model_path()
    pythons = [sys.executable, *args.compare]
    results: dict[str, list[dict[str, object]]] = {p: [] for p in pythons}
    for _ in range(args.rounds):
        for python in pythons:
            results[python].append(measure(python, model, args.tokens, args.threads))
    print(f"SmolLM2-135M Q4_1, {args.threads} threads, {args.tokens} tokens decoded, {args.rounds} rounds "
          "(median [min-max])")
    baseline: float | None = None
    for python, rounds in results.items():
        errors = [r["error"] for r in rounds if "error" in r]
        if errors:
            print(f"{python}: {errors[0]}")
            continue
        decode = [float(r["decode_tok_s"]) for r in rounds]  # type: ignore[arg-type]
        prompt = [float(r["prompt_tok_s"]) for r in rounds]  # type: ignore[arg-type]
        load = [float(r["load_s"]) for r in rounds]  # type: ignore[arg-type]
        median = statistics.median(decode)
        baseline = baseline or median
        features = " ".join(f.split(" = ")[0] for f in str(rounds[0]["system"]).replace("CPU : ", "").split(" | ")
                            if f.strip().endswith("= 1"))
        print(f"{python}\n  features: {features}\n  load {statistics.median(load):.2f} s; prompt "
              f"{statistics.median(prompt):.0f} tok/s; decode {median:.1f} tok/s [{min(decode):.1f}-{max(decode):.1f}]"
              f"; ratio to the first build {median / baseline:.2f}")
    if not args.no_offspring:
        cold = first_offspring_seconds(cold=True)
        warm = first_offspring_seconds(cold=False)
        print(f"first kept offspring on the demo project: {cold:.1f} s with the model server cold, {warm:.1f} s warm")


if __name__ == "__main__":
    main()
