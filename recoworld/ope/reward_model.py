"""Reward models for DM / DR, fitted with cross-fitting.

A reward model scored on the rows it was trained on leaks their noise into the estimate
and breaks the unbiasedness of DR. :func:`fit_reward_model` splits the rounds into
``n_folds`` folds and predicts each fold with a model trained on the other folds only
(Chernozhukov et al., "Double/debiased machine learning", Econometrics Journal 2018).

Any object with ``fit(X, y)`` and ``predict(X)`` (or ``predict_proba(X)``, whose column 1
is used, for classifiers) serves as a regressor, scikit-learn's included; it is copied
with ``copy.deepcopy`` for every fold. Two are provided without extra dependencies:
:class:`RidgeRegression` and :class:`LogisticRegression` (binary rewards).
"""

from __future__ import annotations

import copy

import numpy as np

from recoworld.ope import _validation as v
from recoworld.ope.feedback import BanditFeedback

#: Features scored at a time by the reward models (8 MB of float64): a design of any size,
#: broadcast over the rounds or built per slate, is scored in chunks of this many numbers.
_SCORED_CHUNK_ELEMENTS = 1 << 20


#: Features up to this magnitude are fitted as given (see :func:`_column_scales`).
_LARGEST_UNSCALED = 2.0**32


def _column_scales(X: np.ndarray) -> np.ndarray:
    """A power of two per column of ``X``: 1 where its largest magnitude is at most
    :data:`_LARGEST_UNSCALED`, else the one that brings it below 2. The regressors below fit
    the columns divided by it, so that a feature of 1e200 does not overflow their Gram
    matrix (its square) into infinity. A power of two divides exactly, and with the penalty
    divided by the scale's square the fit is the same model, computed in numbers float64
    holds; ordinary features are left as they are, and their fits unchanged to the last bit."""
    largest = np.abs(X).max(axis=0, initial=0.0)
    exponent = np.frexp(largest)[1]  # largest < 2**exponent
    return np.where(largest > _LARGEST_UNSCALED, np.ldexp(1.0, exponent - 1), 1.0)


class RidgeRegression:
    """Least squares with an L2 penalty ``alpha`` on the coefficients (not the intercept).

    The columns are rescaled for the fit (:func:`_column_scales`), the penalty with them:
    the coefficients are those of the features as given."""

    def __init__(self, alpha: float = 1.0):
        v.check_scalar(alpha, "alpha", 0)
        self.alpha = alpha

    def fit(self, X: np.ndarray, y: np.ndarray) -> RidgeRegression:
        X, y = np.asarray(X, dtype=np.float64), np.asarray(y, dtype=np.float64)
        scale = _column_scales(X)
        X = X / scale
        x_mean, y_mean = X.mean(axis=0), y.mean()
        centred = X - x_mean
        # alpha ||coef||^2 = sum_j alpha / scale_j^2 (coef_j scale_j)^2: the same penalty
        gram = centred.T @ centred + np.diag(self.alpha / scale / scale)  # (not scale**2: 2**1023 squared is inf)
        scaled = np.linalg.lstsq(gram, centred.T @ (y - y_mean), rcond=None)[0]
        self.coef_ = scaled / scale
        self.intercept_ = y_mean - x_mean @ scaled
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_


class LogisticRegression:
    """L2-penalised logistic regression for 0/1 rewards, fitted by Newton's method (IRLS).

    As :class:`RidgeRegression`, it fits rescaled columns with the penalty rescaled alike;
    ``tol`` bounds the last Newton step of the rescaled coefficients."""

    def __init__(self, alpha: float = 1.0, max_iter: int = 100, tol: float = 1e-8):
        v.check_scalar(alpha, "alpha", 0)
        self.alpha, self.max_iter, self.tol = alpha, max_iter, tol

    def fit(self, X: np.ndarray, y: np.ndarray) -> LogisticRegression:
        y = np.asarray(y, dtype=np.float64)
        if not np.isin(y, (0.0, 1.0)).all():
            raise ValueError("LogisticRegression needs 0/1 rewards; use RidgeRegression for other rewards")
        X = np.asarray(X, dtype=np.float64)
        scale = _column_scales(X)
        design = _with_intercept(X / scale)
        penalty = np.diag(np.append(self.alpha / scale / scale, 0.0))  # the intercept is not penalised
        beta = np.zeros(design.shape[1])
        for _ in range(self.max_iter):
            p = _sigmoid(design @ beta)
            gradient = design.T @ (p - y) + penalty @ beta
            hessian = (design * (p * (1 - p))[:, None]).T @ design + penalty + 1e-10 * np.eye(len(beta))
            step = np.linalg.solve(hessian, gradient)
            beta -= step
            if np.abs(step).max() < self.tol:
                break
        self.coef_, self.intercept_ = beta[:-1] / scale, beta[-1]
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = _sigmoid(np.asarray(X, dtype=np.float64) @ self.coef_ + self.intercept_)
        return np.column_stack([1 - p, p])

    def predict(self, X: np.ndarray) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(np.int64)


