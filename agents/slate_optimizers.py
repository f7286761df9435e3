r"""SlateQ's decomposition of a slate's value, and the slate optimisers that maximise it.

With conditional-logit choice scores :math:`v_i` of the slate's items, :math:`v_\perp` of
the null choice (no click) and item-wise values :math:`\bar Q_i`, :math:`\bar Q_\perp`
(Ie et al., 2019, "SlateQ", IJCAI):

.. math::

    Q(s, A) = \frac{v_\perp \bar Q_\perp + \sum_{i \in A} v_i \bar Q_i}{v_\perp + \sum_{i \in A} v_i}
              \;\Big[ + \frac1K \sum_{i \in A} W_i \Big]

the bracket being RecoWorld's optional exposure values (see :mod:`recoworld.agents.slateq`).
:func:`optimize_slate` chooses the ``K`` of ``C`` candidates that maximise it.
"""

from __future__ import annotations

import torch

#: The slate optimisers :func:`optimize_slate` knows.
SLATE_OPTIMIZERS = ("exact", "top_k")


def slate_value(v: torch.Tensor, q: torch.Tensor, v_null: torch.Tensor, q_null: torch.Tensor,
                w: torch.Tensor | None = None) -> torch.Tensor:
    r"""SlateQ's :math:`Q(s, A)` ``[B]`` from the slate's choice scores ``v`` and item values
    ``q`` ``[B, K]`` and the null choice's ``v_null``, ``q_null`` ``[B]``; plus the mean
    exposure value of the slate's items when ``w`` ``[B, K]`` is given."""
    value = (v_null * q_null + (v * q).sum(1)) / (v_null + v.sum(1))
    return value if w is None else value + w.mean(1)


def choice_probabilities(v: torch.Tensor, v_null: torch.Tensor) -> torch.Tensor:
    """Conditional-logit :math:`P(i | s, A)` ``[B, K + 1]``; the last column is the null choice."""
    weights = torch.cat([v, v_null[:, None]], 1)
    return weights / weights.sum(1, keepdim=True)


def optimize_slate(v: torch.Tensor, q: torch.Tensor, v_null: torch.Tensor, q_null: torch.Tensor, k: int,
                   method: str = "exact", w: torch.Tensor | None = None, max_iter: int = 50) -> torch.Tensor:
    r"""Candidate indices ``[B, k]`` of the best slate of ``k`` out of ``C`` candidates.

    ``v``, ``q`` (and ``w``) ``[B, C]``; ``v_null``, ``q_null`` ``[B]``. ``"exact"``
    maximises :func:`slate_value` by Dinkelbach's iteration (1967; each step takes the
    top-k of :math:`v_i(q_i - \lambda)` and sets :math:`\lambda` to that slate's value, which
    never decreases and stops at the optimum); ``"top_k"`` takes the top-k of :math:`v_i q_i`
    (the paper's heuristic). With exposure values ``w`` the objective is no longer a pure
    ratio: from the slate above, each step takes the top-k of the linearised gain
    :math:`v_i(q_i - \lambda)/D + w_i/k` (:math:`\lambda`, :math:`D` the current slate's
    choice value and denominator) and keeps it where it improves the value — a local search
    that never does worse than its start. The slate is ordered by its items' gains, best first.
    """
    if method not in SLATE_OPTIMIZERS:
        raise ValueError(f"slate_optimizer={method!r}; choose one of {SLATE_OPTIMIZERS}")
    gain = v * q if w is None else v * q / (v_null[:, None] + k * v.mean(1, keepdim=True)) + w / k
    chosen = gain.topk(k, dim=1).indices
    if method == "exact":
        chosen = _dinkelbach(v, q, v_null, q_null, k, chosen, max_iter)
        if w is not None:
            chosen = _local_search(v, q, v_null, q_null, w, k, chosen, max_iter)
    if w is not None:
        gain = _exposure_gain(v, q, v_null, q_null, w, k, chosen)
    order = torch.argsort(gain.gather(1, chosen), dim=1, descending=True, stable=True)
    return chosen.gather(1, order)


def _dinkelbach(v, q, v_null, q_null, k, chosen, max_iter):
    """The slates that maximise the ratio :func:`slate_value` (without exposure), from ``chosen``:
    each step takes the top-k of :math:`v_i(q_i - \\lambda)` at the current value :math:`\\lambda`."""
    def value(slate):
        return slate_value(v.gather(1, slate), q.gather(1, slate), v_null, q_null)

    return _ascend(chosen, value, lambda _, ratio: (v * (q - ratio[:, None])).topk(k, dim=1).indices, max_iter)


def _exposure_gain(v, q, v_null, q_null, w, k, chosen):
    r"""Each candidate's linearised gain :math:`v_i(q_i - \lambda)/D + w_i/k` ``[B, C]`` around the slates ``chosen``."""
    v_chosen = v.gather(1, chosen)
    ratio = slate_value(v_chosen, q.gather(1, chosen), v_null, q_null)
    return v * (q - ratio[:, None]) / (v_null + v_chosen.sum(1))[:, None] + w / k


def _local_search(v, q, v_null, q_null, w, k, chosen, max_iter):
    """Improve slates under :func:`slate_value` with exposure values (see :func:`optimize_slate`)."""
    def value(slate):
        return slate_value(v.gather(1, slate), q.gather(1, slate), v_null, q_null, w.gather(1, slate))

    def propose(slate, _):
        return _exposure_gain(v, q, v_null, q_null, w, k, slate).topk(k, dim=1).indices

    return _ascend(chosen, value, propose, max_iter)


def _ascend(chosen, value, propose, max_iter):
    """Per row, replace the slate ``chosen`` by ``propose(chosen, value(chosen))`` while that
    raises ``value`` (beyond a relative 1e-7), for at most ``max_iter`` steps."""
    current = value(chosen)
    for _ in range(max_iter):
        candidate = propose(chosen, current)
        new = value(candidate)
        better = new > current + 1e-7 * current.abs().clamp_min(1.0)
        if not bool(better.any()):
            break
        chosen = torch.where(better[:, None], candidate, chosen)
        current = torch.where(better, new, current)
    return chosen
