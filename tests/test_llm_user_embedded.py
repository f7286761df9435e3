"""LLM users and hybrid users on a real model: the embedded SmolLM2-135M-Instruct GGUF, run in
process by llama.cpp and served by ``python -m llama_cpp.server`` through the openai backend.

A 135M-parameter model is a weak user, so these tests ask only what any model must give:
every user-step ends in a schema-valid reply or a counted failure (never an invented
reply), the Response invariants hold, and a re-run replays from the cache. Every generated
token costs (a grammar-constrained token is slow on a CPU), so the users are few: one LLM
user for two steps (the second prompt carries its memory), two hybrid users (one batch of
two voice calls). Small slates and a 4-genre catalog keep prompts short; one llama.cpp
thread keeps a loaded CPU usable.
Skipped only when llama-cpp-python is not installed.
"""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')
pytestmark = pytest.mark.slow

from recoworld.catalog import Catalog  # noqa: E402
from recoworld.llm import LlamaCppChatModel  # noqa: E402
from recoworld.simulators.hybrid import HybridUsers  # noqa: E402
from recoworld.simulators.llm_user import LLMUsers  # noqa: E402
from embedded_model import embedded_gguf, llama_server  # noqa: E402

USERS, SLATE, STEPS = 1, 2, 2
#: The LLM user's seed, chosen when seed 0's greedy replies looped "1. 1. 1. ..." up to every
#: field's length. The fields' bounds are tight now, and in this setting no reply loops: the
#: 135M model copies labels instead ("1" in every text field; benchmarks/RESULTS.md, "What the
#: embedded model writes as an LLM user (diagnosis)"). The tests check the protocol, not the text.
USER_SEED = 1
#: Hybrid users: two, so that their voice calls go out as one batch of the real model.
VOICES = 2


@pytest.fixture(scope="module")
def gguf():
    return embedded_gguf()


@pytest.fixture(scope="module")
def catalog():
    return Catalog.synthetic(60, n_genres=4, seed=0)


def slates(n_users, k, n_items, step):
    gen = torch.Generator().manual_seed(100 + step)
    return torch.stack([torch.randperm(n_items, generator=gen)[:k] for _ in range(n_users)])


def assert_response_invariants(r, n_users, k):
    assert r.clicked.shape == (n_users, k) and r.satisfaction.shape == (n_users,)
    assert not bool((r.clicked & ~r.examined).any()) and not bool((r.liked & ~r.clicked).any())
    assert bool(((r.watch_fraction > 0) == r.clicked).all()) and bool((r.watch_fraction <= 1).all())
    assert bool((r.rating[~r.clicked] == 0).all()) and bool((r.rating <= 5).all())
    assert bool(((r.satisfaction >= 0) & (r.satisfaction <= 1)).all())
    assert torch.equal(r.churned, r.left_session & ~r.returned)
    assert bool((r.compliance[~r.instruction_in_force] == 0).all())
    assert [t is not None for t in r.instruction_text] == r.instruction.active.tolist()


def run_llm_users(catalog, llm):
    sim = LLMUsers(catalog, llm, config={"memory": {"max_interactions": 4}})
    sim.reset(USERS, seed=USER_SEED)
    responses = []
    for step in range(STEPS):
        r = sim.respond(slates(USERS, SLATE, catalog.n_items, step))
        assert_response_invariants(r, USERS, SLATE)
        responses.append(r)
        gone = r.churned.nonzero().flatten()
        if len(gone):
            sim.reset(USERS, seed=[50 + step * USERS + int(g) for g in gone], users=gone)
    return sim, responses


def embedded_model(gguf, cache_dir):
    # The grammar already holds the reply to the schema, so the prompt does without the schema
    # text: half the prompt tokens on a CPU where every token counts.
    return LlamaCppChatModel(gguf, n_threads=1, schema_in_prompt=False, cache=cache_dir)


