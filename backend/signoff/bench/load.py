"""Closed-loop HTTP load: N clients, each sending its next request as soon as the last answered.

Clients are spread round-robin over the given base URLs (a load balancer's stand-in when
several API processes run). Each client keeps one connection open, like a browser tab or an
agent would. The load generator shares the machine with what it measures: its CPU use is part
of every figure it produces, on the signoff side and on the baseline side alike.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from signoff.bench.model import percentile


@dataclass(frozen=True)
class Request:
    """One HTTP request of a load: method, path (joined to the client's base URL), body."""

    method: str = "GET"
    path: str = "/"
    json: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def graphql(query: str, variables: dict[str, Any] | None, token: str | None) -> Request:
    """A GraphQL POST to /graphql with a bearer token."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Request("POST", "/graphql", {"query": query, "variables": variables or {}}, headers)


def graphql_ok(response: httpx.Response) -> str | None:
    """The default check: a 2xx answer without GraphQL errors (None) or what went wrong."""
    if response.status_code // 100 != 2:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        if isinstance(body, dict) and body.get("errors"):
            return f"errors: {str(body['errors'])[:200]}"
    return None


# (client index, request number of that client) -> the request, or None when it is done
RequestFactory = Callable[[int, int], Request | None]
# the response -> None when it succeeded, or a short description of the failure
Check = Callable[[httpx.Response], str | None]


@dataclass
class LoadResult:
    """What a load run saw: latencies of the successful requests, failures, elapsed time."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    clients: int = 0
    warmup_ok: int = 0  # successful requests during the warm-up (not timed)
    warmup_errors: int = 0

    @property
    def completed(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        """Successful requests per second."""
        return self.completed / self.elapsed if self.elapsed > 0 else 0.0

    def p_ms(self, pct: float) -> float:
        """A latency percentile, in milliseconds."""
        return percentile(self.latencies, pct) * 1000

    def figures(self) -> dict[str, float]:
        """The usual figures of a run: throughput, p50, p99 (ms) and errors."""
        return {
            "throughput": self.throughput,
            "p50_ms": self.p_ms(50),
            "p99_ms": self.p_ms(99),
            "errors": float(self.errors),
        }


async def closed_loop(
    urls: Sequence[str],
    *,
    clients: int,
    seconds: float,
    request: RequestFactory,
    check: Check = graphql_ok,
    warmup: float = 0.0,
    request_timeout: float = 30.0,
) -> LoadResult:
    """Run `clients` concurrent clients for `seconds` (after `warmup` seconds not counted).

    A client stops early when `request` returns None for it. Failed requests (by `check`,
    or a transport error) are counted, not timed; the first few are kept as samples.
    """
    if not urls:
        raise ValueError("no URL to load")
    result = LoadResult(clients=clients)
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    # Built before the clock starts, sharing one TLS context: making a context costs
    # milliseconds of CPU each, which would otherwise land in the measured window.
    tls = ssl.create_default_context()
    https = [
        httpx.AsyncClient(
            base_url=urls[i % len(urls)], limits=limits, timeout=request_timeout, verify=tls
        )
        for i in range(clients)
    ]
    loop = asyncio.get_running_loop()
    start = loop.time()
    measure_from = start + warmup
    measure_from_perf = time.perf_counter() + warmup
    deadline = measure_from + seconds
    finished: list[float] = []

    async def client(index: int, http: httpx.AsyncClient) -> None:
        number = 0
        while loop.time() < deadline:
            req = request(index, number)
            if req is None:
                break
            number += 1
            sent = time.perf_counter()
            try:
                response = await http.request(
                    req.method, req.path, json=req.json, headers=req.headers
                )
                problem = check(response)
            except httpx.HTTPError as exc:
                problem = f"{type(exc).__name__}: {exc}"
            took = time.perf_counter() - sent
            if sent < measure_from_perf:
                if problem is None:
                    result.warmup_ok += 1
                else:
                    result.warmup_errors += 1
                continue
            if problem is None:
                result.latencies.append(took)
            else:
                result.errors += 1
                if len(result.error_samples) < 5:
                    result.error_samples.append(problem)
        finished.append(loop.time())

    try:
        await asyncio.gather(*(client(i, http) for i, http in enumerate(https)))
    finally:
        await asyncio.gather(*(http.aclose() for http in https))
    # To the last answer: a request sent before the deadline counts, however late it returns.
    result.elapsed = max(max(finished, default=deadline) - measure_from, 1e-9)
    return result
