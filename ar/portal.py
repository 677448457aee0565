"""`ar portal`: issue a customer's portal link, list its links, revoke one or all of them
(docs/portal.md). Written to the portal's own schema with the operator as the actor, like the
API does for a caller; the customer is not looked up in the invoice service (ops know it)."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any

import typer

from ar.common import console, engines, operator, service_settings
from services.portal.api.routes import CUSTOMER_ID
from services.portal.application import links
from services.portal.config import PortalSettings
from shared.db import make_sessionmaker
from shared.eventstore.store import AppendContext

app = typer.Typer(help="Customer portal links: issue, list, revoke.", no_args_is_help=True)

TENANT = typer.Option(..., "--tenant", "-t", help="The customer's tenant.")
ACTOR = typer.Option(None, help="Who does it, for the record (default: the OS user).")


async def _in_portal(action: Any) -> Any:
    async with engines(["portal"], "portal") as opened:
        sessions = make_sessionmaker(opened["portal"])
        async with sessions() as session, session.begin():
            return await action(session)


def _customer(customer_id: str) -> str:
    if not re.match(CUSTOMER_ID, customer_id):
        raise typer.BadParameter(f"not a customer id: {customer_id!r}")
    return customer_id


def _settings() -> PortalSettings:
    settings = service_settings("portal")
    assert isinstance(settings, PortalSettings)
    return settings


@app.command("link")
def link(
    customer_id: str,
    tenant: str = TENANT,
    ttl_days: int = typer.Option(None, min=1, max=366, help="Days until it expires."),
    actor: str = ACTOR,
) -> None:
    """Print a new signed link for the customer (JSON: link_id, url, expires_at)."""
    ctx = AppendContext(tenant_id=tenant, actor=operator(actor))
    issued = asyncio.run(
        _in_portal(
            lambda s: links.issue(s, ctx, _settings().links, _customer(customer_id), ttl_days)
        )
    )
    typer.echo(json.dumps(issued))


@app.command("links")
def list_links(customer_id: str, tenant: str = TENANT) -> None:
    """The links issued through the API or this command, newest first (JSON lines)."""
    customer = _customer(customer_id)
    for item in asyncio.run(_in_portal(lambda s: links.links_of(s, tenant, customer))):
        typer.echo(json.dumps(item))


@app.command("revoke")
def revoke(
    customer_id: str,
    tenant: str = TENANT,
    link_id: str = typer.Option(None, "--link", help="One link; without it, all of them."),
    reason: str = typer.Option(..., help="Why, for the record."),
    actor: str = ACTOR,
) -> None:
    """Revoke one link (also one an e-mail carried) or every link of the customer until now."""
    try:
        which = uuid.UUID(link_id) if link_id else None
    except ValueError:
        raise typer.BadParameter(f"not a link id: {link_id!r}") from None
    ctx = AppendContext(tenant_id=tenant, actor=operator(actor))
    customer = _customer(customer_id)
    asyncio.run(_in_portal(lambda s: links.revoke(s, ctx, customer, which, reason)))
    console.print(f"revoked {'link ' + str(which) if which else 'every link'} of {customer_id}")
