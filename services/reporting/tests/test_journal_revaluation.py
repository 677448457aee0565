"""Period-end revaluation against the real reporting schema: the application function (entries,
reversal, idempotency, a later payment realizing FX as without it, the reports and exports),
``POST /v1/ledger/revaluations`` (scopes, validation, missing rate, tenant isolation) and
``ar ledger revalue``."""

from __future__ import annotations

import asyncio
import uuid
from datetime import date
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from typer.testing import CliRunner, Result

from ar.main import app as cli
from services.reporting.application.ledger import reconciliation, render_export, trial_balance
from services.reporting.application.revaluation import (
    MissingRevaluationRate,
    RevaluationRun,
    revalue,
)
from services.reporting.tests.conftest import auth
from services.reporting.tests.journal_helpers import (
    JournalLedger,
    T,
    assert_journal_balanced,
    day,
)
from services.reporting.tests.test_ledger_exports import bean_check
from services.reporting.tests.test_postings import allocation, issued, received

pytestmark = pytest.mark.integration

PERIOD_END = day(26)  # 2026-01-31
NEXT = day(27)
AR, GAIN, LOSS = (
    "Assets:AccountsReceivable",
    "Income:FX:UnrealizedGain",
    "Expenses:FX:UnrealizedLoss",
)


@pytest.fixture
def journal_ledger(
    reporting_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> JournalLedger:
    return JournalLedger(reporting_sessions, tenant)


async def open_usd_items(ledger: JournalLedger) -> dict[str, uuid.UUID]:
    """EUR functional; a USD invoice (1000.00 at 0.90) and unapplied USD cash of another
    customer (500.00 at 0.90); USD is 0.95 at the period end and 0.93 from day 36."""
    await ledger.functional("EUR")
    await ledger.rates(
        ("USD", "EUR", day(0), "0.9000"),
        ("USD", "EUR", PERIOD_END, "0.9500"),
        ("USD", "EUR", day(36), "0.9300"),
    )
    invoice = issued("globex", 100000, 0, "USD", day(0), "INV-FX-1")
    cash = received(50000, "USD", "hooli", day(1))
    await ledger.deliver(
        ledger.invoice_event(invoice), ledger.payment_event(cash.payment_id, cash, "hooli")
    )
    return {"invoice": invoice.invoice_id, "payment": cash.payment_id}


async def run(sessions: async_sessionmaker[AsyncSession], tenant: str, on: date) -> RevaluationRun:
    async with sessions() as session, session.begin():
        return await revalue(session, T, tenant, on)


async def count(sessions: async_sessionmaker[AsyncSession], tenant: str) -> int:
    async with sessions() as session:
        found = await session.scalar(
            text(f"SELECT COUNT(*) FROM {T.entries} WHERE tenant_id = :t"), {"t": tenant}
        )
    return int(found or 0)


def functional_balance(report: dict[str, object], account: str) -> int:
    rows = report["accounts"]
    assert isinstance(rows, list)
    return sum(a["functional_balance_minor"] for a in rows if a["account"] == account)


async def test_revaluation_posts_reverses_and_is_idempotent(
    journal_ledger: JournalLedger,
    reporting_sessions: async_sessionmaker[AsyncSession],
    tmp_path: Path,
) -> None:
    tenant = journal_ledger.tenant
    ids = await open_usd_items(journal_ledger)
    first = await run(reporting_sessions, tenant, PERIOD_END)

    assert (first.open_documents, first.already_revalued, len(first.posted)) == (2, 0, 4)
    by_kind = {r.document.kind: r for r in first.revaluations}
    assert by_kind["invoice"].document.document_id == ids["invoice"]
    assert (by_kind["invoice"].difference, by_kind["payment"].difference) == (5000, -2500)
    entries = await assert_journal_balanced(reporting_sessions, tenant)
    assert {e.entry_id for e in entries} >= {e.entry_id for e in first.posted}

    again = await run(reporting_sessions, tenant, PERIOD_END)
    assert (again.posted, again.already_revalued) == ([], 2)
    assert await count(reporting_sessions, tenant) == len(entries)

    async with reporting_sessions() as session:
        at_end = await trial_balance(session, T, tenant, PERIOD_END)
        next_day = await trial_balance(session, T, tenant, NEXT)
        before = await trial_balance(session, T, tenant, day(25))
    assert at_end["balanced"] and next_day["balanced"]
    assert functional_balance(at_end, AR) == 95000
    assert (functional_balance(at_end, GAIN), functional_balance(at_end, LOSS)) == (-5000, 2500)
    assert functional_balance(at_end, "Liabilities:UnappliedCash") == -47500
    assert functional_balance(next_day, AR) == functional_balance(before, AR) == 90000
    assert functional_balance(next_day, GAIN) == functional_balance(next_day, LOSS) == 0

    # a payment after the period realizes FX against the original carrying value (900.00)
    invoice = issued("globex", 100000, 0, "USD", day(0), "INV-FX-1", invoice_id=ids["invoice"])
    cash = received(100000, "USD", "globex", day(40))
    allocated, applied = allocation(cash, invoice, 100000, on=day(40))
    await journal_ledger.deliver(
        journal_ledger.payment_event(cash.payment_id, cash, "globex"),
        journal_ledger.payment_event(cash.payment_id, allocated, "globex"),
        journal_ledger.on_invoice(invoice.invoice_id, applied),
    )
    entries = await assert_journal_balanced(reporting_sessions, tenant)
    [application] = [e for e in entries if e.kind == "applied"]
    assert [(x.account, x.amount, x.functional_amount) for x in application.lines] == [
        ("Assets:CashApplicationClearing", 100000, 93000),
        (AR, -100000, -90000),
        ("Income:FX:RealizedGain", 0, -3000),
    ]
    async with reporting_sessions() as session:
        today = await trial_balance(session, T, tenant, day(60))
        recon = await reconciliation(session, T, tenant, day(60), day(60))
        beancount = await render_export(session, T, tenant, "beancount", 0, 5000)
        xero = await render_export(session, T, tenant, "xero", 0, 5000)
    assert functional_balance(today, AR) == 0 and today["balanced"]
    assert recon["differences"] == 0, recon
    assert beancount.body.count("entry_id:") == len(entries)
    bean_check(tmp_path, beancount.body)
    assert "LL-FXUGAIN" in xero.body and "LL-FXULOSS" in xero.body


async def test_a_missing_rate_refuses_the_whole_run(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = journal_ledger.tenant
    await journal_ledger.functional("EUR")
    await journal_ledger.rates(
        ("USD", "EUR", day(0), "0.9000"),
        ("USD", "EUR", day(20), "0.9400"),
        ("CHF", "EUR", day(0), "1.0700"),  # posts the invoice, too old for the period end
    )
    await journal_ledger.deliver(
        journal_ledger.invoice_event(issued("globex", 100000, 0, "USD", day(0), "INV-FX-3")),
        journal_ledger.invoice_event(issued("initech", 2000, 0, "CHF", day(0), "INV-FX-4")),
    )
    before = await count(reporting_sessions, tenant)
    with pytest.raises(MissingRevaluationRate) as raised:
        await run(reporting_sessions, tenant, PERIOD_END)
    assert raised.value.details == {
        "currencies": ["CHF"],
        "to_currency": "EUR",
        "on_or_before": "2026-01-31",
        "not_before": "2026-01-24",
    }
    assert "CHF->EUR" in raised.value.message and "2026-01-31" in raised.value.message
    assert await count(reporting_sessions, tenant) == before


# ------------------------------------------------------------------------------ REST

PATH = "/v1/ledger/revaluations"


async def test_the_endpoint_posts_once_and_only_for_the_tokens_tenant(
    api: httpx.AsyncClient,
    journal_ledger: JournalLedger,
    reporting_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = journal_ledger.tenant
    ids = await open_usd_items(journal_ledger)
    other = f"{tenant}x"
    response = await api.post(PATH, json={"period_end": "2026-01-31"}, headers=auth(other))
    assert response.status_code == 200, response.text
    assert (response.json()["open_documents"], response.json()["posted"]) == (0, [])
    before = await count(reporting_sessions, tenant)

    response = await api.post(PATH, json={"period_end": "2026-01-31"}, headers=auth(tenant))
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["period_end"], body["reversal_date"]) == ("2026-01-31", "2026-02-01")
    assert (body["functional_currency"], body["rates"]) == ("EUR", {"USD": "0.95"})
    assert [
        (r["document"], r["document_id"], r["account"], r["difference_minor"])
        for r in body["revaluations"]
    ] == [
        ("invoice", str(ids["invoice"]), AR, 5000),
        ("payment", str(ids["payment"]), "Liabilities:UnappliedCash", -2500),
    ]
    assert [(e["kind"], e["date"]) for e in body["posted"]] == [
        ("revaluation", "2026-01-31"),
        ("revaluation_reversal", "2026-02-01"),
    ] * 2
    assert await count(reporting_sessions, tenant) == before + 4
    assert await count(reporting_sessions, other) == 0

    again = await api.post(PATH, json={"period_end": "2026-01-31"}, headers=auth(tenant))
    assert (again.json()["posted"], again.json()["already_revalued"]) == ([], 2)
    feed = (await api.get("/v1/ledger/journal", headers=auth(tenant))).json()
    assert sum(e["kind"].startswith("revaluation") for e in feed["entries"]) == 4
    report = (
        await api.get(
            "/v1/ledger/trial-balance", params={"as_of": "2026-01-31"}, headers=auth(tenant)
        )
    ).json()
    assert report["balanced"] and functional_balance(report, GAIN) == -5000


async def test_the_endpoint_validates_scope_body_and_rates(
    api: httpx.AsyncClient,
    journal_ledger: JournalLedger,
    reporting_sessions: async_sessionmaker[AsyncSession],
) -> None:
    tenant = journal_ledger.tenant
    await open_usd_items(journal_ledger)
    assert (await api.post(PATH, json={"period_end": "2026-01-31"})).status_code == 401
    reader = auth(tenant, ("reporting:read",))
    response = await api.post(PATH, json={"period_end": "2026-01-31"}, headers=reader)
    assert response.status_code == 403
    for body in (
        {"period_end": "2026-01-31", "extra": 1},
        {"period_end": "31/01/2026"},
        {"period_end": "2026-02-30"},
        {},
        {"period_end": "2999-12-31"},
        {"period_end": "2999-01-01"},  # not ended yet
    ):
        response = await api.post(PATH, json=body, headers=auth(tenant))
        assert response.status_code == 422, (body, response.text)

    # USD rates stop in February: months later there is no recent rate
    response = await api.post(PATH, json={"period_end": "2026-10-31"}, headers=auth(tenant))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "missing_rate"
    assert error["details"]["currencies"] == ["USD"]
    assert "USD->EUR" in error["message"] and "2026-10-31" in error["message"]
    entries = await assert_journal_balanced(reporting_sessions, tenant)
    assert not any(e.kind.startswith("revaluation") for e in entries)


# ------------------------------------------------------------------------------- CLI


async def ar(*args: str) -> Result:
    """Run `ar …` in its own event loop, in a thread."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def test_ar_ledger_revalue(
    journal_ledger: JournalLedger, reporting_sessions: async_sessionmaker[AsyncSession]
) -> None:
    tenant = journal_ledger.tenant
    await open_usd_items(journal_ledger)
    result = await ar("ledger", "revalue", "--tenant", tenant, "--period-end", "2026-01-31")
    assert result.exit_code == 0, result.output
    assert "2 revalued (4 entries posted), 0 already revalued" in result.output
    assert "INV-FX-1" in result.output
    result = await ar("ledger", "revalue", "-t", tenant, "--period-end", "2026-01-31")
    assert result.exit_code == 0, result.output
    assert "0 revalued (0 entries posted), 2 already revalued" in result.output
    await assert_journal_balanced(reporting_sessions, tenant)

    result = await ar("ledger", "revalue", "-t", tenant, "--period-end", "2026-10-31")
    assert result.exit_code == 1 and "USD->EUR" in result.output
    result = await ar("ledger", "revalue", "-t", tenant, "--period-end", "soon")
    assert result.exit_code != 0
