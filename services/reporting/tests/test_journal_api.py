"""The ledger REST API: the JSON feed and exports after a cursor (Beancount chunks that
bean-check accepts once concatenated), the trial balance, the reconciliation (and a tampered
row showing up in it), validation and tenant isolation."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from services.reporting.domain.ledger_exports import QUICKBOOKS_COLUMNS, XERO_COLUMNS
from services.reporting.tests.conftest import auth, get
from services.reporting.tests.journal_helpers import (
    JournalLedger,
    T,
    assert_journal_balanced,
    day,
    run_scenario,
)
from services.reporting.tests.test_ledger_exports import bean_check
from services.reporting.tests.test_postings import issued

pytestmark = pytest.mark.integration


@pytest.fixture
def journal_ledger(
    reporting_sessions: async_sessionmaker[AsyncSession], tenant: str
) -> JournalLedger:
    return JournalLedger(reporting_sessions, tenant)


async def test_the_feed_pages_through_the_journal_with_a_cursor(
    api: httpx.AsyncClient,
    journal_ledger: JournalLedger,
    reporting_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await run_scenario(journal_ledger)
    entries = await assert_journal_balanced(reporting_sessions, journal_ledger.tenant)
    seen: list[str] = []
    after = 0
    while True:
        page = await get(api, journal_ledger.tenant, "/v1/ledger/journal", after=after, limit=4)
        assert page["format"] == "ledgerline.journal.v1"
        assert page["cursor"] == str(page["next_after"])
        seen += [e["entry_id"] for e in page["entries"]]
        assert all(e["position"] > after for e in page["entries"])
        after = page["next_after"]
        if not page["has_more"]:
            break
    assert seen == [e.entry_id for e in entries]
    empty = await get(api, journal_ledger.tenant, "/v1/ledger/journal", after=after)
    assert (empty["entries"], empty["next_after"], empty["has_more"]) == ([], after, False)


async def test_incremental_beancount_exports_concatenate_to_a_valid_ledger(
    api: httpx.AsyncClient, journal_ledger: JournalLedger, tmp_path: Path
) -> None:
    tenant = journal_ledger.tenant
    first = await api.get("/v1/ledger/export/beancount", headers=auth(tenant))
    assert first.status_code == 200 and first.headers["x-ledger-next-after"] == "0"
    await run_scenario(journal_ledger)
    first = await api.get("/v1/ledger/export/beancount", params={"limit": 7}, headers=auth(tenant))
    assert first.headers["content-type"].startswith("text/plain")
    assert first.headers["x-ledger-has-more"] == "true"
    cursor = first.headers["x-ledger-next-after"]
    second = await api.get(
        "/v1/ledger/export/beancount", params={"after": cursor}, headers=auth(tenant)
    )
    assert second.headers["x-ledger-has-more"] == "false"
    assert second.headers["x-ledger-entries"] == str(14 - 7)
    assert 'option "operating_currency" "EUR"' in first.text
    assert "option" not in second.text
    assert first.text.count("entry_id:") + second.text.count("entry_id:") == 14
    bean_check(tmp_path, first.text + "\n" + second.text)

    again = await api.get(
        "/v1/ledger/export/beancount", params={"after": cursor}, headers=auth(tenant)
    )
    assert again.text == second.text  # same cursor, same bytes


async def test_csv_exports_have_the_import_layouts(
    api: httpx.AsyncClient, journal_ledger: JournalLedger
) -> None:
    await run_scenario(journal_ledger)
    for fmt, columns in (("quickbooks", QUICKBOOKS_COLUMNS), ("xero", XERO_COLUMNS)):
        response = await api.get(f"/v1/ledger/export/{fmt}", headers=auth(journal_ledger.tenant))
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(response.text)))
        assert tuple(rows[0]) == columns
        assert len(rows) > 14
    feed = await api.get("/v1/ledger/export/json", headers=auth(journal_ledger.tenant))
    assert len(feed.json()["entries"]) == 14


async def test_the_trial_balance_balances(
    api: httpx.AsyncClient, journal_ledger: JournalLedger
) -> None:
    await run_scenario(journal_ledger)
    report = await get(api, journal_ledger.tenant, "/v1/ledger/trial-balance")
    assert report["balanced"] is True
    assert report["functional_currency"] == "EUR"
    assert {t["currency"] for t in report["totals"]} == {"EUR", "USD"}
    assert all(t["difference_minor"] == 0 for t in report["totals"])
    ar = [a for a in report["accounts"] if a["account"] == "Assets:AccountsReceivable"]
    assert {(a["currency"], a["balance_minor"]) for a in ar} == {("EUR", 50500), ("USD", 0)}
    before = await get(api, journal_ledger.tenant, "/v1/ledger/trial-balance", as_of="2025-12-31")
    assert before["accounts"] == [] and before["balanced"] is True


async def test_the_reconciliation_agrees_until_a_row_is_tampered_with(
    api: httpx.AsyncClient,
    journal_ledger: JournalLedger,
    reporting_sessions: async_sessionmaker[AsyncSession],
) -> None:
    await run_scenario(journal_ledger)
    report = await get(api, journal_ledger.tenant, "/v1/ledger/reconciliation")
    assert report["differences"] == 0, report
    assert report["compared_with_aging"] is True
    assert [
        (r["customer_id"], r["currency"], r["subledger_minor"], r["open_items_minor"])
        for r in report["customers"]
    ] == [("acme", "EUR", 50500, 50500)]

    async with reporting_sessions() as session, session.begin():
        await session.execute(
            text(
                f"""UPDATE {T.lines} l SET amount_minor = amount_minor + 100
                    FROM {T.entries} e
                    WHERE e.tenant_id = l.tenant_id AND e.entry_id = l.entry_id
                      AND l.tenant_id = :t AND e.kind = 'late_fee' AND l.role = 'receivables'"""
            ),
            {"t": journal_ledger.tenant},
        )
    report = await get(
        api, journal_ledger.tenant, "/v1/ledger/reconciliation", only_differences="true"
    )
    assert report["differences"] == 1
    [row] = report["customers"]
    assert (row["customer_id"], row["difference_minor"]) == ("acme", 100)
    balance = await get(api, journal_ledger.tenant, "/v1/ledger/trial-balance")
    assert balance["balanced"] is False


async def test_another_tenant_sees_nothing(
    api: httpx.AsyncClient, journal_ledger: JournalLedger
) -> None:
    await run_scenario(journal_ledger)
    other = f"{journal_ledger.tenant}x"
    assert (await get(api, other, "/v1/ledger/journal"))["entries"] == []
    assert (await get(api, other, "/v1/ledger/trial-balance"))["accounts"] == []
    assert (await get(api, other, "/v1/ledger/reconciliation"))["customers"] == []
    response = await api.get("/v1/ledger/export/quickbooks", headers=auth(other))
    assert response.text.strip() == ",".join(QUICKBOOKS_COLUMNS)


async def test_parameters_bodies_and_scopes_are_validated(
    api: httpx.AsyncClient, journal_ledger: JournalLedger
) -> None:
    tenant = journal_ledger.tenant
    headers = auth(tenant)
    for path, params in (
        ("/v1/ledger/journal", {"after": "-1"}),
        ("/v1/ledger/journal", {"limit": "0"}),
        ("/v1/ledger/journal", {"limit": "5001"}),
        ("/v1/ledger/export/pdf", {}),
        ("/v1/ledger/trial-balance", {"as_of": "yesterday"}),
    ):
        response = await api.get(path, params=params, headers=headers)
        assert response.status_code == 422, (path, params, response.text)
    assert (await api.get("/v1/ledger/journal")).status_code == 401
    response = await api.put(
        "/v1/ledger/settings",
        json={"functional_currency": "USD", "extra": 1},
        headers=headers,
    )
    assert response.status_code == 422
    response = await api.put(
        "/v1/ledger/settings",
        json={"functional_currency": "USD"},
        headers=auth(tenant, ("reporting:read",)),
    )
    assert response.status_code == 403

    ok = await api.put("/v1/ledger/settings", json={"functional_currency": "USD"}, headers=headers)
    assert ok.json() == {"functional_currency": "USD", "frozen": True}
    await run_scenario_in_usd(journal_ledger)
    refused = await api.put(
        "/v1/ledger/settings", json={"functional_currency": "GBP"}, headers=headers
    )
    assert refused.status_code == 409


async def run_scenario_in_usd(journal_ledger: JournalLedger) -> None:
    """Enough to give the tenant a journal: one USD invoice in a USD ledger."""
    await journal_ledger.deliver(journal_ledger.invoice_event(issued("c1", 1000, 0, "USD", day(0))))
