"""The env's check of a plug-in simulator's answers.

RecoWorld's own simulators are held to the :class:`~recoworld.simulators.UserSimulator`
contract by their tests; a plug-in simulator is not, and a wrong-shaped or NaN field would
otherwise run on silently (NaN rewards, sessions that never end) or fail deep inside torch.
So the envs check every :class:`~recoworld.types.Response` of a simulator whose class is
not RecoWorld's, against :data:`recoworld.simulators.checker.CONTRACT`: shapes ``[B]`` and
``[B, K]``, dtypes, no NaN, and the documented ranges (probabilities, watch fractions and
compliance in ``[0, 1]``, ratings in ``[0, 5]``, return gaps ``>= 0``); and, as the env
reads each field on the simulator's ``device`` and hands it to numpy, a dense tensor on
that device that needs no gradient. The privileged
channel's ``click_probabilities`` and ``expected_clicks`` are checked the same way, so the
Oracle never acts on NaN. A failure raises ``ValueError`` naming the simulator's class, the
field and what was expected.

The check is a few tensor comparisons per step, on by default; pass
``check_responses=False`` to the env to turn it off (for a simulator already vetted with
:func:`recoworld.check_simulator`).
"""

from __future__ import annotations

import torch

from recoworld.config_checks import UNIT, Interval
from recoworld.simulators.base import UserSimulator
from recoworld.simulators.checker import privileged_problem, response_problems, simulator_device

_HOW_TO_FIX = ("recoworld.check_simulator(simulator) runs the whole contract; pass check_responses=False to the env "
               "to skip this check")


def is_built_in(simulator: UserSimulator) -> bool:
    """Whether ``simulator``'s class is one of RecoWorld's own (a subclass defined
    elsewhere is a plug-in, whatever it inherits)."""
    return type(simulator).__module__.split(".")[0] == "recoworld"


class ResponseCheck:
    """Checks the answers of one simulator for an env of ``n_users`` slates of
    ``slate_size`` items (see the module docstring); does nothing when not ``enabled`` or
    for RecoWorld's own simulators."""

    def __init__(self, simulator: UserSimulator, n_users: int, slate_size: int, num_candidates: int,
                 enabled: bool = True):
        self.enabled = enabled and not is_built_in(simulator)
        self.simulator_name = type(simulator).__name__
        self.n_users, self.slate_size, self.num_candidates = n_users, slate_size, num_candidates
        # Every simulator's device, checked or not: a plug-in's CUDA device on a machine without
        # one would otherwise fail deep in the env's first step, in torch's words.
        self.n_genres, self.device = simulator.catalog.n_genres, simulator_device(simulator)

    def __call__(self, response) -> None:
        """Raise ``ValueError`` listing what ``response`` breaks of the contract."""
        if self.enabled:
            self._raise(response_problems(response, self.n_users, self.slate_size, self.n_genres, self.device),
                        "respond()")

    def privileged(self, method: str, value: torch.Tensor, slate_size: int | None = None) -> None:
        """Raise ``ValueError`` if ``click_probabilities`` of the candidates (``[B, C]`` in
        ``[0, 1]``) or ``expected_clicks`` of slates of ``slate_size`` items (``[B]`` in
        ``[0, K]``) returned ``value`` outside its contract."""
        if not self.enabled:
            return
        if method == "click_probabilities":
            shape, within = (self.n_users, self.num_candidates), UNIT
        else:
            shape, within = (self.n_users,), Interval(0.0, slate_size)
        problem = privileged_problem(method, value, shape, within, self.device)
        self._raise([problem] if problem else [], f"{method}()")

    def _raise(self, problems: list[str], method: str) -> None:
        if problems:
            listed = "\n".join(f"  - {p}" for p in problems)
            raise ValueError(f"{self.simulator_name}.{method} broke the UserSimulator contract:\n{listed}\n"
                             f"{_HOW_TO_FIX}")
