"""The one ladder of delays of the background loops."""

from __future__ import annotations

import pytest

from llmagents.retrying import Backoff


@pytest.mark.parametrize(
    ("first", "cap", "delays"),
    [
        (1.0, 60.0, [1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 60.0]),
        (0.5, 10.0, [0.5, 1.0, 2.0, 5.0, 10.0, 10.0]),
        (1.0, 15.0, [1.0, 2.0, 5.0, 10.0, 15.0, 15.0]),
        (0.01, 0.01, [0.01, 0.01]),
    ],
)
def test_a_loop_climbs_the_ladder_from_its_first_step_to_its_cap(first, cap, delays) -> None:
    backoff = Backoff(first, cap)
    assert [backoff.delay(n) for n in range(len(delays))] == delays


def test_a_first_step_above_the_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="first"):
        Backoff(first=5.0, cap=1.0)
