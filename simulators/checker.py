"""``check_simulator``: tells the author of a plug-in simulator what it gets wrong.

Modelled on Stable-Baselines3's ``check_env``: it runs the simulator through the contract
of :class:`~recoworld.simulators.base.UserSimulator` and reports every problem it finds,
each with what was expected and how to fix it.
"""

from __future__ import annotations

import functools
import math
import re
from typing import NamedTuple

import numpy as np
import torch

from recoworld.config_checks import UNIT, Interval
from recoworld.kernels.placement import torch_device
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
NOVELTY = Interval(-1.0, 1.0)  # and whole: -1, 0 or +1 (see _novelty_problem)
PER_ITEM = tuple(name for name, field in CONTRACT.items() if field.per_item)
PER_USER = tuple(name for name, field in CONTRACT.items() if not field.per_item)


def response_problems(response, n_users: int, slate_size: int, n_genres: int | None = None,
                      device: torch.device | str | None = None) -> list[str]:
    """What ``response`` breaks of the contract for ``n_users`` slates of ``slate_size``
    items: its type, each field's shape, device (the simulator's ``device``, when given),
    layout (dense), dtype (one numpy holds) and values (:data:`CONTRACT`), that none needs a
    gradient, that the session ends agree (``churned``, ``returned``, ``left_session`` and
    ``return_gap``), the instruction's shapes (``[B]``, ``[B, G]`` with ``G = n_genres`` when
    given) and novelty (-1, 0 or +1), and the length of ``instruction_text``; an empty list
    when it conforms. Cheap enough for every step."""
    if not isinstance(response, Response):
        return [f"respond() returned a {type(response).__name__}; return a recoworld.Response"]
    device = None if device is None else torch.device(device)
    problems = []
    for name, field in CONTRACT.items():
        problem = _field_problem(f"Response.{name}", getattr(response, name), field,
                                 (n_users, slate_size) if field.per_item else (n_users,), device)
        if problem:
            problems.append(problem)
    if not problems:  # each field well formed: how they fit together
        problems += _session_end_problems(response)
    problems += _instruction_problems(response, n_users, n_genres, device)
    return problems


def _session_end_problems(r: Response) -> list[str]:
    """Whether the ends of the sessions agree: churned users are those who left and will not
    return (the envs end their episodes), and ``return_gap`` is ``inf`` for them alone and ``0``
    where the session goes on. Two passes over ``[B]`` flags, a read each; the first user who
    breaks a rule is named with its fields."""
    disagree = (r.returned & ~r.left_session) | (r.churned != (r.left_session & ~r.returned))
    if bool(disagree.any()):
        return [f"{_session_end(r, disagree)}: churned must equal left_session & ~returned, and returned imply "
                "left_session"]
    wrong_gap = (torch.isinf(r.return_gap) != r.churned) | (~r.left_session & (r.return_gap != 0))
    if bool(wrong_gap.any()):
        return [f"{_session_end(r, wrong_gap)}: Response.return_gap must be inf for the users who churned, finite for "
                "the others, and 0 where the session goes on"]
    return []


def _session_end(r: Response, broken: torch.Tensor) -> str:
    """The first user of ``broken`` and its session end's fields, in words."""
    user = int(broken.nonzero()[0, 0])
    return (f"user {user} has churned={bool(r.churned[user])}, left_session={bool(r.left_session[user])}, "
            f"returned={bool(r.returned[user])}, return_gap={float(r.return_gap[user]):g}")


