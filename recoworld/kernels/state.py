"""Reading a state object's fields as attributes of its owner."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

import torch


def expose_fields(owner: type, state_type: type, attribute: str = "state") -> None:
    """Give ``owner`` a read-write property per field of the dataclass ``state_type`` that
    forwards to ``owner.<attribute>.<field>``: ``users.satiation`` is
    ``users.state.satiation``. Fields ``owner`` defines itself are left alone.

    Assigning a field copies the value into the tensor the state holds (see
    :func:`copy_into`), so that the state keeps its dtypes and shapes, which the C kernels
    read as raw memory: ``users.satisfaction = x`` is ``users.satisfaction.copy_(x)``,
    checked."""
    for field in fields(state_type):
        if field.name not in vars(owner):
            setattr(owner, field.name, _forward(attribute, field.name, state_type.__name__))


def _forward(attribute: str, name: str, kind: str) -> property:
    def read(owner):
        return getattr(getattr(owner, attribute), name)

    def write(owner, value) -> None:
        state = getattr(owner, attribute)
        current = getattr(state, name)
        if isinstance(current, torch.Tensor):
            copy_into(name, current, value)
        elif is_dataclass(current) and isinstance(value, type(current)):  # a group of tensors (an Instruction)
            parts = [(f"{name}.{f.name}", getattr(current, f.name), getattr(value, f.name)) for f in fields(current)]
            checked = [(part, target, _checked(part, target, given)) for part, target, given in parts]
            for _, target, given in checked:  # every part checked first: nothing half-assigned
                target.copy_(given)
        else:
            setattr(state, name, value)

    return property(read, write, doc=f"``{attribute}.{name}`` (see :class:`{kind}`).")


def copy_into(name: str, target: torch.Tensor, value) -> None:
    """Copy ``value`` (a tensor, array or nested list) into the state's tensor ``target``
    (named ``name`` in errors), in place: of the same shape, and of a dtype that converts
    without loss (bool into bool; integers into integer fields whose range holds them, or
    into float fields that hold them exactly; floats into float fields, rounded to their
    precision). Anything else raises ``ValueError`` naming the field, what was given and
    what it holds: swapping in a tensor of another dtype or shape would have the C kernels
    read and write its memory as the state's (garbage, and writes past its end)."""
    target.copy_(_checked(name, target, value))


def _checked(name: str, target: torch.Tensor, value) -> torch.Tensor:
    """``value`` as a tensor that :func:`copy_into` may copy into ``target``."""
    value = torch.as_tensor(value)
    holds = f"{name} holds {target.dtype} of shape {tuple(target.shape)}"
    if value.shape != target.shape:
        raise ValueError(f"{holds}; got shape {tuple(value.shape)}: assign one of the same shape, or fill it in "
                         f"place ({name}[:] = value)")
    if not _lossless(value, target.dtype):
        raise ValueError(f"{holds}; got {value.dtype}, which does not convert to it without loss: pass "
                         f"{target.dtype} values (e.g. value.to({target.dtype}))")
    return value


def _lossless(value: torch.Tensor, dtype: torch.dtype) -> bool:
    """Whether ``value`` converts to ``dtype`` without loss (:func:`copy_into`'s rule)."""
    if value.dtype == dtype:
        return True
    if dtype == torch.bool or value.dtype == torch.bool or value.dtype.is_complex:
        return False  # a mask is not a count, nor a count a mask
    if value.dtype.is_floating_point:
        return dtype.is_floating_point  # rounded to the field's precision, as any write into it is
    return bool((value.to(dtype).to(value.dtype) == value).all())  # integers the field holds exactly
