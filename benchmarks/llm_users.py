"""Throughput and reliability of LLM users, and the framework's own cost per user-step.

    python benchmarks/llm_users.py                        # embedded SmolLM2 in process + overhead
    python benchmarks/llm_users.py --users 4 --steps 3 --slate 3
    python benchmarks/llm_users.py --skip-model           # framework overhead only (seconds)
    python benchmarks/llm_users.py --base-url http://127.0.0.1:8000/v1 --model Qwen/Qwen2.5-7B-Instruct

Prints, for the model (default: the embedded SmolLM2-135M-Instruct through llama.cpp in
this process, grammar-constrained):

- LLM user-steps per second, prompt and completion tokens per user-step;
- parse failures: the share of user-steps whose first reply did not validate, and the
  share still failed after the LLM layer's repairs (counted, then handled by fallback);
- the speed-up of a re-run served by the cache;

and, with a zero-latency scripted model that answers validly (so that model time is nil),
the framework's own time per user-step: prompt building, schema, cache keys, the LLM
layer's rounds, validation, the statistical twin, the Response — for ``LLMUsers`` and for
``HybridUsers`` (which calls the model only when a user speaks).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time

# Passive OpenMP waiting, set before llama.cpp loads: spinning threads starve each other on a
# shared CPU.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from recoworld.catalog import Catalog  # noqa: E402
from recoworld.llm import ScriptedChatModel, make_chat_model  # noqa: E402
from recoworld.simulators.hybrid import HybridUsers  # noqa: E402
from recoworld.simulators.llm_user import LLMUsers  # noqa: E402

ACTIONS = ("click", "skip", "like", "dislike")


def slates(n_users: int, k: int, n_items: int, step: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1000 + step)
    return torch.stack([torch.randperm(n_items, generator=gen)[:k] for _ in range(n_users)])


def run(sim, n_users: int, steps: int, k: int) -> float:
    """Seconds to run ``steps`` steps of ``n_users`` users (churned users restarted)."""
    sim.reset(n_users, seed=0)
    plan = [slates(n_users, k, sim.catalog.n_items, t) for t in range(steps)]
    start = time.perf_counter()
    for t, slate in enumerate(plan):
        response = sim.respond(slate)
        gone = response.churned.nonzero().flatten()
        if len(gone):
            sim.reset(n_users, seed=[10_000 + t * n_users + int(g) for g in gone], users=gone)
    return time.perf_counter() - start


def valid_reply(call) -> str:
    """A zero-latency model: a valid reply whose choices vary with the prompt's length."""
    schema = call.json_schema
    if "reactions" not in schema["properties"]:
        return '{"mindset": "Restless.", "instruction": "Show me something else."}'
    h = sum(len(m["content"]) for m in call.messages)
    ids = schema["properties"]["reactions"]["required"]
    return json.dumps({
        "reactions": {i: {"action": ACTIONS[(h + j) % 4], "reason": "fits my mood"} for j, i in enumerate(ids)},
        "mindset": "Fine.", "satisfaction": 1 + h % 5, "leave": h % 11 == 0,
        "instruction": None if h % 4 else {"text": "More of the first genre.", "more": [schema["$defs"]["Genre"]
                                                                                       ["enum"][0]],
                                           "less": [], "novelty": 0},
    })


def overhead(args, catalog) -> None:
    torch.set_num_threads(1)
    sim = LLMUsers(catalog, ScriptedChatModel(valid_reply, max_concurrency=64))
    k = args.overhead_slate
    run(sim, 16, 2, k)  # warm-up: imports, schema classes, caches
    seconds = run(sim, args.overhead_users, args.overhead_steps, k)
    user_steps = args.overhead_users * args.overhead_steps
    print(f"framework overhead, LLMUsers ({args.overhead_users} users x {args.overhead_steps} steps, "
          f"slate {k}, zero-latency model): {1e3 * seconds / user_steps:.2f} ms per user-step")

    hybrid = HybridUsers(catalog, ScriptedChatModel(valid_reply, max_concurrency=64))
    n, steps = args.hybrid_users, args.overhead_steps
    run(hybrid, 256, 2, k)
    seconds = run(hybrid, n, steps, k)
    calls = hybrid.counts["calls"]
    print(f"framework overhead, HybridUsers ({n} users x {steps} steps, slate {k}): {1e3 * seconds / (n * steps):.3f} ms per "
          f"user-step; {calls} LLM calls = {calls / (n * steps):.3f} per user-step (one per disengagement)")


def with_model(args, catalog) -> None:
    with tempfile.TemporaryDirectory() as cache_dir:
        config = {"cache_dir": cache_dir}
        if args.base_url:
            config.update(backend="openai", model=args.model, base_url=args.base_url,
                          structured_mode=args.structured_mode or "json_schema")
        else:
            config.update(backend="llama_cpp", n_threads=args.threads)
        times = []
        for label in ("first run", "cached re-run"):
            llm = make_chat_model(config)
            # Under grammar-constrained decoding the schema text in the prompt only costs tokens.
            llm.schema_in_prompt = args.schema_in_prompt
            sim = LLMUsers(catalog, llm)
            times.append(run(sim, args.users, args.steps, args.slate))
            m = sim.metrics()
            steps = m["llm_user_user_steps"]
            if label == "first run":
                first_invalid = m["llm_user_repaired_steps"] + m["llm_user_failures"]
                print(f"model {llm.model_id} ({llm.backend}), {args.users} users x {args.steps} steps, slate "
                      f"{args.slate}, schema in prompt: {args.schema_in_prompt}:")
                print(f"  {steps / times[0]:.3f} LLM user-steps per second ({times[0] / steps:.1f} s per user-step)")
                print(f"  {m['llm_prompt_tokens'] / steps:.0f} prompt and {m['llm_completion_tokens'] / steps:.0f} "
                      f"completion tokens per user-step (repairs and failed steps included)")
                print(f"  parse failures: {first_invalid}/{steps} = {first_invalid / steps:.1%} of first replies "
                      f"invalid; {m['llm_user_failures']}/{steps} = {m['llm_user_failure_rate']:.1%} still failed "
                      f"after repairs ({m['llm_repairs']} repair turns)")
                for failure in list(sim.failures)[:3]:
                    print(f"    e.g. slot {failure.slot}: {failure.error[:160]}")
            else:
                print(f"  cached re-run: {times[1]:.3f} s vs {times[0]:.1f} s, {times[0] / times[1]:.0f}x faster "
                      f"({m['llm_cache_hits']} cache hits, {m['llm_calls']} model calls)")
            llm.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=2, help="users for the model run")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--slate", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="llama.cpp threads")
    parser.add_argument("--schema-in-prompt", action=argparse.BooleanOptionalAction, default=True,
                        help="append the JSON schema to prompts (the LLM layer's default)")
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint instead of in-process llama.cpp")
    parser.add_argument("--model", default="smollm2", help="model name on the endpoint (with --base-url)")
    parser.add_argument("--structured-mode", default=None)
    parser.add_argument("--overhead-users", type=int, default=64)
    parser.add_argument("--overhead-slate", type=int, default=10)
    parser.add_argument("--overhead-steps", type=int, default=20)
    parser.add_argument("--hybrid-users", type=int, default=4096)
    parser.add_argument("--skip-model", action="store_true", help="only the framework overhead")
    args = parser.parse_args()

    catalog = Catalog.synthetic(1000, n_genres=8, seed=0)
    overhead(args, catalog)
    if not args.skip_model:
        with_model(args, catalog)


if __name__ == "__main__":
    main()
