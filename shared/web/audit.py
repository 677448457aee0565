"""`GET /v1/audit/events` on every service: the caller's tenant's events, for systems that audit
over HTTP rather than with database access (`ar events replay` is the operators' tool)."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import AwareDatetime

from shared.audit.replay import EventFilter, events_page
from shared.auth import Principal
from shared.errors import ValidationFailed
from shared.events.envelope import STREAM_PATTERN
from shared.web.deps import Requires, db_session, runtime_of

_EVENT_TYPE = re.compile(r"[A-Z][A-Za-z0-9]{0,99}")
Replayer = Annotated[Principal, Depends(Requires("ops:replay"))]


def audit_router() -> APIRouter:
    router = APIRouter(prefix="/v1/audit", tags=["audit"])

    @router.get("/events", summary="This tenant's events in the order the service stored them")
    async def events(
        request: Request,
        principal: Replayer,
        session: Annotated[Any, Depends(db_session)],
        stream_id: Annotated[str | None, Query(pattern=STREAM_PATTERN, max_length=200)] = None,
        customer_id: Annotated[
            str | None, Query(min_length=1, max_length=200, pattern=r"^[^\s\x00]+$")
        ] = None,
        event_type: Annotated[
            list[str] | None, Query(max_length=20, description="repeat for several")
        ] = None,
        since: Annotated[AwareDatetime | None, Query(description="recorded at or after")] = None,
        until: Annotated[AwareDatetime | None, Query(description="recorded before")] = None,
        after: Annotated[int, Query(ge=0, le=2**62, description="next_after of a page")] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 200,
    ) -> dict[str, Any]:
        """Recorded times filter on `recorded_at` (when the service knew). Page with `after`."""
        types = tuple(event_type or ())
        if not all(_EVENT_TYPE.fullmatch(t) for t in types):
            raise ValidationFailed("event_type: names like InvoiceIssued", {"event_type": types})
        event_filter = EventFilter(
            tenant_id=principal.tenant_id,
            stream_id=stream_id,
            customer_id=customer_id,
            event_types=types,
            since=since,
            until=until,
        )
        schema = runtime_of(request).settings.schema_name
        page, next_after = await events_page(session, schema, event_filter, after, limit)
        return {
            "events": [e.model_dump(mode="json", exclude={"global_position"}) for e in page],
            "next_after": next_after,
        }

    return router
