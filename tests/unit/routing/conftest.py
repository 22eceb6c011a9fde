from __future__ import annotations

import pytest

from .helpers import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    """Time that moves only when the test or the engine's (fake) sleep moves it."""
    return FakeClock()
