r"""Algorithm-guided LLM bandit: the LLM chooses, a bandit's statistics tell it what is known.

A guide bandit — :class:`~recoworld.agents.bandits.UCB1` (default) or
:class:`~recoworld.agents.linear.LinUCB` — ranks the candidates by its upper confidence
bound. The top ``n_shown`` go into the prompt with, per item, the statistics behind the
bound:

- UCB1 (Auer et al. 2002): mean :math:`\hat\mu_i = s_i/n_i`, count :math:`n_i`, bonus
  :math:`c\sqrt{2\ln n / n_i}` (an item never shown has no mean and an unbounded bonus);
- LinUCB (Li et al. 2010): mean :math:`x^\top\hat\theta`, bonus
  :math:`\alpha\sqrt{x^\top A^{-1}x}`, and the count of this agent's observed impressions
  of the item.

The LLM is asked to exploit high means, explore items whose bonus is large (few
impressions), and follow the user's instruction — a principled exploration that the
user's words can steer, in the spirit of LLM-guided bandits that feed the model the
algorithm's statistics rather than raw history. The guide learns from every impression
as usual. A reply that fails validation after the chat model's repairs falls back to the
guide's own top ``K`` (``counts["fallbacks"]``).
"""

from __future__ import annotations

import numpy as np

from recoworld.agents.bandits import ItemBandit, UCB1
from recoworld.agents.base import Recommender, top_k
from recoworld.agents.examination import impressions
from recoworld.agents.linear import LinUCB
from recoworld.agents.llm_agents import LLMRecommender, collaborative_scores, slate_schema
from recoworld.config_checks import AT_LEAST_ONE, check_number
from recoworld.llm import data_block
from recoworld.types import CANDIDATE_IDS, Feedback, Observation

SYSTEM = ("You are a movie recommender that balances exploiting what is known to work with exploring what is "
          "not yet known. For each candidate you get its click-rate estimate (mean), how often it was shown "
          "(n) and its uncertainty bonus: a large bonus means little is known, so the item is worth trying. "
          "Follow the user's instruction when they give one. Reply in JSON.")


class LLMBandit(LLMRecommender):
    """An LLM that picks slates from a bandit's shortlist and statistics (see the module docstring).

    Args:
        guide: a :class:`~recoworld.agents.bandits.UCB1`-like item bandit (``pulls``,
            ``clicks``, ``c``) or a :class:`~recoworld.agents.linear.LinUCB`; default ``UCB1()``.
        n_shown: shortlisted candidates (top UCB) shown with their statistics.
        setup_guide: set the guide up in :meth:`setup`.
        **kwargs: the :class:`~recoworld.agents.llm_agents.LLMRecommender` arguments.
    """

    name = "llm_bandit"

    def __init__(self, guide: Recommender | None = None, n_shown: int = 15, setup_guide: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.guide = guide if guide is not None else UCB1()
        if not isinstance(self.guide, (ItemBandit, LinUCB)) or (isinstance(self.guide, ItemBandit)
                                                                and not hasattr(self.guide, "c")):
            raise TypeError(f"guide={type(self.guide).__name__}; use UCB1 or a LinUCB, whose statistics are known")
        # Checked when built (a NaN would fail only at the first act); against slate_size in setup.
        self.n_shown = check_number(type(self).__name__, "n_shown", n_shown, AT_LEAST_ONE, integer=True)
        self.setup_guide = setup_guide

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        if self.n_shown < self.slate_size:
            raise ValueError(f"n_shown={self.n_shown} < slate_size={self.slate_size}")
        if self.setup_guide:
            self.guide.setup(env, seed)
        self.shown_count = np.zeros(self.catalog.n_items)

    def statistics(self, obs: Observation) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Mean, count and UCB bonus of every candidate, ``[B, C]`` each (mean NaN and bonus
        ``inf`` for an item UCB1 never observed)."""
        ids = np.asarray(obs[CANDIDATE_IDS])
        guide = self.guide
        if isinstance(guide, ItemBandit):
            pulls, clicks = guide.pulls[ids], guide.clicks[ids]
            n = max(guide.pulls.sum(), 1.0)
            with np.errstate(divide="ignore", invalid="ignore"):
                mean = np.where(pulls > 0, clicks / pulls, np.nan)
                bonus = np.where(pulls > 0, guide.c * np.sqrt(2.0 * np.log(n) / pulls), np.inf)
            return mean, pulls, bonus
        x = guide.features(obs)
        mean = x @ guide.ridge.theta
        bonus = guide.alpha * np.sqrt(np.maximum(((x @ guide.ridge.inverse) * x).sum(-1), 0.0))
        return mean, self.shown_count[ids], bonus

    def act(self, obs: Observation) -> np.ndarray:
        ids = np.asarray(obs[CANDIDATE_IDS])
        shortlist = top_k(collaborative_scores(self.guide, obs), min(self.n_shown, ids.shape[1]))
        action = shortlist[:, : self.slate_size].copy()
        mean, count, bonus = self.statistics(obs)
        rows = np.flatnonzero(self.needs_llm(obs))
        self.counts["no_instruction"] += len(ids) - len(rows)
        requests = []
        for b in rows:
            offered = [int(i) for i in ids[b, shortlist[b]]]
            table = data_block({**self.describe(ids[b, c]), "statistics": _stats(mean[b, c], count[b, c], bonus[b, c])}
                               for c in shortlist[b])
            prompt = (f"{self.context(obs, b)}\nCandidates by upper confidence bound, with their statistics, one per "
                      f"line:\n{table}\nReply with JSON: {{\"reasoning\": one short sentence, \"slate\": "
                      f"the ids of {self.slate_size} distinct candidates, best first}}.")
            requests.append(self.request(SYSTEM, prompt, slate_schema(offered, self.slate_size, self.reason_chars), b))
        self.take_slates(ids, rows, requests, action,
                         details=lambda b, slate: {"unexplored_items": int((count[b, slate] == 0).sum())})
        self.step += 1
        return action

    def learn(self, feedback: Feedback) -> None:
        rows, positions, _ = impressions(feedback, self.guide.examination)
        np.add.at(self.shown_count, np.asarray(feedback.slate)[rows, positions], 1.0)
        self.guide.update(feedback)


def _stats(mean: float, count: float, bonus: float) -> str:
    if not np.isfinite(bonus):
        return "never shown (n 0, bonus unbounded)"
    shown = "n/a" if np.isnan(mean) else f"{mean:.2f}"
    return f"mean {shown}, n {int(count)}, bonus {bonus:.2f}"
