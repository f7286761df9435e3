"""Fitted Q evaluation: a Q-function of the evaluation policy regressed from logged sessions.

Iteration ``j`` regresses the targets ``r_t + discount * sum_a pi(a | s_t+1) Q_j-1(s_t+1, a)``
(0 after the last real step) on ``Q_j(s_t, a_t)`` with a small MLP that maps the state
features to one output per action. The estimate is ``mean_i sum_a pi(a | s_i0) Q(s_i0, a)``.

Reference: H. Le, C. Voloshin, Y. Yue. "Batch Policy Learning under Constraints", ICML
2019 (FQE); D. Ernst, P. Geurts, L. Wehenkel, "Tree-Based Batch Mode Reinforcement
Learning", JMLR 2005 (fitted Q iteration).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch

from recoworld.ope import _validation as v
from recoworld.ope.base import BaseEstimator
from recoworld.ope.feedback import SessionFeedback
from recoworld.ope.reward_model import cross_fitting_folds

#: Rows per forward pass when computing targets and predictions without gradients.
_EVAL_CHUNK = 1 << 16


class _Steps(NamedTuple):
    features: np.ndarray      # [n, T, d]
    action: np.ndarray        # [n, T]
    reward: np.ndarray        # [n, T]
    mask: np.ndarray          # [n, T]
    action_dist: np.ndarray   # [n, T, A]


@dataclass
class FittedQEvaluation(BaseEstimator):
    """Fitted Q evaluation (FQE) with a torch MLP; deterministic for a given ``seed`` on CPU.

    Called as ``estimate_policy_value(feedback, action_dist)`` (and ``estimate_interval``
    with ``n_bootstrap, alpha, seed`` added), where ``feedback`` is a
    :class:`~recoworld.ope.SessionFeedback` with ``action`` and ``features``, and
    ``action_dist`` is the evaluation policy's ``[n, T, n_actions]`` distribution at every
    step. Its bootstrap interval resamples initial states with the Q-function held fixed,
    so it leaves out the fitting variance. :meth:`estimate_q` gives cross-fitted
    ``q_hat, v_hat`` for the doubly robust session estimators.

    Attributes:
        discount: ``gamma`` in ``[0, 1]``.
        hidden_sizes: widths of the hidden ReLU layers.
        n_iterations: Bellman backups; None means the horizon ``T`` (exact propagation
            for a finite-horizon problem whose features include the step index).
        n_epochs: passes over the steps per backup.
        batch_size, learning_rate, weight_decay: Adam settings.
        seed: weight initialisation and minibatch order.
        device: torch device for training, "cpu" by default.
        num_threads: CPU threads torch may use while fitting (restored afterwards); 1 by
            default, since the small networks gain nothing from more and lose much on an
            oversubscribed machine (``benchmarks/RESULTS.md``). None leaves torch's
            setting alone.
    """

    discount: float = 1.0
    hidden_sizes: tuple[int, ...] = (64, 64)
    n_iterations: int | None = None
    n_epochs: int = 4
    batch_size: int = 256
    learning_rate: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0
    device: str = "cpu"
    num_threads: int | None = 1

    def __post_init__(self):
        v.check_scalar(self.discount, "discount", 0, 1)
        if self.n_iterations is not None:
            v.check_scalar(self.n_iterations, "n_iterations", 1)
        v.check_scalar(self.n_epochs, "n_epochs", 1)
        v.check_scalar(self.batch_size, "batch_size", 1)
        v.check_scalar(self.learning_rate, "learning_rate", 0, low_inclusive=False)
        v.check_scalar(self.seed, "seed", 0)
        if self.num_threads is not None:
            v.check_scalar(self.num_threads, "num_threads", 1)

    def _round_terms(self, feedback: SessionFeedback, action_dist) -> np.ndarray:
        steps = self._steps(feedback, action_dist)
        network = self._fit(steps, np.arange(feedback.n_rounds))
        initial = self._values(network, steps.features[:, 0])
        return (initial * steps.action_dist[:, 0]).sum(axis=1)[:, None]

    def estimate_q(self, feedback: SessionFeedback, action_dist, n_folds: int = 2,
                   groups=None) -> tuple[np.ndarray, np.ndarray]:
        """Cross-fitted ``(q_hat, v_hat)``, each ``[n, T]`` and 0 at padding.

        Trajectories are split into ``n_folds`` folds (by ``seed``); each fold is scored by a
        Q-function fitted on the others, so DR stays unbiased. ``groups`` (``[n]`` or None):
        trajectories with the same group share a fold, e.g. the original trajectory of each
        copy in a bootstrap resample, so that no copy is scored by a Q-function fitted on
        another copy of itself; None: every trajectory is its own group.
        """
        steps = self._steps(feedback, action_dist)
        n, horizon = steps.reward.shape
        v.check_scalar(n_folds, "n_folds", 2, n)
        folds = cross_fitting_folds(n, n_folds, self.seed, groups)
        q_hat, v_hat = np.zeros((n, horizon)), np.zeros((n, horizon))
        for fold in folds:
            network = self._fit(steps, np.setdiff1d(np.arange(n), fold))
            values = self._values(network, steps.features[fold].reshape(len(fold) * horizon, -1))
            values = values.reshape(len(fold), horizon, -1)
            q_hat[fold] = np.take_along_axis(values, steps.action[fold][:, :, None], axis=2)[:, :, 0]
            v_hat[fold] = (values * steps.action_dist[fold]).sum(axis=2)
        return q_hat * steps.mask, v_hat * steps.mask

    def _steps(self, feedback: SessionFeedback, action_dist) -> _Steps:
        if not isinstance(feedback, SessionFeedback):
            raise TypeError(f"FittedQEvaluation needs a SessionFeedback, got {type(feedback).__name__}")
        for field in ("action", "features"):
            if getattr(feedback, field) is None:
                raise ValueError(f"FittedQEvaluation needs feedback.{field}, but the SessionFeedback was built without it")
        n, horizon = feedback.reward.shape
        dist = v.to_numpy(action_dist, "action_dist")
        if dist.ndim != 3 or dist.shape[:2] != (n, horizon):
            raise ValueError(
                f"action_dist has shape {dist.shape}, but (n_trajectories, horizon, n_actions) = "
                f"{(n, horizon, 'n_actions')} was expected"
            )
        n_actions = dist.shape[2]
        dist = v.float_array(dist, "action_dist", dist.shape, "(n_trajectories, horizon, n_actions)",
                             fix="the evaluation policy must give every action a finite probability",
                             valid=feedback.mask[:, :, None], fill=1.0 / n_actions)
        v.check_distribution(dist, "action_dist", axis=2)
        v.int_array(feedback.action, "feedback.action", (n, horizon), "(n_trajectories, horizon)",
                    what="action ids", high=n_actions, source="action_dist")
        return _Steps(feedback.features, feedback.action, feedback.reward, feedback.mask, dist)

    def _network(self, n_features: int, n_actions: int) -> torch.nn.Module:
        widths = [n_features, *self.hidden_sizes]
        with torch.random.fork_rng(devices=[]):  # seeded init without touching the global RNG
            torch.manual_seed(self.seed)
            layers = []
            for width, hidden in zip(widths[:-1], widths[1:]):
                layers += [torch.nn.Linear(width, hidden), torch.nn.ReLU()]
            layers.append(torch.nn.Linear(widths[-1], n_actions))
        return torch.nn.Sequential(*layers).to(self.device)

    def _fit(self, steps: _Steps, trajectories: np.ndarray) -> torch.nn.Module:
        threads = torch.get_num_threads()
        if self.num_threads is not None:
            torch.set_num_threads(self.num_threads)
        try:
            return self._regress(steps, trajectories)
        finally:
            torch.set_num_threads(threads)

    def _regress(self, steps: _Steps, trajectories: np.ndarray) -> torch.nn.Module:
        n, horizon, n_features = steps.features.shape
        n_actions = steps.action_dist.shape[2]
        mask = steps.mask[trajectories]
        i, t = np.nonzero(mask)
        i = trajectories[i]
        nxt = np.minimum(t + 1, horizon - 1)
        goes_on = (t + 1 < horizon) & steps.mask[i, nxt]
        state, next_state = self._tensor(steps.features[i, t]), self._tensor(steps.features[i, nxt])
        action, reward = self._tensor(steps.action[i, t]), self._tensor(steps.reward[i, t])
        next_dist = self._tensor(steps.action_dist[i, nxt] * goes_on[:, None])
        network = self._network(n_features, n_actions)
        optimizer = torch.optim.Adam(network.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
        generator = torch.Generator().manual_seed(self.seed)
        for _ in range(self.n_iterations or horizon):
            with torch.no_grad():
                following = torch.cat([(network(next_state[c:c + _EVAL_CHUNK]) * next_dist[c:c + _EVAL_CHUNK]).sum(1)
                                       for c in range(0, len(state), _EVAL_CHUNK)])
                target = reward + self.discount * following
            for _ in range(self.n_epochs):
                order = torch.randperm(len(state), generator=generator).to(self.device)
                for start in range(0, len(state), self.batch_size):
                    batch = order[start:start + self.batch_size]
                    predicted = network(state[batch]).gather(1, action[batch, None])[:, 0]
                    loss = torch.nn.functional.mse_loss(predicted, target[batch])
                    optimizer.zero_grad()
                    loss.backward()
                    optimizer.step()
        return network

    def _values(self, network: torch.nn.Module, features: np.ndarray) -> np.ndarray:
        """``Q(s, .)`` for ``[m, d]`` state features, as an ``[m, n_actions]`` array."""
        state = self._tensor(features)
        with torch.no_grad():
            values = torch.cat([network(state[c:c + _EVAL_CHUNK]) for c in range(0, len(state), _EVAL_CHUNK)])
        return values.cpu().numpy().astype(np.float64)

    def _tensor(self, array: np.ndarray) -> torch.Tensor:
        """float32 (or int64) tensor on the training device."""
        array = np.ascontiguousarray(array)
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
        return torch.as_tensor(array, device=self.device)
