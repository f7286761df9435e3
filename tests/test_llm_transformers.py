"""The transformers backend on a tiny Llama built in memory (2 layers, hidden 32, random
weights) with a BPE tokenizer trained on a few sentences — no hub access. Its replies are
gibberish, so these tests check the plumbing: batching, one text per request, seeded
determinism, and the failure path that keeps the raw text."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from typing import Literal

import pytest
from pydantic import BaseModel

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from recoworld.llm import ChatRequest, StructuredOutputError
from recoworld.llm.transformers_backend import TransformersChatModel

CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


class Decision(BaseModel):
    action: Literal["click", "skip"]
    reason: str


def build_tokenizer():
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=320, special_tokens=["<pad>", "<s>", "</s>", "<unk>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(['{"action": "click", "reason": "a light comedy"}', "user assistant system",
                             "Would you click or skip this movie?", "Reply with JSON only."], trainer)
    hf = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>",
                                              pad_token="<pad>", unk_token="<unk>")
    hf.chat_template = CHAT_TEMPLATE
    return hf


@pytest.fixture(scope="module")
def tiny():
    tokenizer = build_tokenizer()
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval(), tokenizer


def make(tiny, **kwargs):
    model, tokenizer = tiny
    return TransformersChatModel(model, tokenizer, device="cpu", **kwargs)


def test_batched_generation_returns_one_text_per_request_in_order(tiny):
    llm = make(tiny, batch_size=2)
    batches = []
    generate_batch = llm._generate_batch
    llm._generate_batch = lambda calls: batches.append(len(calls)) or generate_batch(calls)
    prompts = [f"Would you click movie {i}?" for i in range(5)]
    replies = llm.chat_many([ChatRequest(p, max_tokens=6) for p in prompts])
    assert len(replies) == 5 and batches == [2, 2, 1]
    assert all(isinstance(r.text, str) and 1 <= r.completion_tokens <= 6 for r in replies)
    assert all(r.prompt_tokens > 0 for r in replies)
    # a batch generates the same greedy text as the request alone (left padding is masked)
    alone = make(tiny).chat(prompts[3], max_tokens=6)
    assert alone.text == replies[3].text
    m = llm.metrics()
    assert m["llm_calls"] == 5 and m["llm_completion_tokens"] == sum(r.completion_tokens for r in replies)


def test_requests_with_different_sampling_go_in_different_batches(tiny):
    llm = make(tiny, batch_size=8)
    batches = []
    generate_batch = llm._generate_batch
    llm._generate_batch = lambda calls: batches.append(len(calls)) or generate_batch(calls)
    llm.chat_many([ChatRequest("a", max_tokens=3), ChatRequest("b", max_tokens=4), ChatRequest("c", max_tokens=3)])
    assert sorted(batches) == [1, 2]


def test_seeded_sampling_is_reproducible_and_leaves_the_global_rng_alone(tiny):
    requests = [ChatRequest(f"Would you skip movie {i}?", temperature=1.0, seed=7, max_tokens=8) for i in range(3)]
    state = torch.get_rng_state()
    first = [r.text for r in make(tiny).chat_many(requests)]
    second = [r.text for r in make(tiny).chat_many(requests)]
    assert torch.equal(state, torch.get_rng_state())
    assert first == second
    other = [r.text for r in make(tiny).chat_many([ChatRequest(r.messages, temperature=1.0, seed=8, max_tokens=8)
                                                   for r in requests])]
    assert other != first


def test_gibberish_fails_validation_with_every_raw_text_kept(tiny):
    llm = make(tiny, max_repairs=1)
    out = llm.chat_many([ChatRequest("Click or skip?", schema=Decision, max_tokens=5)] * 2, return_exceptions=True)
    assert all(isinstance(r, StructuredOutputError) for r in out)
    assert all(len(r.raw_texts) == 2 and r.attempts == 2 for r in out)
    assert out[0].raw_texts == out[1].raw_texts  # greedy and identical prompts
    m = llm.metrics()
    assert m["llm_structured_failures"] == 2 and m["llm_repairs"] == 2 and m["llm_calls"] == 4


def test_in_memory_model_needs_a_name_for_the_cache_and_a_chat_template(tiny, tmp_path):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match="give model_id="):
        TransformersChatModel(model, tokenizer, device="cpu", cache=tmp_path)
    llm = TransformersChatModel(model, tokenizer, device="cpu", cache=tmp_path, model_id="tiny-llama-seed0")
    first = llm.chat("hello", max_tokens=4)
    second = llm.chat("hello", max_tokens=4)
    assert second.cached and second.text == first.text and llm.metrics()["llm_calls"] == 1
    bare = build_tokenizer()
    bare.chat_template = None
    with pytest.raises(ValueError, match="no chat template"):
        TransformersChatModel(model, bare, device="cpu")
