"""The portal's calls to the services that own the data: each with a token the portal signs for
the link's tenant, naming the link as the actor (``portal:<link_id>``), with only the scopes the
call needs. The services' answers are tenant-wide: the caller checks the customer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any

import httpx

from shared.errors import (
    LedgerlineError,
    NotFound,
    ServiceUnavailable,
    StateConflict,
    ValidationFailed,
)
from shared.logs import correlation_id_var
from shared.portal_links import PortalLink
from shared.service_tokens import ServiceTokens
from shared.tracing import current_traceparent

log = logging.getLogger(__name__)

READ_SCOPES = ("invoices:read", "payments:read", "reporting:read", "dunning:read")
_PAGE = 200
_MAX_PAGES = 25  # 5,000 invoices: more than a portal page should ever list


class Upstream:
    def __init__(
        self,
        urls: Mapping[str, str],
        tokens: ServiceTokens,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 10.0,
    ) -> None:
        self._tokens = tokens
        self._clients = {
            name: httpx.AsyncClient(base_url=url, transport=transport, timeout=timeout)
            for name, url in urls.items()
        }

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()

    async def request(
        self,
        service: str,
        method: str,
        path: str,
        link: PortalLink | None,
        scopes: tuple[str, ...],
        *,
        tenant_id: str | None = None,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        idempotency_key: str | None = None,
    ) -> httpx.Response:
        """The answer when 2xx; the service's refusal as our own error otherwise."""
        tenant = tenant_id or (link.tenant_id if link else "")
        subject = str(link.link_id) if link else "portal"
        headers = self._tokens.headers(tenant, subject, scopes)
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        correlation = correlation_id_var.get()
        if correlation:
            headers["X-Correlation-ID"] = correlation
        traceparent = current_traceparent()
        if traceparent:
            headers["traceparent"] = traceparent
        try:
            response = await self._clients[service].request(
                method, path, params=params, json=json, headers=headers
            )
        except httpx.HTTPError as exc:
            log.warning("%s %s %s failed: %s", service, method, path, type(exc).__name__)
            raise ServiceUnavailable(f"the {service} service cannot be reached") from None
        if response.is_success:
            return response
        raise _refusal(service, response)

    async def json(self, service: str, path: str, link: PortalLink, **kw: Any) -> Any:
        return (await self.request(service, "GET", path, link, READ_SCOPES, **kw)).json()

    async def invoices_of(self, link: PortalLink) -> list[dict[str, Any]]:
        """Every invoice of the link's customer, all pages."""
        items: list[dict[str, Any]] = []
        cursor: str | None = None
        for _ in range(_MAX_PAGES):
            params = {"customer_id": link.customer_id, "limit": _PAGE}
            if cursor:
                params["cursor"] = cursor
            page = await self.json("invoice", "/v1/invoices", link, params=params)
            items.extend(page.get("items", []))
            cursor = page.get("next_cursor")
            if not cursor:
                break
        return items

    async def payments_of(self, link: PortalLink) -> tuple[list[dict[str, Any]], list[Any]]:
        """The customer's payments (newest pages first, bounded) and its unapplied cash."""
        path = f"/v1/customers/{link.customer_id}/payments"
        page = await self.json("payments", path, link, params={"limit": _PAGE})
        return page.get("items", []), page.get("unapplied", [])

    async def promises_of(self, link: PortalLink) -> list[dict[str, Any]]:
        """The customer's open promises to pay; none shown rather than no page when the dunning
        service cannot answer (they are a courtesy on the page, not its substance)."""
        try:
            case = await self.json("dunning", f"/v1/customers/{link.customer_id}/dunning", link)
        except LedgerlineError:
            return []
        return list(case.get("promises", []))

    async def invoice(self, link: PortalLink, invoice_id: uuid.UUID) -> dict[str, Any]:
        """The customer's invoice, or NotFound: also when it is another customer's."""
        view: dict[str, Any] = await self.json("invoice", f"/v1/invoices/{invoice_id}", link)
        if view.get("customer_id") != link.customer_id or view.get("status") == "draft":
            raise NotFound("invoice not found", {"invoice_id": str(invoice_id)})
        return view


def _refusal(service: str, response: httpx.Response) -> LedgerlineError:
    try:
        error = response.json().get("error", {})
        message = str(error.get("message") or "")
    except (ValueError, AttributeError):
        message = ""
    status = response.status_code
    if status == 404:
        return NotFound(message or "not found")
    if status == 409:
        return StateConflict(message or "not possible in the document's current state")
    if status in (400, 422):
        return ValidationFailed(message or "the request was refused")
    log.warning("%s answered %d", service, status)  # 401/403/5xx: our configuration or theirs
    return ServiceUnavailable(f"the {service} service could not do it now; try again later")
