"""Signed, expiring links to the customer portal, and the CSRF tokens of its forms.

A link names one customer of one tenant and carries its own expiry, signed with HMAC-SHA256,
so whoever sends it (the dunning mailer, the portal's link API) needs only the secret and no
round trip; the portal checks the signature, the expiry and its revocation list on every
request. Rotation: sign with ``secret``, still accept ``previous_secrets``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, Field, SecretStr

from shared.errors import Unauthenticated
from shared.settings import _env

_CONTEXT = b"ledgerline-portal-link.v1."
_CSRF_CONTEXT = b"ledgerline-portal-csrf.v1."
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{10,2000}\.[A-Za-z0-9_-]{43}$")
DEV_SECRET = "ledgerline-dev-portal-link-secret-change-me"  # noqa: S105 (local stack only)


class PortalLinkSettings(BaseModel):
    """Shared by the portal (which verifies) and every service that sends links (which signs).
    Defaults come from LEDGERLINE_PORTAL_URL and LEDGERLINE_PORTAL_LINK_SECRET so one variable
    configures them all."""

    base_url: str = Field(
        default_factory=lambda: _env("LEDGERLINE_PORTAL_URL", "http://127.0.0.1:8106")
    )
    secret: SecretStr = Field(
        default_factory=lambda: SecretStr(_env("LEDGERLINE_PORTAL_LINK_SECRET", DEV_SECRET))
    )
    previous_secrets: list[SecretStr] = Field(default_factory=list)
    ttl_days: int = Field(default=30, ge=1, le=366)


@dataclass(frozen=True)
class PortalLink:
    link_id: uuid.UUID
    tenant_id: str
    customer_id: str
    issued_at: datetime
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _from_millis(millis: int) -> datetime:
    """Exact, unlike a float division."""
    return datetime.fromtimestamp(millis // 1000, UTC) + timedelta(milliseconds=millis % 1000)


def _mac(secret: SecretStr, context: bytes, message: str) -> str:
    key = secret.get_secret_value().encode()
    return _b64(hmac.new(key, context + message.encode(), hashlib.sha256).digest())


def issue_link(
    settings: PortalLinkSettings,
    tenant_id: str,
    customer_id: str,
    *,
    now: datetime | None = None,
    ttl: timedelta | None = None,
    link_id: uuid.UUID | None = None,
) -> tuple[PortalLink, str]:
    """A new link and its token (the last path segment of :func:`link_url`)."""
    # to the millisecond: "revoke all links until now" must not take one issued just after it
    moment = now or datetime.now(UTC)
    issued = moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    link = PortalLink(
        link_id=link_id or uuid.uuid4(),
        tenant_id=tenant_id,
        customer_id=customer_id,
        issued_at=issued,
        # whole seconds, as the token carries it: what the issuer records is what verifies
        expires_at=(issued + (ttl or timedelta(days=settings.ttl_days))).replace(microsecond=0),
    )
    claims = {
        "l": str(link.link_id),
        "t": tenant_id,
        "c": customer_id,
        "iat": round(issued.timestamp() * 1000),  # milliseconds
        "exp": int(link.expires_at.timestamp()),
    }
    payload = _b64(json.dumps(claims, separators=(",", ":"), sort_keys=True).encode())
    return link, f"{payload}.{_mac(settings.secret, _CONTEXT, payload)}"


def link_url(settings: PortalLinkSettings, token: str) -> str:
    return f"{settings.base_url.rstrip('/')}/p/{token}"


def verify_link(
    settings: PortalLinkSettings, token: str, *, now: datetime | None = None
) -> PortalLink:
    """The link the token names, or :class:`Unauthenticated` (forged, altered or expired).
    Revocation is the portal's to check: it keeps the list."""
    if not _TOKEN.match(token):
        raise Unauthenticated("malformed portal link")
    payload, signature = token.split(".")
    secrets = [settings.secret, *settings.previous_secrets]
    if not any(
        hmac.compare_digest(signature, _mac(secret, _CONTEXT, payload)) for secret in secrets
    ):
        raise Unauthenticated("portal link signature invalid")
    try:
        claims = json.loads(_unb64(payload))
        link = PortalLink(
            link_id=uuid.UUID(claims["l"]),
            tenant_id=str(claims["t"]),
            customer_id=str(claims["c"]),
            issued_at=_from_millis(int(claims["iat"])),
            expires_at=datetime.fromtimestamp(int(claims["exp"]), UTC),
        )
    except (ValueError, KeyError, TypeError):
        raise Unauthenticated("malformed portal link") from None
    if (now or datetime.now(UTC)) >= link.expires_at:
        raise Unauthenticated("portal link expired", {"expired_at": link.expires_at.isoformat()})
    return link


def csrf_token(settings: PortalLinkSettings, link: PortalLink) -> str:
    """The synchronizer token every form of this link's pages carries: bound to the link, so a
    page of another session (or another site) cannot produce it."""
    return _mac(settings.secret, _CSRF_CONTEXT, f"{link.tenant_id}:{link.link_id}")


def csrf_valid(settings: PortalLinkSettings, link: PortalLink, token: str | None) -> bool:
    if not token:
        return False
    secrets = [settings.secret, *settings.previous_secrets]
    message = f"{link.tenant_id}:{link.link_id}"
    return any(
        hmac.compare_digest(token, _mac(secret, _CSRF_CONTEXT, message)) for secret in secrets
    )
