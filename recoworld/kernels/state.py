"""Reading a state object's fields as attributes of its owner."""

from __future__ import annotations

from dataclasses import fields


def expose_fields(owner: type, state_type: type, attribute: str = "state") -> None:
    """Give ``owner`` a read-write property per field of the dataclass ``state_type`` that
    forwards to ``owner.<attribute>.<field>``: ``users.satiation`` is
    ``users.state.satiation``. Fields ``owner`` defines itself are left alone."""
    for field in fields(state_type):
        if field.name not in vars(owner):
            setattr(owner, field.name, _forward(attribute, field.name, state_type.__name__))


def _forward(attribute: str, name: str, kind: str) -> property:
    def read(owner):
        return getattr(getattr(owner, attribute), name)

    def write(owner, value) -> None:
        setattr(getattr(owner, attribute), name, value)

    return property(read, write, doc=f"``{attribute}.{name}`` (see :class:`{kind}`).")
