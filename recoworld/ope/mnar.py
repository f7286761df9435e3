r"""Learning ratings that are missing not at random: IPS- and DR-weighted matrix factorisation.

Users rate what they chose to rate, and they choose what they like: the observed ratings
over-represent high ones, and a model fitted to them, naive MF, predicts all ratings too
high. Weighting each observed rating's loss by the inverse of its probability of being
observed ``p_ui`` makes the training loss an unbiased estimate of the loss over *all*
user-item pairs (Schnabel, Swaminathan, Singh, Chandak, Joachims, "Recommendations as
Treatments: Debiasing Learning and Evaluation", ICML 2016):

.. math::

    L_\text{naive} = \frac{1}{|O|}\sum_{(u,i) \in O} e_{ui},\qquad
    L_\text{IPS} = \frac{1}{UI}\sum_{(u,i) \in O} \frac{e_{ui}}{p_{ui}},\qquad
    L_\text{DR} = \frac{1}{UI}\sum_{u,i} \Big[\hat e_{ui} + \frac{o_{ui}(e_{ui} - \hat e_{ui})}{p_{ui}}\Big],

with ``e = (r - r_hat)^2`` and, for the doubly robust loss (Wang, Zhang, Sun, Qi, "Doubly
Robust Joint Learning for Recommendation on Data Missing Not at Random", ICML 2019),
``e_hat`` the squared gap to an imputation model's rating (here the IPS model, fitted
first; Wang et al. also refit the imputation jointly). DR is unbiased when either the
propensities or the imputed errors are right.

Propensities: :func:`naive_bayes_propensities` (Schnabel et al., sec. 5.1):
``P(O = 1 | r) = P(r | O = 1) P(O = 1) / P(r)``, with ``P(r)`` from a small sample of
ratings missing completely at random; or :func:`logistic_propensities`, a logistic
regression of ``o_ui`` on user and item one-hot indicators (Schnabel et al.'s logistic
model without side information). :func:`simulate_mnar` draws a world that knows every
true rating, for evaluation on all pairs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recoworld.ope import _validation as v

LOSSES = ("naive", "ips", "dr")


@dataclass
class MatrixFactorization:
    """``r_hat_ui = mu + b_u + b_i + p_u . q_i`` fitted by full-batch Adam on one of
    :data:`LOSSES` (module docstring), with an L2 penalty ``l2`` on the factors and biases.

    Attributes:
        rank, l2, n_epochs, learning_rate, seed: the model and its optimiser; the same
            seed gives the same fit.
        loss: ``"naive"``, ``"ips"`` or ``"dr"``.
    """

    rank: int = 8
    l2: float = 1e-3
    n_epochs: int = 300
    learning_rate: float = 0.05
    seed: int = 0
    loss: str = "naive"

    def __post_init__(self):
        if self.loss not in LOSSES:
            raise ValueError(f"loss={self.loss!r}; choose one of {list(LOSSES)}")
        v.check_scalar(self.rank, "rank", 1)

    def fit(self, ratings, observed, propensity=None, imputed=None) -> MatrixFactorization:
        """Fit to ``ratings`` ``[U, I]`` where ``observed`` (bool) is set; ``propensity``
        ``[U, I]`` in ``(0, 1]`` for IPS and DR, ``imputed`` ``[U, I]`` ratings for DR."""
        observed = np.asarray(v.to_numpy(observed, "observed"), dtype=bool)
        # a NaN rating at an observed pair would turn every parameter NaN without a word;
        # unobserved pairs may hold anything (NaN is the usual placeholder)
        ratings = v.float_array(ratings, "ratings", observed.shape, "(n_users, n_items)", valid=observed,
                                fix="mark the pair unobserved (observed = False) or give its rating")
        r = torch.as_tensor(ratings, dtype=torch.float64)
        o = torch.as_tensor(observed)
        if not o.any():
            raise ValueError("observed holds no rating; nothing to fit")
        weight, target_imputed = self._weights(o, propensity, imputed)
        U, I = r.shape
        g = torch.Generator().manual_seed(self.seed)
        p = (0.1 * torch.randn(U, self.rank, generator=g, dtype=torch.float64)).requires_grad_()
        q = (0.1 * torch.randn(I, self.rank, generator=g, dtype=torch.float64)).requires_grad_()
        bu = torch.zeros(U, dtype=torch.float64, requires_grad=True)
        bi = torch.zeros(I, dtype=torch.float64, requires_grad=True)
        mu = float(r[o].mean())
        optimizer = torch.optim.Adam([p, q, bu, bi], lr=self.learning_rate)
        for _ in range(self.n_epochs):
            predicted = mu + bu[:, None] + bi[None, :] + p @ q.T
            error = (r - predicted) ** 2 * o
            loss = (weight * error).sum()
            if target_imputed is not None:   # DR: imputed errors on every pair, corrected where observed
                imputed_error = (target_imputed - predicted) ** 2
                loss = loss + (imputed_error * (1 - o * weight * U * I)).sum() / (U * I)
            loss = loss + self.l2 * (p.pow(2).sum() + q.pow(2).sum() + bu.pow(2).sum() + bi.pow(2).sum())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        with torch.no_grad():
            self.predictions_ = (mu + bu[:, None] + bi[None, :] + p @ q.T).numpy()
        return self

    def _weights(self, o: torch.Tensor, propensity, imputed):
        U, I = o.shape
        if self.loss == "naive":
            return o / o.sum(), None
        if propensity is None:
            raise ValueError(f"loss={self.loss!r} needs propensity, the [U, I] probability that each rating is observed")
        p = torch.as_tensor(v.propensity(np.where(o.numpy(), propensity, 1.0), "propensity", (U, I), "(n_users, n_items)"))
        weight = o / (p * U * I)
        if self.loss == "ips":
            return weight, None
        if imputed is None:
            raise ValueError("loss='dr' needs imputed, an imputation model's [U, I] ratings (e.g. an IPS model's)")
        imputed = v.float_array(imputed, "imputed", (U, I), "(n_users, n_items)",
                                fix="the imputation model must predict a finite rating for every pair")
        return weight, torch.as_tensor(imputed)

    def predict(self) -> np.ndarray:
        """``[U, I]`` predicted ratings of every pair."""
        return self.predictions_


def naive_bayes_propensities(ratings, observed, mcar_ratings, levels=(1, 2, 3, 4, 5)) -> np.ndarray:
    """``[U, I]`` propensities ``P(O = 1 | r_ui)`` by Bayes' rule (module docstring), filled
    in for observed pairs (elsewhere the rating, hence the propensity, is unknown: 1)."""
    observed = np.asarray(observed, dtype=bool)
    shown = np.asarray(ratings)[observed]
    mcar = np.asarray(mcar_ratings).ravel()
    if mcar.size == 0:
        raise ValueError("mcar_ratings is empty; naive Bayes needs a sample of ratings missing completely at random")
    prior = observed.mean()
    table = {}
    for level in levels:
        given_observed = (shown == level).mean()
        marginal = max((mcar == level).mean(), 1.0 / mcar.size)
        table[level] = np.clip(given_observed * prior / marginal, 1e-3, 1.0)
    out = np.ones(observed.shape)
    out[observed] = np.vectorize(table.get)(shown)
    return out


def logistic_propensities(observed, l2: float = 1.0, n_epochs: int = 300, seed: int = 0) -> np.ndarray:
    """``[U, I]`` propensities from ``logit P(o_ui) = a + b_u + c_i`` fitted by penalised
    maximum likelihood on the observation indicators."""
    o = torch.as_tensor(np.asarray(observed, dtype=np.float64))
    U, I = o.shape
    bu = torch.zeros(U, dtype=torch.float64, requires_grad=True)
    bi = torch.zeros(I, dtype=torch.float64, requires_grad=True)
    a = torch.tensor(float(np.log(o.mean() / (1 - o.mean()))), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([a, bu, bi], lr=0.05)
    for _ in range(n_epochs):
        logit = a + bu[:, None] + bi[None, :]
        loss = torch.nn.functional.binary_cross_entropy_with_logits(logit, o, reduction="sum")
        loss = (loss + l2 * (bu.pow(2).sum() + bi.pow(2).sum())) / (U * I)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.no_grad():
        return torch.sigmoid(a + bu[:, None] + bi[None, :]).numpy()


def simulate_mnar(n_users: int = 200, n_items: int = 300, rank: int = 4, rate: float = 0.05,
                  steepness: float = 0.5, mcar_size: int = 500, seed: int = 0) -> dict:
    """A world that knows every rating: ``[U, I]`` true ratings 1..5 from a rank-``rank``
    model, observed with ``P(o | r) ∝ steepness^(5 - r)`` scaled to an overall ``rate``
    (ratings of 5 the most likely seen, as in Schnabel et al.'s simulations), and a
    ``mcar_size`` sample of ratings missing completely at random. Returns ``{"ratings",
    "observed", "propensity" (true), "mcar"}``."""
    rng = np.random.default_rng(seed)
    scores = rng.standard_normal((n_users, rank)) @ rng.standard_normal((rank, n_items)) / np.sqrt(rank)
    scores += 0.8 * rng.standard_normal(n_items)[None, :]
    ratings = np.digitize(scores, np.quantile(scores, [0.1, 0.3, 0.6, 0.85])) + 1
    relative = steepness ** (5 - ratings)
    propensity = np.clip(relative * rate / relative.mean(), 1e-4, 1.0)
    observed = rng.random(ratings.shape) < propensity
    mcar = ratings.ravel()[rng.choice(ratings.size, size=min(mcar_size, ratings.size), replace=False)]
    return {"ratings": ratings.astype(np.float64), "observed": observed, "propensity": propensity, "mcar": mcar}


def compare_on_all_pairs(world: dict, propensities: str = "naive_bayes", **settings) -> dict[str, float]:
    """Mean squared error on *every* user-item pair of naive, IPS and DR matrix
    factorisation trained on ``world``'s observed ratings (:func:`simulate_mnar`), against
    ``world["truth"]`` when the world gives one (e.g. expected ratings where ``ratings`` holds
    one noisy draw per pair), else against ``world["ratings"]``."""
    r, o = world["ratings"], world["observed"]
    truth = world.get("truth", r)
    if propensities == "naive_bayes":
        p = naive_bayes_propensities(r, o, world["mcar"])
    elif propensities == "logistic":
        p = logistic_propensities(o)
    elif propensities == "true":   # the simulator's own: what the estimated ones are judged against
        p = world["propensity"]
    else:
        raise ValueError(f"propensities={propensities!r}; choose 'naive_bayes', 'logistic' or 'true'")
    naive = MatrixFactorization(loss="naive", **settings).fit(r, o)
    ips = MatrixFactorization(loss="ips", **settings).fit(r, o, p)
    dr = MatrixFactorization(loss="dr", **settings).fit(r, o, p, ips.predict())
    return {name: float(((model.predict() - truth) ** 2).mean()) for name, model in
            (("naive", naive), ("ips", ips), ("dr", dr))}
