"""Which of a status's conditions are the operator's, read from managedFields as the API
server records server-side applies, and when two statuses differ enough to write."""

from __future__ import annotations

from datetime import UTC, datetime

from llmagents.api.status import Condition, ConditionStatus, OperatorAgentStatus, Phase
from llmagents.operator.ownership import (
    applied_conditions,
    own_conditions,
    status_applies,
    status_fingerprint,
)

T0 = datetime(2030, 1, 1, tzinfo=UTC)
T1 = datetime(2030, 1, 2, tzinfo=UTC)


def _applied(manager: str, *types: str, subresource: str | None = "status") -> dict:
    """One managedFields entry, in the shape the API server writes it."""
    items = {
        f'k:{{"type":"{t}"}}': {".": {}, "f:lastTransitionTime": {}, "f:message": {},
                                 "f:reason": {}, "f:status": {}, "f:type": {}}
        for t in types
    }  # fmt: skip
    entry = {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": "llmagents.dev/v1alpha1",
        "time": "2030-01-01T00:00:00Z",
        "fieldsType": "FieldsV1",
        "fieldsV1": {"f:status": {"f:conditions": items, "f:phase": {}}},
    }
    if subresource:
        entry["subresource"] = subresource
    return entry


MANAGED = [
    {"manager": "kubectl-client-side-apply", "operation": "Update",
     "fieldsV1": {"f:spec": {"f:poolRef": {}}}},
    _applied("llmagents-operator", "Ready", "PriceUnknown"),
    _applied("llmagents-runner", "CheckpointTooLarge"),
    # The operator's apply of the object itself (not its status) and a merge patch of the
    # status by the same manager are not what its status applies set.
    _applied("llmagents-operator", "FromMainResource", subresource=None),
    {**_applied("llmagents-operator", "FromAPatch"), "operation": "Update"},
]  # fmt: skip


def _cond(
    type_: str, status: ConditionStatus = ConditionStatus.TRUE, at: datetime = T0
) -> Condition:
    return Condition(type=type_, status=status, reason="Because", last_transition_time=at)


def test_the_operator_owns_the_conditions_its_status_applies_set_and_no_others():
    assert applied_conditions(MANAGED, "llmagents-operator") == {"Ready", "PriceUnknown"}
    assert applied_conditions(MANAGED, "llmagents-runner") == {"CheckpointTooLarge"}
    assert applied_conditions(MANAGED, "someone-else") == frozenset()


def test_ownership_is_unknown_without_managed_fields_and_all_live_conditions_then_count():
    live = [_cond("Ready"), _cond("CheckpointTooLarge")]
    assert applied_conditions(None, "llmagents-operator") is None
    assert own_conditions(live, None) == live


def test_the_runner_s_conditions_are_left_out_of_the_operator_s_share():
    live = [_cond("Ready"), _cond("CheckpointTooLarge"), _cond("PriceUnknown")]
    assert [c.type for c in own_conditions(live, MANAGED) or []] == ["Ready", "PriceUnknown"]


def test_what_is_kept_of_managed_fields_tells_the_operator_s_conditions_as_the_whole_did():
    slim = status_applies(MANAGED)
    assert applied_conditions(slim, "llmagents-operator") == {"Ready", "PriceUnknown"}
    assert applied_conditions(slim, "llmagents-runner") == frozenset()  # not kept
    assert status_applies(None) is None
    assert applied_conditions(status_applies([]), "llmagents-operator") == frozenset()
    assert len(str(slim)) < len(str(MANAGED)) / 2


def test_a_malformed_entry_key_is_skipped_not_fatal():
    entry = _applied("llmagents-operator", "Ready")
    entry["fieldsV1"]["f:status"]["f:conditions"].update({"k:{not json": {}, "k:[1]": {}})
    assert applied_conditions([entry], "llmagents-operator") == {"Ready"}


def test_statuses_differing_only_in_transition_times_or_condition_order_are_the_same():
    a = OperatorAgentStatus(phase=Phase.RUNNING, conditions=[_cond("Ready"), _cond("Zeta")])
    b = OperatorAgentStatus(phase=Phase.RUNNING, conditions=[_cond("Zeta", at=T1), _cond("Ready")])
    assert status_fingerprint(a) == status_fingerprint(b)
    c = OperatorAgentStatus(
        phase=Phase.RUNNING, conditions=[_cond("Ready", ConditionStatus.FALSE), _cond("Zeta")]
    )
    assert status_fingerprint(a) != status_fingerprint(c)
