"""dumps_indent2 writes exactly what json.dumps(indent=2) writes."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from planner.jsontext import dumps_indent2

_leaves = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(),
                    st.sampled_from(["é", "\u2028", "\x00", '"\\', "😀"]))
_values = st.recursive(_leaves, lambda kids: st.one_of(
    st.lists(kids, max_size=4), st.tuples(kids, kids),
    st.dictionaries(st.text(max_size=5), kids, max_size=4)), max_leaves=30)


@settings(max_examples=400, deadline=None)
@given(_values)
def test_same_text_as_json_dumps(value: Any) -> None:
    assert dumps_indent2(value) == json.dumps(value, indent=2)


def test_odd_values_fall_back_to_json_dumps() -> None:
    import enum

    class E(enum.StrEnum):
        A = "a"

    for value in ({1: "x"}, {"k": E.A}, [math.nan, math.inf], {"n": -math.inf}, [[[]]]):
        assert dumps_indent2(value) == json.dumps(value, indent=2)