def test_llm_users_on_the_embedded_model_in_process(gguf, catalog, tmp_path):
    sim, first = run_llm_users(catalog, embedded_model(gguf, tmp_path / "cache"))
    m = sim.metrics()
    assert m["llm_user_user_steps"] == USERS * STEPS
    # every user-step is a validated reply or a counted failure with its raw text
    assert m["llm_replies"] + m["llm_failures"] == USERS * STEPS
    assert m["llm_user_failures"] == m["llm_failures"] == len(sim.failures)
    assert all(f.raw_texts for f in sim.failures)
    if m["llm_replies"]:
        assert m["llm_prompt_tokens"] > 100 * m["llm_replies"] and m["llm_completion_tokens"] > 0
    sim.llm.close()

    # A re-run with the same seed is served from the cache and gives the same responses.
    again, second = run_llm_users(catalog, embedded_model(gguf, tmp_path / "cache"))
    assert again.metrics()["llm_calls"] == 0 and again.metrics()["llm_cache_hits"] >= USERS * STEPS
    for a, b in zip(first, second):
        for name, value in a.tensor_fields().items():
            assert torch.equal(torch.nan_to_num(value), torch.nan_to_num(getattr(b, name))), name
        assert a.instruction_text == b.instruction_text
    again.llm.close()


def test_hybrid_users_voice_instructions_with_the_embedded_model(gguf, catalog):
    statistical = {"voice_probability": 1.0, "instruction_threshold": 0.0}  # everyone speaks at once
    sim = HybridUsers(catalog, {"backend": "llama_cpp", "model": str(gguf), "n_threads": 1},
                      statistical=statistical)
    sim.reset(VOICES, seed=0)
    r = sim.respond(slates(VOICES, SLATE, catalog.n_items, 0))
    assert_response_invariants(r, VOICES, SLATE)
    assert r.instruction.active.all()
    m = sim.metrics()
    assert m["hybrid_calls"] == VOICES and m["llm_requests"] == VOICES
    assert m["llm_replies"] + m["llm_failures"] == VOICES
    spoken = [b for b in range(VOICES) if all(f.slot != b for f in sim.failures)]
    for b in spoken:
        assert r.instruction_text[b] and sim.mindset[b]
    sim.close()


def test_llm_users_against_the_embedded_model_on_llama_cpp_server(gguf, catalog, tmp_path):
    with llama_server(gguf, tmp_path / "server.log") as base_url:
        sim = LLMUsers(catalog, {"backend": "openai", "model": "smollm2", "base_url": base_url,
                                 "api_key": "sk-local", "structured_mode": "json_object_schema"})
        sim.reset(1, seed=3)
        r = sim.respond(slates(1, SLATE, catalog.n_items, 0))
        assert_response_invariants(r, 1, SLATE)
        m = sim.metrics()
        assert m["llm_replies"] + m["llm_failures"] == 1 and m["llm_user_failures"] == m["llm_failures"]
        sim.close()


def test_the_default_context_holds_a_repair_turn_of_a_slate_of_ten(gguf):
    # A repair turn is the prompt, the invalid reply (clipped) and the request to correct it,
    # and it still needs room for a whole reply: with 2,048 tokens it did not fit, so every
    # repair of the embedded model failed and the statistical twin stood in.
    from recoworld.llm import LLMConfig
    from recoworld.llm.structured import repair_messages

    llm = LlamaCppChatModel(gguf, n_threads=1, n_ctx=256)  # the tokenizer is all this test needs
    sim = LLMUsers(Catalog.synthetic(200, n_genres=12, seed=0), llm)
    sim.reset(1, seed=0)
    slate = list(range(10))
    invalid = '{"items": [' + ", ".join(['{"item": 1, "examined": true, "clicked": false, "reason": "' + "so-so " * 20
                                          + '"}'] * 40) + "]}"  # a reply cut at max_tokens: no valid JSON
    repair = repair_messages(tuple(sim.prompt(0, slate)), invalid, "Invalid JSON: EOF while parsing a list")
    tokens = sum(len(llm._llama.tokenize(m["content"].encode(), add_bos=False)) for m in repair)
    max_tokens = 256 + 70 * len(slate)  # the reply's budget, LLMUserConfig.max_tokens
    assert tokens + max_tokens <= LLMConfig().n_ctx
    llm.close()
