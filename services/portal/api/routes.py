"""The portal's REST API for internal systems: issue a customer's link, list its links, revoke
one or all of them. The pages customers see are in pages.py."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from services.portal.application import links
from services.portal.application.upstream import READ_SCOPES, Upstream
from services.portal.config import PortalSettings
from shared.auth import Principal
from shared.contracts.fields import Text
from shared.errors import NotFound
from shared.eventstore.store import AppendContext
from shared.web.deps import Requires, db_session, run_command, runtime_of

router = APIRouter(prefix="/v1", tags=["portal links"])
Reader = Annotated[Principal, Depends(Requires("portal:read"))]
Writer = Annotated[Principal, Depends(Requires("portal:write"))]
Session = Annotated[AsyncSession, Depends(db_session)]
# The invoice service's customer ids (and what an event's stream id can hold): anything else
# is no customer, and would reach the event store or the invoice service's URL unchecked.
CUSTOMER_ID = r"^[A-Za-z0-9._:-]{1,64}$"
CustomerId = Annotated[str, Path(pattern=CUSTOMER_ID)]


class IssueBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: Annotated[str, Field(pattern=CUSTOMER_ID)]
    ttl_days: Annotated[int, Field(ge=1, le=366)] | None = None


class RevokeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Text


def settings_of(request: Request) -> PortalSettings:
    settings = runtime_of(request).settings
    assert isinstance(settings, PortalSettings)
    return settings


def upstream_of(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream
    return upstream


@router.post("/portal-links", status_code=201, summary="A signed, expiring link for a customer")
async def issue_link(request: Request, body: IssueBody, principal: Writer) -> JSONResponse:
    """The customer must be known to the invoice service (a link to nobody is a mistake)."""
    found = await upstream_of(request).request(
        "invoice",
        "GET",
        f"/v1/customers/{body.customer_id}",
        None,
        READ_SCOPES,
        tenant_id=principal.tenant_id,
    )
    # "." or ".." are dot segments in a URL: the answer is then another resource's
    if found.json().get("customer_id") != body.customer_id:
        raise NotFound("customer not found", {"customer_id": body.customer_id})
    settings = settings_of(request).links

    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return await links.issue(session, ctx, settings, body.customer_id, body.ttl_days)

    return await run_command(request, principal, 201, action)


@router.get("/customers/{customer_id}/portal-links", summary="Links issued through this API")
async def list_links(customer_id: CustomerId, principal: Reader, session: Session) -> Any:
    return {"items": await links.links_of(session, principal.tenant_id, customer_id)}


@router.post(
    "/customers/{customer_id}/portal-links/{link_id}/revoke",
    summary="Revoke one link (any signed link, also one an e-mail carried)",
)
async def revoke_link(
    request: Request,
    customer_id: CustomerId,
    link_id: uuid.UUID,
    body: RevokeBody,
    principal: Writer,
) -> JSONResponse:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return await links.revoke(session, ctx, customer_id, link_id, body.reason)

    return await run_command(request, principal, 200, action)


@router.post(
    "/customers/{customer_id}/portal-links/revoke",
    summary="Revoke every link of the customer issued until now",
)
async def revoke_all(
    request: Request, customer_id: CustomerId, body: RevokeBody, principal: Writer
) -> JSONResponse:
    async def action(session: AsyncSession, ctx: AppendContext) -> Any:
        return await links.revoke(session, ctx, customer_id, None, body.reason)

    return await run_command(request, principal, 200, action)
