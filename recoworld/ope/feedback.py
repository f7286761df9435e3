"""Logged data, one container per setting, checked once when it is built.

Arrays may be numpy arrays, torch tensors (moved to the CPU) or anything ``np.asarray``
takes. Fields are stored as float64 / int64 numpy arrays; arrays that already have that
dtype are not copied, so do not modify them afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recoworld.ope import _validation as v

_REWARD_FIX = "drop or impute rounds with missing rewards before estimating"


@dataclass(frozen=True, eq=False)
class BanditFeedback:
    """``n`` logged rounds, one action each (optionally shown at a position of a list).

    Attributes:
        action: ``[n]`` int, the logged action ids.
        reward: ``[n]`` float, the observed rewards.
        pscore: ``[n]`` float in ``(0, 1]``, the logging policy's probability of the logged
            action (at the logged position).
        position: ``[n]`` int or None, the position the action was shown at; None means a
            single position.
    """

    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    position: np.ndarray | None = None

    def __post_init__(self):
        reward = v.to_numpy(self.reward, "reward")
        if reward.ndim != 1 or reward.shape[0] == 0:
            raise ValueError(f"reward has shape {reward.shape}, but (n_rounds,) with n_rounds >= 1 was expected")
        shape, dims = reward.shape, "(n_rounds,)"
        _set(self, "reward", v.float_array(reward, "reward", shape, dims, fix=_REWARD_FIX))
        _set(self, "action", v.int_array(self.action, "action", shape, dims, what="action ids"))
        _set(self, "pscore", v.propensity(self.pscore, "pscore", shape, dims))
        if self.position is not None:
            _set(self, "position", v.int_array(self.position, "position", shape, dims, what="positions"))

    @property
    def n_rounds(self) -> int:
        return len(self.reward)

    @property
    def position_or_zero(self) -> np.ndarray:
        """The logged positions, or zeros when there is a single position."""
        return self.position if self.position is not None else np.zeros(self.n_rounds, dtype=np.int64)


@dataclass(frozen=True, eq=False)
class SlateFeedback:
    """``n`` logged slates of length ``K`` and the reward observed at each position.

    Give whichever logging propensities the logger recorded; each slate estimator names
    the one it needs. Position ``k`` is 0-based.

    Attributes:
        reward: ``[n, K]`` float, the reward observed at each position (e.g. clicks).
        pscore: ``[n]`` or None, the logging policy's probability of the whole slate.
        pscore_item_position: ``[n, K]`` or None, the marginal probability that the logged
            item is shown at position ``k`` (whatever the rest of the slate).
        pscore_cascade: ``[n, K]`` or None, the probability of the logged prefix: items
            ``0..k`` exactly as logged. Non-increasing in ``k``; its last column is the
            whole-slate probability.
    """

    reward: np.ndarray
    pscore: np.ndarray | None = None
    pscore_item_position: np.ndarray | None = None
    pscore_cascade: np.ndarray | None = None

    def __post_init__(self):
        reward = v.to_numpy(self.reward, "reward")
        if reward.ndim != 2 or 0 in reward.shape:
            raise ValueError(
                f"reward has shape {reward.shape}, but (n_slates, slate_length) with both >= 1 was expected"
            )
        n, k = reward.shape
        _set(self, "reward", v.float_array(reward, "reward", (n, k), "(n_slates, slate_length)", fix=_REWARD_FIX))
        if self.pscore is None and self.pscore_item_position is None and self.pscore_cascade is None:
            raise ValueError(
                "SlateFeedback needs at least one logging propensity: pscore (whole slate), "
                "pscore_item_position (marginals) or pscore_cascade (prefixes)"
            )
        if self.pscore is not None:
            _set(self, "pscore", v.propensity(self.pscore, "pscore", (n,), "(n_slates,)"))
        if self.pscore_item_position is not None:
            _set(self, "pscore_item_position", v.propensity(
                self.pscore_item_position, "pscore_item_position", (n, k), "(n_slates, slate_length)"))
        if self.pscore_cascade is not None:
            cascade = v.propensity(self.pscore_cascade, "pscore_cascade", (n, k), "(n_slates, slate_length)")
            v.non_increasing(cascade, "pscore_cascade")
            _set(self, "pscore_cascade", cascade)
            if self.pscore is not None:
                check_whole_slate(self.pscore, cascade, "pscore", "pscore_cascade")

    @property
    def n_rounds(self) -> int:
        return self.reward.shape[0]

    @property
    def slate_length(self) -> int:
        return self.reward.shape[1]

    def require(self, field: str, estimator: str) -> np.ndarray:
        """The logging propensity ``field``, or an error naming the estimator that needs it."""
        value = getattr(self, field)
        if value is None:
            raise ValueError(f"{estimator} needs feedback.{field}, but the SlateFeedback was built without it")
        return value


def check_whole_slate(pscore: np.ndarray, cascade: np.ndarray, name: str, cascade_name: str) -> None:
    """The prefix of full length is the whole slate: its probability must be ``pscore``."""
    off = ~np.isclose(cascade[:, -1], pscore, rtol=1e-5, atol=1e-12)
    if off.any():
        i = int(np.argmax(off))
        raise ValueError(
            f"{cascade_name}[{i}, -1] = {cascade[i, -1]} differs from {name}[{i}] = {pscore[i]}, "
            "but the probability of the full prefix is the probability of the whole slate; "
            "one of the two was logged wrongly"
        )


@dataclass(frozen=True, eq=False)
class SessionFeedback:
    """``n`` logged trajectories (sessions) of at most ``T`` steps, padded at the end.

    Padding (``mask == 0``) must come after the last real step of each trajectory; values
    there are ignored (a padded step is an absorbing state with reward 0 and importance
    ratio 1).

    Attributes:
        reward: ``[n, T]`` float, the reward at each step.
        pscore: ``[n, T]`` float in ``(0, 1]``, the logging policy's probability of the
            logged action at each step.
        mask: ``[n, T]`` bool/0-1 or None (no padding): 1 at real steps.
        action: ``[n, T]`` int or None, the logged action ids (needed by fitted Q evaluation).
        features: ``[n, T, d]`` float or None, the state features at each step (needed by
            fitted Q evaluation). Include the step index if values depend on the time left.
    """

    reward: np.ndarray
    pscore: np.ndarray
    mask: np.ndarray | None = None
    action: np.ndarray | None = None
    features: np.ndarray | None = None

    def __post_init__(self):
        reward = v.to_numpy(self.reward, "reward")
        if reward.ndim != 2 or 0 in reward.shape:
            raise ValueError(f"reward has shape {reward.shape}, but (n_trajectories, horizon) with both >= 1 was expected")
        shape, dims = reward.shape, "(n_trajectories, horizon)"
        mask = np.ones(shape, dtype=bool) if self.mask is None else _prefix_mask(self.mask, shape, dims)
        _set(self, "mask", mask)
        _set(self, "reward", v.float_array(reward, "reward", shape, dims, fix=_REWARD_FIX, valid=mask))
        _set(self, "pscore", v.propensity(self.pscore, "pscore", shape, dims, valid=mask))
        if self.action is not None:
            _set(self, "action", v.int_array(self.action, "action", shape, dims, what="action ids", valid=mask))
        if self.features is not None:
            features = v.to_numpy(self.features, "features")
            if features.ndim != 3 or features.shape[:2] != shape:
                raise ValueError(
                    f"features has shape {features.shape}, but (n_trajectories, horizon, n_features) "
                    f"= {shape + ('d',)} was expected"
                )
            _set(self, "features", v.float_array(
                features, "features", features.shape, "(n_trajectories, horizon, n_features)",
                fix="impute missing state features", valid=mask[:, :, None]))

    @property
    def n_rounds(self) -> int:
        return self.reward.shape[0]

    @property
    def horizon(self) -> int:
        return self.reward.shape[1]


def _prefix_mask(value, shape: tuple, dims: str) -> np.ndarray:
    mask = v.to_numpy(value, "mask")
    v.check_shape(mask, "mask", shape, dims)
    if mask.dtype != bool:
        if not np.isin(mask, (0, 1)).all():
            raise ValueError(f"mask must hold 0/1 or booleans, got values {np.unique(mask)[:5]}")
        mask = mask.astype(bool)
    if not mask[:, 0].all():
        i = int(np.argmin(mask[:, 0]))
        raise ValueError(f"mask[{i}, 0] is 0, but every trajectory needs at least one step; drop empty trajectories")
    restarts = mask[:, 1:] & ~mask[:, :-1]
    if restarts.any():
        i, t = np.unravel_index(int(np.argmax(restarts)), restarts.shape)
        raise ValueError(
            f"mask[{i}] is 0 at step {t} and 1 again at step {t + 1}; padding must come after the "
            "last real step of a trajectory (left-align each trajectory)"
        )
    return mask


def _set(instance, name: str, value) -> None:
    object.__setattr__(instance, name, value)
