"""The contract every simulated user population fulfils.

A simulator holds ``n_users`` slots, each occupied by one simulated user, and answers a
whole batch of slates at once. Plugging in your own simulator means subclassing
:class:`UserSimulator` and implementing :meth:`reset` and :meth:`respond`;
:func:`recoworld.check_simulator` tells you what a plug-in gets wrong.

Two optional hooks serve the experiment runner, which calls them on every simulator it
builds: :meth:`UserSimulator.metrics` (counters merged into the run's ``metrics.json``, e.g.
an LLM simulator's calls and tokens) and :meth:`UserSimulator.close` (called when the
simulator's rollout ends, also when it fails). Both default to doing nothing.
"""

from __future__ import annotations

import numbers
from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np
import torch

from recoworld import rng

from recoworld.catalog import Catalog
from recoworld.config_checks import check_seed
from recoworld.types import Response


class UserSimulator(ABC):
    """A batch of simulated users that react to slates of catalog items.

    Attributes:
        catalog: the items users react to; slates hold ids ``0..catalog.n_items-1``.
        n_users: the number of user slots, ``B``.
        device: the torch device of the simulator's tensors.
    """

    catalog: Catalog
    n_users: int = 0
    device: torch.device = torch.device("cpu")

    @abstractmethod
    def reset(
        self,
        n_users: int,
        seed: int | Sequence[int] | torch.Tensor | None = None,
        users: Sequence[int] | torch.Tensor | None = None,
    ) -> None:
        """Start new users.

        Args:
            n_users: the number of user slots ``B``.
            seed: one integer seed per started user, or a single integer ``s`` that gives
                the ``j``-th started user the seed ``s + j`` (Gymnasium's convention for
                vector envs). ``None`` draws fresh seeds. Seeds are in ``[0, 2**63)``; the
                envs pass one per user, as an int64 tensor (on CPU), so accept any sequence
                of integers, e.g. ``[int(s) for s in seed]``.
            users: slot indices to restart with new users while the other slots keep
                their state (used when some users of a batch churn); ``None`` restarts all
                ``n_users`` slots. ``n_users`` must equal the current size when given.
                The envs pass an int64 tensor.

        The same seed must give the same user, whatever else is in the batch.
        """

    @abstractmethod
    def respond(self, slates: torch.Tensor) -> Response:
        """React to one slate per user.

        Args:
            slates: int64 ``[n_users, K]`` distinct item ids per row.

        Returns:
            a :class:`~recoworld.Response` with leading dimension ``n_users``.
        """

    #: Whether :meth:`respond_valid` leaves the slots it is told are ``idle`` untouched.
    #: An env's autoreset restarts finished users before the step that replaces them; a
    #: simulator that steps them anyway has them restarted a second time after it.
    holds_idle: bool = False

    def respond_valid(self, slates: torch.Tensor, idle: torch.Tensor | None = None) -> Response:
        """:meth:`respond` to slates already known valid: int64 ``[n_users, K]`` on the
        simulator's device, ids in range and distinct in each row. The envs build theirs so
        and call this; a simulator whose own check is costly may skip it here.

        ``idle`` (bool ``[n_users]`` or ``None``) marks slots whose answer the caller will
        discard: users an autoreset just restarted. A simulator that sets :attr:`holds_idle`
        leaves them untouched (an LLM simulator can skip their calls); the default ignores
        ``idle`` and answers :meth:`respond`. Optional."""
        return self.respond(slates)

    def click_probabilities(self, items: torch.Tensor) -> torch.Tensor:
        """Privileged: each user's true probability of clicking each item if examined.

        ``items`` is int64 ``[n_users, C]``; the result is float ``[n_users, C]``. Envs
        expose this to the Oracle agent as a documented privileged channel; agents never
        call a simulator directly. Optional for plug-ins.
        """
        raise NotImplementedError(
            f"{type(self).__name__} does not expose click_probabilities(); "
            "implement it to use the Oracle agent with this simulator"
        )

    def expected_clicks(self, slates: torch.Tensor) -> torch.Tensor:
        """Privileged: the exact expected number of clicks on each slate ``[n_users, K]``.

        Used as ground truth for off-policy evaluation. Optional for plug-ins.
        """
        raise NotImplementedError(f"{type(self).__name__} does not expose expected_clicks()")

    def finish(self) -> None:
        """Called by the runner when a rollout has ended, before it reads :meth:`metrics` and
        keeps the rollout's log: raise to fail the part when the rollout cannot stand as
        this simulator's (the LLM users raise when too many of its steps fell back).
        Optional: nothing by default."""

    def metrics(self) -> dict[str, float | int]:
        """Counters of this simulator's work since it was built, flat and JSON-ready (e.g.
        LLM calls, tokens, parse failures, fallback steps); the runner writes them to
        ``metrics.json`` under each agent's ``simulator`` entry. Optional: none by default."""
        return {}

    def close(self) -> None:
        """Release what this simulator holds (clients, processes, files). The runner calls it
        when the simulator's rollout ends, also on error. Optional: nothing by default."""


