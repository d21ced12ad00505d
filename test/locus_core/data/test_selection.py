from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from locus_core.data import SelectionError, parse_frames
from locus_core.data.selection import describe, select


def test_parse() -> None:
    assert parse_frames("600:1000:10") == slice(600, 1000, 10)
    assert parse_frames(":100") == slice(None, 100, None)
    assert parse_frames("::5") == slice(None, None, 5)


@pytest.mark.parametrize(("spec", "message"), [("1", "START:STOP"), ("a:b", "integers"),
                                                ("0:10:0", "STEP must be positive"), ("-5:", "never negative")])
def test_parse_errors(spec: str, message: str) -> None:
    with pytest.raises(SelectionError, match=message):
        parse_frames(spec)


@given(st.lists(st.integers(0, 300), unique=True, min_size=1).map(sorted),
       st.integers(0, 300), st.integers(0, 300), st.integers(1, 7))
def test_select_matches_slice_on_values(indices: list[int], start: int, stop: int, step: int) -> None:
    expected = [p for p, i in enumerate(indices) if i in range(start, stop, step)]
    if expected:
        assert select(indices, f"{start}:{stop}:{step}") == expected
    else:
        with pytest.raises(SelectionError, match="select nothing"):
            select(indices, f"{start}:{stop}:{step}")


def test_empty_source() -> None:
    with pytest.raises(SelectionError, match="seq: no frames found"):
        select([], None, source="seq")


@given(st.lists(st.integers(0, 300), unique=True, min_size=1).map(sorted),
       st.integers(0, 300), st.integers(0, 300), st.integers(1, 7))
def test_a_selection_is_described_as_one_that_picks_it_again(indices: list[int], start: int, stop: int, step: int) -> None:
    picked = [i for i in indices if i in range(start, stop, step)]
    if len(picked) >= 2 and len({b - a for a, b in zip(picked, picked[1:])}) == 1:
        assert [indices[p] for p in select(indices, describe(picked))] == picked
    elif len(picked) > 2 and len({b - a for a, b in zip(picked, picked[1:])}) > 1:
        assert describe(picked) == f"{picked[0]}..{picked[-1]}"  # not a selection: no slice picks them
    assert describe([0, 4, 8]) == "0:9:4" and describe([3]) == "3:4" and describe([]) == ""
