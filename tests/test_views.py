"""ar/views.py: as-of views folded from events the domain itself decides (no database)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pytest

from ar.views import customer_view, invoice_view, jsonable
from services.credit.domain.account import change_limit, place_hold
from services.credit.domain.account import replay as replay_credit
from services.dunning.domain.case import CaseState, pause
from services.invoice.domain.customer import define_terms_template, register_customer
from services.invoice.domain.invoice import (
    Dispute,
    InvoiceStatus,
    apply_payment,
    draft_invoice,
    issue_invoice,
    replay,
)
from services.payments.domain.payment import (
    AllocationRequest,
    InvoiceOpen,
    allocate,
    receive_payment,
)
from services.payments.domain.payment import replay as replay_payment
from shared.contracts.invoice import (
    Address,
    CreditCheckRecord,
    LineItem,
    PaymentTerms,
    TaxRate,
    TermsKind,
)
from shared.events.envelope import EventEnvelope
from shared.events.registry import EventPayload, registry
from shared.money import Money

TENANT = "acme"
CUSTOMER = "c-1"
NET_30 = PaymentTerms(kind=TermsKind.NET, net_days=30)
CHECK = CreditCheckRecord(outcome="passed", check_id="chk-1")
VAT20 = TaxRate(code="VAT20", percent=Decimal(20))
#: 4 x 25.00 + 20% VAT = 120.00
FOUR_HOURS = [LineItem(description="Hour", quantity=Decimal(4), unit_price=2500, taxes=[VAT20])]
#: 1 x 50.00 + 20% VAT = 60.00
ONE_DAY = [LineItem(description="Day", quantity=Decimal(1), unit_price=5000, taxes=[VAT20])]

INV_A = uuid.UUID(int=0xA)
INV_B = uuid.UUID(int=0xB)
INV_C = uuid.UUID(int=0xC)
PAY_1 = uuid.UUID(int=0x1)
PAY_2 = uuid.UUID(int=0x2)
ALLOC_1 = uuid.UUID(int=0x11)
ALLOC_2 = uuid.UUID(int=0x12)
AS_OF = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(day: str, hour: int = 9) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def stream(stream_id: str, facts: Sequence[tuple[datetime, EventPayload]]) -> list[EventEnvelope]:
    """Store-like envelopes: versions 1..n, recorded at the given instants."""
    envelopes = []
    for version, (when, payload) in enumerate(facts, start=1):
        new = registry.new_event(payload)
        envelopes.append(
            EventEnvelope(
                event_id=new.event_id,
                event_type=new.event_type,
                schema_version=new.schema_version,
                stream_id=stream_id,
                stream_version=version,
                occurred_at=when,
                recorded_at=when,
                tenant_id=TENANT,
                customer_id=CUSTOMER,
                actor="user:alice",
                payload=new.payload,
            )
        )
    return envelopes


def cut(envelopes: Sequence[EventEnvelope], instant: datetime) -> list[EventEnvelope]:
    """What the reader returns for `--as-of instant`."""
    return [e for e in envelopes if e.recorded_at <= instant]


def issued(
    invoice_id: uuid.UUID, currency: str, lines: list[LineItem], number: str, on: date
) -> list[EventPayload]:
    drafted = draft_invoice(invoice_id, CUSTOMER, currency, lines, NET_30, "INV")
    state = replay(drafted)
    assert state is not None
    return [*drafted, *issue_invoice(state, number, on, CHECK)]


def applied(
    events: list[EventPayload], allocation: uuid.UUID, amount: Money, on: date
) -> list[EventPayload]:
    state = replay(events)
    assert state is not None
    return apply_payment(state, allocation, PAY_1, amount, on)


def money(amount: int, currency: str = "EUR") -> dict[str, Any]:
    return {"amount": amount, "currency": currency}


# ------------------------------------------------------------------------------ invoice


def invoice_a() -> list[EventEnvelope]:
    """120.00 EUR issued 2026-01-05 (due 2026-02-04), 50.00 applied on 2026-02-25."""
    drafted, issue = issued(INV_A, "EUR", FOUR_HOURS, "INV-1", date(2026, 1, 5))
    [payment] = applied([drafted, issue], ALLOC_1, Money.of_minor(5000, "EUR"), date(2026, 2, 25))
    return stream(
        f"invoice-{INV_A}",
        [(at("2026-01-05"), drafted), (at("2026-01-05", 10), issue), (at("2026-02-25"), payment)],
    )


def test_invoice_partly_paid_has_the_rest_open() -> None:
    view = invoice_view(cut(invoice_a(), AS_OF))

    assert view["stream_id"] == f"invoice-{INV_A}"
    assert (view["version"], view["events"]) == (3, 3)
    assert view["last_event"] == {
        "event_type": "PaymentApplied",
        "stream_version": 3,
        "recorded_at": "2026-02-25T09:00:00+00:00",
        "actor": "user:alice",
    }
    summary = view["summary"]
    assert summary["status"] == "partially_paid"
    assert summary["number"] == "INV-1"
    assert (summary["issue_date"], summary["due_date"]) == ("2026-01-05", "2026-02-04")
    assert summary["total"] == money(12000)
    assert summary["paid"] == money(5000)
    assert summary["open_amount"] == money(7000)
    assert summary["installments"] == [{"due_date": "2026-02-04", "amount": money(12000)}]
    assert view["state"]["payments"] == {str(ALLOC_1): money(5000)}
    assert view["state"]["status"] == "partially_paid"


def test_an_earlier_instant_gives_the_earlier_state() -> None:
    before_payment = invoice_view(cut(invoice_a(), at("2026-02-01")))
    assert before_payment["version"] == 2
    assert before_payment["last_event"]["event_type"] == "InvoiceIssued"
    assert before_payment["summary"]["status"] == "issued"
    assert before_payment["summary"]["open_amount"] == money(12000)
    assert before_payment["state"]["payments"] == {}

    draft = invoice_view(cut(invoice_a(), at("2026-01-05", 9)))
    assert draft["version"] == 1
    assert draft["summary"]["status"] == "draft"
    assert draft["summary"]["number"] is None
    assert draft["summary"]["open_amount"] == money(0)


def test_invoice_view_refuses_what_is_not_one_whole_prefix_of_a_stream() -> None:
    envelopes = invoice_a()
    with pytest.raises(ValueError, match="did not exist"):
        invoice_view([])
    with pytest.raises(ValueError, match=r"versions \[1, 3\]"):
        invoice_view([envelopes[0], envelopes[2]])
    payment = stream(f"payment-{PAY_1}", [(at("2026-02-25"), received(PAY_1, 5000))])
    with pytest.raises(ValueError, match="not an invoice stream"):
        invoice_view(payment)


# ----------------------------------------------------------------------------- customer


def received(payment_id: uuid.UUID, amount: int) -> EventPayload:
    [event] = receive_payment(
        payment_id=payment_id,
        customer_id=CUSTOMER,
        amount=Money.of_minor(amount, "EUR"),
        method="bank_transfer",
        received_on=date(2026, 2, 25),
    )
    return event


def customer_streams() -> dict[str, list[EventEnvelope]]:
    """c-1 as the store holds it; a few events are recorded after AS_OF."""
    address = Address(line1="1 Main St", city="Berlin", postal_code="10115", country="DE")
    [registered] = register_customer(None, CUSTOMER, "Acme", "ap@acme.example", "EUR", address)

    # A: 120.00 EUR due 2026-02-04, 20.00 applied before AS_OF, 30.00 after it.
    a_events = issued(INV_A, "EUR", FOUR_HOURS, "INV-1", date(2026, 1, 5))
    first = applied(a_events, ALLOC_1, Money.of_minor(2000, "EUR"), date(2026, 2, 25))
    later = applied([*a_events, *first], ALLOC_2, Money.of_minor(3000, "EUR"), date(2026, 3, 2))
    # B: 60.00 USD due 2026-03-22. C: an EUR draft.
    b_events = issued(INV_B, "USD", ONE_DAY, "INV-2", date(2026, 2, 20))
    c_events = draft_invoice(INV_C, CUSTOMER, "EUR", ONE_DAY, NET_30, "INV")

    # P1: 50.00 EUR, 20.00 of it allocated to A. P2 arrives after AS_OF.
    p1 = [received(PAY_1, 5000)]
    p1_state = replay_payment(p1)
    assert p1_state is not None
    open_a = InvoiceOpen(INV_A, CUSTOMER, Money.of_minor(12000, "EUR"))
    request = AllocationRequest(INV_A, Money.of_minor(2000, "EUR"), allocation_id=ALLOC_1)
    p1 += allocate(p1_state, [request], {INV_A: open_a}, on=date(2026, 2, 25))

    limit = change_limit(
        None,
        CUSTOMER,
        Money.of_minor(500000, "EUR"),
        "onboarding",
        "user:bob",
        request_id=uuid.UUID(int=0x51),
        approval_threshold=None,
    )
    account = replay_credit(limit)
    assert account is not None
    hold = place_hold(account, uuid.UUID(int=0x52), "manual", "awaiting documents", "user:carol")
    paused = pause(
        CaseState(CUSTOMER),
        uuid.UUID(int=0x53),
        "promised by phone",
        date(2026, 2, 26),
        invoice_id=INV_A,
    )
    template = define_terms_template(None, uuid.UUID(int=0x54), "Net 30", NET_30)

    def one_by_one(events: list[EventPayload], day: str) -> list[tuple[datetime, EventPayload]]:
        return [(at(day, 9 + i), e) for i, e in enumerate(events)]

    facts: dict[str, list[tuple[datetime, EventPayload]]] = {
        f"customer-{TENANT}:{CUSTOMER}": [(at("2026-01-02"), registered)],
        f"invoice-{INV_A}": [
            *one_by_one(a_events, "2026-01-05"),
            (at("2026-02-25"), first[0]),
            (at("2026-03-02"), later[0]),
        ],
        f"invoice-{INV_B}": one_by_one(b_events, "2026-02-20"),
        f"invoice-{INV_C}": one_by_one(c_events, "2026-02-27"),
        f"payment-{PAY_1}": one_by_one(p1, "2026-02-25"),
        f"payment-{PAY_2}": [(at("2026-03-02"), received(PAY_2, 9900))],
        f"credit_account-{TENANT}:{CUSTOMER}": [
            (at("2026-01-02"), limit[0]),
            (at("2026-02-10"), hold[0]),
        ],
        f"dunning_case-{TENANT}:{CUSTOMER}": [(at("2026-02-26"), paused[0])],
        f"terms_template-{uuid.UUID(int=0x54)}": [(at("2026-01-01"), template[0])],
    }
    return {sid: stream(sid, events) for sid, events in facts.items()}


def view_at(instant: datetime, extra: dict[str, list[EventEnvelope]] | None = None) -> Any:
    streams = {**customer_streams(), **(extra or {})}
    return customer_view(CUSTOMER, {s: cut(e, instant) for s, e in streams.items()}, instant)


def test_customer_totals_per_currency_at_the_instant() -> None:
    view = view_at(AS_OF)

    assert view["totals"] == {
        # A only (C is a draft); 120.00 - 20.00 applied; A was due 2026-02-04.
        "EUR": {
            "invoiced": money(12000),
            "open": money(10000),
            "overdue": money(10000),
            "unapplied_cash": money(3000),
        },
        # B is not due until 2026-03-22.
        "USD": {
            "invoiced": money(6000, "USD"),
            "open": money(6000, "USD"),
            "overdue": money(0, "USD"),
            "unapplied_cash": money(0, "USD"),
        },
    }
    assert [(i["number"], i["status"], i["overdue"]) for i in view["invoices"]] == [
        ("INV-1", "partially_paid", True),
        ("INV-2", "issued", False),
        (None, "draft", False),
    ]
    assert view["invoices"][0]["open_amount"] == money(10000)


def test_customer_payments_credit_and_dunning_sections() -> None:
    view = view_at(AS_OF)

    assert view["customer"]["name"] == "Acme"
    assert view["customer"]["billing_address"]["city"] == "Berlin"
    assert view["payments"] == [
        {
            "payment_id": str(PAY_1),
            "received_on": "2026-02-25",
            "method": "bank_transfer",
            "reference": None,
            "amount": money(5000),
            "applied": money(2000),
            "unapplied": money(3000),
            "refunded": money(0),
            "reversed": money(0),
            "status": "partially_applied",
        }
    ]  # P2 was recorded after the instant
    credit = view["credit"]
    assert credit["limit"] == money(500000)
    assert credit["reserved"] == money(0)
    assert credit["on_hold"] is True
    assert credit["holds"] == {
        str(uuid.UUID(int=0x52)): {
            "kind": "manual",
            "rule": None,
            "reason": "awaiting documents",
            "placed_by": "user:carol",
        }
    }
    dunning = view["dunning"]
    assert dunning["customer_paused"] is False
    assert dunning["pauses"] == {
        str(uuid.UUID(int=0x53)): {
            "invoice_id": str(INV_A),
            "until": None,
            "reason": "promised by phone",
        }
    }
    assert view["other_streams"] == {f"terms_template-{uuid.UUID(int=0x54)}": 1}


def test_overdue_starts_the_day_after_the_due_date() -> None:
    on_due_date = view_at(at("2026-02-04", 23))["totals"]["EUR"]
    day_after = view_at(at("2026-02-05", 0))["totals"]["EUR"]

    assert on_due_date["overdue"] == money(0)
    assert on_due_date["open"] == money(12000)
    assert day_after["overdue"] == money(12000)  # nothing paid before 2026-02-25
    assert day_after["unapplied_cash"] == money(0)


def test_earlier_instant_leaves_out_what_came_later() -> None:
    view = view_at(at("2026-01-03"))

    assert view["customer"]["customer_id"] == CUSTOMER
    assert view["invoices"] == []
    assert view["payments"] == []
    assert view["credit"]["on_hold"] is False
    assert view["dunning"] is None
    assert view["totals"] == {}


def test_unknown_aggregates_are_counted_not_decoded() -> None:
    widget = [
        EventEnvelope(
            event_id=uuid.UUID(int=i),
            event_type="WidgetMade",  # unknown to the registry: decoding it would raise
            schema_version=1,
            stream_id="widget-w1",
            stream_version=i,
            occurred_at=at("2026-02-01"),
            recorded_at=at("2026-02-01"),
            tenant_id=TENANT,
            actor="system:test",
            payload={"size": i},
        )
        for i in (1, 2)
    ]
    view = view_at(AS_OF, {"widget-w1": widget})

    assert view["other_streams"] == {
        f"terms_template-{uuid.UUID(int=0x54)}": 1,
        "widget-w1": 2,
    }


def test_another_customers_stream_is_refused() -> None:
    streams = customer_streams()
    foreign = {
        f"dunning_case-{TENANT}:c-2": [
            e.model_copy(update={"stream_id": f"dunning_case-{TENANT}:c-2"})
            for e in streams[f"dunning_case-{TENANT}:{CUSTOMER}"]
        ]
    }
    with pytest.raises(ValueError, match="belongs to customer c-2"):
        customer_view(CUSTOMER, foreign, AS_OF)
    with pytest.raises(ValueError, match="timezone-aware"):
        customer_view(CUSTOMER, {}, datetime(2026, 3, 1, 12))


# ------------------------------------------------------------------------------- jsonable


def test_jsonable_converts_domain_values_deterministically() -> None:
    dispute = Dispute(
        dispute_id=uuid.UUID(int=7),
        amount=Money.of_minor(1250, "KWD"),
        reason="damaged",
        opened_on=date(2026, 2, 3),
    )
    value = {
        "money": Money.of_minor(-5, "JPY"),
        "rate": Decimal("2.50"),
        "big": Decimal("1E+2"),
        "day": date(2026, 3, 1),
        "at": datetime(2026, 3, 1, 12, 30, tzinfo=UTC),
        "status": InvoiceStatus.WRITTEN_OFF,
        "ids": frozenset({uuid.UUID(int=2), uuid.UUID(int=1)}),
        "mixed": {2, "1"},
        "done": frozenset({(uuid.UUID(int=1), "s2"), (uuid.UUID(int=1), "s1")}),
        "by_id": {uuid.UUID(int=7): dispute},
        "pair": (1, None),
    }

    assert jsonable(value) == {
        "money": {"amount": -5, "currency": "JPY"},
        "rate": "2.50",
        "big": "100",
        "day": "2026-03-01",
        "at": "2026-03-01T12:30:00+00:00",
        "status": "written_off",
        "ids": [str(uuid.UUID(int=1)), str(uuid.UUID(int=2))],
        "mixed": ["1", 2],  # by JSON text: '"1"' < '2'
        "done": [[str(uuid.UUID(int=1)), "s1"], [str(uuid.UUID(int=1)), "s2"]],
        "by_id": {
            str(uuid.UUID(int=7)): {
                "dispute_id": str(uuid.UUID(int=7)),
                "amount": {"amount": 1250, "currency": "KWD"},
                "reason": "damaged",
                "opened_on": "2026-02-03",
                "status": "open",
                "resolved_on": None,
                "resolution_note": None,
                "credit_note_id": None,
            }
        },
        "pair": [1, None],
    }
    with pytest.raises(TypeError, match="no JSON form for object"):
        jsonable({"x": object()})
