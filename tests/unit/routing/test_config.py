"""Invalid pools and budgets fail validation with an error that names the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from llmagents.api.pool import ProviderPoolSpec
from llmagents.api.work import BudgetSpec

from .helpers import provider

ONE = [provider("a")]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"providers": ONE, "strategy": "fastest-first"}, "strategy"),
        ({"providers": [provider("a", pricing={"inputPerMillion": -1})]}, "inputPerMillion"),
        ({"providers": [provider("a", pricing={"outputPerMillion": -0.5})]}, "outputPerMillion"),
        ({"providers": ONE, "circuitBreaker": {"maxFailures": 0}}, "maxFailures"),
        ({"providers": []}, "providers"),
        ({"providers": [provider("a"), provider("a")]}, "providers"),
        ({"providers": [provider("a", maxRetries=-1)]}, "maxRetries"),
        ({"providers": ONE, "retry": {"backoff": "fibonacci"}}, "backoff"),
    ],
)
def test_invalid_pool_configuration_names_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ProviderPoolSpec.model_validate(spec)
    (error,) = caught.value.errors()
    assert field in error["loc"] or field in error["msg"]


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"limit": -1}, "limit"),
        ({"limit": 5, "period": "weekly"}, "period"),
        ({"limit": 5, "onExhausted": "panic"}, "onExhausted"),
    ],
)
def test_invalid_budget_names_the_field(spec: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        BudgetSpec.model_validate(spec)
    (error,) = caught.value.errors()
    assert field in error["loc"]


def test_public_api_is_sorted_and_importable() -> None:
    from llmagents import routing

    assert routing.__all__ == sorted(routing.__all__)
    for name in routing.__all__:
        assert getattr(routing, name) is not None
