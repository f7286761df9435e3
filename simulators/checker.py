"""``check_simulator``: tells the author of a plug-in simulator what it gets wrong.

Modelled on Stable-Baselines3's ``check_env``: it runs the simulator through the contract
of :class:`~recoworld.simulators.base.UserSimulator` and reports every problem it finds,
each with what was expected and how to fix it.
"""

from __future__ import annotations

import torch

from recoworld.simulators.base import UserSimulator
from recoworld.types import Instruction, Response

PER_ITEM = ("examined", "clicked", "watch_fraction", "liked", "rating")
PER_USER = ("satisfaction", "leave_hazard", "left_session", "returned", "return_gap", "churned",
            "instruction_in_force", "compliance")


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
    return a ``Response`` whose fields have the documented shapes, dtypes and ranges;
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
    for field in PER_ITEM + PER_USER:
        value = getattr(r, field)
        shape = (B, K) if field in PER_ITEM else (B,)
        if not isinstance(value, torch.Tensor):
            problems.append(f"Response.{field} is a {type(value).__name__}; make it a torch.Tensor of shape {shape}")
        elif tuple(value.shape) != shape:
            problems.append(f"Response.{field} has shape {tuple(value.shape)} {at}; expected {shape}")
    if problems:
        return
    for field in ("examined", "clicked", "liked", "left_session", "returned", "churned", "instruction_in_force"):
        if getattr(r, field).dtype != torch.bool:
            problems.append(f"Response.{field} has dtype {getattr(r, field).dtype}; expected torch.bool")
    if problems:
        return
    for field, low, high in (("watch_fraction", 0, 1), ("satisfaction", 0, 1), ("leave_hazard", 0, 1),
                             ("compliance", 0, 1), ("rating", 0, 5)):
        value = getattr(r, field).float()
        if bool(torch.isnan(value).any()) or bool((value < low).any()) or bool((value > high).any()):
            problems.append(f"Response.{field} has values outside [{low}, {high}] {at} "
                            f"(min {float(value.min()):.3g}, max {float(value.max()):.3g})")
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
    if bool((r.return_gap < 0).any()):
        problems.append(f"Response.return_gap is negative {at}; it counts days until the next session")
    if bool((r.compliance[~r.instruction_in_force] != 0).any()):
        problems.append(f"Response.compliance is non-zero where no instruction was in force {at}")
    if not isinstance(r.instruction, Instruction) or tuple(r.instruction.active.shape) != (B,):
        problems.append(f"Response.instruction must be a recoworld.Instruction with active of shape ({B},)")
    elif len(r.instruction_text) != B:
        problems.append(f"Response.instruction_text has {len(r.instruction_text)} entries; expected {B} "
                        "(None for users who said nothing)")
    else:
        spoke = r.instruction.active.tolist()
        for b, text in enumerate(r.instruction_text):
            if spoke[b] != (text is not None):
                problems.append(f"user {b} {at}: instruction.active is {spoke[b]} but instruction_text is {text!r}")
                break


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