def _with_intercept(X) -> np.ndarray:
    X = np.asarray(X, dtype=np.float64)
    return np.column_stack([X, np.ones(len(X))])


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def per_action_features(context, n_actions: int, n_positions: int | None = None) -> np.ndarray:
    """Features of every (round, action[, position]) pair for a linear reward model.

    ``[context * onehot(a), onehot(a)(, onehot(p))]``: a linear model on these is one
    linear model of the context per action, plus an additive position effect. Shape
    ``[n, n_actions, d * n_actions + n_actions]`` (``[n, n_actions, n_positions, ...+ n_positions]``).
    """
    context = v.to_numpy(context, "context").astype(np.float64, copy=False)
    if context.ndim != 2:
        raise ValueError(f"context has shape {context.shape}, but (n_rounds, n_features) was expected")
    n, d = context.shape
    eye = np.eye(n_actions)
    crossed = (eye[None, :, :, None] * context[:, None, None, :]).reshape(n, n_actions, n_actions * d)
    features = np.concatenate([crossed, np.broadcast_to(eye, (n, n_actions, n_actions))], axis=2)
    if n_positions is None:
        return features
    at_position = np.broadcast_to(features[:, :, None, :], (n, n_actions, n_positions, features.shape[2]))
    positions = np.broadcast_to(np.eye(n_positions), (n, n_actions, n_positions, n_positions))
    return np.concatenate([at_position, positions], axis=3)


