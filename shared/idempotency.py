"""Idempotency-Key support with Stripe semantics.

The key row is inserted in the same transaction as the effect. A concurrent request with the same
key blocks on that row's unique index until the first commits, then replays its stored response:
concurrent duplicates yield exactly one effect. Same key with a different request -> 422.
If the first request fails, its transaction rolls back with the key, so a retry runs again:
nothing is half-applied and an error is never cached.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import checked_schema, json_column
from shared.errors import IdempotencyKeyReused, ValidationFailed

MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class StoredResponse:
    status_code: int
    body: Any
    replayed: bool = False


def fingerprint(method: str, path: str, body: bytes) -> str:
    """Identifies 'the same request': method, path and the body's canonical JSON form."""
    try:
        canonical = json.dumps(json.loads(body or b"null"), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = body.decode(errors="replace")
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationFailed(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters",
            {"header": "Idempotency-Key"},
        )
    return key


async def run_idempotent(
    session: AsyncSession,
    schema: str,
    *,
    tenant_id: str,
    key: str,
    request_fingerprint: str,
    operation: Callable[[AsyncSession], Awaitable[tuple[int, Any]]],
) -> StoredResponse:
    """Run `operation` once per (tenant, key), inside the caller's open transaction.

    The caller commits; the stored response becomes visible (and the key final) at that commit.
    """
    s = checked_schema(schema)
    check_key(key)
    claimed = (
        await session.execute(
            text(
                f"""INSERT INTO {s}.idempotency_keys (tenant_id, idempotency_key, request_fingerprint)
                    VALUES (:tenant, :key, :fp)
                    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
                    RETURNING idempotency_key"""
            ),
            {"tenant": tenant_id, "key": key, "fp": request_fingerprint},
        )
    ).first()
    if claimed is None:
        row = (
            await session.execute(
                text(
                    f"""SELECT request_fingerprint, status_code, response_body
                        FROM {s}.idempotency_keys WHERE tenant_id = :tenant AND idempotency_key = :key"""
                ),
                {"tenant": tenant_id, "key": key},
            )
        ).one()
        if row.request_fingerprint != request_fingerprint:
            raise IdempotencyKeyReused(
                "this Idempotency-Key was already used with a different request",
                {"idempotency_key": key},
            )
        body = row.response_body
        return StoredResponse(row.status_code, json_column(body), replayed=True)
    status_code, body = await operation(session)
    await session.execute(
        text(
            f"""UPDATE {s}.idempotency_keys SET status_code = :status, response_body = CAST(:body AS jsonb)
                WHERE tenant_id = :tenant AND idempotency_key = :key"""
        ),
        {"status": status_code, "body": json.dumps(body), "tenant": tenant_id, "key": key},
    )
    return StoredResponse(status_code, body)


async def purge_expired(session: AsyncSession, schema: str, *, older_than_hours: int = 24) -> int:
    result = await session.execute(
        text(
            f"""DELETE FROM {checked_schema(schema)}.idempotency_keys
                WHERE created_at < now() - make_interval(hours => :h)"""
        ),
        {"h": older_than_hours},
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]