def _field_problem(label: str, value, field: FieldContract, shape: tuple[int, ...],
                   device: torch.device | None = None) -> str | None:
    """What is wrong with one tensor (``label`` names it in the message), or ``None``."""
    kind = "a bool tensor" if field.flag else f"a real-valued tensor with values {field.within}"
    if not isinstance(value, torch.Tensor):
        return f"{label} is a {type(value).__name__}; expected {kind} of shape {shape}"
    if tuple(value.shape) != shape:
        return f"{label} has shape {tuple(value.shape)}; expected {shape}"
    # Where, how laid out and whether tracked: the env reads every field on the simulator's
    # device, as a dense tensor, and hands it to numpy (which refuses a tensor needing a gradient).
    if device is not None and not _same_device(value.device, device):
        return (f"{label} is on device {value.device}; expected the simulator's device, {device} (make it with "
                "device=self.device, or .to(self.device))")
    if value.layout != torch.strided:
        return f"{label} is a {value.layout} tensor; expected a dense (torch.strided) one (call .to_dense())"
    if value.requires_grad:
        return f"{label} requires grad; return it detached (.detach(), or compute it under torch.no_grad())"
    if field.flag:
        return None if value.dtype == torch.bool else f"{label} has dtype {value.dtype}; expected torch.bool"
    if value.dtype == torch.bool or value.dtype.is_complex:
        return f"{label} has dtype {value.dtype}; expected {kind}"
    if not _numpy_holds(value.dtype):
        # Checked here, not met in the env's info after the world has stepped.
        return (f"{label} has dtype {value.dtype}, which numpy cannot hold (the env hands every field to numpy); "
                "return it as float32 (.float())")
    return _values_problem(label, value, field.within)


@functools.cache
def _numpy_holds(dtype: torch.dtype) -> bool:
    """Whether ``.numpy()`` takes a tensor of ``dtype`` (not bfloat16, the float8 kinds, ...)."""
    try:
        torch.empty(0, dtype=dtype).numpy()
    except TypeError:
        return False
    return True


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


def _same_device(actual: torch.device, expected: torch.device) -> bool:
    """Whether a tensor on ``actual`` is on ``expected``: ``cuda`` without an index stands
    for the current device, which a tensor names with its index (``cuda:0``)."""
    return actual.type == expected.type and (expected.index is None or actual.index == expected.index)


def _instruction_problems(r: Response, B: int, n_genres: int | None, device: torch.device | None = None
                          ) -> list[str]:
    ins = r.instruction
    if not isinstance(ins, Instruction):
        return [f"Response.instruction is a {type(ins).__name__}; expected a recoworld.Instruction "
                "(Instruction.none(B, n_genres) when nobody spoke)"]
    genres = n_genres if n_genres is not None else (ins.more.shape[-1] if isinstance(ins.more, torch.Tensor) else 0)
    problems = [problem for name, shape in (("active", (B,)), ("more", (B, genres)), ("less", (B, genres)))
                if (problem := _field_problem(f"Response.instruction.{name}", getattr(ins, name),
                                              FieldContract(False, True), shape, device))]
    novelty = (_field_problem("Response.instruction.novelty", ins.novelty, FieldContract(False, False, NOVELTY), (B,),
                              device) or _novelty_problem(ins.novelty))
    problems += [novelty] if novelty else []
    problems += [problem for name, optional in (("instruction_text", False), ("item_reasons", True),
                                                ("mindset_text", True))
                 if (problem := _texts_problem(name, getattr(r, name), B, optional))]
    return problems


def _novelty_problem(novelty: torch.Tensor) -> str | None:
    """A wish for novelty is -1, 0 or +1 (the C bookkeeping holds it as int8, the torch one
    as given: 0.5 would read as 0 in one and 0.5 in the other). Within [-1, 1] already, so an
    integer tensor holds nothing else; a float one is checked for a fraction."""
    if not novelty.dtype.is_floating_point:
        return None
    fractional = novelty != novelty.round()
    if not bool(fractional.any()):
        return None
    user = int(fractional.nonzero()[0, 0])
    return (f"Response.instruction.novelty[{user}] is {float(novelty[user]):.6g}; expected -1, 0 or +1 (+1: less "
            "familiar items, -1: more familiar ones, 0: no wish), e.g. as int8")


def _texts_problem(name: str, texts, B: int, optional: bool) -> str | None:
    """What is wrong with a per-user text field: a list (or a 1-D numpy object array) of
    ``B`` entries, ``None`` for users without words; the optional fields may be ``None``."""
    if optional and texts is None:
        return None
    sequence = isinstance(texts, (list, tuple)) or (isinstance(texts, np.ndarray) and texts.ndim == 1
                                                    and texts.dtype == object)
    if sequence and len(texts) == B:
        return None
    got = f"has {len(texts)} entries" if sequence else f"is a {type(texts).__name__}"
    return (f"Response.{name} {got}; expected {'None or ' if optional else ''}a list (or a 1-D numpy object "
            f"array) of {B} (None for users who said nothing)")


