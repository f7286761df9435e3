"""Latency and tokens per call of the embedded SmolLM2-135M-Instruct, and the speed-up of a
cached re-run.

    python benchmarks/llm_chat.py                    # in-process llama.cpp (needs the llm extra)
    python benchmarks/llm_chat.py --n 16 --max-tokens 64
    python benchmarks/llm_chat.py --base-url http://127.0.0.1:8000/v1 --model smollm2 \
        --structured-mode json_object_schema         # any OpenAI-compatible server

Each request asks a simulated viewer to click or skip a title, with a pydantic schema.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from typing import Literal

from pydantic import BaseModel

from recoworld.llm import ChatRequest, make_chat_model

TITLES = ["Heat (1995)", "Toy Story (1995)", "Fargo (1996)", "Babe (1995)", "Casino (1995)",
          "Se7en (1995)", "Clueless (1995)", "Apollo 13 (1995)"]


class Decision(BaseModel):
    action: Literal["click", "skip"]
    reason: str


def requests(n: int, max_tokens: int) -> list[ChatRequest]:
    return [
        ChatRequest(
            [{"role": "system", "content": "You are a movie fan who likes thrillers and dislikes cartoons."},
             {"role": "user", "content": f"The app shows you '{TITLES[i % len(TITLES)]}' (slot {i}). Click or skip?"}],
            schema=Decision, max_tokens=max_tokens,
        )
        for i in range(n)
    ]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=8, help="requests per run")
    parser.add_argument("--max-tokens", type=int, default=48)
    parser.add_argument("--base-url", help="an OpenAI-compatible endpoint instead of in-process llama.cpp")
    parser.add_argument("--model", default="smollm2", help="model name on the endpoint (with --base-url)")
    parser.add_argument("--structured-mode", default=None)
    parser.add_argument("--concurrency", type=int, default=None)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as cache_dir:
        config = {"cache_dir": cache_dir, "structured_mode": args.structured_mode, "max_concurrency": args.concurrency}
        if args.base_url:
            config.update(backend="openai", model=args.model, base_url=args.base_url)
        else:
            config.update(backend="llama_cpp")
        start = time.perf_counter()
        llm = make_chat_model(config)
        print(f"{llm!r} loaded in {time.perf_counter() - start:.2f}s")
        reqs = requests(args.n, args.max_tokens)

        start = time.perf_counter()
        cold = llm.chat_many(reqs, return_exceptions=True)
        cold_s = time.perf_counter() - start
        m = llm.metrics()
        start = time.perf_counter()
        llm.chat_many(reqs, return_exceptions=True)
        warm_s = time.perf_counter() - start
        llm.close()

    valid = sum(not isinstance(r, Exception) for r in cold)
    calls = max(m["llm_calls"], 1)
    print(f"requests {args.n}: {valid} schema-valid, {m['llm_repairs']} repairs, {m['llm_failures']} failures")
    print(f"per call: latency mean {m['llm_latency_s_mean'] * 1e3:.0f} ms (p50 {m['llm_latency_s_p50'] * 1e3:.0f}, "
          f"p95 {m['llm_latency_s_p95'] * 1e3:.0f}), prompt {m['llm_prompt_tokens'] / calls:.0f} tok, "
          f"completion {m['llm_completion_tokens'] / calls:.0f} tok, "
          f"{m['llm_completion_tokens'] / max(m['llm_latency_s_total'], 1e-9):.1f} completion tok/s (prompt time included)")
    print(f"run: cold {cold_s:.2f}s, cached {warm_s * 1e3:.1f} ms -> speed-up x{cold_s / max(warm_s, 1e-9):.0f}")
    for r in cold[:3]:
        print("  sample:", r.parsed if not isinstance(r, Exception) else f"FAILED: {r.raw_text!r}")


if __name__ == "__main__":
    main()
