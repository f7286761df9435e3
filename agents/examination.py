"""Which shown positions an online learner counts as observed, and what it saw there.

The env reports clicks, not examination: a position the user never reached reads like a
position they read and skipped. Users scan a slate top-down and stop (the cascade,
Craswell et al. 2008), so a zero at position 8 says little about the item there. The
learners of this package therefore take their training impressions through one rule:

- ``"last_click"``: the top position, and every position down to the slate's last
  click. A click at position ``k`` shows that the user read positions ``0..k``; the top
  position is read on every request. This is the dependent click model's reading of a
  slate (Guo et al. 2009), as used by cascading bandits (Kveton et al. 2015, which stop
  at the single first click; Katariya et al. 2016 extend it to several clicks). Unlike
  cascading bandits it does not assume that a slate without clicks was read to the end:
  RecoWorld's users abandon slates (patience), so such a slate counts as one skip, of
  its top item. The price is an upward bias: a skipped item counts only when a click
  follows it. The bias depends on what is ranked below, not on the item itself, so it
  roughly preserves the order of items, which is what a ranking needs.
- ``"all"``: every shown position, as if every impression were read. It charges
  position bias to the items: whatever an agent ranks low looks worse than it is.

Which is better is an empirical question, and the answer differs by model (the runs
behind these defaults are in ``benchmarks/RESULTS.md``):

- models that learn a rate per item (ε-greedy, UCB1, Bernoulli TS, disjoint LinUCB) see
  few impressions of each item, and ``"all"`` gives them several times the data (every
  shown position instead of those down to the last click). Since every request draws its
  candidates at random, an item is shown at many positions, so the dilution is shared
  rather than tied to the item; starting flat, ``"all"`` is their default. With the
  popularity prior of :mod:`recoworld.agents.bandits` (their configs' setting) the prior
  supplies what the data lacks, and ``"last_click"`` ranks better;
- models that pool all items into shared weights (LinUCB, hybrid LinUCB, Diag-LinUCB,
  the Thompson samplers) have data to spare: both rules earn alike, and ``"last_click"``,
  which keeps unread positions out of the data and fits fewer rows, is their default.
"""

from __future__ import annotations

import numpy as np

from recoworld.types import Feedback

EXAMINATION_RULES = ("last_click", "all")


def check_rule(rule: str) -> None:
    if rule not in EXAMINATION_RULES:
        raise ValueError(f"examination={rule!r}; choose one of {EXAMINATION_RULES}")


def observed_positions(clicked: np.ndarray, rule: str) -> np.ndarray:
    """Bool ``[B, K]``: the positions the learner treats as read (see the module docstring)."""
    clicked = np.asarray(clicked, dtype=bool)
    if rule == "all":
        return np.ones_like(clicked)
    check_rule(rule)
    K = clicked.shape[1]
    last_click = np.where(clicked.any(1), K - 1 - np.argmax(clicked[:, ::-1], axis=1), 0)
    return np.arange(K)[None, :] <= last_click[:, None]


def impressions(feedback: Feedback, rule: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The observed impressions of a batch: ``(rows, positions, clicks)``, flat arrays.

    Rows with ``feedback.valid == False`` (a vector env's autoreset step) are skipped.
    ``clicks`` is float64 (1.0 for a click, 0.0 for a skip).
    """
    clicked = np.asarray(feedback.clicked, dtype=bool)
    observed = observed_positions(clicked, rule) & np.asarray(feedback.valid, dtype=bool)[:, None]
    rows, positions = np.nonzero(observed)
    return rows, positions, clicked[rows, positions].astype(np.float64)
