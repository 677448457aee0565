"""Issuing and revoking portal links: an event on the customer's `portal_access` stream and the
row the portal checks on every request, in one transaction."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.contracts.portal import PortalCheckoutStarted, PortalLinkIssued, PortalLinkRevoked
from shared.db import checked_schema
from shared.errors import Unauthenticated
from shared.events.registry import registry
from shared.eventstore.store import ANY_VERSION, AppendContext, EventStore
from shared.money import Money
from shared.portal_links import PortalLink, PortalLinkSettings, issue_link, link_url

SCHEMA = checked_schema("portal")
store = EventStore(SCHEMA)


def stream_id(tenant_id: str, customer_id: str) -> str:
    return f"portal_access-{tenant_id}:{customer_id}"


async def _append(session: AsyncSession, ctx: AppendContext, customer_id: str, event: Any) -> None:
    await store.append(
        session,
        stream_id(ctx.tenant_id, customer_id),
        ANY_VERSION,  # facts about independent links: no decision depends on the stream's state
        [registry.new_event(event)],
        ctx.for_customer(customer_id),
    )


async def issue(
    session: AsyncSession,
    ctx: AppendContext,
    settings: PortalLinkSettings,
    customer_id: str,
    ttl_days: int | None,
) -> dict[str, Any]:
    ttl = timedelta(days=ttl_days) if ttl_days else None
    link, token = issue_link(settings, ctx.tenant_id, customer_id, ttl=ttl)
    event = PortalLinkIssued(
        customer_id=customer_id, link_id=link.link_id, expires_at=link.expires_at
    )
    await _append(session, ctx, customer_id, event)
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.links
                    (tenant_id, link_id, customer_id, issued_at, expires_at, issued_by)
                VALUES (:t, :l, :c, :i, :e, :by)"""
        ),
        {
            "t": ctx.tenant_id,
            "l": link.link_id,
            "c": customer_id,
            "i": link.issued_at,
            "e": link.expires_at,
            "by": ctx.actor,
        },
    )
    return {**_view(link, None), "url": link_url(settings, token)}


def _view(link: PortalLink, revoked_at: datetime | None) -> dict[str, Any]:
    return {
        "link_id": str(link.link_id),
        "customer_id": link.customer_id,
        "issued_at": link.issued_at.isoformat(),
        "expires_at": link.expires_at.isoformat(),
        "revoked_at": revoked_at.isoformat() if revoked_at else None,
    }


async def revoke(
    session: AsyncSession,
    ctx: AppendContext,
    customer_id: str,
    link_id: uuid.UUID | None,
    reason: str,
) -> dict[str, Any]:
    """One link (any signed link, also one the dunning mailer sent), or all the customer's
    links issued until now. Revoking twice changes nothing the second time."""
    now = datetime.now(UTC)
    if link_id is None:
        changed = await session.execute(
            text(
                f"""INSERT INTO {SCHEMA}.customer_revocations (tenant_id, customer_id,
                        revoked_before) VALUES (:t, :c, :now)
                    ON CONFLICT (tenant_id, customer_id)
                    DO UPDATE SET revoked_before = excluded.revoked_before"""
            ),
            {"t": ctx.tenant_id, "c": customer_id, "now": now},
        )
    else:
        changed = await session.execute(
            text(
                f"""INSERT INTO {SCHEMA}.revoked_links
                        (tenant_id, link_id, customer_id, revoked_at, reason)
                    VALUES (:t, :l, :c, :now, :r) ON CONFLICT DO NOTHING"""
            ),
            {"t": ctx.tenant_id, "l": link_id, "c": customer_id, "now": now, "r": reason},
        )
    if changed.rowcount:  # type: ignore[attr-defined]
        event = PortalLinkRevoked(
            customer_id=customer_id, link_id=link_id, revoked_at=now, reason=reason
        )
        await _append(session, ctx, customer_id, event)
    return {"customer_id": customer_id, "link_id": str(link_id) if link_id else None}


async def links_of(session: AsyncSession, tenant_id: str, customer_id: str) -> list[dict[str, Any]]:
    rows = (
        await session.execute(
            text(
                f"""SELECT l.link_id, l.customer_id, l.issued_at, l.expires_at,
                           COALESCE(r.revoked_at, CASE WHEN c.revoked_before > l.issued_at
                                                       THEN c.revoked_before END) AS revoked_at
                    FROM {SCHEMA}.links l
                    LEFT JOIN {SCHEMA}.revoked_links r
                      ON r.tenant_id = l.tenant_id AND r.link_id = l.link_id
                    LEFT JOIN {SCHEMA}.customer_revocations c
                      ON c.tenant_id = l.tenant_id AND c.customer_id = l.customer_id
                    WHERE l.tenant_id = :t AND l.customer_id = :c
                    ORDER BY l.issued_at DESC, l.link_id LIMIT 500"""
            ),
            {"t": tenant_id, "c": customer_id},
        )
    ).all()
    return [
        _view(
            PortalLink(r.link_id, tenant_id, r.customer_id, r.issued_at, r.expires_at),
            r.revoked_at,
        )
        for r in rows
    ]


async def ensure_active(session: AsyncSession, link: PortalLink) -> None:
    """Signature and expiry are checked already; here: not revoked, alone or with all of its
    customer's links."""
    row = (
        await session.execute(
            text(
                f"""SELECT
                      EXISTS (SELECT 1 FROM {SCHEMA}.revoked_links
                              WHERE tenant_id = :t AND link_id = :l) AS one,
                      EXISTS (SELECT 1 FROM {SCHEMA}.customer_revocations
                              WHERE tenant_id = :t AND customer_id = :c
                                AND revoked_before >= :issued) AS every"""
            ),
            {
                "t": link.tenant_id,
                "l": link.link_id,
                "c": link.customer_id,
                "issued": link.issued_at,
            },
        )
    ).one()
    if row.one or row.every:
        raise Unauthenticated("this portal link was revoked")


async def record_checkout(
    session: AsyncSession,
    link: PortalLink,
    checkout_id: uuid.UUID,
    invoice_ids: list[uuid.UUID],
    amount: Money,
    session_id: str,
) -> None:
    ctx = AppendContext(tenant_id=link.tenant_id, actor=f"portal:{link.link_id}")
    started = PortalCheckoutStarted(
        customer_id=link.customer_id,
        checkout_id=checkout_id,
        invoice_ids=invoice_ids,
        amount=amount,
        gateway_session=session_id,
    )
    await _append(session, ctx, link.customer_id, started)
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.checkouts (tenant_id, checkout_id, customer_id, link_id,
                    invoice_ids, amount_minor, currency, session_id)
                VALUES (:t, :k, :c, :l, :i, :a, :cur, :s)"""
        ),
        {
            "t": link.tenant_id,
            "k": checkout_id,
            "c": link.customer_id,
            "l": link.link_id,
            "i": invoice_ids,
            "a": amount.amount,
            "cur": amount.currency,
            "s": session_id,
        },
    )
