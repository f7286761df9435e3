"""LLM requests over a pool of OpenAI-compatible servers: least outstanding requests, a
backoff and a health check per server, and the list of servers in ``llm.base_url``."""

from __future__ import annotations

import asyncio
import json

import pytest
from fake_openai_server import Answer, FakeOpenAIServer

from recoworld.llm import make_chat_model
from recoworld.llm.openai_backend import REQUESTS_PER_SERVER, OpenAIChatModel
from recoworld.llm.retry import RetryPolicy
from recoworld.llm.server_pool import ServerPool, server_urls

MODELS = json.dumps({"object": "list", "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "me"}]})


class PoolServer(FakeOpenAIServer):
    """A fake server that also answers the health check, ``GET /v1/models``, with
    ``models_status`` (200: healthy)."""

    def __init__(self, script, models_status: int = 200):
        self.models_status = models_status
        self.health_checks = 0
        super().__init__(script)

    def _handler(self):
        server, base = self, super()._handler()

        class Handler(base):
            def do_GET(self):  # http.server calls it by this name
                server.health_checks += 1
                payload = MODELS.encode() if server.models_status == 200 else b'{"error": {"message": "down"}}'
                self.send_response(server.models_status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        return Handler


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_requests_spread_over_two_servers_and_avoid_the_one_that_fails():
    with PoolServer([Answer.chat("from a", delay_s=0.02)]) as a, \
            PoolServer([Answer.error(503, "overloaded")], models_status=503) as b:
        llm = OpenAIChatModel("fake", base_url=[a.base_url, b.base_url], max_concurrency=4,
                              retry=RetryPolicy(3, 0.01, 0.05))
        with llm:
            replies = llm.chat_many([f"question {i}" for i in range(24)])
        assert [r.text for r in replies] == ["from a"] * 24
        served = {s["base_url"]: s for s in llm.pool.as_dicts()}
        # b failed every request it got and every health check; each failure left it out longer.
        assert served[b.base_url]["failed"] == len(b.requests) + b.health_checks >= 1
        assert not served[b.base_url]["healthy"]
        assert len(a.requests) == 24
        assert len(b.requests) < 24
        assert llm.metrics()["llm_retries"] == len(b.requests)


def test_two_healthy_servers_share_the_load():
    with PoolServer([Answer.chat("a", delay_s=0.02)]) as a, PoolServer([Answer.chat("b", delay_s=0.02)]) as b:
        with OpenAIChatModel("fake", base_url=f"{a.base_url},{b.base_url}", max_concurrency=8) as llm:
            replies = llm.chat_many([f"q{i}" for i in range(32)])
        texts = [r.text for r in replies]
        assert texts.count("a") == len(a.requests) and texts.count("b") == len(b.requests)
        assert len(a.requests) + len(b.requests) == 32
        assert min(len(a.requests), len(b.requests)) >= 8  # least outstanding keeps both busy
        assert all(s["outstanding"] == 0 for s in llm.pool.as_dicts())


def test_a_server_back_from_its_backoff_is_health_checked_before_it_is_used():
    with PoolServer([Answer.error(502, "bad gateway"), Answer.chat("b again")]) as b, \
            PoolServer([Answer.chat("a", delay_s=0.05)]) as a:
        with OpenAIChatModel("fake", base_url=[b.base_url, a.base_url], max_concurrency=1,
                             retry=RetryPolicy(2, 0.0, 0.0)) as llm:
            first = llm.chat("q0")  # b (listed first) fails with 502, the retry goes to a
            second = llm.chat("q1")  # b's backoff is over: checked, healthy, used again
        assert (first.text, second.text) == ("a", "b again")
        assert b.health_checks == 1
        assert llm.pool.as_dicts()[0]["healthy"]


def test_least_outstanding_then_fewest_served_then_first_listed():
    pool = ServerPool(["http://a/v1", "http://b/v1", "http://c/v1"], clock=FakeClock())
    a, b, c = pool.servers
    assert pool.choose() is a
    a.outstanding, a.served = 1, 1
    assert pool.choose() is b
    b.outstanding, b.served = 1, 1
    c.outstanding, c.served = 1, 5
    assert pool.choose() is a  # all have one in flight: a has served fewest (ties to the first)
    c.outstanding = 0
    assert pool.choose() is c


def test_backoff_doubles_per_failure_in_a_row_and_honours_retry_after():
    clock = FakeClock()
    pool = ServerPool(["http://a/v1", "http://b/v1"], backoff_base_s=1.0, backoff_max_s=5.0, clock=clock)
    a, b = pool.servers
    outs = []
    for _ in range(4):
        pool.failed(a, "refused")
        outs.append(a.out_until - clock.now)
    assert outs == [1.0, 2.0, 4.0, 5.0]
    assert pool.choose() is b
    pool.failed(b, "429", retry_after_s=9.0)
    assert pool.choose() is None and pool.seconds_until_one_is_back() == 5.0
    clock.now += 5.0
    assert pool.choose() is a
    pool.succeeded(a)
    pool.failed(a, "refused again")
    assert a.out_until - clock.now == 1.0  # a success ended the run of failures


def test_when_every_server_is_out_a_request_waits_for_the_first_back():
    clock = FakeClock()
    waited = []

    async def sleep(seconds):
        waited.append(seconds)
        clock.now += seconds

    async def healthy(server):
        pass

    async def lease_one():
        async with pool.lease(healthy) as server:
            return server.base_url

    pool = ServerPool(["http://a/v1", "http://b/v1"], backoff_base_s=2.0, clock=clock, sleep=sleep)
    pool.failed(pool.servers[0], "down")
    pool.failed(pool.servers[1], "down")
    pool.failed(pool.servers[1], "down")
    assert asyncio.run(lease_one()) == "http://a/v1"
    assert waited == [2.0]


def test_server_urls_accept_a_list_or_commas_and_name_a_bad_entry():
    assert server_urls("http://a:8000/v1, http://b:8000/v1") == ["http://a:8000/v1", "http://b:8000/v1"]
    assert server_urls(["http://a:8000/v1"]) == ["http://a:8000/v1"]
    with pytest.raises(ValueError, match=r"llm.base_url\[1\]='b:8000/v1' is not an http\(s\) URL"):
        server_urls(["http://a:8000/v1", "b:8000/v1"])
    with pytest.raises(ValueError, match="names a server twice"):
        server_urls("http://a/v1,http://a/v1")


def test_default_concurrency_is_per_server_and_the_config_takes_a_list():
    llm = make_chat_model(backend="openai", model="m", base_url=["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"])
    assert llm.max_concurrency == 2 * REQUESTS_PER_SERVER
    assert llm.base_url == "http://127.0.0.1:1/v1,http://127.0.0.1:2/v1"
    one = make_chat_model(backend="openai", model="m", base_url="http://127.0.0.1:1/v1", max_concurrency=3)
    assert one.max_concurrency == 3
    # The servers are addresses, not the model: they never enter a cache key.
    assert llm.cache_identity() == one.cache_identity()
