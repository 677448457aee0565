"""FastAPI dependencies: the caller's principal, a tenant-scoped request context, sessions."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.ext.asyncio import AsyncSession

from shared.auth import Principal, verify_token
from shared.errors import Forbidden, Unauthenticated, ValidationFailed
from shared.eventstore.store import AppendContext, retry_on_conflict
from shared.idempotency import fingerprint, run_idempotent
from shared.logs import correlation_id_var
from shared.tracing import current_traceparent
from shared.web.runtime import ServiceRuntime

_bearer = HTTPBearer(auto_error=False, description="OAuth2 client-credentials JWT")


def runtime_of(request: Request) -> ServiceRuntime:
    runtime: ServiceRuntime = request.app.state.runtime
    return runtime


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise Unauthenticated("missing bearer token")
    return verify_token(credentials.credentials, runtime_of(request).settings.auth)


class Requires:
    """`Depends(Requires("invoices:write"))`: authenticated, and holding every named scope."""

    def __init__(self, *scopes: str) -> None:
        self.scopes = scopes

    async def __call__(
        self, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        principal.require(*self.scopes)
        return principal


class RequiresAny(Requires):
    """Authenticated, and holding at least one of the named scopes (e.g. a service-specific scope
    or the scope of the caller a service acts for)."""

    async def __call__(
        self, principal: Annotated[Principal, Depends(current_principal)]
    ) -> Principal:
        if not any(principal.has(scope) for scope in self.scopes):
            raise Forbidden(
                f"needs one of the scopes: {' '.join(self.scopes)}",
                {"any_of_scopes": list(self.scopes)},
            )
        return principal


def _nul_locations(value: Any, loc: list[str | int]) -> Iterator[list[str | int]]:
    if isinstance(value, str):
        if "\x00" in value:
            yield loc
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _nul_locations(key, loc)
            yield from _nul_locations(item, [*loc, key])
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_locations(item, [*loc, index])


_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


async def reject_nul_characters(request: Request) -> None:
    """PostgreSQL text and jsonb cannot hold U+0000, so a request carrying one anywhere (a path or
    query parameter, a string in a JSON body) is invalid input: 422, never a 500 from the database."""
    locations: list[list[str | int]] = [
        ["path", name] for name, value in request.path_params.items() if "\x00" in str(value)
    ]
    locations += [
        ["query", name]
        for name, value in request.query_params.multi_items()
        if "\x00" in name or "\x00" in value
    ]
    if request.headers.get("content-type", "").startswith(_FORM_TYPES):
        form = await request.form()  # parsed once, and kept for the route's Form parameters
        locations += [
            ["body", name]
            for name, value in form.multi_items()
            if "\x00" in name or (isinstance(value, str) and "\x00" in value)
        ]
        body = b""
    else:
        body = await request.body()
    if b"\\u0000" in body:
        try:
            document = json.loads(body)
        except ValueError:
            document = None  # not JSON: the route's own validation answers
        locations += [["body", *loc] for loc in _nul_locations(document, [])]
    if locations:
        errors = [
            {"loc": loc, "msg": "NUL characters are not allowed", "type": "string_nul_character"}
            for loc in locations
        ]
        raise ValidationFailed("request is not valid", {"errors": errors})


def append_context(principal: Principal, customer_id: str | None = None) -> AppendContext:
    """Envelope fields from the request: tenant and actor from the token, ids from the context."""
    cid = correlation_id_var.get()
    return AppendContext(
        tenant_id=principal.tenant_id,
        actor=principal.actor,
        customer_id=customer_id,
        correlation_id=uuid.UUID(cid) if cid else None,
        traceparent=current_traceparent(),
    )


async def db_session(request: Request) -> AsyncIterator[AsyncSession]:
    async with runtime_of(request).sessions() as session:
        yield session


async def create_idempotently(
    request: Request,
    principal: Principal,
    operation: Any,
) -> JSONResponse:
    """Run a creating command in one transaction, honouring an optional Idempotency-Key header.

    `operation(session) -> (status_code, json_body)`; it must not commit (this does).
    """
    runtime = runtime_of(request)
    key = request.headers.get("idempotency-key")
    async with runtime.sessions() as session, session.begin():
        if key is None:
            status, body = await operation(session)
            return JSONResponse(body, status_code=status)
        stored = await run_idempotent(
            session,
            runtime.settings.schema_name,
            tenant_id=principal.tenant_id,
            key=key,
            request_fingerprint=fingerprint(request.method, request.url.path, await request.body()),
            operation=operation,
        )
    headers = {"Idempotent-Replayed": "true"} if stored.replayed else None
    return JSONResponse(stored.body, status_code=stored.status_code, headers=headers)


Action = Callable[[AsyncSession, AppendContext], Awaitable[Any]]


async def run_command(
    request: Request, principal: Principal, status: int, action: Action
) -> JSONResponse:
    """A command as an HTTP response: one transaction, Idempotency-Key honoured, and re-run from
    the read when it loses an optimistic-concurrency race."""
    ctx = append_context(principal)

    async def operation(session: AsyncSession) -> tuple[int, Any]:
        return status, await action(session, ctx)

    return await retry_on_conflict(lambda: create_idempotently(request, principal, operation))
