"""Repair turns are sampled with a seed derived from the request's, so that a model whose
greedy repair repeats its bad reply word for word gets a real second chance, and a seeded
run still replays every repair. Scripted models check the sampling of each call; the
embedded SmolLM2-135M (llama.cpp) repairs for real, and frees its weights on ``close``."""

import json
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, Field, field_validator

from recoworld.llm import ChatReply, ChatRequest, LLMConfig, ScriptedChatModel, StructuredOutputError
from recoworld.llm.attempts import repair_seed
from recoworld.llm.types import Completion

IDS = (4, 8, 15, 16)
BAD = json.dumps({"slate": [4, 4, 4]})
PROMPT = [{"role": "system", "content": "You pick movies. Reply in JSON."},
          {"role": "user", "content": f"Pick 3 distinct movie ids from {list(IDS)}, best first. "
                                      'Reply with JSON: {"slate": [3 distinct ids]}.'}]


class Slate(BaseModel):
    slate: Annotated[list[Literal[IDS]], Field(min_length=3, max_length=3)]

    @field_validator("slate")
    @classmethod
    def _distinct(cls, slate):
        if len(set(slate)) < len(slate):
            raise ValueError("every id of the slate must be distinct")
        return slate


def first_bad_then(answer):
    """A script whose first reply repeats an id, and whose repairs ``answer(call)``."""
    return lambda call: BAD if len(call.messages) == 2 else answer(call)


def conversation(bad=BAD):
    from recoworld.llm.structured import repair_messages

    return repair_messages(tuple(PROMPT), bad, "every id of the slate must be distinct")


@pytest.mark.parametrize("temperature, seed, repair_temperature, expected", [
    (0.0, None, 0.7, (0.7, True)),  # greedy: its repair samples, seeded
    (1.2, 5, 0.7, (1.2, True)),  # sampled: its own temperature, a new seed
    (0.0, None, 0.0, (0.0, False)),  # repair_temperature=0: greedy repairs, as requested
])
def test_a_repair_turn_samples_with_a_seed_derived_from_the_requests(temperature, seed, repair_temperature,
                                                                     expected):
    llm = ScriptedChatModel(first_bad_then(lambda call: json.dumps({"slate": [16, 8, 4]})),
                            repair_temperature=repair_temperature)
    reply = llm.chat(ChatRequest(PROMPT, schema=Slate, temperature=temperature, seed=seed))
    assert reply.parsed.slate == [16, 8, 4]
    first, repair = llm.calls
    assert (first.request.temperature, first.request.seed) == (temperature, seed)
    repair_temperature, seeded = expected
    assert repair.request.temperature == repair_temperature
    assert repair.request.seed == (repair_seed(seed, 1, repair.messages) if seeded else None)
    assert "That reply is invalid" in repair.messages[-1]["content"]  # it still sees the error


def test_each_repair_of_a_request_has_its_own_seed_and_the_cache_replays_them(tmp_path):
    def never_distinct(call):
        return BAD

    llm = ScriptedChatModel(never_distinct, max_repairs=2, cache=tmp_path / "cache")
    with pytest.raises(StructuredOutputError, match="after 3 attempt"):
        llm.chat(ChatRequest(PROMPT, schema=Slate, seed=7, temperature=0.5))
    seeds = [c.request.seed for c in llm.calls]
    assert seeds[0] == 7 and len(set(seeds)) == 3
    assert seeds[1:] == [repair_seed(7, n, call.messages) for n, call in enumerate(llm.calls[1:], 1)]
    assert len({repair_seed(s, 1, conversation(b)) for s in (None, 0, 1, 7) for b in (BAD, BAD + " ")}) == 8
    again = ScriptedChatModel(never_distinct, max_repairs=2, cache=tmp_path / "cache")
    with pytest.raises(StructuredOutputError, match="after 3 attempt"):
        again.chat(ChatRequest(PROMPT, schema=Slate, seed=7, temperature=0.5))
    assert again.calls == [] and again.metrics()["llm_cache_hits"] == 3


def test_repair_temperature_is_a_checked_llm_setting():
    assert LLMConfig().repair_temperature == 0.7
    with pytest.raises(ValueError, match="repair_temperature=-0.1"):
        LLMConfig(repair_temperature=-0.1)
    with pytest.raises(ValueError, match="repair_temperature=-1"):
        ScriptedChatModel([], repair_temperature=-1)


# ------------------------------------------------------------------ the embedded model
@pytest.fixture(scope="module")
def gguf():
    pytest.importorskip("llama_cpp", reason='llama-cpp-python is not installed; pip install -e ".[llm]"')
    from embedded_model import embedded_gguf

    return embedded_gguf()


def embedded_with_a_bad_first_reply(gguf):
    """The embedded model, except that every request's first reply is ``BAD``: its repairs
    are the real model's."""
    from recoworld.llm.llama_cpp_backend import LlamaCppChatModel

    class BadFirstReply(LlamaCppChatModel):
        def _generate_one(self, call):
            if len(call.messages) == 2:
                return Completion(BAD, 10, 10, "stop")
            return super()._generate_one(call)

    return BadFirstReply(gguf, n_ctx=1024, n_threads=1, max_repairs=1, schema_in_prompt=False)


@pytest.mark.slow
def test_the_embedded_models_repairs_vary_with_the_seed_and_replay_it(gguf):
    # SmolLM2-135M answered every one of these repair turns with BAD itself, word for word,
    # whatever the request's seed — greedy, and sampled too while the turn showed it BAD.
    # Three seeds: two repairs that validate and one that does not, each a real generation.
    requests = [ChatRequest(PROMPT, schema=Slate, max_tokens=40, seed=seed) for seed in range(3)]
    runs = []
    for _ in range(2):
        with embedded_with_a_bad_first_reply(gguf) as llm:
            outcomes = llm.chat_many(requests, return_exceptions=True)
        runs.append([outcome.raw_texts for outcome in outcomes])
    assert all(texts[0] == BAD and len(texts) == 2 for texts in runs[0])
    assert len({texts[1] for texts in runs[0]}) > 1 and BAD not in {texts[1] for texts in runs[0]}
    assert sum(isinstance(outcome, ChatReply) for outcome in outcomes) >= 2  # repaired for real
    assert runs[1] == runs[0]  # seeded: the same repairs every run


@pytest.mark.slow
def test_closing_the_embedded_model_frees_it_and_a_later_request_says_so(gguf):
    from recoworld.llm import BackendCallError
    from recoworld.llm.llama_cpp_backend import LlamaCppChatModel

    llm = LlamaCppChatModel(gguf, n_ctx=256, n_threads=1)
    llm.close()
    llm.close()  # idempotent
    assert llm._llama is None
    with pytest.raises(BackendCallError, match="is closed; build a new LlamaCppChatModel to generate again"):
        llm.chat("hi", max_tokens=2)
