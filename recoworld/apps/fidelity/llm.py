r"""Fidelity of the LLM and hybrid users on a sample of held-out users.

Each sampled MovieLens user is played three ways, on the same lists:

* the **calibrated user** (:mod:`recoworld.apps.fidelity.report`), for reference on the
  same sample;
* the **hybrid user** (:class:`~recoworld.simulators.hybrid.HybridUsers` on the calibrated
  users): its statistical core decides every click and its LLM only voices instructions,
  so its choice probability is exact and its "would watch" is that probability above 1/2
  — the calibrated user's answer on the same user, no LLM call needed;
* the **LLM user** (:class:`~recoworld.simulators.llm_user.LLMUsers`): the persona of the
  same MovieLens user, built from their *training* ratings only
  (:class:`~recoworld.simulators.persona.MovieLensPersonas`), with the calibrated user as
  its statistical twin. It is shown each list as one slate and its reply says which items
  it would watch. An LLM gives no choice probability (``click_probabilities`` is its twin's,
  a proxy), so it has no AUC; its 1:m decisions are its own clicks. A failed reply falls
  back to the twin (``on_failure="fallback"``) and is counted; when more than
  ``max_fallback_share`` (5% by default; ``recoworld fidelity --max-fallback-share``) of its
  answers, over all the lists, fell back, the section stops with
  :class:`~recoworld.simulators.llm_shared.FallbackShareExceeded`: its figures would be the
  twin's.

The 1:m lists are those of the report's protocol: per user one held-out item mixed with
``m`` never-rated ones, shuffled; each ``m`` starts the users afresh (no memory across lists).

Each list costs one LLM call per user, and the embedded SmolLM2-135M on a CPU is slow
(its throughput is in ``benchmarks/RESULTS.md``), so ``recoworld fidelity --users
statistical,hybrid,llm`` samples 8 users by default (24 calls). At scale, serve a model with vLLM (or any
OpenAI-compatible server) and pass its settings (fields of :class:`recoworld.llm.LLMConfig`)::

    vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000
    recoworld fidelity --users statistical,hybrid,llm --llm-users 500 \
        --llm backend=openai --llm base_url=http://localhost:8000/v1 \
        --llm model=Qwen/Qwen2.5-7B-Instruct --llm max_concurrency=64

The calls run concurrently up to ``max_concurrency`` and are cached on disk (``cache_dir``,
by default ``llm-cache`` in RecoWorld's cache, :func:`recoworld.data.cache.cache_dir`), so a
re-run replays them, whatever its ``--out``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict

import numpy as np
import torch

from recoworld.calibration.metrics import decide, user_auc
from recoworld.calibration.split import Split, interaction_matrix
from recoworld.data.movielens import MovieLens100K
from recoworld.simulators.calibrated import CalibratedWorld
from recoworld.simulators.llm_config import LLMUserConfig

USER_KINDS = ("statistical", "hybrid", "llm")


def sample_lists(positive: torch.Tensor, never: torch.Tensor, rows: np.ndarray, m: int,
                 seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per sampled user one held-out item and ``m`` never-rated items, shuffled:
    ``[n, 1 + m]`` slates and their labels."""
    gen = np.random.default_rng(seed)
    slates, labels = [], []
    for b in rows:
        items = np.concatenate([gen.choice(np.flatnonzero(positive[b].numpy()), 1),
                                gen.choice(np.flatnonzero(never[b].numpy()), m, replace=False)])
        order = gen.permutation(1 + m)
        slates.append(items[order])
        labels.append(order == 0)
    return torch.as_tensor(np.stack(slates)), torch.as_tensor(np.stack(labels))


def llm_users(world: CalibratedWorld, data: MovieLens100K, split: Split, rows: np.ndarray, llm,
              max_fallback_share: float = LLMUserConfig.max_fallback_share):
    """The LLM users of the fitted users at ``rows``, personas from training ratings only."""
    from recoworld.simulators.llm_user import LLMUsers
    from recoworld.simulators.persona import MovieLensPersonas

    personas = MovieLensPersonas(MovieLens100K(split.train, data.items, data.users))
    population = world.population().pinned(rows, rows)
    return LLMUsers(world.catalog, llm, {"max_fallback_share": max_fallback_share}, statistical=world.config,
                    population=population, personas=personas)


def hybrid_users(world: CalibratedWorld, rows: np.ndarray, llm):
    """The hybrid users of the fitted users at ``rows`` (the LLM is not called here)."""
    from recoworld.simulators.hybrid import HybridUsers

    return HybridUsers(world.catalog, llm, statistical=world.config, population=world.population().pinned(rows, rows))


def check_user_kinds(kinds: Sequence[str]) -> None:
    """Refuse a kind not in :data:`USER_KINDS`, or one named twice, naming it."""
    unknown = [k for k in kinds if k not in USER_KINDS]
    if unknown:
        raise ValueError(f"--users {','.join(kinds)}: no user kind {', '.join(map(repr, unknown))}; choose among "
                         f"{', '.join(USER_KINDS)}")
    twice = sorted({k for k in kinds if list(kinds).count(k) > 1})
    if twice:
        raise ValueError(f"--users names {', '.join(twice)} more than once; name each kind once")


