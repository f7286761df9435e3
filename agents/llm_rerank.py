"""Candidate-then-rerank: a collaborative model proposes, an LLM selects and reorders.

Each request: the proposer (default :class:`~recoworld.agents.linear.LinUCB`, which learns
from every user's clicks) scores the candidates; its top ``n_proposals`` are listed in
the prompt with the user's instruction and recent history; the LLM answers
``{"reasoning": ..., "slate": [K ids]}``. The reply schema admits only the proposed ids,
``K`` of them, distinct: anything else is rejected and repaired by the chat model
(``max_repairs`` turns). A request that still fails is served the proposer's own top
``K`` — the **fallback**, counted in ``counts["fallbacks"]`` and traced with the error.
"""

from __future__ import annotations

import numpy as np

from recoworld.agents.base import Recommender, top_k
from recoworld.agents.linear import LinUCB
from recoworld.agents.llm_agents import LLMRecommender, collaborative_scores, slate_schema
from recoworld.config_checks import AT_LEAST_ONE, check_number
from recoworld.llm import data_block
from recoworld.types import CANDIDATE_IDS, Feedback, Observation

SYSTEM = ("You are the ranking step of a movie recommender. You receive a user's instruction, their recent "
          "history, and candidate movies proposed by a collaborative model, best first. Choose the movies to "
          "show, best first, following the user's instruction; when they give none, keep close to the "
          "proposed order. Reply in JSON.")


class LLMRerank(LLMRecommender):
    """Candidate-then-rerank (see the module docstring).

    Args:
        proposer: the collaborative model (any agent with ``score``, or an item
            bandit); default ``LinUCB()``. It is set up and learns as usual.
        n_proposals: proposed candidates shown to the LLM (at least ``slate_size``).
        setup_proposer: set the proposer up in :meth:`setup` (False for one already trained).
        **kwargs: the :class:`~recoworld.agents.llm_agents.LLMRecommender` arguments.
    """

    name = "llm_rerank"

    def __init__(self, proposer: Recommender | None = None, n_proposals: int = 15, setup_proposer: bool = True,
                 **kwargs):
        super().__init__(**kwargs)
        self.proposer = proposer if proposer is not None else LinUCB()
        # Checked when built (a NaN would fail only at the first act); against slate_size in setup.
        self.n_proposals = check_number(type(self).__name__, "n_proposals", n_proposals, AT_LEAST_ONE, integer=True)
        self.setup_proposer = setup_proposer

    def setup(self, env, seed: int | None = None) -> None:
        super().setup(env, seed)
        if self.n_proposals < self.slate_size:
            raise ValueError(f"n_proposals={self.n_proposals} < slate_size={self.slate_size}; "
                             "the LLM must have at least a slate to choose from")
        if self.setup_proposer:
            self.proposer.setup(env, seed)

    def act(self, obs: Observation) -> np.ndarray:
        ids = np.asarray(obs[CANDIDATE_IDS])
        proposed = top_k(collaborative_scores(self.proposer, obs), min(self.n_proposals, ids.shape[1]))
        action = proposed[:, : self.slate_size].copy()
        rows = np.flatnonzero(self.needs_llm(obs))
        self.counts["no_instruction"] += len(ids) - len(rows)
        requests = []
        for b in rows:
            offered = [int(i) for i in ids[b, proposed[b]]]
            listing = data_block(self.describe(i) for i in offered)
            prompt = (f"{self.context(obs, b)}\nProposed movies, best first, one per line:\n{listing}\n"
                      f"Reply with JSON: {{\"reasoning\": one short sentence, \"slate\": the ids of "
                      f"{self.slate_size} distinct proposed movies, best first}}.")
            requests.append(self.request(SYSTEM, prompt, slate_schema(offered, self.slate_size, self.reason_chars), b))
        self.take_slates(ids, rows, requests, action)
        self.step += 1
        return action

    def learn(self, feedback: Feedback) -> None:
        if self.proposer.learns:
            self.proposer.update(feedback)
