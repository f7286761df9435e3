r"""Neural-linear Thompson sampling (Riquelme, Tucker & Snoek 2018, "Deep Bayesian Bandits
Showdown", the NeuralLinear algorithm): a neural network learns a representation
:math:`\phi_{bc}` of user :math:`b` and candidate :math:`c`; Thompson sampling runs on
an exact Bayesian linear regression of the click on :math:`\phi`.

**Representation.** A GRU reads the user's recent clicks in the order they happened
(each step: the item's catalog features, its watch fraction and like) and its last
hidden state :math:`g_b` summarises the user. A linear item tower maps the candidate's
features to :math:`e_c`, and

.. math::

    \phi_{bc} = [\,\mathrm{ReLU}(W[g_b, e_c, g_b\odot e_c, x_{bc}] + w_0),\ x_{bc}\,]

where :math:`x_{bc}` are the hand-made features of :mod:`recoworld.agents.features`. The
skip connection of :math:`x_{bc}` into :math:`\phi` is our addition: before the first
training the agent is a linear Thompson sampler rather than one on random features. A
linear head on :math:`\phi` is trained by squared error on the observed clicks, every
``train_every`` steps, for ``train_steps`` minibatches of the replay buffer (the latest
``buffer_size`` observed impressions), continuing from the current weights.

**Bayesian last layer** (the paper's normal-inverse-gamma linear posterior, with prior :math:`\sigma^2\sim IG(a_0, b_0)`, :math:`\beta\mid\sigma^2\sim N(0, \sigma^2\lambda^{-1}I)`):

.. math::

    \Lambda = \lambda I + \Phi^\top\Phi,\quad \mu = \Lambda^{-1}\Phi^\top y,\quad
    a = a_0 + n/2,\quad b = b_0 + \tfrac12(y^\top y - \mu^\top\Lambda\mu),

    \sigma^2 \sim IG(a, b),\qquad \beta \mid \sigma^2 \sim N(\mu, \sigma^2\Lambda^{-1}),

one draw per request (or per slot), ranking candidates by :math:`\phi_{bc}^\top\beta`.
New impressions update :math:`\Lambda, \Phi^\top y` incrementally; after each retraining
the posterior is recomputed from the whole buffer with the new :math:`\phi`, as in the
paper, so that it never mixes two representations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from recoworld.agents.linear import ContextualBandit, Ridge
from recoworld.agents.sampling import MAX_SAMPLES, MIN_MATCHES, PosteriorSampler
from recoworld.agents.slateq import resolve_device
from recoworld.beta_draws import log_gamma
from recoworld.config_checks import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE
from recoworld.types import CANDIDATE_IDS, HISTORY_FEEDBACK, HISTORY_ITEMS, Feedback, Observation


class HistoryEncoder(nn.Module):
    """:math:`\\phi_{bc}` of the module docstring, and the linear head trained on it."""

    def __init__(self, item_features: torch.Tensor, side_dim: int, hidden_size: int, representation_size: int):
        super().__init__()
        D = item_features.shape[1]
        self.register_buffer("item_features", item_features)
        self.gru = nn.GRU(D + 2, hidden_size, batch_first=True)
        self.item_tower = nn.Linear(D, hidden_size)
        self.mix = nn.Linear(3 * hidden_size + side_dim, representation_size)
        self.head = nn.Linear(representation_size + side_dim, 1)

    def represent(self, history_items, history_feedback, candidates, side) -> torch.Tensor:
        """``history_items [B, H]`` (newest first, -1 padded), ``history_feedback [B, H, 2]``,
        ``candidates [B, C]``, ``side [B, C, s]`` -> :math:`\\phi` ``[B, C, m + s]``."""
        clicked = (history_items >= 0).unsqueeze(-1)
        steps = torch.cat([self.item_features[history_items.clamp(min=0)] * clicked, history_feedback], -1)
        _, last = self.gru(steps.flip(1))  # oldest first
        user = last[-1][:, None, :]
        item = self.item_tower(self.item_features[candidates])
        user = user.expand_as(item)
        learned = torch.relu(self.mix(torch.cat([user, item, user * item, side], -1)))
        return torch.cat([learned, side], -1)

    def forward(self, *inputs) -> torch.Tensor:
        return self.head(self.represent(*inputs))[..., 0]


#: The cap on :func:`inverse_gamma`'s log draws of shapes below 1: a noise variance of
#: e^460 (about 1e200) already drowns a score's mean in float64 rounding, and its scores stay finite.
_MAX_LOG_NOISE_VARIANCE = 460.0


def inverse_gamma(rng: np.random.Generator, a: float, b: float, size: tuple[int, ...]) -> np.ndarray:
    r"""Draws of the noise variance :math:`\sigma^2 \sim IG(a, b)`, finite for any ``a > 0``.

    ``1 / rng.gamma(a, 1 / b)`` is numpy's stream, kept for ``a >= 1``. Below 1 (a ``prior_a``
    below 1, until the first impressions raise ``a = prior_a + n / 2``) the gamma draw
    underflows to 0, about half the time at ``a = 0.001`` (the vague ``IG(0.001, 0.001)``):
    an infinite variance, and NaN scores. There it is drawn in log space
    (:func:`~recoworld.beta_draws.log_gamma`) and capped at :data:`_MAX_LOG_NOISE_VARIANCE`,
    past which the noise alone ranks the candidates anyway.
    """
    if a >= 1:
        return 1.0 / rng.gamma(a, 1.0 / b, size=size)
    log_variance = np.log(b) - log_gamma(rng, np.float64(a), size)
    return np.exp(np.minimum(log_variance, _MAX_LOG_NOISE_VARIANCE))


@dataclass(eq=False)
class NeuralLinearTS(PosteriorSampler, ContextualBandit):
    """Neural-linear Thompson sampling (see the module docstring).

    Args:
        hidden_size: GRU state and item-tower size.
        representation_size: learned part of :math:`\\phi` (the hand-made features are appended).
        train_every: steps between retrainings of the network.
        train_steps, batch_size, learning_rate: Adam minibatches per retraining.
        buffer_size: observed impressions kept for retraining.
        l2: prior precision :math:`\\lambda` of the last layer.
        prior_a, prior_b: :math:`a_0, b_0` of the inverse-gamma noise prior.
        per_slot: one posterior draw per position (in-slate sampling).
        propensity_samples: Monte-Carlo replays behind :meth:`propensities` (0 skips them).
        propensity_matches, max_propensity_samples: the second phase of the replays
            (geometric resampling), as for :class:`~recoworld.agents.thompson.LinearTS`.
        device: torch device of the network (``"auto"``: CUDA when available; the posterior
            lives on the CPU in float64).
    """

    hidden_size: int = 32
    representation_size: int = 32
    train_every: int = 50
    train_steps: int = 50
    batch_size: int = 256
    learning_rate: float = 3e-3
    buffer_size: int = 50_000
    l2: float = 1.0
    prior_a: float = 6.0
    prior_b: float = 6.0
    per_slot: bool = False
    propensity_samples: int = 100
    propensity_matches: int = MIN_MATCHES
    max_propensity_samples: int = MAX_SAMPLES
    device: str = "cpu"
    name = "neural_linear_ts"
    RANGES = {**dict.fromkeys(("hidden_size", "representation_size", "train_every", "train_steps", "batch_size",
                               "buffer_size"), AT_LEAST_ONE),
              "learning_rate": POSITIVE, "l2": POSITIVE, "prior_a": POSITIVE, "prior_b": POSITIVE,
              "propensity_samples": NON_NEGATIVE}

    def __post_init__(self):
        super().__post_init__()
        resolve_device(self.device)  # a device torch does not know fails here, not in setup

    def init_model(self) -> None:
        self._device = resolve_device(self.device)
        torch_seed = int(self.rng.integers(2**62))
        self.generator = torch.Generator().manual_seed(torch_seed)
        with torch.random.fork_rng(devices=[]):  # seeded initialisation, global RNG untouched
            torch.manual_seed(torch_seed)
            self.net = HistoryEncoder(self.catalog.features.detach().float().cpu(), self.features.dim,
                                      self.hidden_size, self.representation_size)
        self.net.to(self._device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.learning_rate)
        self.dim = self.representation_size + self.features.dim
        self.ridge = Ridge(self.dim, self.l2)
        self.steps = 0
        self.retrainings = 0
        self.buffer: dict[str, np.ndarray] | None = None  # allocated once the history length is seen
        self._stored = 0

    # ------------------------------------------------------------ representation
    def _tensors(self, history_items, history_feedback, candidates, side):
        as_long = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.long, device=self._device)
        as_float = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.float32, device=self._device)
        return as_long(history_items), as_float(history_feedback), as_long(candidates), as_float(side)

    @torch.no_grad()
    def represent(self, obs: Observation) -> np.ndarray:
        """:math:`\\phi` of every candidate, ``[B, C, dim]`` float64."""
        inputs = self._tensors(obs[HISTORY_ITEMS], obs[HISTORY_FEEDBACK], obs[CANDIDATE_IDS], self.features(obs))
        return self.net.represent(*inputs).double().cpu().numpy()

    @torch.no_grad()
    def _represent_impressions(self, index: np.ndarray) -> np.ndarray:
        buf = self.buffer
        inputs = self._tensors(buf["history_items"][index], buf["history_feedback"][index],
                               buf["candidate"][index, None], buf["side"][index, None])
        return self.net.represent(*inputs)[:, 0].double().cpu().numpy()

    # ----------------------------------------------------------------- posterior
    def posterior(self) -> tuple[np.ndarray, np.ndarray, float, float]:
        """:math:`\\mu`, :math:`\\Lambda^{-1}`, :math:`a` and :math:`b` of the last layer."""
        mu = self.ridge.theta
        a = self.prior_a + self.ridge.n / 2
        b = self.prior_b + 0.5 * max(self.ridge.yy - mu @ self.ridge.A @ mu, 0.0)
        return mu, self.ridge.inverse, a, b

    def score_sampler(self, obs: Observation, rng: np.random.Generator, n: int):
        phi = self.represent(obs)
        mu, cov, a, b = self.posterior()
        root = np.linalg.cholesky(cov)

        def draw() -> np.ndarray:
            noise_var = inverse_gamma(rng, a, b, (n, phi.shape[0], 1))
            beta = mu + np.sqrt(noise_var) * (rng.standard_normal((n, phi.shape[0], len(mu))) @ root.T)
            return np.matmul(phi[None], beta[..., None])[..., 0]

        return draw


    # ------------------------------------------------------------------ learning
    def update(self, feedback: Feedback) -> None:
        rows, candidates, clicks = self.observed(feedback)
        obs = feedback.obs
        index = self._store(
            history_items=np.asarray(obs[HISTORY_ITEMS])[rows],
            history_feedback=np.asarray(obs[HISTORY_FEEDBACK])[rows],
            candidate=np.asarray(obs[CANDIDATE_IDS])[rows, candidates],
            side=self.features(obs)[rows, candidates],
            click=clicks,
        )
        if len(index):
            self.ridge.update(self._represent_impressions(index), self.buffer["click"][index])
        self.steps += 1
        if self.steps % self.train_every == 0:
            self.retrain()

    def _store(self, **columns: np.ndarray) -> np.ndarray:
        """Write impressions into the ring buffer; returns their slots."""
        count = len(columns["click"])
        if self.buffer is None:
            self.buffer = {k: np.zeros((self.buffer_size, *v.shape[1:]), dtype=v.dtype) for k, v in columns.items()}
        if count > self.buffer_size:
            columns = {k: v[-self.buffer_size:] for k, v in columns.items()}
            count = self.buffer_size
        index = (self._stored + np.arange(count)) % self.buffer_size
        for key, value in columns.items():
            self.buffer[key][index] = value
        self._stored += count
        return index

    def retrain(self) -> None:
        """Fit the network to the buffer, then recompute the posterior on the new :math:`\\phi`."""
        size = min(self._stored, self.buffer_size)
        if size == 0:
            return
        buf = self.buffer
        self.net.train()
        for _ in range(self.train_steps):
            index = torch.randint(size, (min(self.batch_size, size),), generator=self.generator).numpy()
            inputs = self._tensors(buf["history_items"][index], buf["history_feedback"][index],
                                   buf["candidate"][index, None], buf["side"][index, None])
            target = torch.as_tensor(buf["click"][index], dtype=torch.float32, device=self._device)
            loss = torch.nn.functional.mse_loss(self.net(*inputs)[:, 0], target)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.net.eval()
        self.ridge = Ridge(self.dim, self.l2)
        for start in range(0, size, 8192):
            index = np.arange(start, min(start + 8192, size))
            self.ridge.update(self._represent_impressions(index), buf["click"][index])
        self.retrainings += 1
