"""Default policies: given state, when adopting/setting, then events."""

from __future__ import annotations

import uuid

from services.credit.domain import account as accounts
from services.credit.domain.defaults import (
    DefaultPolicy,
    adopt_default,
    evolve_default,
    set_default_policy,
)
from shared.contracts.credit import CreditDefaultPolicySet, CreditLimitChanged, CreditPolicyUpdated
from shared.money import Money

EUR = Money.of_minor(50_000, "EUR")
DEFAULT = DefaultPolicy(segment=None, limit=EUR, max_days_overdue=30, allowed_terms=(), version=1)


def test_a_new_account_takes_limit_and_policy_attributed_to_the_default() -> None:
    events = adopt_default(accounts.CreditAccountState(customer_id="c1"), DEFAULT)
    assert [type(e) for e in events] == [CreditLimitChanged, CreditPolicyUpdated]
    limit = events[0]
    assert isinstance(limit, CreditLimitChanged)
    assert (limit.limit, limit.changed_by, limit.reason) == (
        EUR,
        "system:credit-defaults",
        "default policy (tenant)",
    )
    state = accounts.replay(events)
    assert state is not None and state.max_days_overdue == 30


def test_an_existing_account_keeps_its_policy_and_its_own_limit_wins() -> None:
    with_policy = accounts.replay(
        accounts.update_policy(
            accounts.CreditAccountState(customer_id="c1"), max_days_overdue=90, segment="retail"
        )
    )
    assert with_policy is not None
    events = adopt_default(with_policy, DEFAULT)
    assert [type(e) for e in events] == [CreditLimitChanged]
    own = accounts.replay(
        accounts.change_limit(
            None,
            "c2",
            Money.of_minor(1, "EUR"),
            "x",
            "u",
            request_id=uuid.uuid4(),
            approval_threshold=None,
        )
    )
    assert own is not None and adopt_default(own, DEFAULT) == []
    assert adopt_default(accounts.CreditAccountState(customer_id="c3"), None) == []
    no_limit = DefaultPolicy(None, None, 30, ())
    assert adopt_default(accounts.CreditAccountState(customer_id="c3"), no_limit) == []


def test_setting_a_default_twice_the_same_way_changes_nothing() -> None:
    [event] = set_default_policy(None, "enterprise", EUR, 45, ["net"])
    assert isinstance(event, CreditDefaultPolicySet)
    state = evolve_default(None, event)
    assert state.scope == "segment:enterprise" and state.version == 1
    assert set_default_policy(state, "enterprise", EUR, 45, ["net"]) == []
    assert len(set_default_policy(state, "enterprise", EUR, 46, ["net"])) == 1
