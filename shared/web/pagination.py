"""Opaque cursor pagination over (created_at, id): stable while rows are added."""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

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
