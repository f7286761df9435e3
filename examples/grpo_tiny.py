"""A few GRPO steps of a tiny causal LM against simulated users, on CPU, offline.

Shows the wiring of :mod:`recoworld.apps.training` with TRL's ``GRPOTrainer`` in environment
mode, not learning: everything is built locally (no hub access) —

1. a byte-level BPE tokenizer trained on RecoWorld's own prompts, with Qwen2.5's
   tool-calling chat template (shipped by TRL) and its response parser;
2. a randomly initialised 2-layer Qwen2 model (~0.3 M parameters);
3. a short **format warm-up** (supervised): a random model never writes a well-formed
   ``<tool_call>``, so every rollout would score the same and GRPO's advantages would all
   be zero. A few steps on "observation -> recommend(3 candidate ids)" examples teach the
   format; a real instruct model needs none of this;
4. ``GRPOTrainer(environment_factory=make_environment_factory(...), train_dataset=user_dataset(...))``
   for ``--steps`` steps: each prompt is one simulated user, its ``G`` generations face the
   same user and call ``recommend`` to show slates; the reward is the user's engagement,
   retention and compliance (see :mod:`recoworld.apps.training.grpo`).

Run ``python examples/grpo_tiny.py`` (minutes on a CPU; ``benchmarks/RESULTS.md``). It prints the
reward of every step and what each rollout of the last group did. For a real run on a GPU see the recipe in
:mod:`recoworld.apps.training.grpo`. Needs ``pip install -e ".[rl-llm]"``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import tempfile
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from recoworld import Catalog  # noqa: E402
from recoworld.apps.training import RecommendationEnvironment, make_environment_factory, user_dataset  # noqa: E402

# A 6-item world whose every item is a candidate: a tiny model that has learned the tool-call format
# but not yet to copy ids from its prompt still shows valid slates often enough for rewards to differ.
ENV_KWARGS = {"catalog": Catalog.synthetic(n_items=6, n_genres=4, seed=0), "slate_size": 2, "num_candidates": 6,
              "history_length": 2, "max_steps": 3}
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
MARKUP = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<tools>", "</tools>"]


def build_tokenizer(corpus: list[str], vocab_size: int = 2000):
    """A byte-level BPE trained on ``corpus``, with Qwen2.5's chat template and response parser."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    from trl.chat_template_utils import add_response_schema, qwen2_5_chat_template

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator(corpus, trainer)
    bpe.add_tokens([AddedToken(t, special=False, normalized=False) for t in MARKUP])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    tokenizer.chat_template = qwen2_5_chat_template
    tokenizer.padding_side = "left"
    return add_response_schema(tokenizer)


def build_model(tokenizer, seed: int):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
                         tie_word_embeddings=True, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, bos_token_id=None)
    model = Qwen2ForCausalLM(config)
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model