#: The largest seed: seeds are integers in ``[0, 2**63)``, held as int64 (users are keyed by
#: 63-bit seeds, :mod:`recoworld.rng`). The envs' seeds are the users' seeds, so they take this bound.
MAX_SEED = 2**63 - 1


def resolve_seeds(count: int, seed, fresh_start: int, salt: int = 0x11E5) -> torch.Tensor:
    """One seed per started user, by :meth:`UserSimulator.reset`'s convention: a sequence
    gives one seed each, an int ``s`` gives ``s + j``, ``None`` gives fresh seeds numbered
    from ``fresh_start`` (hashed with ``salt``, so that simulator kinds draw apart).
    ``ValueError`` names a seed that is not an integer in ``[0, 2**63)``, or an int ``s``
    whose ``s + j`` would leave that range."""
    seed = seed.cpu().numpy() if isinstance(seed, torch.Tensor) else seed
    beyond = _first_beyond_int64(seed)
    if beyond is not None:
        raise ValueError(f"seed[{beyond[0]}]={beyond[1]} is too large: seeds are integers in [0, 2**63)")
    seed = check_seed(seed)
    if seed is None:
        return torch.tensor([rng.mix_int(salt, fresh_start + j) for j in range(count)], dtype=torch.int64)
    if isinstance(seed, int):
        if seed > MAX_SEED - (count - 1):
            raise ValueError(f"seed={seed} is too large: seeds are integers in [0, 2**63)"
                             if count == 1 or seed > MAX_SEED else
                             f"seed={seed} is too large: the j-th of the {count} users started gets the seed "
                             f"{seed} + j, so it must be at most 2**63 - {count} ({MAX_SEED - count + 1})")
        return seed + torch.arange(count, dtype=torch.int64)
    seeds = torch.from_numpy(seed)
    if len(seeds) != count:
        raise ValueError(f"got {len(seeds)} seeds for {count} users; give one per user or a single int")
    return seeds


def integer_ids(ids, name: str, what: str, device=None) -> torch.Tensor:
    """``ids`` (a tensor, array or sequence) as a tensor of integer ``what`` ids (on ``device``,
    default where they are); ``ValueError`` for a boolean mask, whose entries would be read
    as ids 0 and 1, or for floats, which would be truncated."""
    ids = torch.as_tensor(ids, device=device)
    if ids.numel() == 0:
        return ids.long()  # no ids, whatever dtype an empty list reads as (float32)
    if ids.dtype == torch.bool:
        raise ValueError(f"{name} is a boolean mask (dtype torch.bool); pass the integer {what} ids it selects "
                         f"(for a mask tensor, mask.nonzero().flatten())")
    if ids.dtype.is_floating_point or ids.dtype.is_complex:
        raise ValueError(f"{name} has dtype {ids.dtype}; pass integer {what} ids (e.g. int64)")
    return ids


def restart_slots(users, n_users: int) -> torch.Tensor:
    """The slots of :meth:`UserSimulator.reset`'s ``users``, checked on the host in one read
    (the envs' are there already: no copy, no wait for a GPU): integer slot ids
    (:func:`integer_ids`), in ``0..n_users-1``, each once (a slot given twice would be started
    twice, from two seeds, in an order nothing fixes). Returns them flat, as int64, where
    they were given."""
    slots = integer_ids(users, "users", "slot").long().flatten()
    if len(slots) == 0:
        return slots
    ids = slots.cpu().numpy()  # a few NumPy passes cost less than as many torch calls: this runs at every autoreset
    lowest, highest = int(ids.min()), int(ids.max())
    if lowest < 0 or highest >= n_users:
        raise ValueError(f"users holds slot {lowest if lowest < 0 else highest}, but there are {n_users} slots")
    if not (ids[1:] > ids[:-1]).all():  # increasing slots (the envs' order) are each once; others are sorted to see
        ordered = np.sort(ids)
        twice = ordered[1:][ordered[1:] == ordered[:-1]]
        if len(twice):
            raise ValueError(f"users holds slot {int(twice[0])} more than once; give each slot to restart once, with "
                             "its one seed")
    return slots


def _first_beyond_int64(seed) -> tuple[int, int] | None:
    """``(j, seed[j])`` for the first entry of a sequence of seeds beyond int64, which NumPy
    would read as a float, an object or (uint64) a negative int64; ``None`` if there is none.
    A single seed's range is checked with the batch it seeds."""
    if isinstance(seed, np.ndarray):
        if seed.ndim != 1 or seed.dtype != np.uint64:
            return None
        beyond = np.flatnonzero(seed > MAX_SEED)
        return (int(beyond[0]), int(seed[beyond[0]])) if len(beyond) else None
    if isinstance(seed, Sequence) and not isinstance(seed, str):
        return next(((j, int(s)) for j, s in enumerate(seed)
                     if isinstance(s, numbers.Integral) and int(s) > MAX_SEED), None)
    return None
