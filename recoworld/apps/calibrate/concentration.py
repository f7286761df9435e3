"""Concentration over a long horizon, with and without social influence.

:func:`concentration_experiment` lets one society of users
(:class:`~recoworld.simulators.social.SocialStatisticalUsers`) live for many steps under a
popularity-feedback recommender — each request gets 50 random candidates, and the
recommender shows the 10 that the platform has seen clicked most so far (the catalog's
popularity breaks ties) — or a random one. Users who churn are replaced by new users from
the population, so the society lives on. Every ``every`` steps it records the Gini
coefficient (:func:`recoworld.calibration.metrics.gini`) of the items' cumulative
exposure (times shown) and consumption (clicks), and the share of consumption taken by
the top 1% of items, for each social-influence weight.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recoworld.calibration.metrics import gini
from recoworld.catalog import Catalog
from recoworld.simulators.population import Population
from recoworld.simulators.social import SocialInfluence, SocialStatisticalUsers
from recoworld.simulators.statistical import StatisticalUserConfig

POLICIES = ("popular", "random")


def top_share(counts: np.ndarray, fraction: float = 0.01) -> float:
    """Share of the total taken by the top ``fraction`` of items (at least one item)."""
    total = counts.sum()
    if total == 0:
        return 0.0
    k = max(1, int(round(fraction * len(counts))))
    return float(np.sort(counts)[::-1][:k].sum() / total)


def concentration_experiment(catalog: Catalog, config: StatisticalUserConfig, population: Population,
                             weights=(0.0, 1.0, 2.0), n_users: int = 500, steps: int = 300, every: int = 25,
                             slate_size: int = 10, candidates: int = 50, policy: str = "popular",
                             decay: float = 0.02, seed: int = 0) -> pd.DataFrame:
    """One row per (social weight, recorded step): ``gini_exposure``, ``gini_consumption``,
    ``top1%_consumption`` (module docstring). The same seeds serve every weight."""
    if policy not in POLICIES:
        raise ValueError(f"policy={policy!r}; choose one of {POLICIES}")
    if not 1 <= slate_size <= candidates <= catalog.n_items:
        raise ValueError(f"need 1 <= slate_size ({slate_size}) <= candidates ({candidates}) <= items ({catalog.n_items})")
    n_items = catalog.n_items
    strides = torch.arange(1, max(n_items, 2))
    strides = strides[torch.gcd(strides, torch.tensor(n_items)) == 1]
    offsets = torch.arange(candidates)
    prior = catalog.popularity.cpu()
    rows = []
    for weight in weights:
        sim = SocialStatisticalUsers(catalog, config, population, SocialInfluence(weight, decay))
        sim.reset(n_users, seed=seed * 1_000_003)
        next_seed = seed * 1_000_003 + n_users
        gen = torch.Generator().manual_seed(seed)
        exposure, consumption = torch.zeros(n_items), torch.zeros(n_items)
        for step in range(1, steps + 1):
            start = torch.randint(n_items, (n_users, 1), generator=gen)
            stride = strides[torch.randint(len(strides), (n_users, 1), generator=gen)]
            pool = (start + offsets[None, :] * stride) % n_items
            if policy == "popular":
                score = consumption[pool] + prior[pool]  # prior < 1 only breaks ties
                slates = pool.gather(1, score.topk(slate_size, dim=1).indices)
            else:
                slates = pool[:, :slate_size]
            response = sim.respond(slates)
            exposure.index_add_(0, slates.reshape(-1), torch.ones(slates.numel()))
            consumption.index_add_(0, slates.reshape(-1), response.clicked.reshape(-1).float())
            gone = response.churned.nonzero().flatten()
            if len(gone):
                sim.reset(n_users, seed=torch.arange(next_seed, next_seed + len(gone)), users=gone)
                next_seed += len(gone)
            if step % every == 0 or step == steps:
                e, c = exposure.numpy(), consumption.numpy()
                rows.append({"social_weight": float(weight), "step": step, "gini_exposure": gini(e),
                             "gini_consumption": gini(c), "top1%_consumption": top_share(c)})
    return pd.DataFrame(rows)


def describe(series: pd.DataFrame) -> dict:
    """The experiment's outcome for the fidelity report (``series`` may hold a ``policy`` column)."""
    series = series if "policy" in series else series.assign(policy="popular")
    keys = ["policy", "social_weight"]
    last = series.sort_values("step").groupby(keys, sort=False).tail(1).sort_values(keys)
    return {
        "description": (
            f"A society of users lives {int(series['step'].max())} steps; each request gets 50 random candidates, "
            "of which a *random* recommender shows 10 at random and a *popular* one the 10 most clicked so far. "
            "Users who churn are replaced. Word of mouth is off (weight 0) or on. Gini of the items' cumulative "
            "exposure and consumption (higher: more concentrated)."),
        "final": last[[*keys, "gini_exposure", "gini_consumption", "top1%_consumption"]].to_dict(orient="records"),
        "series": series.to_dict(orient="list"),
    }
