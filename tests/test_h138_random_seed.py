"""llama.cpp reads the seed 0xFFFFFFFF as "draw a seed at random", embedded and behind
``llama-server`` or ``llama_cpp.server`` alike: :meth:`ChatRequest.sampling`, which every
backend and the cache key read, passes it on as the seed below it, and leaves every other
seed (and so every other cache key) as it was."""

from __future__ import annotations

import sys
import types

from fake_openai_server import Answer, FakeOpenAIServer, FakeSleep

from recoworld.llm import BackendCall, ChatRequest, RetryPolicy
from recoworld.llm.cache import cache_key
from recoworld.llm.openai_backend import OpenAIChatModel
from recoworld.llm.types import RANDOM_SEED

MESSAGES = ({"role": "user", "content": "Name a film."},)


def call(seed) -> BackendCall:
    return BackendCall(ChatRequest("Name a film.", temperature=1.0, seed=seed), MESSAGES, None)


def test_the_random_seed_is_sampled_and_cached_as_the_seed_below_it():
    assert RANDOM_SEED == 0xFFFFFFFF
    assert call(RANDOM_SEED).sampling()["seed"] == RANDOM_SEED - 1
    assert ChatRequest("Name a film.", seed=RANDOM_SEED).seed == RANDOM_SEED  # the request keeps its own
    identity = {"backend": "x", "model": "m"}
    assert cache_key(identity, call(RANDOM_SEED)) == cache_key(identity, call(RANDOM_SEED - 1))


def test_other_seeds_keep_their_cache_keys():
    """Keys as RecoWorld computed them before the remapping: cached replies still replay."""
    identity = {"backend": "x", "model": "m"}
    assert cache_key(identity, call(7)) == "93f82aaf0dea2fd223758d182a9bd81334da92e39ab3b32dd41fb9fcaec84734"
    assert cache_key(identity, call(None)) == "10bc89edd61752da70e0342874a16363faa6dca4095b6da50ffdd71c3c53086e"
    assert cache_key(identity, call(RANDOM_SEED - 1)) == (
        "f90e4f255391e71b64c443a452b642815fdec0bc5ec4963c03b7337a93a3b000")


def test_an_openai_compatible_server_gets_the_seed_below_it():
    request = ChatRequest("Name a film.", temperature=1.0, max_tokens=8, seed=RANDOM_SEED)
    with FakeOpenAIServer([Answer.chat("Alien")]) as server:
        llm = OpenAIChatModel("fake-model", base_url=server.base_url, retry=RetryPolicy(max_retries=0),
                              sleep=FakeSleep(), timeout_s=60.0)
        try:
            assert llm.chat(request).text == "Alien"
        finally:
            llm.close()
    assert [body["seed"] for body in server.requests] == [RANDOM_SEED - 1]


def test_the_embedded_llama_cpp_gets_the_seed_below_it(tmp_path, monkeypatch):
    seeds = []

    class Llama:  # llama_cpp.Llama's part the backend uses, recording the seeds it is given
        def __init__(self, **kwargs):
            pass

        def reset(self):
            pass

        def create_chat_completion(self, **args):
            seeds.append(args.get("seed"))
            return {"choices": [{"message": {"content": "Alien"}, "finish_reason": "stop"}], "usage": {}}

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "llama_cpp", types.SimpleNamespace(Llama=Llama))
    from recoworld.llm.llama_cpp_backend import LlamaCppChatModel

    model = tmp_path / "fake.gguf"
    model.write_bytes(b"GGUF")
    llm = LlamaCppChatModel(model)
    try:
        assert llm.chat(ChatRequest("Name a film.", temperature=1.0, max_tokens=8, seed=RANDOM_SEED)).text == "Alien"
    finally:
        llm.close()
    assert seeds == [RANDOM_SEED - 1]
