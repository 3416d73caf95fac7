"""A closed-loop HTTP/1.1 load generator that costs the client little CPU.

C keep-alive connections each send one prebuilt request, read the whole answer
(status line, headers, a Content-Length body), check its status, and send the
next one, until N answers have come back. It runs on uvloop and does no HTTP
parsing beyond the status and Content-Length, so that on a small machine it
takes as little CPU as possible from the server it measures (httpx's client
costs several times more per request). The CPU the client did spend is reported
beside the figures.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import uvloop


def request_bytes(method: str, path: str, body: Any, *, host: str,
                  headers: dict[str, str] | None = None) -> bytes:
    """One HTTP/1.1 keep-alive request with a JSON body, ready to write."""
    payload = json.dumps(body, separators=(",", ":")).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
             f"Content-Length: {len(payload)}",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + payload


@dataclass(frozen=True)
class LoadResult:
    n: int
    seconds: float
    latencies: list[float]  # seconds, one per request
    client_cpu: float  # seconds of CPU the client process spent
    sample: bytes  # the body of the first answer

    @property
    def rate(self) -> float:
        return self.n / self.seconds

    def percentile(self, p: float) -> float:
        """The p-th percentile latency in milliseconds (nearest rank)."""
        ordered = sorted(self.latencies)
        return 1000 * ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]

    @property
    def mean_ms(self) -> float:
        return 1000 * statistics.fmean(self.latencies)


class BadAnswer(Exception):
    pass


async def _read_answer(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = None
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        lowered = name.strip().lower()
        if lowered == b"content-length":
            length = int(value)
        elif lowered == b"transfer-encoding":
            raise BadAnswer(f"answer is {value.strip().decode()}: not supported here")
    if length is None:
        raise BadAnswer("answer without Content-Length")
    return status, await reader.readexactly(length)


async def _load(host: str, port: int, requests: Sequence[bytes], n: int, concurrency: int,
                expect: int) -> LoadResult:
    latencies: list[float] = []
    sample: list[bytes] = []
    issued = 0
    connections = [await asyncio.open_connection(host, port) for _ in range(concurrency)]

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal issued
        while issued < n:
            request = requests[issued % len(requests)]
            issued += 1
            start = time.perf_counter()
            writer.write(request)
            status, body = await _read_answer(reader)
            latencies.append(time.perf_counter() - start)
            if status != expect:
                raise BadAnswer(f"expected {expect}, got {status}: {body[:500]!r}")
            if not sample:
                sample.append(body)

    cpu = time.process_time()
    start = time.perf_counter()
    try:
        await asyncio.gather(*(worker(r, w) for r, w in connections))
    finally:
        seconds = time.perf_counter() - start
        cpu = time.process_time() - cpu
        for _, writer in connections:
            writer.close()
    return LoadResult(n=len(latencies), seconds=seconds, latencies=latencies, client_cpu=cpu,
                      sample=sample[0] if sample else b"")


def run_load(host: str, port: int, requests: Sequence[bytes], n: int, concurrency: int,
             *, expect: int = 201) -> LoadResult:
    """Send `n` requests (cycling through `requests`) over `concurrency`
    keep-alive connections, each waiting for its answer before sending again.

    Raises:
        BadAnswer: an answer with another status than `expect`, or one this
            client cannot read.
    """
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(_load(host, port, requests, n, concurrency, expect))
