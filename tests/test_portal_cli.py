"""`ar portal` as an operator runs it: a link that opens the portal's checks, listed, revoked."""

from __future__ import annotations

import asyncio
import json
import uuid

import pytest
from typer.testing import CliRunner, Result

from ar.main import app as cli
from services.portal.config import PortalSettings
from shared.portal_links import verify_link

pytestmark = pytest.mark.integration


async def ar(*args: str) -> Result:
    return await asyncio.to_thread(CliRunner().invoke, cli, list(args))


async def test_an_operator_issues_lists_and_revokes_a_link() -> None:
    tenant = f"tc{uuid.uuid4().hex[:8]}"
    issued = await ar("portal", "link", "cust-7", "--tenant", tenant, "--actor", "user:ops")
    assert issued.exit_code == 0, issued.output
    link = json.loads(issued.stdout)
    token = link["url"].rsplit("/", 1)[1]
    seen = verify_link(PortalSettings().links, token)
    assert (seen.tenant_id, seen.customer_id, str(seen.link_id)) == (
        tenant,
        "cust-7",
        link["link_id"],
    )
    listed = await ar("portal", "links", "cust-7", "--tenant", tenant)
    assert [json.loads(line)["revoked_at"] for line in listed.stdout.splitlines()] == [None]
    other = await ar("portal", "links", "cust-7", "--tenant", f"{tenant}x")
    assert other.stdout == ""  # another tenant's customer of the same id has no links

    assert (await ar("portal", "link", "a/b", "--tenant", tenant)).exit_code != 0
    bad = await ar("portal", "revoke", "cust-7", "-t", tenant, "--link", "nope", "--reason", "x")
    assert bad.exit_code != 0
    revoked = await ar(
        "portal", "revoke", "cust-7", "-t", tenant, "--link", link["link_id"], "--reason", "typo"
    )
    assert revoked.exit_code == 0, revoked.output
    listed = await ar("portal", "links", "cust-7", "--tenant", tenant)
    assert json.loads(listed.stdout.splitlines()[0])["revoked_at"] is not None
