"""The operator CLI on what three real services recorded: replay (store and Kafka), state as of
an instant, the causal trace of a request, the hash chain, and a real dead letter handled."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from typer.testing import CliRunner, Result

from ar.main import app as cli
from shared.messaging.kafka import envelope_headers, make_producer
from shared.settings import KafkaSettings
from shared.testing import bearer
from shared.topics import event_topic
from tests.helpers import eventually, in_process, onboard

pytestmark = pytest.mark.integration

SCOPES = (
    "invoices:read",
    "invoices:write",
    "credit:read",
    "credit:write",
    "payments:read",
    "payments:write",
)


async def ar(*args: str) -> Result:
    """Run `ar …` as an operator would (its own event loop, in a thread)."""
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


def lines_of(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


@pytest.fixture
async def recorded() -> AsyncIterator[dict[str, Any]]:
    """A tenant whose invoice was issued (one request) and then paid, through Kafka."""
    tenant = f"t{uuid.uuid4().hex[:10]}"
    async with in_process(bearer(tenant, SCOPES)) as services:
        inv, cred = services.clients["invoice"], services.clients["credit"]
        pay = services.clients["payments"]
        await onboard(inv, cred, 1_000_000)
        line = {"description": "Audit", "quantity": "1", "unit_price": 50_000, "taxes": []}
        d = await inv.post("/v1/invoices", json={"customer_id": "c-1", "lines": [line]})
        assert d.status_code == 201, d.text
        correlation = str(uuid.uuid4())
        issued = await inv.post(
            f"/v1/invoices/{d.json()['invoice_id']}/issue",
            json={},
            headers={"X-Correlation-ID": correlation},
        )
        assert issued.status_code == 200, issued.text
        invoice = issued.json()
        await eventually(
            pay,
            f"/v1/invoices/{invoice['invoice_id']}/open-amount",
            lambda b: b["open_amount"]["amount"] == 50_000,
        )
        between = datetime.now(UTC)
        r = await pay.post(
            "/v1/payments",
            json={
                "customer_id": "c-1",
                "amount": {"amount": 50_000, "currency": "EUR"},
                "method": "bank_transfer",
                "received_on": invoice["issue_date"],
                "reference": invoice["number"],
            },
        )
        assert r.status_code == 201, r.text
        await eventually(
            inv, f"/v1/invoices/{invoice['invoice_id']}", lambda b: b["status"] == "paid"
        )
        yield {
            "tenant": tenant,
            "invoice": invoice,
            "correlation": correlation,
            "between": between,
            "kafka": KafkaSettings(),
            "credit": cred,
        }


async def test_replay_as_of_and_trace_answer_what_happened_when_and_who(
    recorded: dict[str, Any],
) -> None:
    tenant, invoice = recorded["tenant"], recorded["invoice"]
    stream = f"invoice-{invoice['invoice_id']}"

    issued = lines_of(await ar("events", "replay", "--tenant", tenant, "--type", "InvoiceIssued"))
    assert [(e["service"], e["stream_id"], e["actor"]) for e in issued] == [
        ("invoice", stream, "client:erp")
    ]
    assert issued[0]["correlation_id"] == recorded["correlation"]

    store = lines_of(await ar("events", "replay", "--tenant", tenant, "-s", "invoice"))
    kafka = lines_of(
        await ar("events", "replay", "--tenant", tenant, "-s", "invoice", "--source", "kafka")
    )
    assert {e["event_id"] for e in kafka} == {e["event_id"] for e in store}
    assert {e["event_type"] for e in store} >= {"InvoiceDrafted", "InvoiceIssued", "InvoicePaid"}
    assert all(e["kafka"]["topic"].startswith("ar.invoice.") for e in kafka)
    assert [e["stream_version"] for e in store if e["stream_id"] == stream] == list(
        range(1, 1 + sum(e["stream_id"] == stream for e in store))
    )

    between = recorded["between"].isoformat()
    early = lines_of(await ar("events", "replay", "--tenant", tenant, "--until", between))
    late = lines_of(await ar("events", "replay", "--tenant", tenant, "--since", between))
    everything = lines_of(await ar("events", "replay", "--tenant", tenant))
    assert len(early) + len(late) == len(everything)  # since inclusive, until exclusive
    assert "InvoiceIssued" in {e["event_type"] for e in early}
    assert "InvoicePaid" in {e["event_type"] for e in late}
    assert all(datetime.fromisoformat(e["recorded_at"]) < recorded["between"] for e in early)

    only_customer = await ar(
        "events", "replay", "--tenant", tenant, "--customer", "c-1", "--format", "csv"
    )
    rows = list(csv.DictReader(io.StringIO(only_customer.stdout)))
    assert len(rows) > len(store)  # credit and payments events of the customer too
    assert {r["service"] for r in rows} == {"invoice", "credit", "payments"}
    assert all(r["customer_id"] == "c-1" and r["tenant_id"] == tenant for r in rows)

    before = await ar(
        "events",
        "replay",
        "--tenant",
        tenant,
        "--invoice",
        invoice["invoice_id"],
        "--as-of",
        recorded["between"].isoformat(),
    )
    assert before.exit_code == 0, before.output
    then = json.loads(before.stdout)["summary"]
    assert (then["status"], then["open_amount"]["amount"]) == ("issued", 50_000)
    now = json.loads(
        (
            await ar(
                "events",
                "replay",
                "--tenant",
                tenant,
                "--invoice",
                invoice["invoice_id"],
                "--as-of",
                datetime.now(UTC).isoformat(),
            )
        ).stdout
    )["summary"]
    assert (now["status"], now["open_amount"]["amount"]) == ("paid", 0)
    customer = await ar(
        "events",
        "replay",
        "--tenant",
        tenant,
        "--customer",
        "c-1",
        "--as-of",
        recorded["between"].isoformat(),
    )
    view = json.loads(customer.stdout)
    assert view["totals"]["EUR"]["open"]["amount"] == 50_000
    assert view["credit"]["limit"]["amount"] == 1_000_000
    too_early = await ar(
        "events",
        "replay",
        "--tenant",
        tenant,
        "--invoice",
        invoice["invoice_id"],
        "--as-of",
        "2000-01-01",
    )
    assert too_early.exit_code == 1 and "did not exist" in too_early.output

    traced = await ar("events", "trace", recorded["correlation"], "--json")
    assert traced.exit_code == 0, traced.output
    tree = json.loads(traced.stdout)
    roots = {r["event_type"]: r for r in tree["roots"]}
    assert "InvoiceIssued" in roots, tree
    consumed = {c["consumer_group"] for c in roots["InvoiceIssued"]["consumed_by"]}
    assert {"credit.invoices", "payments.invoices"} <= consumed
    caused = {(c["service"], c["causation_id"]) for c in roots["InvoiceIssued"]["caused"]}
    assert ("credit", roots["InvoiceIssued"]["event_id"]) in caused  # across services
    assert "credit" in tree["services"] and "invoice" in tree["services"]
    pretty = await ar("events", "trace", recorded["correlation"])
    assert "InvoiceIssued" in pretty.stdout and "credit.invoices" in pretty.stdout
    unknown = await ar("events", "trace", str(uuid.uuid4()))
    assert unknown.exit_code == 1


async def test_the_hash_chain_verifies_and_an_anchor_must_match() -> None:
    assert (await ar("audit", "seal", "-s", "invoice")).exit_code == 0
    first = await ar("audit", "verify", "-s", "invoice", "--json")
    assert first.exit_code == 0, first.output
    (report,) = json.loads(first.stdout)
    assert report["intact"] and report["links"] > 0
    anchor = f"invoice={report['anchor']}"
    assert (await ar("audit", "verify", "-s", "invoice", "--expect", anchor)).exit_code == 0
    seq = report["anchor"].split(":")[0]
    forged = await ar("audit", "verify", "-s", "invoice", "--expect", f"invoice={seq}:{'00' * 32}")
    assert forged.exit_code == 2 and "anchor_mismatch" in forged.output


async def test_a_dead_letter_is_listed_inspected_retried_and_discarded_with_a_reason(
    recorded: dict[str, Any],
) -> None:
    """An InvoiceIssued whose payload no longer parses: the credit service's group gives up on
    it, and an operator handles it with the CLI."""
    kafka: KafkaSettings = recorded["kafka"]
    tenant = recorded["tenant"]
    bad = {
        "event_id": str(uuid.uuid4()),
        "event_type": "InvoiceIssued",
        "schema_version": 1,
        "stream_id": f"invoice-{uuid.uuid4()}",
        "stream_version": 2,
        "occurred_at": datetime.now(UTC).isoformat(),
        "recorded_at": datetime.now(UTC).isoformat(),
        "tenant_id": tenant,
        "customer_id": "c-1",
        "correlation_id": str(uuid.uuid4()),
        "actor": "client:erp",
        "payload": {"invoice_id": "not a uuid"},
    }
    producer: AIOKafkaProducer = make_producer(kafka, "test-audit-cli")
    await producer.start()
    try:
        from shared.events.envelope import EventEnvelope

        envelope = EventEnvelope.model_validate(bad)
        await producer.send_and_wait(
            event_topic("invoice", "invoice"),
            value=envelope.to_json_bytes(),
            key=b"c-1",
            headers=envelope_headers(envelope),
        )
    finally:
        await producer.stop()

    async def letter() -> dict[str, Any] | None:
        listed = lines_of_json(await ar("dlq", "list", "-s", "credit", "--status", "all", "--json"))
        return next((d for d in listed if d["event_id"] == bad["event_id"]), None)

    deadline = asyncio.get_running_loop().time() + 60
    while (found := await letter()) is None:
        assert asyncio.get_running_loop().time() < deadline, "never dead-lettered"
        await asyncio.sleep(0.5)
    assert (found["consumer_group"], found["status"], found["tenant_id"]) == (
        "credit.invoices",
        "open",
        tenant,
    )
    ref = found["ref"]
    inspected = await ar("dlq", "inspect", ref)
    assert inspected.exit_code == 0, inspected.output
    detail = json.loads(inspected.stdout)
    assert detail["message"]["event_id"] == bad["event_id"]
    assert detail["headers"]["dlq.consumer_group"] == "credit.invoices"

    retried = await ar("dlq", "redrive", ref, "--actor", "user:ops")
    assert retried.exit_code == 1 and "failed again" in retried.output  # still unparseable
    refused = await ar("dlq", "discard", ref, "--reason", "")
    assert refused.exit_code == 1
    discarded = await ar(
        "dlq", "discard", ref, "--reason", "payload from a broken producer", "--actor", "user:ops"
    )
    assert discarded.exit_code == 0, discarded.output
    again = await ar("dlq", "redrive", ref)
    assert again.exit_code == 0 and "already_discarded" in again.output
    closed = await letter()
    assert closed is not None
    assert (
        closed["status"],
        closed["resolution"],
        closed["resolved_by"],
        closed["redrive_attempts"],
    ) == ("discarded", "payload from a broken producer", "user:ops", 1)


def lines_of_json(result: Result) -> list[dict[str, Any]]:
    assert result.exit_code == 0, result.output
    data: list[dict[str, Any]] = json.loads(result.stdout)
    return data
