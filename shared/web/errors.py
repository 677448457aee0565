"""Every error leaves a service as `{"error": {"code", "message", "details"}}`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.db import ASYNCPG_UNAVAILABLE, database_unavailable
from shared.errors import LedgerlineError

log = logging.getLogger(__name__)

_HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "too_many_requests",
}


# How long a client should wait before retrying a request the database could not serve.
RETRY_AFTER_SECONDS = 1


def error_response(status: int, code: str, message: str, details: object = None) -> JSONResponse:
    headers = None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="ledgerline"'}
    elif status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    return JSONResponse(
        status_code=status,
        content={"error": {"code": code, "message": message, "details": details or {}}},
        headers=headers,
    )


# What a 422 body really is; FastAPI documents its own `{"detail": [...]}` instead.
ERROR_BODY_SCHEMA: dict[str, Any] = {
    "title": "ErrorBody",
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}


def _document_error_body(app: FastAPI) -> None:
    """The OpenAPI document describes the error body the handlers below actually send."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schemas = build().get("components", {}).get("schemas", {})
            if "HTTPValidationError" in schemas:
                schemas["HTTPValidationError"] = ERROR_BODY_SCHEMA
        return app.openapi_schema or build()

    app.openapi = openapi  # type: ignore[method-assign]


def install_error_handlers(app: FastAPI) -> None:
    _document_error_body(app)

    @app.exception_handler(LedgerlineError)
    async def _domain(_: Request, exc: LedgerlineError) -> JSONResponse:
        return error_response(exc.status_code, exc.code, exc.message, exc.details)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg"), "type": e.get("type")}
            for e in exc.errors()
        ]
        return error_response(
            422, "validation_failed", "request is not valid", jsonable_encoder({"errors": errors})
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(exc.status_code, code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "an unexpected error occurred")

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        """A lost or refused database connection (Postgres restarting, the pool exhausted) is
        the service being unavailable for a moment: 503 and Retry-After, so callers retry (a
        write with its Idempotency-Key: a connection lost during COMMIT leaves the outcome
        unknown). Any other database error is a bug: 500."""
        if not database_unavailable(exc):
            return await _unexpected(request, exc)
        # The type only: a database error's text carries the statement and its parameters.
        log.warning(
            "database unavailable on %s %s: %s",
            request.method,
            request.url.path,
            type(exc).__name__,
        )
        return error_response(
            503, "service_unavailable", "the database is unavailable; retry shortly"
        )

    for kind in (DBAPIError, PoolTimeout, OSError, *ASYNCPG_UNAVAILABLE):
        app.add_exception_handler(kind, _database)
