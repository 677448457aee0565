"""Opaque cursor pagination over (created_at, id): stable while rows are added."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from shared.db import json_column
from shared.errors import ValidationFailed

MAX_PAGE_SIZE = 200


def encode_cursor(created_at: datetime, row_id: Any) -> str:
    raw = json.dumps([created_at.isoformat(), str(row_id)]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError) as exc:
        raise ValidationFailed("invalid cursor", {"cursor": cursor}) from exc


async def document_page(
    session: AsyncSession,
    table: str,
    key: str,
    tenant: str,
    filters: dict[str, Any],
    cursor: str | None,
    limit: int,
    *,
    ranges: dict[str, Any] | None = None,
    order_column: str = "created_at",
) -> dict[str, Any]:
    """One page of a read-model table's `document` column, scoped to the tenant.

    `table` is schema-qualified and, like the column names, comes from code, never from input;
    `filters` are equality filters (None skips one), `ranges` map a clause such as
    `"due_date >= :due_from"` to its value (None skips it).
    """
    where = ["tenant_id = :tenant"]
    params: dict[str, Any] = {"tenant": tenant, "limit": limit + 1}
    for column, value in filters.items():
        if value is not None:
            where.append(f"{column} = :{column}")
            params[column] = value
    for clause, value in (ranges or {}).items():
        if value is not None:
            where.append(clause)
            params[clause.rsplit(":", 1)[1]] = value
    if cursor:
        after_ts, after_id = decode_cursor(cursor)
        where.append(f"({order_column}, {key}::text) > (:after_ts, :after_id)")
        params.update(after_ts=after_ts, after_id=after_id)
    rows = (
        await session.execute(
            text(
                f"""SELECT document, {order_column} AS ts, {key}::text AS k FROM {table}
                    WHERE {" AND ".join(where)} ORDER BY {order_column}, {key}::text LIMIT :limit"""
            ),
            params,
        )
    ).all()
    items = [json_column(r.document) for r in rows[:limit]]
    next_cursor = (
        encode_cursor(rows[limit - 1].ts, rows[limit - 1].k) if len(rows) > limit else None
    )
    return {"items": items, "next_cursor": next_cursor}
