"""Portal links: only the signer's links open the portal, each for its customer, until expiry."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr

from shared.errors import Unauthenticated
from shared.portal_links import (
    PortalLinkSettings,
    csrf_token,
    csrf_valid,
    issue_link,
    link_url,
    verify_link,
)

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
SETTINGS = PortalLinkSettings(base_url="https://portal.example/", secret=SecretStr("s" * 40))


def test_a_link_names_its_tenant_customer_and_expiry() -> None:
    link, token = issue_link(SETTINGS, "t1", "cust-1", now=NOW)
    seen = verify_link(SETTINGS, token, now=NOW + timedelta(days=29))
    assert (seen.tenant_id, seen.customer_id, seen.link_id) == ("t1", "cust-1", link.link_id)
    assert seen.expires_at == NOW + timedelta(days=30)
    assert link_url(SETTINGS, token) == f"https://portal.example/p/{token}"
    with pytest.raises(Unauthenticated, match="expired"):
        verify_link(SETTINGS, token, now=NOW + timedelta(days=30))
    # issued mid-second: the token's issue time keeps its milliseconds, its expiry is what the
    # issuer recorded, to the second
    odd, token = issue_link(SETTINGS, "t1", "cust-1", now=NOW + timedelta(microseconds=123_456))
    seen = verify_link(SETTINGS, token, now=NOW)
    assert (seen.issued_at, seen.expires_at) == (odd.issued_at, odd.expires_at)
    assert odd.issued_at.microsecond == 123_000 and odd.expires_at.microsecond == 0


def test_an_altered_or_foreign_link_is_refused() -> None:
    _, token = issue_link(SETTINGS, "t1", "cust-1", now=NOW)
    _, other = issue_link(SETTINGS, "t1", "cust-2", now=NOW)
    payload, signature = token.split(".")
    forged = f"{other.split('.')[0]}.{signature}"  # another customer's claims, this signature
    foreign = PortalLinkSettings(secret=SecretStr("x" * 40))
    for bad in (forged, f"{payload}.{'A' * 43}", token[:-1], "", "a.b", token + "x"):
        with pytest.raises(Unauthenticated):
            verify_link(SETTINGS, bad, now=NOW)
    with pytest.raises(Unauthenticated, match="signature"):
        verify_link(foreign, token, now=NOW)


def test_a_rotated_secret_still_opens_links_signed_before_the_rotation() -> None:
    _, token = issue_link(SETTINGS, "t1", "cust-1", now=NOW)
    rotated = PortalLinkSettings(secret=SecretStr("n" * 40), previous_secrets=[SETTINGS.secret])
    assert verify_link(rotated, token, now=NOW).customer_id == "cust-1"


def test_the_csrf_token_is_bound_to_one_link() -> None:
    first, _ = issue_link(SETTINGS, "t1", "cust-1", now=NOW)
    second, _ = issue_link(SETTINGS, "t1", "cust-1", now=NOW)
    token = csrf_token(SETTINGS, first)
    assert csrf_valid(SETTINGS, first, token)
    assert not csrf_valid(SETTINGS, second, token)
    assert not csrf_valid(SETTINGS, first, None)
    assert not csrf_valid(SETTINGS, first, token[:-1] + ("A" if token[-1] != "A" else "B"))
