"""Default policies: event streams `credit_policy-<tenant>:<scope>` plus a read-model row each."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from services.credit.adapters import SCHEMA
from services.credit.domain.defaults import (
    DefaultPolicy,
    evolve_default,
    scope_of,
    set_default_policy,
)
from shared.db import json_column
from shared.events.registry import registry
from shared.eventstore.store import AppendContext, EventStore
from shared.money import Money

store = EventStore(SCHEMA)


def policy_stream(tenant_id: str, segment: str | None) -> str:
    return f"credit_policy-{tenant_id}:{scope_of(segment)}"


async def find_default(
    session: AsyncSession, tenant_id: str, segment: str | None
) -> DefaultPolicy | None:
    envelopes = await store.read_stream(
        session, policy_stream(tenant_id, segment), tenant_id=tenant_id
    )
    state: DefaultPolicy | None = None
    for envelope in envelopes:
        state = evolve_default(state, registry.decode(envelope))
    return state


async def resolve(
    session: AsyncSession, tenant_id: str, segment: str | None
) -> DefaultPolicy | None:
    """The segment's default when it has one, else the tenant's."""
    if segment is not None:
        found = await find_default(session, tenant_id, segment)
        if found is not None:
            return found
    return await find_default(session, tenant_id, None)


def view(policy: DefaultPolicy) -> dict[str, Any]:
    return {
        "scope": policy.scope,
        "segment": policy.segment,
        "limit": policy.limit.model_dump() if policy.limit else None,
        "max_days_overdue": policy.max_days_overdue,
        "allowed_terms": [str(t) for t in policy.allowed_terms],
        "version": policy.version,
    }


async def set_default(
    session: AsyncSession,
    ctx: AppendContext,
    segment: str | None,
    limit: Money | None,
    max_days_overdue: int,
    allowed_terms: list[str],
) -> dict[str, Any]:
    state = await find_default(session, ctx.tenant_id, segment)
    events = set_default_policy(state, segment, limit, max_days_overdue, allowed_terms)
    if not events:
        assert state is not None
        return view(state)
    await store.append(
        session,
        policy_stream(ctx.tenant_id, segment),
        state.version if state else 0,
        [registry.new_event(e) for e in events],
        ctx,
    )
    new_state = state
    for event in events:
        new_state = evolve_default(new_state, event)
    assert new_state is not None
    await session.execute(
        text(
            f"""INSERT INTO {SCHEMA}.default_policies (tenant_id, scope, version, document)
                VALUES (:t, :scope, :v, CAST(:doc AS jsonb))
                ON CONFLICT (tenant_id, scope) DO UPDATE SET version = EXCLUDED.version,
                    document = EXCLUDED.document, updated_at = now()"""
        ),
        {
            "t": ctx.tenant_id,
            "scope": new_state.scope,
            "v": new_state.version,
            "doc": json.dumps(view(new_state)),
        },
    )
    return view(new_state)


async def list_defaults(session: AsyncSession, tenant_id: str) -> list[dict[str, Any]]:
    rows = await session.execute(
        text(f"SELECT document FROM {SCHEMA}.default_policies WHERE tenant_id = :t ORDER BY scope"),
        {"t": tenant_id},
    )
    return [json_column(r.document) for r in rows]
