"""One error vocabulary for every service.

Domain and application code raise these; the web layer turns each into the single error body
`{"error": {"code", "message", "details"}}` with the status it carries.
"""

from __future__ import annotations

from typing import Any, ClassVar


class LedgerlineError(Exception):
    """Base for errors that are part of the API contract (never an unexpected bug)."""

    status_code: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "details": self.details}}


class NotFound(LedgerlineError):
    status_code = 404
    code = "not_found"


class ConcurrencyConflict(LedgerlineError):
    """Someone else changed the stream since the caller read it; re-read and retry."""

    status_code = 409
    code = "concurrency_conflict"


class StateConflict(LedgerlineError):
    """The command is not allowed in the aggregate's current state (e.g. PATCH on an issued invoice)."""

    status_code = 409
    code = "state_conflict"


class ValidationFailed(LedgerlineError):
    status_code = 422
    code = "validation_failed"


class IdempotencyKeyReused(LedgerlineError):
    """Same Idempotency-Key sent with a different request: Stripe answers 422 too."""

    status_code = 422
    code = "idempotency_key_reused"


class Unauthenticated(LedgerlineError):
    status_code = 401
    code = "unauthenticated"


class Forbidden(LedgerlineError):
    status_code = 403
    code = "forbidden"


class ServiceUnavailable(LedgerlineError):
    status_code = 503
    code = "service_unavailable"
