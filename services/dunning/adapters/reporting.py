"""The reporting service's statement of account, fetched when a statement e-mail is sent.

Fetched at send time rather than when queued, so the e-mail carries the figures of the moment
it goes out. Every failure raises :class:`StatementUnavailable`; ``transient`` says whether the
mailer's retry (with its growing delay) may help. A statement is never sent without them.
The bearer token is minted per tenant (``ServiceTokens``) and never appears in an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Final, Literal

import httpx

from shared.service_tokens import ServiceTokens

SUBJECT: Final = "dunning-statements"
SCOPES: Final = frozenset({"reporting:read"})
StatementFormat = Literal["pdf", "csv", "json"]
CONTENT_TYPES: Final[dict[str, str]] = {
    "pdf": "application/pdf",
    "csv": "text/csv",
    "json": "application/json",
}
#: Answers that say this request can never succeed (the statement itself is refused); anything
#: else, 401/403/404 included (a key or a deployment out of step), is worth retrying.
_PERMANENT: Final = frozenset({400, 422})


class StatementUnavailable(Exception):
    def __init__(self, reason: str, *, transient: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.transient = transient


@dataclass(frozen=True)
class StatementDocument:
    format: StatementFormat
    content_type: str
    data: bytes


class StatementClient:
    """GET /v1/customers/{id}/statement of the reporting service. ``client`` may be injected
    (tests route it in-process with ``httpx.ASGITransport``); otherwise one is owned here."""

    def __init__(
        self,
        base_url: str,
        tokens: ServiceTokens,
        *,
        client: httpx.AsyncClient | None = None,
        timeout_seconds: float = 30.0,
    ) -> None:
        self._base_url = base_url.rstrip("/")
        self._tokens = tokens
        self._client = client or httpx.AsyncClient(timeout=timeout_seconds)
        self._owned = client is None

    async def aclose(self) -> None:
        if self._owned:
            await self._client.aclose()

    async def fetch(
        self,
        tenant_id: str,
        customer_id: str,
        from_date: date,
        to_date: date,
        fmt: StatementFormat,
    ) -> StatementDocument:
        url = f"{self._base_url}/v1/customers/{customer_id}/statement"
        params = {"from_date": from_date.isoformat(), "to_date": to_date.isoformat(), "format": fmt}
        where = f"reporting statement ({fmt}) for customer {customer_id}"
        try:
            response = await self._client.get(
                url, params=params, headers=self._tokens.headers(tenant_id, SUBJECT, SCOPES)
            )
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise StatementUnavailable(
                f"cannot fetch the {where}: {type(exc).__name__}: {exc}", transient=True
            ) from exc
        if response.status_code != 200:
            raise StatementUnavailable(
                f"the {where} answered {response.status_code}: {response.text[:200]}",
                transient=response.status_code not in _PERMANENT,
            )
        expected = CONTENT_TYPES[fmt]
        content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != expected or not response.content:
            raise StatementUnavailable(
                f"the {where} came back as {content_type or 'nothing'} "
                f"({len(response.content)} bytes), not {expected}",
                transient=True,
            )
        if fmt == "pdf" and not response.content.startswith(b"%PDF"):
            raise StatementUnavailable(f"the {where} is not a PDF", transient=True)
        return StatementDocument(fmt, expected, response.content)
