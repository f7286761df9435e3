"""``check_simulator``: tells the author of a plug-in simulator what it gets wrong.

Modelled on Stable-Baselines3's ``check_env``: it runs the simulator through the contract
of :class:`~recoworld.simulators.base.UserSimulator` and reports every problem it finds,
each with what was expected and how to fix it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import torch

from recoworld.config_checks import UNIT, Interval
from recoworld.simulators.base import UserSimulator
from recoworld.types import Instruction, Response


class FieldContract(NamedTuple):
    """What one tensor field of a :class:`~recoworld.types.Response` holds."""

    per_item: bool  # [B, K] if True, else [B]
    flag: bool  # torch.bool if True, else real numbers in ``within``
    within: Interval | None = None


#: The contract of every tensor field of a Response (its docstring says what each means).
#: Numbers are never NaN; ``return_gap`` is ``inf`` for users who churned.
CONTRACT = {
    "examined": FieldContract(True, True), "clicked": FieldContract(True, True),
    "watch_fraction": FieldContract(True, False, UNIT), "liked": FieldContract(True, True),
    "rating": FieldContract(True, False, Interval(0.0, 5.0)),
    "satisfaction": FieldContract(False, False, UNIT), "leave_hazard": FieldContract(False, False, UNIT),
    "left_session": FieldContract(False, True), "returned": FieldContract(False, True),
    "return_gap": FieldContract(False, False, Interval(0.0, math.inf)), "churned": FieldContract(False, True),
    "instruction_in_force": FieldContract(False, True), "compliance": FieldContract(False, False, UNIT),
}
PER_ITEM = tuple(name for name, field in CONTRACT.items() if field.per_item)
PER_USER = tuple(name for name, field in CONTRACT.items() if not field.per_item)


def response_problems(response, n_users: int, slate_size: int, n_genres: int | None = None) -> list[str]:
    """What ``response`` breaks of the contract for ``n_users`` slates of ``slate_size``
    items: its type, each field's shape, dtype and values (:data:`CONTRACT`), the
    instruction's shapes (``[B]``, ``[B, G]`` with ``G = n_genres`` when given) and the length
    of ``instruction_text``; an empty list when it conforms. Cheap enough for every step."""
    if not isinstance(response, Response):
        return [f"respond() returned a {type(response).__name__}; return a recoworld.Response"]
    problems = []
    for name, field in CONTRACT.items():
        problem = _field_problem(f"Response.{name}", getattr(response, name), field,
                                 (n_users, slate_size) if field.per_item else (n_users,))
        if problem:
            problems.append(problem)
    problems += _instruction_problems(response, n_users, n_genres)
    return problems


def _field_problem(label: str, value, field: FieldContract, shape: tuple[int, ...]) -> str | None:
    """What is wrong with one tensor (``label`` names it in the message), or ``None``."""
    kind = "a bool tensor" if field.flag else f"a real-valued tensor with values {field.within}"
    if not isinstance(value, torch.Tensor):
        return f"{label} is a {type(value).__name__}; expected {kind} of shape {shape}"
    if tuple(value.shape) != shape:
        return f"{label} has shape {tuple(value.shape)}; expected {shape}"
    if field.flag:
        return None if value.dtype == torch.bool else f"{label} has dtype {value.dtype}; expected torch.bool"
    if value.dtype == torch.bool or value.dtype.is_complex:
        return f"{label} has dtype {value.dtype}; expected {kind}"
    return _values_problem(label, value, field.within)


def _values_problem(label: str, value: torch.Tensor, within: Interval) -> str | None:
    """Where ``value`` leaves ``within`` (NaN always does; ``inf`` only an unbounded end)."""
    low, high = within.low, within.high
    if value.numel() == 0:
        return None
    smallest, largest = (float(x) for x in torch.aminmax(value))  # one pass; NaN propagates into both
    if smallest >= low and largest <= high:
        return None
    inside = (value >= low) & (value <= high)
    index = tuple(int(i) for i in (~inside).nonzero()[0])
    where = f"[{', '.join(map(str, index))}]"
    return f"{label}{where} is {float(value[index]):.6g}; expected values {within}"


def _instruction_problems(r: Response, B: int, n_genres: int | None) -> list[str]:
    ins = r.instruction
    if not isinstance(ins, Instruction):
        return [f"Response.instruction is a {type(ins).__name__}; expected a recoworld.Instruction "
                "(Instruction.none(B, n_genres) when nobody spoke)"]
    genres = n_genres if n_genres is not None else (ins.more.shape[-1] if isinstance(ins.more, torch.Tensor) else 0)
    problems = [problem for name, field, shape in (
        ("active", FieldContract(False, True), (B,)), ("more", FieldContract(False, True), (B, genres)),
        ("less", FieldContract(False, True), (B, genres)),
        ("novelty", FieldContract(False, False, Interval(-1.0, 1.0)), (B,)),
    ) if (problem := _field_problem(f"Response.instruction.{name}", getattr(ins, name), field, shape))]
    text = r.instruction_text
    sequence = isinstance(text, (list, tuple)) or (isinstance(text, np.ndarray) and text.ndim == 1
                                                   and text.dtype == object)
    if not sequence or len(text) != B:
        count = len(text) if hasattr(text, "__len__") else type(text).__name__
        problems.append(f"Response.instruction_text has {count} entries; expected a list (or a 1-D numpy object "
                        f"array) of {B} (None for users who said nothing)")
    return problems


def privileged_problem(method: str, value, shape: tuple[int, ...], within: Interval) -> str | None:
    """What is wrong with the result of a privileged method (``click_probabilities``,
    ``expected_clicks``): a real-valued tensor of ``shape`` with values ``within``."""
    return _field_problem(f"{method}()", value, FieldContract(False, False, within), shape)


class SimulatorCheckError(ValueError):
    """Raised by :func:`check_simulator`; ``problems`` lists every finding."""

    def __init__(self, name: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{name} breaks the UserSimulator contract:\n{lines}")


def check_simulator(simulator: UserSimulator, n_users: int = 4, slate_size: int = 3, steps: int = 5,
                    seed: int = 0) -> None:
    """Run ``simulator`` through the contract; raise :class:`SimulatorCheckError` listing
    every problem, or return ``None`` when it conforms.

    Checks: it subclasses ``UserSimulator`` and has a catalog; ``reset`` then ``respond``
    return a ``Response`` whose fields have the documented shapes, dtypes and ranges
    (:data:`CONTRACT`, no NaN); the privileged ``click_probabilities`` (``[B, K]`` in
    ``[0, 1]``) and ``expected_clicks`` (``[B]`` in ``[0, K]``), where it implements them;
    clicks, likes, watch and ratings only on examined positions; churned users are users who
    left and will not return; the same seed gives the same responses; restarting some users
    (``users=``) leaves the others untouched; and an invalid slate raises ``ValueError``.
    Churned users are restarted between steps, as the envs do.
    """
    name = type(simulator).__name__
    if not isinstance(simulator, UserSimulator):
        raise SimulatorCheckError(name, [f"it is a {name}, not a subclass of recoworld.simulators.UserSimulator"])
    catalog = getattr(simulator, "catalog", None)
    if catalog is None or not hasattr(catalog, "n_items"):
        raise SimulatorCheckError(name, ["it has no `catalog` attribute holding a recoworld.Catalog"])
    if catalog.n_items < slate_size:
        slate_size = catalog.n_items
    problems: list[str] = []
    slates = _slates(n_users, slate_size, catalog.n_items, steps)

    first = _run(simulator, n_users, seed, slates, problems)
    if problems:
        raise SimulatorCheckError(name, problems)
    for step, response in enumerate(first):
        _check_response(response, n_users, slate_size, step, problems)
    if problems:
        raise SimulatorCheckError(name, problems)

    again = _run(simulator, n_users, seed, slates, problems)
    for step, (a, b) in enumerate(zip(first, again)):
        for field, left in a.tensor_fields().items():
            right = getattr(b, field)
            if not torch.equal(torch.nan_to_num(left.cpu()), torch.nan_to_num(right.cpu())):
                problems.append(f"reset(n_users, seed={seed}) is not deterministic: `{field}` differs at step {step} "
                                "between two runs; draw all randomness from the seed given to reset")
                break

    _check_privileged(simulator, n_users, seed, slates[0], problems)
    _check_partial_reset(simulator, n_users, seed, slates[0], problems)
    _check_rejects(simulator, n_users, slate_size, catalog.n_items, problems)
    if problems:
        raise SimulatorCheckError(name, problems)


def _slates(n_users: int, slate_size: int, n_items: int, steps: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1234)
    return [torch.stack([torch.randperm(n_items, generator=gen)[:slate_size] for _ in range(n_users)])
            for _ in range(steps)]


def _run(simulator, n_users, seed, slates, problems) -> list[Response]:
    try:
        simulator.reset(n_users, seed=seed)
    except Exception as err:  # a checker reports, whatever the plug-in raises
        problems.append(f"reset(n_users={n_users}, seed={seed}) raised {type(err).__name__}: {err}")
        return []
    responses = []
    for step, slate in enumerate(slates):
        try:
            response = simulator.respond(slate.to(simulator.device))
        except Exception as err:
            problems.append(f"respond(slates) at step {step} raised {type(err).__name__}: {err}")
            return responses
        if not isinstance(response, Response):
            problems.append(f"respond() returned {type(response).__name__}; return a recoworld.Response")
            return responses
        responses.append(response)
        gone = torch.as_tensor(response.churned).nonzero().flatten()
        if len(gone):
            try:
                simulator.reset(n_users, seed=[10_000 + seed + step * n_users + int(g) for g in gone], users=gone)
            except Exception as err:
                problems.append(f"reset(n_users, seed=[...], users={gone.tolist()}) raised "
                                f"{type(err).__name__}: {err}; restarting churned users must work")
                return responses
    return responses


def _check_response(r: Response, B: int, K: int, step: int, problems: list[str]) -> None:
    at = f"at step {step}"
    structural = response_problems(r, B, K)
    if structural:
        problems += [f"{problem} ({at})" for problem in structural]
        return
    unexamined = ~r.examined
    for field in ("clicked", "liked", "watch_fraction", "rating"):
        if bool((getattr(r, field)[unexamined] != 0).any()):
            problems.append(f"Response.{field} is non-zero on positions that were not examined {at}; "
                            "an unexamined item gets no feedback")
    for field in ("liked", "watch_fraction", "rating"):
        if bool((getattr(r, field)[~r.clicked] != 0).any()):
            problems.append(f"Response.{field} is non-zero on items that were not clicked {at}")
    if bool((r.returned & ~r.left_session).any()) or bool((r.churned != (r.left_session & ~r.returned)).any()):
        problems.append(f"churned must equal left_session & ~returned, and returned imply left_session {at}")
    if bool((r.compliance[~r.instruction_in_force] != 0).any()):
        problems.append(f"Response.compliance is non-zero where no instruction was in force {at}")
    spoke = r.instruction.active.tolist()
    for b, text in enumerate(r.instruction_text):
        if spoke[b] != (text is not None):
            problems.append(f"user {b} {at}: instruction.active is {spoke[b]} but instruction_text is {text!r}")
            break


def _check_privileged(simulator, n_users, seed, slate, problems) -> None:
    """``click_probabilities`` and ``expected_clicks``, where the simulator implements them:
    the Oracle and the OPE studies act on what they return."""
    K = slate.shape[1]
    for method, shape, within in (("click_probabilities", (n_users, K), UNIT),
                                  ("expected_clicks", (n_users,), Interval(0.0, K))):
        if getattr(type(simulator), method) is getattr(UserSimulator, method):
            continue
        try:
            simulator.reset(n_users, seed=seed)
            value = getattr(simulator, method)(slate.to(simulator.device))
        except NotImplementedError:
            continue
        except Exception as err:
            problems.append(f"{method}(slates) raised {type(err).__name__}: {err}")
            continue
        problem = privileged_problem(method, value, shape, within)
        if problem:
            problems.append(f"{problem} (for slates of shape {tuple(shape[:1]) + (K,)} after reset)")


def _check_partial_reset(simulator, n_users, seed, slate, problems) -> None:
    if n_users < 2:
        return
    try:
        simulator.reset(n_users, seed=seed)
        simulator.reset(n_users, seed=[seed + 999], users=[0])
        mixed = simulator.respond(slate.to(simulator.device))
        simulator.reset(n_users, seed=seed)
        plain = simulator.respond(slate.to(simulator.device))
    except Exception as err:
        problems.append(f"restarting one user with reset(n_users, seed=[s], users=[0]) failed: "
                        f"{type(err).__name__}: {err}")
        return
    if not torch.equal(mixed.clicked[1:].cpu(), plain.clicked[1:].cpu()):
        problems.append("restarting user 0 with reset(..., users=[0]) changed the responses of the other users; "
                        "a partial reset must leave other slots untouched")


def _check_rejects(simulator, n_users, slate_size, n_items, problems) -> None:
    simulator.reset(n_users, seed=0)
    bad = torch.zeros(n_users, slate_size, dtype=torch.long)
    bad[0, 0] = n_items
    try:
        simulator.respond(bad.to(simulator.device))
    except ValueError:
        return
    except Exception as err:
        problems.append(f"respond() with item {n_items} (outside the catalog) raised {type(err).__name__}; "
                        "raise ValueError naming the bad entry (recoworld.validation.check_slates does)")
        return
    problems.append(f"respond() accepted item {n_items}, outside the catalog of {n_items} items; "
                    "validate slates with recoworld.validation.check_slates")
