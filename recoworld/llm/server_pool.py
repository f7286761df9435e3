"""Several OpenAI-compatible servers of one model used as one: least outstanding requests,
with a health check and a backoff per server.

Each request goes to the available server with the fewest requests in flight (ties: the one
that has served fewer, then the first listed), so a slow server receives less work and a
fast one more, without any knowledge of their speed. A server is left out after a failure
that says something about the server rather than the request — it cannot be reached, did
not answer in time, or answered 429, 502, 503 or 504 — for ``backoff_base_s * 2**(n-1)``
seconds after its ``n``-th failure in a row (at most ``backoff_max_s``, or longer when it
sent a ``Retry-After``). When its time is up, the next request that would go to it first
checks its health (``GET {base_url}/models``, which every OpenAI-compatible server serves):
a server that answers is back, one that does not stays out for a doubled time. When every
server is out, a request waits for the first to come back; the model's ``timeout_s`` bounds
that wait like any other, and its retries then report the failure.

The retries of :class:`~recoworld.llm.base.ChatModel` then send a failed request to
another server: one server down costs a retry per request that was in flight on it, and
the run goes on at the speed of the others.

Outstanding counts are plain integers read and written by the event loop that runs the
requests; a model used from several loops (rare) shares them, which only blurs the choice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

logger = logging.getLogger("recoworld.llm")

#: HTTP statuses that put a server out for a while (the server is overloaded or away).
SERVER_DOWN_STATUSES = frozenset({429, 502, 503, 504})


@dataclass
class Server:
    """One server of a pool, with what the pool knows of it."""

    base_url: str
    outstanding: int = 0  # requests in flight
    served: int = 0  # requests sent to it
    failed: int = 0  # requests or health checks that failed
    failures_in_row: int = 0
    out_until: float = 0.0  # the clock's time before which it is left out

    def as_dict(self) -> dict:
        return {"base_url": self.base_url, "served": self.served, "failed": self.failed,
                "outstanding": self.outstanding, "healthy": self.failures_in_row == 0}


def server_urls(base_url) -> list[str]:
    """The servers named by ``llm.base_url``: a URL, several separated by commas, or a list
    of URLs. Raises :class:`ValueError` naming an entry that is not an http(s) URL, and
    :class:`TypeError` for a value that is neither."""
    if isinstance(base_url, str):
        urls = [u.strip() for u in base_url.split(",")]
    elif isinstance(base_url, Sequence):
        urls = [str(u).strip() for u in base_url]
    else:
        raise TypeError(f"llm.base_url={base_url!r}; give a URL or a list of URLs such as "
                         "[http://node1:8000/v1,http://node2:8000/v1]")
    for i, url in enumerate(urls):
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"llm.base_url[{i}]={url!r} is not an http(s) URL; write it like "
                             "http://localhost:8000/v1")
    if len(set(urls)) != len(urls):
        raise ValueError(f"llm.base_url={urls} names a server twice; list each server once")
    return urls


class ServerPool:
    """Servers chosen by least outstanding requests (module docstring).

    Arguments:
        base_urls: the servers, each an OpenAI-compatible base URL.
        backoff_base_s: how long a server is left out after its first failure in a row;
            doubles with each further failure.
        backoff_max_s: the longest it is left out (unless its ``Retry-After`` asks longer).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, base_urls: Sequence[str], *, backoff_base_s: float = 0.5, backoff_max_s: float = 30.0,
                 clock: Callable[[], float] = time.monotonic, sleep=None):
        if not base_urls:
            raise ValueError("a server pool needs at least one base_url")
        self.servers = [Server(url) for url in base_urls]
        self.backoff_base_s = backoff_base_s
        self.backoff_max_s = backoff_max_s
        self._clock = clock
        self._sleep = sleep or asyncio.sleep

    def choose(self) -> Server | None:
        """The server the next request goes to, or ``None`` when every one is left out."""
        now = self._clock()
        available = [s for s in self.servers if s.out_until <= now]
        if not available:
            return None
        return min(available, key=lambda s: (s.outstanding, s.served))  # min keeps the first of ties

    def seconds_until_one_is_back(self) -> float:
        return max(0.0, min(s.out_until for s in self.servers) - self._clock())

    def succeeded(self, server: Server) -> None:
        if server.failures_in_row:
            logger.info(f"{server.base_url} answers again")
        server.failures_in_row = 0

    def failed(self, server: Server, why: str, retry_after_s: float | None = None) -> None:
        """Leave ``server`` out for its backoff after a failure described by ``why``."""
        server.failed += 1
        server.failures_in_row += 1
        out_s = min(self.backoff_max_s, self.backoff_base_s * 2 ** (server.failures_in_row - 1))
        if retry_after_s is not None:
            out_s = max(out_s, retry_after_s)
        server.out_until = self._clock() + out_s
        logger.warning(f"{server.base_url} left out for {out_s:.2f}s after failure {server.failures_in_row} "
                       f"in a row: {why}")

    @asynccontextmanager
    async def lease(self, health_check: Callable[[Server], Awaitable[None]]):
        """A server for one request, counted as outstanding while the block runs. A server
        that comes back from a backoff passes ``health_check`` first (which raises when it
        is not healthy). The block reports its outcome with :meth:`succeeded` or
        :meth:`failed`."""
        server = await self._healthy_server(health_check)
        server.outstanding += 1
        server.served += 1
        try:
            yield server
        finally:
            server.outstanding -= 1

    async def _healthy_server(self, health_check) -> Server:
        while True:
            server = self.choose()
            if server is None:
                await self._sleep(self.seconds_until_one_is_back())
                continue
            if server.failures_in_row == 0:
                return server
            server.outstanding += 1  # other requests pick another server while this one is checked
            try:
                await health_check(server)
            except Exception as exc:  # noqa: BLE001 - any failure of the check keeps the server out
                self.failed(server, f"health check failed ({type(exc).__name__}: {exc})")
                continue
            finally:
                server.outstanding -= 1
            self.succeeded(server)
            return server

    def as_dicts(self) -> list[dict]:
        """Each server's counts, for logs and metrics."""
        return [s.as_dict() for s in self.servers]

    def __repr__(self) -> str:
        return f"ServerPool({[s.base_url for s in self.servers]})"
