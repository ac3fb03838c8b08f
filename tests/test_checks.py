"""The one whole-number check shared by the library and the command line."""

from __future__ import annotations

import math

import numpy as np
import pytest

from jscale._checks import check_whole


@pytest.mark.parametrize(
    "value, expected",
    [
        (1, 1),
        (3, 3),
        (np.int64(7), 7),
        (1e6, 1_000_000),
        ("1e6", 1_000_000),
        ("12", 12),
    ],
)
def test_whole_numbers_are_accepted(value, expected):
    out = check_whole("count", value)
    assert out == expected and type(out) is int


@pytest.mark.parametrize(
    "value", [0, -1, 1.5, True, math.nan, math.inf, "abc", None, "2.5", [1]]
)
def test_everything_else_is_refused_by_name(value):
    with pytest.raises(ValueError, match=r"count must be a whole number >= 1"):
        check_whole("count", value)


def test_minimum():
    assert check_whole("bins", 0, minimum=0) == 0
    with pytest.raises(ValueError, match=">= 2; got 1"):
        check_whole("bins", 1, minimum=2)
