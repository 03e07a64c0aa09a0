"""A small OpenAI-compatible chat server on 127.0.0.1 for tests and benchmarks.

It answers deterministically from the request (so runs are reproducible), can add latency and inject
faults (429, 500, timeouts, garbage bodies, empty answers, refusals) on a schedule, checks the API key
when told to, and counts requests and peak concurrency. It serves a bounded number of requests and
stops with `close()` or when the `with` block ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

WORDS = [
    "free", "prize", "call", "now", "meeting", "tomorrow", "dinner", "lunch", "train", "late", "office", "weekend",
    "mum", "text", "reply", "stop", "claim", "cash", "voucher", "holiday", "ringtone", "love", "movie", "party",
    "exam", "home", "work", "bus", "shop", "coffee", "game", "match", "ticket", "offer", "urgent", "account",
    "winner", "mobile", "update", "network", "bonus", "delivery",
]

# A fault is one of: None (answer), "429", "500", "timeout", "garbage", "empty", "refusal", "auth".
FaultPlan = Callable[[int, dict[str, Any]], str | None]


def deterministic_text(messages: list[dict[str, str]], seed: int | None) -> str:
    """A unique, label-aware text for a prompt: same prompt + seed, same text."""
    prompt = messages[-1]["content"]
    digest = hashlib.sha256((prompt + str(seed)).encode()).hexdigest()
    label_match = re.search(r"Category: (.+)\n", prompt)
    label = label_match.group(1) if label_match else "text"
    words = [WORDS[int(digest[i : i + 2], 16) % len(WORDS)] for i in range(0, 16, 2)]
    return f"{label} message {digest[:10]}: {' '.join(words)}."


def gene_answer() -> str:
    genes = [
        {"name": "length", "description": "number of words"},
        {"name": "tone", "description": "casual or urgent"},
        {"name": "subtopic", "description": "what it is about"},
        {"name": "style", "description": "spelling and punctuation"},
    ]
    return json.dumps({"genes": genes})


@dataclass
class LoopbackStats:
    requests: int = 0
    completions: int = 0
    in_flight: int = 0
    peak_in_flight: int = 0
    faults: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


class LoopbackServer:
    """Start with `with LoopbackServer(...) as server:`; `server.base_url` is the /v1 URL."""

    def __init__(
        self,
        *,
        latency_s: float = 0.0,
        faults: FaultPlan | None = None,
        api_key: str | None = None,
        max_requests: int = 100_000,
        timeout_sleep_s: float = 5.0,
        answer: Callable[[dict[str, Any]], str] | None = None,
    ) -> None:
        self.latency_s = latency_s
        self.faults = faults
        self.api_key = api_key
        self.max_requests = max_requests
        self.timeout_sleep_s = timeout_sleep_s
        self.answer = answer
        self.stats = LoopbackStats()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._server.request_queue_size = 512
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _reply_text(self, body: dict[str, Any]) -> str:
        if self.answer is not None:
            return self.answer(body)
        if body.get("response_format"):
            return gene_answer()
        return deterministic_text(body["messages"], body.get("seed"))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: bytes, content_type: str = "application/json") -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                    self.wfile.write(payload)

            def _error(self, status: int, message: str) -> None:
                self._send(status, json.dumps({"error": {"message": message, "type": "test"}}).encode())

            def do_GET(self) -> None:
                if self.path.rstrip("/").endswith("/models"):
                    self._send(200, json.dumps({"object": "list", "data": [{"id": "loopback", "object": "model"}]})
                               .encode())
                else:
                    self._error(404, "not found")

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                stats = server.stats
                with stats.lock:
                    stats.requests += 1
                    number = stats.requests
                    stats.in_flight += 1
                    stats.peak_in_flight = max(stats.peak_in_flight, stats.in_flight)
                try:
                    self._answer(number, body)
                finally:
                    with stats.lock:
                        stats.in_flight -= 1

            def _answer(self, number: int, body: dict[str, Any]) -> None:
                if number > server.max_requests:
                    self._error(503, "request budget of the test server exhausted")
                    return
                if not self.path.endswith("/chat/completions"):
                    self._error(404, "not found")
                    return
                if server.api_key is not None and self.headers.get("Authorization") != f"Bearer {server.api_key}":
                    self._error(401, "invalid api key")
                    return
                fault = server.faults(number, body) if server.faults else None
                if fault:
                    with server.stats.lock:
                        server.stats.faults[fault] = server.stats.faults.get(fault, 0) + 1
                if server.latency_s:
                    time.sleep(server.latency_s)
                if fault == "429":
                    self._error(429, "slow down")
                    return
                if fault == "500":
                    self._error(500, "boom")
                    return
                if fault == "timeout":
                    time.sleep(server.timeout_sleep_s)
                    self._error(504, "too late")
                    return
                if fault == "garbage":
                    self._send(200, b"<html>this is not json", "application/json")
                    return
                text = {"empty": "", "refusal": "I'm sorry, but as an AI I cannot write that."}.get(fault or "")
                if text is None:
                    text = server._reply_text(body)
                with server.stats.lock:
                    server.stats.completions += 1
                prompt_tokens = sum(len(m["content"].split()) for m in body["messages"])
                payload = {
                    "id": f"cmpl-{number}",
                    "object": "chat.completion",
                    "created": int(time.time()),
                    "model": body.get("model", "loopback"),
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                 "finish_reason": "stop"}],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                              "total_tokens": prompt_tokens + len(text.split())},
                }
                self._send(200, json.dumps(payload).encode())

        return Handler
