"""The LLM facade against the loopback server: retries, fatal errors, cache, accounting, admission control."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from datagen_core.config import LLMConfig, SamplingParams
from datagen_core.errors import LLMError, LLMFatalError
from datagen_core.llm import LLM
from datagen_core.store import Store

from .conftest import loopback_config, make_project
from .loopback_server import LoopbackServer

MESSAGES = [{"role": "user", "content": "Write a question.\nCategory: HUM\nText:"}]
SAMPLING = SamplingParams(temperature=1.0, max_tokens=32)


def fast_llm(server: LoopbackServer, store: Store | None = None, **kwargs: object) -> LLM:
    options = {"backoff_base_s": 0.01, "backoff_cap_s": 0.05, **kwargs}
    return LLM.from_config(loopback_config(server, timeout_s=1.0), store, **options)  # type: ignore[arg-type]


def complete(llm: LLM, messages: list[dict[str, str]] = MESSAGES, **kwargs: object) -> object:
    async def once() -> object:
        try:
            return await llm.complete(messages, sampling=SAMPLING, **kwargs)  # type: ignore[arg-type]
        finally:
            await llm.aclose()

    return asyncio.run(once())


@pytest.mark.parametrize("fault", ["429", "500", "garbage", "timeout"])
def test_transient_faults_are_retried(fault: str) -> None:
    with LoopbackServer(faults=lambda n, _: fault if n <= 2 else None, timeout_sleep_s=2.0) as server:
        llm = fast_llm(server)
        result = complete(llm)
        assert "HUM message" in result.text
        assert result.call.attempts == 3
        assert server.stats.faults[fault] == 2


def test_gives_up_after_max_retries_and_records_the_failure(home: Path) -> None:
    make_project(home)
    with Store.open(home / "trec.duckdb") as store, LoopbackServer(faults=lambda n, _: "500") as server:
        llm = fast_llm(server, store, max_retries=2)
        with pytest.raises(LLMError, match="after 3 attempts"):
            complete(llm)
        assert server.stats.requests == 3
        row = store.cursor().execute("SELECT attempts, error FROM llm_calls").fetchone()
        assert row[0] == 3 and "gave up" in row[1]


def test_invalid_api_key_is_fatal_without_retries() -> None:
    with LoopbackServer(api_key="right") as server:
        config = LLMConfig(backend="openai", base_url=server.base_url, model="m", api_key_env="WRONG_KEY_VAR")
        llm = LLM.from_config(config, None)
        with pytest.raises(LLMFatalError, match="refused the API key"):
            complete(llm)
        assert server.stats.requests == 1


def test_unreachable_endpoint_fails_the_check_fast() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    llm = LLM.from_config(LLMConfig(backend="openai", base_url=f"http://127.0.0.1:{port}/v1", model="m"), None)
    with pytest.raises(LLMFatalError, match="cannot reach"):
        asyncio.run(llm.check())


def test_cache_answers_identical_requests_and_accounts_tokens(home: Path, loopback: LoopbackServer) -> None:
    make_project(home)
    with Store.open(home / "trec.duckdb") as store:
        first = complete(fast_llm(loopback, store), sample_index="a")
        again = complete(fast_llm(loopback, store), sample_index="a")
        other = complete(fast_llm(loopback, store), sample_index="b")
        uncached = complete(fast_llm(loopback, store, use_cache=False), sample_index="a")
        assert loopback.stats.completions == 3
        assert again.cached and again.text == first.text
        assert not other.cached and not uncached.cached
        rows = store.cursor().execute(
            "SELECT count(*), count(*) FILTER (WHERE cached), sum(prompt_tokens) FROM llm_calls"
        ).fetchone()
        assert rows[0] == 4 and rows[1] == 1
        assert rows[2] == 4 * first.call.prompt_tokens > 0


def test_in_flight_limit_is_respected_and_halved_on_rate_limits() -> None:
    with LoopbackServer(latency_s=0.05) as server:
        llm = fast_llm(server, max_in_flight=8)

        async def many() -> None:
            await asyncio.gather(*[
                llm.complete([{"role": "user", "content": f"q{i}"}], sampling=SAMPLING) for i in range(40)
            ])
            await llm.aclose()

        asyncio.run(many())
        assert 4 <= server.stats.peak_in_flight <= 8  # never above the limit, and really concurrent
        assert server.stats.completions == 40

    with LoopbackServer(latency_s=0.02, faults=lambda n, _: "429" if n <= 8 else None) as server:
        llm = fast_llm(server, max_in_flight=8)

        async def limited() -> int:
            results = await asyncio.gather(*[
                llm.complete([{"role": "user", "content": f"q{i}"}], sampling=SAMPLING) for i in range(8)
            ])
            await llm.aclose()
            return len(results)

        assert asyncio.run(limited()) == 8
        assert llm.in_flight_limit < 8


def test_records_wait_for_the_caller_when_autoflush_is_off(home: Path, loopback: LoopbackServer) -> None:
    make_project(home)
    with Store.open(home / "trec.duckdb") as store:
        llm = fast_llm(loopback, store, autoflush=False)
        complete(llm)
        assert store.cursor().execute("SELECT count(*) FROM llm_calls").fetchone()[0] == 0
        pending = llm.take_pending_calls()
        assert len(pending) == 1 and llm.take_pending_calls() == []
        store.insert_llm_calls(pending)
        assert store.cursor().execute("SELECT count(*) FROM llm_calls").fetchone()[0] == 1
