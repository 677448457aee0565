"""The portal service's published events (stream ``portal_access-<customer>``, one per customer).

Links themselves are signed and carry their expiry (shared/portal_links.py); these events are
the audit trail of who issued which link to whom, and of revocations, which the portal enforces.
"""

from __future__ import annotations

import uuid
from typing import Annotated, ClassVar

from pydantic import AwareDatetime, Field

from shared.contracts.credit import CustomerId
from shared.contracts.fields import Text
from shared.events.registry import EventPayload, registry
from shared.money import Money


@registry.payload
class PortalLinkIssued(EventPayload):
    event_type: ClassVar[str] = "PortalLinkIssued"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    link_id: uuid.UUID
    expires_at: AwareDatetime


@registry.payload
class PortalLinkRevoked(EventPayload):
    """One link, or (``link_id`` None) every link of the customer issued before ``revoked_at``."""

    event_type: ClassVar[str] = "PortalLinkRevoked"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    link_id: uuid.UUID | None
    revoked_at: AwareDatetime
    reason: Text


@registry.payload
class PortalCheckoutStarted(EventPayload):
    """The customer chose invoices to pay and was handed to the gateway's hosted page; the
    payment itself is the payments service's PaymentReceived, from the gateway's webhook."""

    event_type: ClassVar[str] = "PortalCheckoutStarted"
    schema_version: ClassVar[int] = 1

    customer_id: CustomerId
    checkout_id: uuid.UUID
    invoice_ids: list[uuid.UUID]
    amount: Money
    gateway_session: Annotated[str, Field(min_length=1, max_length=255)]
