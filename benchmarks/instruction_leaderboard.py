"""Leaderboard of instruction-aware recommenders, LLM and not, against users that voice instructions.

Every agent serves the same simulated users (common random numbers: same seeds, same
population) in ``RecoWorld/Slate-v0``'s vector env, with users made talkative
(``instruction_threshold=0.2``, ``voice_probability=0.9``), and is scored with
:mod:`recoworld.metrics` on the logged episodes:

- **return**: mean return of the users' first episodes (reward: clicks; ``return_per_episode``);
- **retention**: share of session ends after which the user comes back (``return_rate``);
- **compliance**: mean compliance of the slates shown while an instruction was in force —
  the simulator's own measure, computed from the structured instruction: the share of
  items outside the genres asked for less, of items in the genres asked for more
  (relative to the wished share), and of novel or familiar items, as asked.

The lineup: ``random`` and ``most_popular`` (references), ``linucb`` (the instruction enters
its features), ``rule_tools`` (the tool agent's executor with plans written by rules from
the structured instruction), and the three LLM agents — ``llm_rerank``, ``llm_tools``,
``llm_bandit`` — on the embedded SmolLM2-135M (llama.cpp, CPU), consulted only while an
instruction is current (``llm_when="instruction"``) to keep the run small. The table also
counts their LLM requests and fallbacks (replies that never validated).

With ``--judge`` the run ends with the profile-aware LLM judge (:mod:`recoworld.apps.judge`) on
the same model: at sampled states of random-policy episodes it rates an oracle slate and a
random slate for the user (pointwise, 1-5) and compares them (pairwise, both orders), and
its agreement with the simulator is reported — Spearman and pairwise accuracy against the
slate's true mean click probability (the privileged channel), and Spearman against the
user's satisfaction after being shown the slate.

    python benchmarks/instruction_leaderboard.py                 # long on a CPU (RESULTS.md)
    python benchmarks/instruction_leaderboard.py --no-llm        # the non-LLM rows only, seconds

LLM replies are cached on disk (``--cache-dir``), so a rerun replays them.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import gymnasium as gym
import numpy as np

import recoworld  # noqa: F401  (registers the envs)
from recoworld.agents.baselines import MostPopularAgent, RandomAgent
from recoworld.agents.linear import LinUCB
from recoworld.agents.llm_bandit import LLMBandit
from recoworld.agents.llm_rerank import LLMRerank
from recoworld.agents.llm_tools import LLMToolAgent
from recoworld.catalog import Catalog
from recoworld.envs.rollout import rollout
from recoworld.logs import EpisodeLog, read_log
from recoworld.metrics import summarize

TALKATIVE = {"instruction_threshold": 0.2, "voice_probability": 0.9}
COLUMNS = {"return_per_episode": "return", "return_rate": "retention", "compliance": "compliance", "ctr": "CTR"}


def make_env(args, catalog):
    return gym.make_vec("RecoWorld/Slate-v0", num_envs=args.users, vectorization_mode="vector_entry_point",
                        catalog=catalog, simulator_config=TALKATIVE, slate_size=args.slate_size,
                        num_candidates=args.candidates, max_steps=args.steps, reward="clicks")


def make_llm(args):
    from recoworld.llm.llama_cpp_backend import LlamaCppChatModel

    return LlamaCppChatModel(n_ctx=2048, n_threads=args.llm_threads, max_repairs=args.max_repairs,
                             schema_in_prompt=False, cache=args.cache_dir)


def lineup(args, llm) -> dict:
    agents = {
        "random": lambda: RandomAgent(),
        "most_popular": lambda: MostPopularAgent(),
        "linucb": lambda: LinUCB(),
        "rule_tools": lambda: LLMToolAgent(planner="rules"),
    }
    if llm is not None:
        small = {"llm": llm, "llm_when": "instruction", "history_shown": 3, "reason_chars": 60}
        agents["llm_rerank"] = lambda: LLMRerank(n_proposals=args.shortlist, max_tokens=96, **small)
        agents["llm_tools"] = lambda: LLMToolAgent(max_calls=3, max_tokens=220, **small)
        agents["llm_bandit"] = lambda: LLMBandit(n_shown=args.shortlist, max_tokens=96, **small)
    return agents


def run_lineup(args, catalog, llm, out: Path) -> list[dict]:
    log_path = out / "episodes.parquet"
    rows, extra = [], {}
    with EpisodeLog(log_path) as log:
        for name, make_agent in lineup(args, llm).items():
            for seed in args.seeds:
                agent = make_agent()
                start = time.perf_counter()
                rollout(make_env(args, catalog), agent, args.steps, seed, logger=log, label=name)
                seconds = time.perf_counter() - start
                stats = dict(getattr(agent, "counts", {}))
                entry = extra.setdefault(name, {"seconds": 0.0, "llm_requests": 0, "llm_slates": 0, "fallbacks": 0})
                entry["seconds"] += seconds
                for key in ("llm_requests", "fallbacks"):
                    entry[key] += stats.get(key, 0)
                entry["llm_slates"] += stats.get("llm_slates", 0) + (stats.get("planned_slates", 0) if name == "llm_tools" else 0)
                if getattr(agent, "traces", None):
                    with (out / f"traces_{name}.jsonl").open("a") as f:
                        for record in agent.traces:
                            f.write(json.dumps(record, default=str) + "\n")
                print(f"{name} seed {seed}: {seconds:.0f}s {stats}", flush=True)
    summary = summarize(read_log(log_path), catalog.features.numpy(), catalog.popularity.numpy(), max_steps=args.steps)
    for name, agent_summary in summary.items():
        row = {"agent": name}
        for metric, label in COLUMNS.items():
            row[label] = agent_summary["metrics"][metric]["mean"]
        row.update(extra[name])
        rows.append(row)
    return rows


def judge_study(args, catalog, llm) -> dict:
    """The judge's agreement with the simulator (see the module docstring)."""
    from recoworld.apps.judge import LLMJudge, agreement, user_profile

    env = make_env(args, catalog)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=10_000)
    K = args.slate_size
    profiles, slates, appeal, satisfaction, pairs = [], [], [], [], []
    said = [None] * args.users
    for t in range(args.steps):
        probabilities = env.unwrapped.click_probabilities()
        oracle = np.argsort(-probabilities, axis=1)[:, :K]
        random = np.stack([rng.permutation(args.candidates)[:K] for _ in range(args.users)])
        shown = oracle if t % 2 == 0 else random
        sample = t >= 2 and len(profiles) < args.judge_samples
        if sample:
            for b in range(min(args.users, args.judge_samples - len(profiles))):
                profile = user_profile(catalog, obs["history_items"][b], obs["history_feedback"][b], said[b])
                a, r = obs["candidate_ids"][b, oracle[b]], obs["candidate_ids"][b, random[b]]
                pairs.append((profile, a.tolist(), r.tolist(), probabilities[b, oracle[b]].mean(),
                              probabilities[b, random[b]].mean()))
                profiles.append(profile)
                slates.append(obs["candidate_ids"][b, shown[b]].tolist())
                appeal.append(probabilities[b, shown[b]].mean())
        obs, _, terminated, truncated, info = env.step(shown)
        if sample:
            satisfaction.extend(info["satisfaction"][: len(slates) - len(satisfaction)].tolist())
        for b, text in enumerate(info["instruction_text"]):
            if text is not None:
                said[b] = text
            if terminated[b] or truncated[b]:
                said[b] = None
    judge = LLMJudge(llm, catalog, max_tokens=80)
    start = time.perf_counter()
    scores = judge.rate(profiles, slates)
    # Pairs are presented with the oracle slate as A in half of them, as B in the other half.
    flip = np.arange(len(pairs)) % 2 == 1
    slates_a = [b if f else a for (_, a, b, _, _), f in zip(pairs, flip)]
    slates_b = [a if f else b for (_, a, b, _, _), f in zip(pairs, flip)]
    truth_a = [tb if f else ta for (_, _, _, ta, tb), f in zip(pairs, flip)]
    truth_b = [ta if f else tb for (_, _, _, ta, tb), f in zip(pairs, flip)]
    preferences = judge.compare([p for p, *_ in pairs], slates_a, slates_b)
    result = agreement(scores, appeal, preferences, truth_a, truth_b)
    result["spearman_vs_satisfaction"] = agreement(scores, satisfaction)["spearman"]
    result["score_histogram"] = {s: sum(1 for x in scores if x is not None and x.score == s) for s in range(1, 6)}
    result["verdicts"] = {"A": sum(p == 1 for p in preferences), "B": sum(p == -1 for p in preferences),
                          "tie": sum(p == 0 for p in preferences), "failed": sum(p is None for p in preferences)}
    result["judge_counts"] = dict(judge.counts)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def markdown(rows: list[dict]) -> str:
    header = "| agent | return | retention | compliance | CTR | LLM requests | LLM slates | fallbacks | seconds |"
    lines = [header, "|" + "---|" * 9]
    for r in rows:
        cells = [r["agent"]] + [_fmt(r[k]) for k in ("return", "retention", "compliance", "CTR")]
        cells += [str(r["llm_requests"]), str(r["llm_slates"]), str(r["fallbacks"]), f"{r['seconds']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _fmt(value) -> str:
    return "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--steps", type=int, default=12, help="rollout steps = env max_steps")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--slate-size", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=20)
    parser.add_argument("--shortlist", type=int, default=6, help="items an LLM agent chooses among")
    parser.add_argument("--llm-threads", type=int, default=1)
    parser.add_argument("--max-repairs", type=int, default=1)
    parser.add_argument("--cache-dir", default="outputs/llm_cache")
    parser.add_argument("--out", default="outputs/instruction_leaderboard")
    parser.add_argument("--no-llm", action="store_true", help="skip the LLM agents and the judge")
    parser.add_argument("--judge", action="store_true", help="also run the judge study")
    parser.add_argument("--judge-samples", type=int, default=6)
    args = parser.parse_args(argv)

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for stale in [out / "episodes.parquet", *out.glob("traces_*.jsonl")]:
        stale.unlink(missing_ok=True)
    catalog = Catalog.synthetic(1000, seed=0)
    llm = None if args.no_llm else make_llm(args)
    rows = run_lineup(args, catalog, llm, out)
    report = {"config": vars(args), "leaderboard": rows}
    print(markdown(rows))
    if args.judge and llm is not None:
        report["judge"] = judge_study(args, catalog, llm)
        print(json.dumps(report["judge"], indent=2))
    if llm is not None:
        report["llm"] = llm.metrics()
    (out / "leaderboard.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (out / "leaderboard.md").write_text(markdown(rows) + "\n")
    return report


if __name__ == "__main__":
    main()