def privileged_problem(method: str, value, shape: tuple[int, ...], within: Interval,
                       device: torch.device | str | None = None) -> str | None:
    """What is wrong with the result of a privileged method (``click_probabilities``,
    ``expected_clicks``): a real-valued tensor of ``shape`` with values ``within`` (on
    ``device``, when given)."""
    return _field_problem(f"{method}()", value, FieldContract(False, False, within), shape,
                          None if device is None else torch.device(device))


def simulator_device(simulator: UserSimulator) -> torch.device:
    """The torch device that ``simulator.device`` names; ``ValueError`` naming the simulator,
    the device and the fix where it is no torch device, or one this machine lacks (a plug-in
    made with ``device="cuda"`` on a machine without a GPU)."""
    try:
        return torch_device(simulator.device)
    except ValueError as error:
        raise ValueError(f"{type(simulator).__name__}'s device: {error}") from None


class Findings(list):
    """The problems :func:`check_simulator` finds, and the first exception that the simulator
    raised: the check's error is chained to it, so that its traceback shows the line of the
    plug-in that raised."""

    error: BaseException | None = None

    def raised(self, problem: str, error: BaseException | None) -> None:
        self.append(problem)
        if self.error is None:
            self.error = error


class SimulatorCheckError(ValueError):
    """Raised by :func:`check_simulator`; ``problems`` lists every finding."""

    def __init__(self, name: str, problems: list[str]):
        self.problems = problems
        lines = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"{name} breaks the UserSimulator contract:\n{lines}")


def check_simulator(simulator: UserSimulator, n_users: int = 4, slate_size: int = 3, steps: int = 5,
                    seed: int = 0) -> None:
    """Run ``simulator`` through the contract; raise :class:`SimulatorCheckError` listing
    every problem (each once, at the first step it shows), or return ``None`` when it conforms.

    Checks: it subclasses ``UserSimulator`` and has a catalog; ``reset`` then ``respond``
    return a ``Response`` whose fields have the documented shapes, dtypes and ranges
    (:data:`CONTRACT`, no NaN, the instruction's genres those of the catalog, one entry per
    user in the text fields), each a dense tensor on the simulator's ``device`` that needs no
    gradient; the privileged ``click_probabilities`` (``[B, K]`` in
    ``[0, 1]``) and ``expected_clicks`` (``[B]`` in ``[0, K]``), where it implements them;
    clicks, likes, watch and ratings only on examined positions; churned users are users who
    left and will not return, and ``return_gap`` is ``inf`` for them alone and ``0`` where the
    session goes on; the same seed gives the same responses, and the same user in any slot
    of the batch; restarting some users (``users=``) leaves the others untouched; and a
    slate with an item outside the catalog or a repeated item raises ``ValueError``.
    Churned users are restarted between steps, as the envs do: their seeds and slots given as
    int64 tensors (the other resets give an int, or a list of one seed per user).
    """
    name = type(simulator).__name__
    if isinstance(simulator, type) and issubclass(simulator, UserSimulator):
        raise SimulatorCheckError(simulator.__name__, [
            f"check_simulator was given the class {simulator.__name__}, not a simulator; pass an instance, "
            f"e.g. check_simulator({simulator.__name__}(catalog))"])
    if not isinstance(simulator, UserSimulator):
        raise SimulatorCheckError(name, [f"it is a {name}, not a subclass of recoworld.simulators.UserSimulator"])
    catalog = getattr(simulator, "catalog", None)
    if catalog is None or not hasattr(catalog, "n_items"):
        raise SimulatorCheckError(name, ["it has no `catalog` attribute holding a recoworld.Catalog"])
    try:
        device = simulator_device(simulator)
    except ValueError as error:
        raise SimulatorCheckError(name, [str(error)]) from None
    if catalog.n_items < slate_size:
        slate_size = catalog.n_items
    problems = Findings()
    slates = _slates(n_users, slate_size, catalog.n_items, steps)

    first = _run(simulator, n_users, seed, slates, problems, catalog.n_genres, device)
    for step, response in enumerate(first):
        _check_response(response, n_users, slate_size, catalog.n_genres, step, problems, device)
    if problems:
        raise SimulatorCheckError(name, _once_each(problems)) from problems.error

    again = _run(simulator, n_users, seed, slates, problems, catalog.n_genres, device)
    for step, (a, b) in enumerate(zip(first, again)):
        field = _first_difference(a, b)
        if field:
            problems.append(f"reset(n_users, seed={seed}) is not deterministic: `{field}` differs at step {step} "
                            "between two runs; draw all randomness from the seed given to reset")
            break

    _check_privileged(simulator, n_users, seed, slates[0], problems, device)
    _check_any_slot(simulator, n_users, seed, slates[0], first[0], problems)
    _check_partial_reset(simulator, n_users, seed, slates, first, catalog.n_genres, device, problems)
    _check_rejects(simulator, n_users, slates[0], catalog.n_items, problems)
    if problems:
        raise SimulatorCheckError(name, _once_each(problems)) from problems.error


