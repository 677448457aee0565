"""REST client for the credit service's credit check, called before an invoice is issued.

Contract (the credit service implements it): `POST /v1/credit-checks` with
`{"customer_id", "amount": {"amount", "currency"}, "reference"}` and the caller's bearer token
forwarded (the check is tenant-scoped like every request). The check is idempotent per
`reference` (`invoice:<id>`): a retried issue after a pass gets the same check and never reserves
twice, while a retry after a refusal is decided afresh (the limit may have been raised). No
Idempotency-Key is sent: it would replay the first refusal forever. The answer is
`{"check_id", "outcome": "passed" | "failed", "reasons": [{"code", "message"}]}`.
Anything else — timeout, refused connection, 5xx, an unreadable body — is "unavailable", and the
issuing policy (a setting) decides what that means.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import httpx

from shared.money import Money
from shared.tracing import current_traceparent

log = logging.getLogger(__name__)

Outcome = Literal["passed", "failed", "unavailable"]


@dataclass(frozen=True)
class CreditDecision:
    outcome: Outcome
    check_id: str | None = None
    reasons: list[dict[str, str]] = field(default_factory=list)

    @property
    def reason_text(self) -> str | None:
        return "; ".join(r.get("message", r.get("code", "")) for r in self.reasons) or None


class CreditCheckClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout_seconds: float = 2.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout_seconds, transport=transport
        )

    async def check(
        self,
        *,
        customer_id: str,
        amount: Money,
        reference: str,
        bearer_token: str,
        correlation_id: str | None = None,
    ) -> CreditDecision:
        headers = {"Authorization": f"Bearer {bearer_token}"}
        if correlation_id:
            headers["X-Correlation-ID"] = correlation_id
        if traceparent := current_traceparent():
            headers["traceparent"] = traceparent  # the credit check joins the request's trace
        body = {"customer_id": customer_id, "amount": amount.model_dump(), "reference": reference}
        try:
            response = await self._post(body, headers)
        except httpx.HTTPError as exc:
            log.warning("credit check for %s unavailable: %r", reference, exc)
            return CreditDecision("unavailable")
        if response.status_code >= 500 or response.status_code in (404, 408, 429):
            log.warning("credit check for %s answered %d", reference, response.status_code)
            return CreditDecision("unavailable")
        try:
            data = response.json()
            outcome = data["outcome"]
            if response.status_code >= 400 or outcome not in ("passed", "failed"):
                raise ValueError(f"status {response.status_code}, outcome {outcome!r}")
            reasons = [
                {"code": str(r.get("code", "")), "message": str(r.get("message", ""))}
                for r in data.get("reasons", [])
            ]
            return CreditDecision(outcome, str(data.get("check_id")) or None, reasons)
        except (ValueError, KeyError, TypeError) as exc:
            log.warning("credit check for %s: unreadable answer (%s)", reference, exc)
            return CreditDecision("unavailable")

    async def _post(self, body: Mapping[str, object], headers: dict[str, str]) -> httpx.Response:
        """Once more on a broken connection (the server closed an idle keep-alive connection as
        it was reused, seen under load): safe, because the check is idempotent per reference.
        A timeout is not retried: the caller's latency budget is spent."""
        try:
            return await self._client.post("/v1/credit-checks", json=body, headers=headers)
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            log.info("credit check connection broke (%r); retrying once", exc)
            return await self._client.post("/v1/credit-checks", json=body, headers=headers)

    async def close(self) -> None:
        await self._client.aclose()
