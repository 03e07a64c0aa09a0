"""The run loop: many requests in flight, parents chosen from the population as it stands, offspring
persisted in transactional batches as they land, exact targets, resumable after a crash.

A run's state lives in the store, never only in memory: what is committed is the run. Resuming
rebuilds each population (real seeds + kept offspring), marks the parent pairs already used and asks
for exactly the missing number of offspring.

Degenerate answers (empty, one word, a label's name, an echo of the instruction, a copy of a parent or example,
shorter than the project's minimum; see `validity`) are stored as filtered with that reason and asked for again,
like refusals and duplicates, whatever the method.

In-run quality modules (`RunConfig.checks`) judge each batch before it is written: an offspring one rejects
(or moves to another label) is stored as filtered (`check:<module>`) and asked for again, so targets stay
exact; a correction is what is stored, embedded and bred from, with the text as generated in its details.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from datagen_core.checks import CheckContext, Item, in_run_checks
from datagen_core.checks.apply import Outcome, run_checks, verdict_records
from datagen_core.checks.dedup import nearest
from datagen_core.config import LLMConfig
from datagen_core.embed import Embedder
from datagen_core.engine.progress import LabelProgress, RunObserver, RunSummary, describe_faults
from datagen_core.engine.validity import degenerate_reason, instruction_text
from datagen_core.errors import LLMError, LLMFatalError
from datagen_core.llm import LLM, Completion
from datagen_core.llm.base import TransientBackendError
from datagen_core.methods import GenerationMethod, GenerationRequest, MethodContext, make_method
from datagen_core.records import NewSample, duplicate_key, utcnow
from datagen_core.store import PopulationMember, RunInfo, Store

#: How often the loop looks at the stop flag and the endpoint's silence while nothing lands.
TICK_S = 0.25
#: The first "no answer yet" note (then after 3x, 5x, ... this); fault notes at most this often.
WAIT_NOTE_S = 30.0
FAULT_NOTE_S = 10.0


@dataclass(frozen=True)
class _Landed:
    request: GenerationRequest
    requested_at: object
    completion: Completion | None
    error: LLMError | None
    #: An answer recovered on resume for a label that has since reached its target: stored, never counted.
    surplus: bool = False


@dataclass(frozen=True)
class _Candidate:
    """One sample of an answer (an answer holds several for methods that ask for several per call)."""

    landed: _Landed
    text: str
    reason: str | None
    position: int
    of: int
    checked: Outcome | None = None  # what the in-run quality modules made of it


class Runner:
    """Executes one run against one store. Construct per run; `execute` may be awaited once."""

    def __init__(
        self,
        store: Store,
        run: RunInfo,
        llm: LLM,
        embedder: Embedder,
        observer: RunObserver | None = None,
        stop: threading.Event | None = None,
    ) -> None:
        self.store = store
        self.run = run
        self.config = run.config
        self.llm = llm
        self.embedder = embedder
        self.observer = observer or RunObserver()
        self.stop = stop or threading.Event()
        project = store.project()
        self.all_labels = store.labels()
        self.min_words = project.min_words  # a project setting, read when the run starts or resumes
        self.labels = list(self.config.labels) or [lb.name for lb in self.all_labels]
        context = MethodContext(project, self.all_labels, store.gene_set(run.gene_set_version), self.config)
        existing = sum(store.kept_counts(run.id).values()) + sum(store.filtered_counts(run.id).values())
        # A resumed run continues the random stream at a new place instead of replaying its first splits.
        self.method: GenerationMethod = make_method(context, np.random.default_rng([self.config.seed, existing]))
        self.progress = {lb: LabelProgress(lb, self.config.per_label) for lb in self.labels}
        self._hashes: dict[str, set[str]] = {lb: set() for lb in self.labels}
        self._texts: dict[int, str] = {}  # population texts by id: what a request showed the model
        self._consecutive_failures = 0
        self._filtered_in_a_row = dict.fromkeys(self.labels, 0)
        self._last_answer = time.monotonic()  # when the endpoint last answered (or the run started waiting)
        self._next_wait_note = WAIT_NOTE_S
        self._faults: dict[str, int] = {}
        self._fault_noted = 0.0
        self._pool: dict[str, np.ndarray] = {}  # population vectors per label, for in-run group checking
        self.checks = in_run_checks(self.config.checks)

    # ------------------------------------------------------------ set-up
    def _load_populations(self) -> list[_Landed]:
        """Rebuild each population from the store; returns the answers that landed before the run last stopped
        but were never made into samples (each counted in flight until persisted)."""
        counted = self.store.counted_offspring(self.run.id)
        for label in self.labels:
            members = self.store.population(label, self.run.id)
            self._admit(label, members)
            for pair in self.store.used_pairs(self.run.id, label):
                self.method.mark_used(label, pair)
            self.progress[label].kept = counted.get(label, 0)
        return self._recover_answers()

    def _recover_answers(self) -> list[_Landed]:
        recovered: list[_Landed] = []
        for call in self.store.unused_answers(self.run.id):
            assert call.request is not None and call.response is not None
            request = GenerationRequest.from_record(call.request, call.messages)
            state = self.progress.get(request.label)
            if state is None:
                continue
            if len(request.parent_ids) == 2:
                self.method.mark_used(request.label, request.parent_ids)
            surplus = state.needed < request.items
            if not surplus:
                state.in_flight += request.items
            requested_at = datetime.fromisoformat(call.request.get("requested_at") or call.created_at.isoformat())
            completion = Completion(call.response, call.finish_reason, call)
            recovered.append(_Landed(request, requested_at, completion, None, surplus))
        if recovered:
            self._message("info", f"{len(recovered)} answers that landed before the run stopped are made into "
                          "samples now (nothing is asked again for them)")
        return recovered

    def _admit(self, label: str, members: Sequence[PopulationMember], vectors: np.ndarray | None = None) -> None:
        if not members:
            return
        if vectors is None:
            vectors = self.embedder.embed_stored(self.store, [m.text for m in members])
        self.method.observe(label, members, vectors)
        self._hashes[label].update(duplicate_key(m.text) for m in members)
        self._texts.update((m.id, m.text) for m in members)
        if self.config.dedup_distance is not None:
            held = self._pool.get(label)
            self._pool[label] = vectors if held is None else np.concatenate([held, vectors])

    # -------------------------------------------------------------- loop
    def _schedule(self, tasks: dict[asyncio.Task[_Landed], GenerationRequest]) -> None:
        """Fill the in-flight budget, each slot to the label furthest behind its target (fair at any budget)."""
        waiting = [label for label in self.labels if not self.progress[label].exhausted]
        while len(tasks) < self.llm.max_in_flight and not self.stop.is_set():
            open_labels = [label for label in waiting if self.progress[label].needed > 0]
            if not open_labels:
                return
            label = min(open_labels, key=lambda lb: (self.progress[lb].target - self.progress[lb].needed)
                        / self.progress[lb].target)
            state = self.progress[label]
            request = self.method.next_request_for(label, state.needed)
            if request is None:
                waiting.remove(label)
                if state.in_flight == 0:
                    state.exhausted = True
                    self._message("warning", f"label {label!r}: every parent pair is used; stopping this label")
                continue
            state.in_flight += request.items
            tasks[asyncio.create_task(self._ask(request))] = request

    async def _ask(self, request: GenerationRequest) -> _Landed:
        requested_at = utcnow()
        try:
            completion = await self.llm.complete(
                request.messages, sampling=request.sampling or self.config.sampling, schema=request.schema,
                purpose=self.config.method,
                sample_index=":".join(filter(None, (f"seed:{self.config.seed}", request.sample_index))),
                request={**request.record(), "requested_at": requested_at.isoformat()},
            )
            return _Landed(request, requested_at, completion, None)
        except LLMFatalError:
            raise
        except LLMError as exc:
            return _Landed(request, requested_at, None, exc)

    def _degenerate(self, request: GenerationRequest, text: str) -> str | None:
        """Why a parsed or corrected text cannot count as a sample of this request (see `validity`), or None."""
        sources = [self._texts[i] for i in (*request.parent_ids, *request.shown_ids) if i in self._texts]
        return degenerate_reason(text, labels=self.all_labels, min_words=self.min_words, sources=sources,
                                 instruction=instruction_text(request.messages, sources))

    def _triage(self, landed: Sequence[_Landed]) -> list[_Candidate]:
        """Count failures, parse answers (one or several samples each) and mark filtered ones (refusal, empty,
        too long, degenerate, duplicate, extra items beyond what was asked); `_persist` counts them once checks
        have run."""
        candidates: list[_Candidate] = []
        for item in landed:
            if item.surplus:
                pieces = self.method.parse_many(item.request, item.completion.text)  # type: ignore[union-attr]
                candidates.extend(_Candidate(item, text, "over_target", position, len(pieces))
                                  for position, (text, _) in enumerate(pieces))
                continue
            if item.completion is None:
                self.progress[item.request.label].failed += 1
                self._consecutive_failures += 1
                self._message("warning", f"{item.request.label}: {item.error}")
                continue
            self._consecutive_failures = 0
            label = item.request.label
            pieces = self.method.parse_many(item.request, item.completion.text)
            for position, (text, reason) in enumerate(pieces):
                if reason is None and position >= item.request.items:
                    reason = "extra_item"  # kept targets exact: never more than was counted in flight
                if reason is None:
                    reason = self._degenerate(item.request, text)
                if reason is None:
                    digest = duplicate_key(text)
                    if digest in self._hashes[label]:
                        reason = "duplicate"
                    else:
                        self._hashes[label].add(digest)
                candidates.append(_Candidate(item, text, reason, position, len(pieces)))
        if self._consecutive_failures >= self.config.max_failures:
            raise LLMFatalError(f"{self._consecutive_failures} LLM calls in a row failed; stopping the run")
        return candidates

    async def _apply_checks(self, candidates: list[_Candidate]) -> list[_Candidate]:
        """The in-run quality modules, in order, on the candidates still kept. They ask through the run's LLM
        facade, so they share its in-flight limit while new requests keep flowing."""
        chosen = [i for i, c in enumerate(candidates) if c.reason is None]
        if not self.checks or not chosen:
            return candidates
        items = [Item(None, candidates[i].landed.request.label, candidates[i].text) for i in chosen]
        context = CheckContext(self.store, self.embedder, self.llm)
        outcomes = await run_checks(self.checks, items, context, fixed_label=True)
        checked = list(candidates)
        for i, outcome in zip(chosen, outcomes, strict=True):
            reason = self._checked_reason(outcome, candidates[i].landed.request)
            checked[i] = dataclasses.replace(candidates[i], text=outcome.item.text, reason=reason, checked=outcome)
        return checked

    def _checked_reason(self, outcome: Outcome, request: GenerationRequest) -> str | None:
        """`check:<module>` for a rejection; a corrected text must still pass the length, degenerate and duplicate
        filters."""
        if outcome.rejected_by is not None:
            return f"check:{outcome.rejected_by}"
        if not outcome.corrected:
            return None
        if len(outcome.item.text) > self.config.max_chars:
            return "too_long"
        degenerate = self._degenerate(request, outcome.item.text)
        if degenerate is not None:
            return degenerate
        digest, hashes = duplicate_key(outcome.item.text), self._hashes[outcome.item.label]
        if digest != duplicate_key(outcome.original.text) and digest in hashes:
            return "duplicate"
        hashes.add(digest)
        return None

    def _group_check(
        self, candidates: Sequence[_Candidate], vectors: np.ndarray
    ) -> tuple[list[_Candidate], np.ndarray]:
        """In-run group checking (DataGen): an offspring closer than `dedup_distance` to a member of its label's
        population, or to one kept earlier in this batch, is filtered as `near_duplicate`."""
        checked: list[_Candidate] = []
        keep: list[bool] = []
        batch: dict[str, list[np.ndarray]] = {}
        rows = iter(vectors)
        for c in candidates:
            if c.reason is not None:
                checked.append(c)
                continue
            vector, label = next(rows), c.landed.request.label
            pool = [p for p in (self._pool.get(label), *(v[None, :] for v in batch.get(label, []))) if p is not None]
            _, distance = nearest(vector, np.concatenate(pool)) if pool else (None, ())
            close = len(distance) > 0 and distance[0] < self.config.dedup_distance  # type: ignore[operator]
            keep.append(not close)
            if close:
                checked.append(dataclasses.replace(c, reason="near_duplicate"))
                self._count_filtered(label, "near_duplicate")
            else:
                checked.append(c)
                batch.setdefault(label, []).append(vector)
        return checked, vectors[np.asarray(keep, dtype=bool)] if len(vectors) else vectors

    def _count_filtered(self, label: str, reason: str | None) -> None:
        """A model that only repeats itself or refuses would otherwise keep a label asking forever."""
        self._filtered_in_a_row[label] = 0 if reason is None else self._filtered_in_a_row[label] + 1
        if self._filtered_in_a_row[label] >= self.config.max_failures and not self.progress[label].exhausted:
            self.progress[label].exhausted = True
            self._message("warning", f"label {label!r}: {self.config.max_failures} answers in a row were "
                          f"filtered (last: {reason}); stopping this label")

    def _write(self, candidates: Sequence[_Candidate]) -> tuple[list[NewSample], np.ndarray]:
        """Embed the kept texts and write the batch with the in-run checks' verdicts in one transaction (runs in a
        worker thread)."""
        kept_texts = [c.text for c in candidates if c.reason is None]
        vectors, fresh = self.embedder.embed(self.store, kept_texts)
        if self.config.dedup_distance is not None:
            candidates, vectors = self._group_check(candidates, vectors)
        ids = self.store.allocate_sample_ids(len(candidates))
        samples = []
        for sample_id, c in zip(ids, candidates, strict=True):
            request, call = c.landed.request, c.landed.completion.call  # type: ignore[union-attr]
            details = request.details if c.of == 1 else {**request.details, "item": c.position, "items": c.of}
            if c.checked is not None and c.checked.corrected:  # the raw response may hold several items
                details = {**details, "original_text": c.checked.original.text}
            samples.append(NewSample(
                id=sample_id, run_id=self.run.id, label=request.label, text=c.text, method=self.config.method,
                parent_ids=request.parent_ids, gene_split=request.gene_split, prompt=request.prompt, details=details,
                model=self.llm.model, sampling=(request.sampling or self.config.sampling).model_dump(),
                raw_response=c.landed.completion.text, llm_call_id=call.id,  # type: ignore[union-attr]
                prompt_tokens=call.prompt_tokens // c.of, completion_tokens=call.completion_tokens // c.of,
                requested_at=c.landed.requested_at, filter_reason=c.reason,  # type: ignore[arg-type]
            ))
        checked = [(sample_id, c.checked) for sample_id, c in zip(ids, candidates, strict=True) if c.checked]
        verdicts = verdict_records(self.checks, [i for i, _ in checked], [o for _, o in checked])
        self.store.write_offspring(samples, self.llm.take_pending_calls(), fresh, self.embedder.name, verdicts)
        return samples, vectors

    async def _persist(self, landed: Sequence[_Landed]) -> list[NewSample]:
        """Check and store what landed, then let the offspring join their populations."""
        candidates = await self._apply_checks(self._triage(landed))
        for c in candidates:
            self._count_filtered(c.landed.request.label, c.reason)
        samples, vectors = await asyncio.to_thread(self._write, candidates)
        kept = [s for s in samples if s.filter_reason is None]
        for label in {s.label for s in kept}:
            rows = [i for i, s in enumerate(kept) if s.label == label]
            members = [PopulationMember(kept[i].id, kept[i].text, kept[i].text_hash, "synthetic") for i in rows]
            self._admit(label, members, vectors[rows])
        for sample in samples:
            state = self.progress[sample.label]
            if sample.filter_reason == "over_target":
                continue
            if sample.filter_reason is None:
                state.kept += 1
            else:
                state.filtered += 1
        for item in landed:  # counted as in flight until persisted, so refills never overshoot a target
            if not item.surplus:
                self.progress[item.request.label].in_flight -= item.request.items
        self.observer.on_batch(samples, self.progress)
        return samples

    def _message(self, level: str, message: str) -> None:
        self.store.add_event(self.run.id, level, "message", message)
        self.observer.on_message(level, message)

    def _on_fault(self, fault: TransientBackendError, attempt: int) -> None:
        """Say at once that the endpoint struggles (at most every few seconds), not only when a call gives up."""
        self._faults[fault.kind] = self._faults.get(fault.kind, 0) + 1
        now = time.monotonic()
        if now - self._fault_noted >= FAULT_NOTE_S:
            self._fault_noted = now
            self._message("warning", f"endpoint fault: {fault} (attempt {attempt}); retrying. Faults so far: "
                          + describe_faults(self._faults))

    def _watch_endpoint(self, waiting: int) -> None:
        """An endpoint that answers nothing for `give_up_after_s` while requests wait stops the run (resumable);
        before that, the wait is reported now and then."""
        now = time.monotonic()
        if not waiting:
            self._last_answer, self._next_wait_note = now, WAIT_NOTE_S
            return
        idle = now - self._last_answer
        if idle >= self.llm.give_up_after_s:
            faults = f" ({describe_faults(self._faults)})" if self._faults else ""
            raise LLMFatalError(f"the endpoint answered nothing for {idle:.0f} s{faults}; the run stops and resumes "
                                "where it left off once the endpoint answers")
        if idle >= self._next_wait_note:
            self._next_wait_note += WAIT_NOTE_S * 2
            self._message("warning", f"no answer for {idle:.0f} s ({waiting} requests waiting); the run gives up "
                          f"after {self.llm.give_up_after_s:.0f} s")

    def _flush_calls(self) -> None:
        """Every answered call is stored as it lands, before embedding: it was paid for."""
        calls = self.llm.take_pending_calls()
        if calls:
            self.store.insert_llm_calls(calls)

    async def execute(self) -> RunSummary:
        started = time.perf_counter()
        tasks: dict[asyncio.Task[_Landed], GenerationRequest] = {}
        new_offspring = 0
        status = "failed"
        self.llm.on_fault = self._on_fault
        try:
            self.observer.on_phase(f"connecting to the model ({self.llm.model})")
            await self.llm.check()
            self.observer.on_phase("embedding the population (the first time, this loads the embedder)")
            landed = await asyncio.to_thread(self._load_populations)
            self.observer.on_start(self.run.id, self.progress)
            self.store.set_run_status(self.run.id, "running")
            self.observer.on_phase("waiting for the first answers")
            persisting: asyncio.Task[list[NewSample]] | None = None
            flushing: asyncio.Task[None] | None = None
            self._last_answer = time.monotonic()
            while True:
                if self.stop.is_set() and tasks:
                    landed += await self._cancel(tasks)  # stopping never waits for answers being generated
                self._schedule(tasks)
                if flushing is None and self.llm.has_pending_calls():
                    flushing = asyncio.create_task(asyncio.to_thread(self._flush_calls))
                if persisting is None and landed:
                    # One batch is written at a time while requests keep flowing; what lands meanwhile
                    # forms the next batch, so batches grow with throughput.
                    persisting = asyncio.create_task(self._persist(landed))
                    landed = []
                waiting = set(tasks) | {t for t in (persisting, flushing) if t is not None}
                if not waiting:
                    break
                done, _ = await asyncio.wait(waiting, timeout=TICK_S, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task is persisting:
                        new_offspring += sum(s.filter_reason is None for s in persisting.result())
                        persisting = None
                    elif task is flushing:
                        flushing.result()
                        flushing = None
                    else:
                        del tasks[task]  # type: ignore[arg-type]
                        item: _Landed = task.result()  # type: ignore[assignment]
                        if item.completion is not None:
                            self._last_answer = time.monotonic()
                        landed.append(item)
                self._watch_endpoint(len(tasks))
            status = "interrupted" if self.stop.is_set() else "completed"
        except LLMFatalError as exc:
            self.store.set_run_status(self.run.id, "failed", str(exc))
            raise
        except BaseException:
            status = "interrupted"
            raise
        finally:
            await self._cancel(tasks)
            self.store.insert_llm_calls(self.llm.take_pending_calls())
            if status != "failed":
                self.store.set_run_status(self.run.id, status)
            await self.llm.aclose()
        return RunSummary(
            self.run.id, status, self.progress, time.perf_counter() - started, new_offspring,
            self.store.run_usage(self.run.id),
        )

    async def _cancel(self, tasks: dict[asyncio.Task[_Landed], GenerationRequest]) -> list[_Landed]:
        """Cancel requests still waiting for an answer; returns the ones that landed meanwhile, to be kept. (An
        answer that lands as its request is cancelled is stored with its call and made into its sample on resume.)"""
        landed = []
        for task, request in tasks.items():
            if task.done() and not task.cancelled() and task.exception() is None:
                landed.append(task.result())
                continue
            task.cancel()
            self.progress[request.label].in_flight -= request.items
        await asyncio.gather(*tasks, return_exceptions=True)
        tasks.clear()
        return landed


def run_generation(
    store: Store,
    llm_config: LLMConfig,
    run_id: str,
    *,
    embedder: Embedder | None = None,
    observer: RunObserver | None = None,
    stop: threading.Event | None = None,
    **llm_options: object,
) -> RunSummary:
    """Execute (or resume) a recorded run to its targets; blocks until done, stopped or failed."""
    run = store.run(run_id)
    llm = LLM.from_config(llm_config, store, run_id=run_id, use_cache=run.config.use_cache, autoflush=False,
                          **llm_options)
    stop = stop or threading.Event()
    runner = Runner(store, run, llm, embedder or Embedder(), observer, stop)
    with _stopped_by_sigterm(stop):
        return asyncio.run(runner.execute())


@contextlib.contextmanager
def _stopped_by_sigterm(stop: threading.Event) -> Iterator[None]:
    """In a process's main thread, SIGTERM stops the run as *Stop* does (what landed is kept, the run is left
    interrupted) instead of killing it mid-write."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