def check_sample_size(n_users: int, split: Split) -> None:
    """Refuse a sample of users the split cannot give: only users with held-out ratings are sampled."""
    available = int(split.test["user_id"].nunique())
    if not 1 <= n_users <= available:
        raise ValueError(f"--llm-users {n_users}: choose 1..{available} (the users with held-out ratings)")


def evaluate_users(world: CalibratedWorld, data: MovieLens100K, split: Split, kinds: Sequence[str] = USER_KINDS,
                   n_users: int = 8, llm=None, ratios: Sequence[int] = (1, 3, 9), seed: int = 0,
                   max_fallback_share: float = LLMUserConfig.max_fallback_share) -> dict:
    """AUC (where the user has a choice probability) and the 1:m protocol per user kind.

    Args:
        world, data, split: the calibrated world, its data and its held-out split.
        kinds: among ``statistical``, ``hybrid``, ``llm``.
        n_users: users sampled (uniformly, seeded) for every kind alike.
        llm: the LLM users' chat model: a :class:`~recoworld.llm.ChatModel`, a mapping of
            :class:`~recoworld.llm.LLMConfig` fields, or ``None`` (the embedded model).
        max_fallback_share: the largest share of the LLM users' answers, over all the
            lists, that may be their statistical twin's (1.0: any).

    Raises:
        ~recoworld.simulators.llm_shared.FallbackShareExceeded: more than
            ``max_fallback_share`` of the LLM users' answers fell back.
    """
    check_user_kinds(kinds)
    check_sample_size(n_users, split)
    n_all = split.n_users
    positive = interaction_matrix(split.test, n_all, split.n_items)
    never = ~(positive | interaction_matrix(split.train, n_all, split.n_items))
    rows = np.sort(np.random.default_rng(seed).choice(np.flatnonzero(positive.any(1).numpy()), n_users,
                                                      replace=False))
    lists = {m: sample_lists(positive, never, rows, m, seed + m) for m in ratios}
    results: dict = {"users": [int(world.users["user_id"].iloc[r]) for r in rows]}
    shared_llm = None
    if "llm" in kinds or "hybrid" in kinds:
        from recoworld.simulators.llm_shared import build_chat_model

        shared_llm, owned = build_chat_model(llm)
    try:
        for kind in kinds:
            sim = simulated_users(kind, world, data, split, rows, shared_llm, max_fallback_share)
            results[kind] = kind_scores(kind, sim, lists, torch.as_tensor(rows), positive[rows], never[rows])
    finally:
        if shared_llm is not None and owned and callable(getattr(shared_llm, "close", None)):
            shared_llm.close()
    return results


def simulated_users(kind: str, world: CalibratedWorld, data: MovieLens100K, split: Split, rows: np.ndarray, llm,
                    max_fallback_share: float = LLMUserConfig.max_fallback_share):
    """The users of ``kind`` playing the fitted users at ``rows``."""
    if kind == "statistical":
        from recoworld.simulators.statistical import StatisticalUsers

        return StatisticalUsers(world.catalog, world.config, world.population().pinned(rows, rows))
    if kind == "hybrid":
        return hybrid_users(world, rows, llm)
    return llm_users(world, data, split, rows, llm, max_fallback_share)


def kind_scores(kind: str, sim, lists: dict, seeds: torch.Tensor, positive: torch.Tensor,
                never: torch.Tensor) -> dict:
    """AUC over the whole catalog (``None`` for the LLM user) and the decisions on each
    1:m list of one kind of user, started afresh from ``seeds`` for each; the lists are one
    rollout, whose end (``finish``) stops the LLM users whose answers fell back too often."""
    entry: dict = {"auc": None}
    if kind != "llm":
        sim.reset(len(seeds), seed=seeds)
        n_items = positive.shape[1]
        items = torch.arange(n_items)[None, :].expand(len(seeds), n_items).contiguous()
        entry["auc"] = float(user_auc(sim.click_probabilities(items), positive, never).nanmean())
    for m, (slates, labels) in lists.items():
        sim.reset(len(seeds), seed=seeds)
        if kind == "llm":
            # Its own answers: clicked is 1 for "would watch", 0 otherwise.
            entry[f"1:{m}"] = asdict(decide(sim.respond(slates).clicked.float(), labels))
        else:
            entry[f"1:{m}"] = asdict(decide(sim.click_probabilities(slates), labels))
    # During the lists the share is checked only past fallback_min_steps (20) user-steps,
    # which a sample of up to 6 users (one step per list) never reaches.
    sim.finish()
    if kind == "llm":
        entry["llm"] = {k: v for k, v in sim.metrics().items() if isinstance(v, (int, float))}
    return entry