def tool_call(item_ids: list[int]) -> dict:
    return {"role": "assistant", "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "recommend", "arguments": {"item_ids": item_ids}}}]}


def warmup_examples(n: int, seed: int) -> list[list[dict]]:
    """Conversations "first observation -> recommend(3 of its candidates)" for the format warm-up."""
    rng = np.random.default_rng(seed)
    env = RecommendationEnvironment(env_kwargs=ENV_KWARGS)
    dataset = user_dataset(n, key=10_000 + seed)
    out = []
    for row in dataset:
        observation = env.reset(user_seed=row["user_seed"])
        candidates = [int(i) for i in re.findall(r"^- (\d+) ", observation, re.M)]
        picks = [int(i) for i in rng.choice(candidates, ENV_KWARGS["slate_size"], replace=False)]
        prompt = [*row["prompt"][:-1], {"role": "user", "content": row["prompt"][-1]["content"] + observation}]
        out.append(prompt + [tool_call(picks)])
    return out


def warm_up(model, tokenizer, tools, conversations, steps: int, lr: float = 5e-3) -> list[float]:
    """Supervised steps on the assistant turns of ``conversations`` (the format warm-up)."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    losses = []
    for step in range(steps):
        conversation = conversations[step % len(conversations)]
        prompt = tokenizer.apply_chat_template(conversation[:-1], tools=tools, add_generation_prompt=True, tokenize=False)
        full = tokenizer.apply_chat_template(conversation, tools=tools, tokenize=False)
        prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([tokenizer(full, add_special_tokens=False)["input_ids"]])
        labels = ids.clone()
        labels[:, : len(prompt_ids)] = -100
        loss = model(input_ids=ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    return losses


def at_least(low: int, why: str):
    """An argparse ``type``: an integer >= ``low``, refused (naming ``why``) before minutes of warm-up are spent."""

    def integer(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value}: must be an integer >= {low} ({why})")
        return value

    return integer


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=at_least(1, "a run of no GRPO step trains nothing"), default=2,
                        help="GRPO steps")
    parser.add_argument("--generations", type=at_least(2, "GRPO's advantages compare the generations of a group"),
                        default=4, help="generations per prompt (one group = one user)")
    parser.add_argument("--warmup-steps", type=at_least(0, "0 skips the warm-up"), default=200,
                        help="format warm-up steps (0 to skip)")
    parser.add_argument("--seed", type=at_least(0, "seeds are integers >= 0"), default=0)
    parser.add_argument("--output-dir", default=None)
    args = parser.parse_args(argv)

    from transformers.utils import get_json_schema
    from trl import GRPOConfig, GRPOTrainer

    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    # The tokenizer learns RecoWorld's prompts: the observation texts, the system prompt and the tool schema.
    corpus_env = RecommendationEnvironment(env_kwargs=ENV_KWARGS)
    tools = [get_json_schema(corpus_env.recommend)]
    corpus = [corpus_env.reset(user_seed=s) for s in range(200)]
    corpus += [json.dumps(tools), user_dataset(1)[0]["prompt"][0]["content"],
               '<tool_call>\n{"name": "recommend", "arguments": {"item_ids": [1, 2, 3]}}\n</tool_call>']
    tokenizer = build_tokenizer(corpus)
    model = build_model(tokenizer, args.seed)
    losses = warm_up(model, tokenizer, tools, warmup_examples(64, args.seed), args.warmup_steps)
    if losses:
        print(f"format warm-up: loss {losses[0]:.2f} -> {np.mean(losses[-10:]):.2f} over {len(losses)} steps")

    output_dir = args.output_dir or tempfile.mkdtemp(prefix="grpo_tiny_")
    G = args.generations
    # TRL turns checkpointing on by default, under the name transformers 5 deprecates (a
    # FutureWarning); a tiny model needs none, said under the name this transformers knows.
    known = {f.name for f in dataclasses.fields(GRPOConfig)}
    checkpointing = "activation_checkpointing" if "activation_checkpointing" in known else "gradient_checkpointing"
    config = GRPOConfig(
        output_dir=output_dir, max_steps=args.steps, num_generations=G, per_device_train_batch_size=G,
        gradient_accumulation_steps=1, learning_rate=1e-4, beta=0.0, temperature=1.0,
        max_completion_length=384, max_tool_calling_iterations=ENV_KWARGS["max_steps"],
        logging_steps=1, save_strategy="no", report_to="none", use_cpu=True, bf16=False, seed=args.seed,
        dataloader_num_workers=0, log_completions=False, **{checkpointing: False},
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(
            model=model, processing_class=tokenizer, args=config,
            train_dataset=user_dataset(args.steps * 4, key=args.seed),
            environment_factory=make_environment_factory(env_kwargs=ENV_KWARGS),
        )
        trainer.train()

    history = [h for h in trainer.state.log_history if "reward" in h]
    for h in history:
        print(f"step {h['step']}: reward {h['reward']:.3f} (std {h['reward_std']:.3f}), "
              f"tool calls per rollout {h.get('tools/call_frequency', 0):.2f}, "
              f"tool failures {h.get('tools/failure_frequency', 0):.2f}")
    environments = trainer.environments or []
    for i, env in enumerate(environments):
        print(f"rollout {i}: user_seed={env.user_seed} slates={env.slates_shown} refused={env.invalid_slates} "
              f"reward={env.get_reward():.2f} signals={ {k: round(v, 2) for k, v in env.signals.items()} }")
    return {"history": history, "environments": environments, "warmup_losses": losses}


if __name__ == "__main__":
    main()
