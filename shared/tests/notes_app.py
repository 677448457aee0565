"""A small resource built only from kernel parts, for testing the kernel over HTTP."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, mint_token
from shared.errors import NotFound
from shared.events.envelope import NewEvent
from shared.eventstore.store import EventStore
from shared.settings import AuthSettings
from shared.web.deps import Requires, append_context, create_idempotently, db_session, runtime_of


class NoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=200)
    customer_id: str = Field(min_length=1, max_length=64)


def notes_router() -> APIRouter:
    router = APIRouter(prefix="/v1/notes", tags=["notes"])

    @router.post("", status_code=201)
    async def create_note(
        request: Request,
        body: NoteIn,
        principal: Annotated[Principal, Depends(Requires("notes:write"))],
    ) -> JSONResponse:
        store = EventStore(runtime_of(request).settings.schema_name)

        async def operation(session: AsyncSession) -> tuple[int, Any]:
            stream_id = f"note-{uuid.uuid4()}"
            await store.append(
                session,
                stream_id,
                0,
                [NewEvent(event_type="NoteTaken", schema_version=1, payload={"text": body.text})],
                append_context(principal, body.customer_id),
            )
            return 201, {"id": stream_id, "text": body.text}

        return await create_idempotently(request, principal, operation)

    @router.get("/{note_id}")
    async def get_note(
        request: Request,
        note_id: str,
        principal: Annotated[Principal, Depends(Requires("notes:read"))],
        session: Annotated[AsyncSession, Depends(db_session)],
    ) -> dict[str, Any]:
        store = EventStore(runtime_of(request).settings.schema_name)
        events = await store.read_stream(session, note_id, tenant_id=principal.tenant_id)
        if not events:
            raise NotFound(f"note {note_id} not found")
        return {
            "id": note_id,
            "text": events[-1].payload["text"],
            "actor": events[-1].actor,
            "correlation_id": str(events[-1].correlation_id),
        }

    return router


def bearer(
    tenant: str = "acme", scopes: tuple[str, ...] = ("notes:read", "notes:write"), **kw: Any
) -> dict[str, str]:
    return {
        "Authorization": "Bearer "
        + mint_token(AuthSettings(), subject="erp", tenant_id=tenant, scopes=scopes, **kw)
    }
