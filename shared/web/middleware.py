"""Per-request context: correlation id, server span (continuing an incoming traceparent), access
log, and the request-duration histogram of /metrics."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import AbstractContextManager, nullcontext

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.logs import correlation_id_var
from shared.metrics import HTTP_REQUEST_DURATION, UNMATCHED_ROUTE
from shared.tracing import context_from_traceparent, tracer

log = logging.getLogger("ledgerline.access")
_tracer = tracer(__name__)
CORRELATION_HEADER = "x-correlation-id"
_OPS_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def _valid_uuid(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


class RequestContextMiddleware:
    """A plain ASGI middleware (no BaseHTTPMiddleware): it sits on every request's hot path."""

    @staticmethod
    def _server_span(
        method: str, path: str, traceparent: str | None, correlation_id: str
    ) -> AbstractContextManager[trace.Span]:
        """Join the server span FastAPI's own telemetry opened (it extracts `traceparent`);
        open one only where the framework did not, so a request is never two traces."""
        current = trace.get_current_span()
        if current.get_span_context().is_valid:
            current.set_attribute("ledgerline.correlation_id", correlation_id)
            return nullcontext(current)
        return _tracer.start_as_current_span(
            f"{method} {path}",
            context=context_from_traceparent(traceparent),
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": path,
                "ledgerline.correlation_id": correlation_id,
            },
        )

    def __init__(
        self, app: ASGIApp, service: str = "service", secret_paths: tuple[str, ...] = ()
    ) -> None:
        self.app = app
        self.service = service
        # Path prefixes whose rest is a credential (the portal's /p/<link token>): logged and
        # traced as the prefix alone.
        self.secret_paths = secret_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        correlation_id = _valid_uuid(headers.get(CORRELATION_HEADER)) or str(uuid.uuid4())
        token = correlation_id_var.set(correlation_id)
        status = 500
        started = time.perf_counter()

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (CORRELATION_HEADER.encode(), correlation_id.encode()),
                ]
            await send(message)

        method, path = scope["method"], scope["path"]
        for prefix in self.secret_paths:
            if path.startswith(prefix):
                path = f"{prefix}<redacted>"
                # FastAPI's own server span (when tracing is on) recorded the raw path
                trace.get_current_span().set_attribute("url.path", path)
        try:
            with self._server_span(
                method, path, headers.get("traceparent"), correlation_id
            ) as span:
                await self.app(scope, receive, send_with_context)
                if span.is_recording():  # FastAPI's own span has ended (and recorded it) by now
                    span.set_attribute("http.response.status_code", status)
        finally:
            elapsed = time.perf_counter() - started
            elapsed_ms = elapsed * 1000
            if path not in _OPS_PATHS:
                # The route template the router matched (set in the scope while the app ran),
                # never the raw path: ids in paths would make the label set unbounded.
                route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
                HTTP_REQUEST_DURATION.labels(
                    service=self.service,
                    method=method if method in _METHODS else "other",
                    route=route,
                    status=str(status),
                ).observe(elapsed)
            if path not in _OPS_PATHS:
                log.info(
                    "%s %s %d",
                    method,
                    path,
                    status,
                    extra={"status": status, "duration_ms": round(elapsed_ms, 2)},
                )
            correlation_id_var.reset(token)
