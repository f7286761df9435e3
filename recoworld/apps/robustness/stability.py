r"""How stable a ranking of agents is across worlds, and which parameters move it.

Pure functions of scores (one value per agent, higher is better) and parameter values;
nothing here simulates.

* **Agreement of two rankings**: Kendall's :math:`\tau_b` between two worlds' scores of
  the same agents (Kendall, "The treatment of ties in ranking problems", Biometrika 1945;
  ``scipy.stats.kendalltau``, rounded to 12 decimals): exactly 1 when they order
  the agents alike, -1 when one reverses the other; :func:`swapped_pairs` counts the pairs
  of agents whose order differs.
* **Top agents**: :func:`top_agents` names every agent tied at the highest score, and
  :func:`same_top_share` counts the worlds that put the same agents, and only them, on top.
* **Interval**: the mean :math:`\tau` over the sampled worlds with a percentile bootstrap
  interval that resamples the worlds (Efron & Tibshirani, *An Introduction to the
  Bootstrap*, 1993, ch. 13; ``scipy.stats.bootstrap``): how much the mean would move
  with another draw of worlds from the same ranges.
* **One-at-a-time sensitivity**: each parameter alone at each end of its range, the
  others as configured; its effect is :math:`1 - \min(\tau_{\text{low}},
  \tau_{\text{high}})`, from 0 (the ranking does not move) to 2 (it reverses). Local
  around the configured world, and blind to interactions (Saltelli et al., *Global
  Sensitivity Analysis: The Primer*, Wiley 2008, ch. 1), which the global measure below
  sees.
* **Global, rank-based sensitivity**: over the sampled worlds, Spearman's rank correlation
  between each parameter and :math:`\tau` (Saltelli et al. 2008, ch. 1, on regression and
  rank-transformed measures over Monte Carlo samples): a parameter that
  moves the ranking when it moves anywhere in the ranges correlates with :math:`\tau`,
  negatively when its high end reorders the agents. With a dozen worlds it is coarse;
  variance-based indices (Sobol' indices, Saltelli et al. 2008, ch. 4) would need
  hundreds to thousands of worlds.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def ranks(scores: Mapping[str, float]) -> dict[str, int]:
    """Rank of each agent, 1 for the highest score (ties share the better rank)."""
    ordered = sorted(scores.values(), reverse=True)
    return {name: ordered.index(value) + 1 for name, value in scores.items()}


def top_agents(scores: Mapping[str, float]) -> list[str]:
    """The agents of the highest score, in the order of ``scores``: one, or all of those
    tied there."""
    best = max(scores.values())
    return [name for name, score in scores.items() if score == best]


def same_top_share(reference: Mapping[str, float], others: Sequence[Mapping[str, float]]) -> float:
    """Share of the worlds ``others`` whose top agents (:func:`top_agents`) are the
    ``reference``'s: the same agent alone on top, or the same agents tied there (a tie on
    one side and a single agent on the other is not the same top); NaN without worlds."""
    top = set(top_agents(reference))
    return float(np.mean([set(top_agents(scores)) == top for scores in others])) if others else math.nan


def kendall_tau(reference: Mapping[str, float], other: Mapping[str, float]) -> float:
    """Kendall's :math:`\\tau_b` between two worlds' scores of the same agents (NaN when
    either world scores every agent alike)."""
    if set(reference) != set(other):
        raise ValueError(f"the rankings hold different agents: {sorted(reference)} and {sorted(other)}")
    if len(reference) < 2:
        raise ValueError(f"agents={list(reference)}; a ranking needs at least two agents")
    names = list(reference)
    x, y = [reference[n] for n in names], [other[n] for n in names]
    if len(set(x)) == 1 or len(set(y)) == 1:
        return math.nan
    # Rounded: scipy's arithmetic gives 1 - 1e-16 for a ranking of five agents against itself,
    # a tau that would read as below another world's 1. Taus of a lineup are determined by its
    # pair counts (tau-b: concordant minus discordant pairs, over the square root of the product
    # of the pairs untied on each side), so distinct taus of any lineup a study can run are far
    # more than 1e-12 apart.
    return round(float(stats.kendalltau(x, y).statistic), 12)


def swapped_pairs(reference: Mapping[str, float], other: Mapping[str, float]) -> int:
    """Pairs of agents ordered one way in ``reference`` and the other way in ``other``
    (a tie on one side and an order on the other does not count)."""
    names = list(reference)
    swapped = 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            swapped += np.sign(reference[a] - reference[b]) * np.sign(other[a] - other[b]) < 0
    return int(swapped)


def bootstrap_mean(values: Sequence[float], confidence: float, resamples: int, seed: int) -> dict:
    """``{"mean", "low", "high", "n"}``: the mean of ``values`` (NaN dropped) with its
    percentile bootstrap interval; the interval is the single value when all are equal, and
    undefined (NaN) for a single value, which resampling cannot move."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if len(x) == 0:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    mean = float(x.mean())
    if len(x) < 2 or np.ptp(x) == 0:
        low = high = mean if len(x) > 1 else math.nan
        return {"mean": mean, "low": low, "high": high, "n": len(x)}
    ci = stats.bootstrap((x,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
                         random_state=np.random.default_rng(seed)).confidence_interval
    return {"mean": mean, "low": float(ci.low), "high": float(ci.high), "n": len(x)}


def one_at_a_time(tau_low: Mapping[str, float], tau_high: Mapping[str, float]) -> dict[str, float]:
    """Each parameter's effect :math:`1 - \\min(\\tau_{low}, \\tau_{high})`, largest first
    (module docstring); a NaN end counts as the most it could be, 2."""
    effect = {n: 1.0 - min(_or(tau_low[n], -1.0), _or(tau_high[n], -1.0)) for n in tau_low}
    return dict(sorted(effect.items(), key=lambda item: -item[1]))


def rank_correlation(values: np.ndarray, taus: Sequence[float], names: Sequence[str]) -> dict[str, float]:
    """Spearman's correlation between each parameter (``values[:, j]``) and :math:`\\tau` over
    the sampled worlds, largest magnitude first; NaN when :math:`\\tau` did not vary."""
    taus = np.asarray(taus, dtype=np.float64)
    keep = ~np.isnan(taus)
    out = {}
    for j, name in enumerate(names):
        x, y = values[keep, j], taus[keep]
        out[name] = math.nan if len(y) < 3 or np.ptp(y) == 0 or np.ptp(x) == 0 else \
            float(stats.spearmanr(x, y).statistic)
    return dict(sorted(out.items(), key=lambda item: -_or(abs(item[1]), -1.0)))


def _or(value: float, fallback: float) -> float:
    return fallback if math.isnan(value) else value
