"""Hypothesis strategies read off construct definitions: one field value per leaf.

The walker turns a ``cs.Struct`` into a strategy of the dict its ``build``
takes. Integer fields draw boundary values (0, 1, the middle, the maximum and
its neighbours) as often as random ones; fields wrapped in ``cs.Default`` are
left out so the definition computes them (the true count or length), since a
lying count is a mutation, not a valid message; arrays and repeated structs
draw lists whose size the caller bounds per field name; a ``cs.Switch`` is
left to the caller, who knows which key to pick. Any protocol whose
definitions use these building blocks gets valid-message strategies for free;
``overrides`` give a field a strategy of its own (a quantity limit of the
standard, an enum).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import construct as cs
from hypothesis import strategies as st

# Sizes a list draws when the caller names no bound: small, since each element
# costs bytes and a message has a size limit.
DEFAULT_LIST_MAX = 4


@lru_cache(maxsize=None)
def boundary_integers(bits: int, low: int = 0, high: int | None = None):
    """Integers in [low, high] with the interesting ones drawn often."""
    top = (1 << bits) - 1 if high is None else high
    edges = sorted(
        value
        for value in {low, low + 1, (low + top) // 2, top - 1, top}
        if low <= value <= top
    )
    return st.one_of(st.sampled_from(edges), st.integers(low, top))


def _unwrap(con: cs.Construct) -> cs.Construct:
    while isinstance(con, cs.Renamed):
        con = con.subcon
    return con


def field_strategy(
    con: cs.Construct,
    name: str = "",
    overrides: dict[str, Any] | None = None,
    list_max: dict[str, int] | None = None,
):
    """A strategy for one construct's build value, or None to leave the field out."""
    overrides = overrides or {}
    list_max = list_max or {}
    if name in overrides:
        return overrides[name]
    con = _unwrap(con)
    if isinstance(con, (cs.Default, cs.Const)):
        return None  # computed by the definition, or fixed by the standard
    if isinstance(con, cs.FormatField) and con.fmtstr[-1] in "BHILQ":
        return boundary_integers(8 * con.length)
    if isinstance(con, cs.FormatField) and con.fmtstr[-1] in "bhilq":
        half = 1 << (8 * con.length - 1)
        return st.integers(-half, half - 1)
    if isinstance(con, cs.StringEncoded):
        return st.text(
            st.characters(min_codepoint=0x20, max_codepoint=0x7E),
            max_size=list_max.get(name, 16),
        )
    if isinstance(con, cs.Array):
        element = field_strategy(con.subcon, "", overrides, list_max)
        return st.lists(element, max_size=list_max.get(name, DEFAULT_LIST_MAX))
    if isinstance(con, (cs.FixedSized, cs.Prefixed)) and isinstance(
        _unwrap(con.subcon), cs.GreedyRange
    ):
        element = field_strategy(_unwrap(con.subcon).subcon, "", overrides, list_max)
        return st.lists(element, max_size=list_max.get(name, DEFAULT_LIST_MAX))
    if isinstance(con, cs.Struct):
        return struct_strategy(con, overrides, list_max)
    if isinstance(con, cs.Adapter):
        inner = _unwrap(con.subcon)
        # Adapters over a byte string (hex text, packed bits): draw the
        # adapted value's natural form.
        if name in ("bits",) or type(con).__name__ == "CoilBits":
            return st.lists(
                st.integers(0, 1), max_size=list_max.get(name, 8 * DEFAULT_LIST_MAX)
            )
        if isinstance(inner, (cs.Bytes, type(cs.GreedyBytes))):
            return st.binary(max_size=list_max.get(name, 8))
        return field_strategy(inner, name, overrides, list_max)
    if isinstance(con, cs.Bytes) and isinstance(con.length, int):
        return st.binary(min_size=con.length, max_size=con.length)
    if con is cs.GreedyBytes or isinstance(con, (cs.Bytes, type(cs.GreedyBytes))):
        return st.binary(max_size=list_max.get(name, 8))
    raise TypeError(f"no strategy for {type(con).__name__} field {name!r}")


def struct_strategy(
    struct: cs.Struct,
    overrides: dict[str, Any] | None = None,
    list_max: dict[str, int] | None = None,
):
    """A strategy of build dicts for ``struct``, one entry per field it needs.

    Raises
    ------
    TypeError
        a field is of a kind the walker does not know; give it an override.
    """
    parts = {}
    for sub in struct.subcons:
        if not sub.name:
            continue
        strategy = field_strategy(sub, sub.name, overrides, list_max)
        if strategy is not None:
            parts[sub.name] = strategy
    return st.fixed_dictionaries(parts)