def fit_reward_model(feedback: BanditFeedback, features, regressor=None, n_folds: int = 5,
                     seed: int = 0, groups=None) -> np.ndarray:
    """Cross-fitted reward predictions for every action (and position) of every round.

    Args:
        feedback: the logged rounds; the model learns ``reward`` from the features of the
            logged ``(action, position)``.
        features: ``[n, n_actions, d]``, or ``[n, n_actions, n_positions, d]`` when the
            feedback has positions: the features of each candidate pair (see
            :func:`per_action_features`).
        regressor: an unfitted sklearn-like model; :class:`RidgeRegression` by default.
        n_folds: at least 2; round ``i`` is predicted by a model that never saw round ``i``.
        seed: the random assignment of rounds to folds.
        groups: ``[n]`` or None: rounds with the same group share a fold, e.g. the original
            round of each copy in a bootstrap resample (see :func:`fit_slate_reward_model`).

    Returns:
        ``estimated_rewards`` of shape ``features.shape[:-1]``, ready for DM / DR.
    """
    if not isinstance(feedback, BanditFeedback):
        raise TypeError(f"fit_reward_model needs a BanditFeedback, got {type(feedback).__name__}")
    regressor = RidgeRegression() if regressor is None else regressor
    if not hasattr(regressor, "fit") or not (hasattr(regressor, "predict") or hasattr(regressor, "predict_proba")):
        raise TypeError(f"regressor must have fit(X, y) and predict(X) or predict_proba(X); got {type(regressor).__name__}")
    n = feedback.n_rounds
    _check_folds(n_folds, n, "round")
    v.check_count(seed, "seed", 0)
    features = v.to_numpy(features, "features")
    expected = 4 if feedback.position is not None else 3
    if features.ndim != expected or features.shape[0] != n:
        layout = "(n_rounds, n_actions, n_positions, n_features)" if expected == 4 else "(n_rounds, n_actions, n_features)"
        raise ValueError(f"features has shape {features.shape}, but {layout} with n_rounds = {n} was expected")
    features = v.float_array(features, "features", features.shape, "features.shape", fix="impute missing features")
    v.int_array(feedback.action, "feedback.action", (n,), "(n_rounds,)", what="action ids",
                high=features.shape[1], source="features")
    rows = np.arange(n)
    if expected == 4:
        v.int_array(feedback.position, "feedback.position", (n,), "(n_rounds,)", what="positions",
                    high=features.shape[2], source="features")
        logged = features[rows, feedback.action, feedback.position]
    else:
        logged = features[rows, feedback.action]
    folds = cross_fitting_folds(n, n_folds, seed, groups)
    estimated = np.empty(features.shape[:-1])
    # a fold is scored a chunk of rounds at a time: features broadcast over the rounds (action
    # and position indicators) are then never copied out whole
    chunk = max(1, _SCORED_CHUNK_ELEMENTS // max(1, int(np.prod(features.shape[1:]))))
    for fold in folds:
        train = np.ones(n, dtype=bool)
        train[fold] = False
        model = copy.deepcopy(regressor)
        model.fit(logged[train], feedback.reward[train])
        for start in range(0, len(fold), chunk):
            part = fold[start:start + chunk]
            scored = features[part].reshape(-1, features.shape[-1])
            estimated[part] = _predict(model, scored).reshape((len(part),) + features.shape[1:-1])
    if not np.isfinite(estimated).all():
        raise ValueError(f"{type(regressor).__name__} predicted a non-finite reward; check its inputs and settings")
    return estimated


def _check_distinct(action: np.ndarray, n_candidates: int) -> None:
    """A slate shows each candidate once: a repeat (a join that matched twice, positions
    numbered from 1 into a 0-based slate) would teach the model one item's click twice."""
    k = action.shape[1]
    if k > n_candidates:
        raise ValueError(f"action has {k} positions per slate, but features has only "
                         f"{v.plural(n_candidates, 'candidate')}; a "
                         "slate shows each candidate once: give the features of every candidate a slate could show")
    ordered = np.sort(action, axis=1)
    repeats = (np.diff(ordered, axis=1) == 0).any(axis=1)
    if repeats.any():
        i = int(np.argmax(repeats))
        item = int(ordered[i, 1:][np.diff(ordered[i]) == 0][0])
        positions = np.flatnonzero(action[i] == item).tolist()
        raise ValueError(f"action[{i}] shows candidate {item} at positions {positions} ({int(repeats.sum())} of "
                         f"{v.plural(len(action), 'slate')} repeat a candidate); a slate shows each candidate once: "
                         "fix the log")


def _check_folds(n_folds: int, n: int, what: str) -> None:
    """``n_folds`` a whole number of at least 2, and a log of ``n`` of ``what`` (``"round"``)
    with one per fold: a log too small is refused naming its size and both fixes (more of
    ``what``, or fewer folds where 2 or more remain), not as ``n_folds`` outside ``[2, n]``."""
    v.check_count(n_folds, "n_folds", 2)
    if n >= n_folds:
        return
    fix = f"log at least {v.plural(n_folds, what)}"
    if n >= 2:
        fix += f", or give n_folds <= {n}"
    elif n_folds > 2:
        fix += ", or at least 2 with n_folds = 2"
    raise ValueError(f"the log has {v.plural(n, what)}, but cross-fitting over n_folds = {n_folds} folds needs one "
                     f"{what} per fold: {fix}")


def cross_fitting_folds(n: int, n_folds: int, seed: int, groups=None) -> list[np.ndarray]:
    """Row indices of each cross-fitting fold; rows of one group (e.g. copies of a round in
    a bootstrap resample) always share a fold. Shared by every cross-fitted model: the
    reward models here and :meth:`~recoworld.ope.FittedQEvaluation.estimate_q`."""
    if groups is None:
        return np.array_split(np.random.default_rng(int(seed)).permutation(n), int(n_folds))
    groups = v.int_array(groups, "groups", (n,), "(n_rows,)", what="group ids")
    labels = np.unique(groups)
    if len(labels) < n_folds:
        raise ValueError(f"groups holds {v.plural(len(labels), 'distinct group')}, but cross-fitting "
                         f"(n_folds = {n_folds}) keeps a group in one fold and needs one per fold; "
                         f"give at least {n_folds} distinct groups, or fewer folds")
    v.check_scalar(n_folds, "n_folds", 2, len(labels))
    shuffled = np.array_split(np.random.default_rng(int(seed)).permutation(labels), int(n_folds))
    return [np.flatnonzero(np.isin(groups, part)) for part in shuffled]


def _predict(model, X: np.ndarray) -> np.ndarray:
    """One prediction per row of ``X``: column 1 of ``predict_proba``, else ``predict``; a
    regressor that returns another number of them is refused naming it (not with a reshape error)."""
    if hasattr(model, "predict_proba"):
        proba = np.asarray(model.predict_proba(X))
        predicted, method = (proba[:, 1] if proba.ndim == 2 else proba), "predict_proba"
    else:
        predicted, method = np.asarray(model.predict(X), dtype=np.float64), "predict"
    if predicted.shape != (len(X),):
        raise ValueError(f"{type(model).__name__}.{method} gave shape {np.shape(predicted)} for "
                         f"{v.plural(len(X), 'row')}, but one "
                         f"prediction per row, shape ({len(X)},), was expected; check the regressor")
    return predicted


def fit_slate_reward_model(features, action, reward, regressor=None, n_folds: int = 5, seed: int = 0,
                           groups=None) -> np.ndarray:
    """Cross-fitted per-position reward predictions for every candidate at every position.

    A position-based model: the reward at position ``k`` is predicted from the features of
    the item there and the position (one-hot), ``r(c, k) = g([features_c, onehot(k)])``,
    whatever else the slate holds. Folds split *slates*, so that no prediction for a slate
    comes from a model that saw any position of it.

    Args:
        features: ``[n, n_candidates, d]`` features of each slate's candidates.
        action: ``[n, K]`` candidate indices shown at each position.
        reward: ``[n, K]`` observed per-position rewards.
        regressor, n_folds, seed: as in :func:`fit_reward_model`.
        groups: ``[n]`` or None: slates with the same group share a fold, e.g. the
            original slate of each copy in a bootstrap resample, so that no copy is scored
            by a model fitted on another copy. None: every slate is its own group.

    Returns:
        ``[n, n_candidates, K]`` predictions, e.g. for :class:`~recoworld.ope.SlateDM` and
        :class:`~recoworld.ope.SlateCascadeDR`.
    """
    regressor = RidgeRegression() if regressor is None else regressor
    features = v.to_numpy(features, "features")
    if features.ndim != 3:
        raise ValueError(f"features has shape {features.shape}, but (n_slates, n_candidates, n_features) was expected")
    n, n_candidates, _ = features.shape
    features = v.float_array(features, "features", features.shape, "features.shape", fix="impute missing features")
    reward = v.to_numpy(reward, "reward")
    if reward.ndim != 2 or reward.shape[0] != n:
        raise ValueError(f"reward has shape {reward.shape}, but (n_slates, slate_length) with n_slates = {n} was expected")
    k = reward.shape[1]
    reward = v.float_array(reward, "reward", (n, k), "(n_slates, slate_length)", fix="drop slates with missing rewards")
    action = v.int_array(action, "action", (n, k), "(n_slates, slate_length)", what="candidate indices",
                         high=n_candidates, source="features")
    _check_distinct(action, n_candidates)
    _check_folds(n_folds, n, "slate")
    v.check_count(seed, "seed", 0)
    d = features.shape[2]

    def design(rows: np.ndarray) -> np.ndarray:
        """``[len(rows), C, K, d + K]``: each candidate's features at each position, and the position."""
        m = len(rows)
        return np.concatenate([np.broadcast_to(features[rows][:, :, None, :], (m, n_candidates, k, d)),
                               np.broadcast_to(np.eye(k), (m, n_candidates, k, k))], axis=3)

    logged = np.concatenate([features[np.arange(n)[:, None], action],
                             np.broadcast_to(np.eye(k), (n, k, k))], axis=2)   # [n, K, d + K]
    folds = cross_fitting_folds(n, n_folds, seed, groups)
    estimated = np.empty((n, n_candidates, k))
    # the design of every slate is built a chunk of slates at a time, never whole
    chunk = max(1, _SCORED_CHUNK_ELEMENTS // (n_candidates * k * (d + k)))
    for fold in folds:
        train = np.ones(n, dtype=bool)
        train[fold] = False
        model = copy.deepcopy(regressor)
        model.fit(logged[train].reshape(-1, logged.shape[-1]), reward[train].reshape(-1))
        for start in range(0, len(fold), chunk):
            part = fold[start:start + chunk]
            estimated[part] = _predict(model, design(part).reshape(-1, d + k)).reshape(len(part), n_candidates, k)
    if not np.isfinite(estimated).all():
        raise ValueError(f"{type(regressor).__name__} predicted a non-finite reward; check its inputs and settings")
    return estimated