def _once_each(problems: list[str]) -> list[str]:
    """``problems`` with the repeats of a problem at later steps (or other entries) left out."""
    seen, kept = set(), []
    for problem in problems:
        key = re.sub(r"\d+", "#", re.sub(r"\(?at step \d+\)?", "", problem))
        if key not in seen:
            seen.add(key)
            kept.append(problem)
    return kept


def _first_difference(a: Response, b: Response, rows_a=slice(None), rows_b=slice(None)) -> str | None:
    """The first tensor field in which the ``rows_a`` of ``a`` and the ``rows_b`` of ``b``
    differ (NaN equal to NaN), or ``None``."""
    for field, left in a.tensor_fields().items():
        right = getattr(b, field)
        if not torch.equal(torch.nan_to_num(left[rows_a].cpu()), torch.nan_to_num(right[rows_b].cpu())):
            return field
    return None


def _slates(n_users: int, slate_size: int, n_items: int, steps: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(1234)
    return [torch.stack([torch.randperm(n_items, generator=gen)[:slate_size] for _ in range(n_users)])
            for _ in range(steps)]


def _run(simulator, n_users, seed, slates, problems, n_genres, device, restart_first_user_at: int | None = None
         ) -> list[Response]:
    """Reset with ``seed`` and respond to ``slates``, restarting churned users after each step
    (and user 0 before step ``restart_first_user_at``); stops at the first failure, or at a
    response whose structure is wrong (the caller lists what is wrong with it)."""
    try:
        simulator.reset(n_users, seed=seed)
    except Exception as err:  # a checker reports, whatever the plug-in raises
        problems.raised(f"reset(n_users={n_users}, seed={seed}) raised {type(err).__name__}: {err}", err)
        return []
    responses = []
    for step, slate in enumerate(slates):
        if step == restart_first_user_at:
            try:
                simulator.reset(n_users, seed=torch.tensor([seed + 999]), users=torch.tensor([0]))
            except Exception as err:
                problems.raised(f"reset(n_users, seed=tensor([{seed + 999}]), users=tensor([0])) raised "
                                f"{type(err).__name__}: {err}", err)
                return responses
        try:
            response = simulator.respond(slate.to(simulator.device))
        except Exception as err:
            problems.raised(f"respond(slates) at step {step} raised {type(err).__name__}: {err}", err)
            return responses
        if not isinstance(response, Response):
            problems.append(f"respond() returned {type(response).__name__}; return a recoworld.Response")
            return responses
        responses.append(response)
        if response_problems(response, n_users, slate.shape[1], n_genres, device):
            return responses  # its `churned` cannot be trusted to restart users with
        gone = response.churned.nonzero().flatten().cpu()
        if len(gone):
            # As the envs restart them: seeds and slots in int64 tensors.
            try:
                simulator.reset(n_users, seed=10_000 + seed + step * n_users + gone, users=gone)
            except Exception as err:
                problems.raised(f"reset(n_users, seed=tensor([...]), users=tensor({gone.tolist()})) raised "
                                f"{type(err).__name__}: {err}; restarting churned users must work, with the seeds "
                                "as a sequence or an int64 tensor (the envs pass a tensor)", err)
                return responses
    return responses


def _check_response(r: Response, B: int, K: int, n_genres: int, step: int, problems: list[str],
                    device: torch.device | None = None) -> None:
    at = f"at step {step}"
    structural = response_problems(r, B, K, n_genres, device)
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
    if bool((r.compliance[~r.instruction_in_force] != 0).any()):
        problems.append(f"Response.compliance is non-zero where no instruction was in force {at}")
    spoke = r.instruction.active.tolist()
    for b, text in enumerate(r.instruction_text):
        if spoke[b] != (text is not None):
            problems.append(f"user {b} {at}: instruction.active is {spoke[b]} but instruction_text is {text!r}")
            break


def _check_privileged(simulator, n_users, seed, slate, problems, device) -> None:
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
            problems.raised(f"{method}(slates) raised {type(err).__name__}: {err}", err)
            continue
        problem = privileged_problem(method, value, shape, within, device)
        if problem:
            problems.append(f"{problem} (for slates of shape {tuple(shape[:1]) + (K,)} after reset)")


def _check_any_slot(simulator, n_users, seed, slate, first: Response, problems) -> None:
    """The same seed gives the same user in any slot: users seeded in reverse order and shown
    their slates in reverse order answer as the first run's, in reverse order."""
    if n_users < 2:
        return
    order = torch.arange(n_users - 1, -1, -1)
    try:
        simulator.reset(n_users, seed=[seed + int(j) for j in order])
        reversed_batch = simulator.respond(slate[order].to(simulator.device))
    except Exception as err:
        problems.raised(f"reset(n_users, seed=[one per user]) then respond failed: {type(err).__name__}: {err}", err)
        return
    field = _first_difference(first, reversed_batch, order)
    if field:
        problems.append(f"the users seeded {seed}..{seed + n_users - 1} answer differently (`{field}`) when they sit "
                        "in the batch in reverse order; a user's life must depend only on its own seed, not on its "
                        "slot or the other users")


def _check_partial_reset(simulator, n_users, seed, slates, first: list[Response], n_genres, device,
                         problems) -> None:
    """Restarting user 0 after some steps leaves the others as they were: their answers to
    the next slate are those of the ``first`` run, which had no restart."""
    steps = min(3, len(slates))
    if n_users < 2 or steps < 2 or len(first) < steps:
        return
    failed = Findings()
    mixed = _run(simulator, n_users, seed, slates[:steps], failed, n_genres, device,
                 restart_first_user_at=steps - 1)
    if failed or len(mixed) < steps:
        problems.raised(f"restarting one user with reset(n_users, seed=tensor([s]), users=tensor([0])) failed: "
                        f"{failed[-1] if failed else 'a response broke the contract'}", failed.error)
        return
    field = _first_difference(mixed[-1], first[steps - 1], slice(1, None), slice(1, None))
    if field:
        problems.append(f"restarting user 0 with reset(..., users=[0]) changed the responses of the other users "
                        f"(`{field}`); a partial reset must leave other slots untouched")


def _check_rejects(simulator, n_users, slate, n_items, problems) -> None:
    """A slate with an item outside the catalog, or with a repeated item, raises ValueError;
    each probe is an otherwise valid slate, so only the one fault can be refused."""
    outside, repeated = slate.clone(), slate.clone()
    outside[0, 0] = n_items
    probes = [(outside, f"item {n_items} (outside the catalog of {n_items} items)")]
    if slate.shape[1] > 1:
        repeated[0, 1] = repeated[0, 0]
        probes.append((repeated, f"a slate that repeats item {int(slate[0, 0])}"))
    for bad, what in probes:
        try:
            simulator.reset(n_users, seed=0)
            simulator.respond(bad.to(simulator.device))
        except ValueError:
            continue
        except Exception as err:
            problems.raised(f"respond() with {what} raised {type(err).__name__}; "
                            "raise ValueError naming the bad entry (recoworld.validation.check_slates does)", err)
            continue
        problems.append(f"respond() accepted {what}; validate slates with recoworld.validation.check_slates")
