"""The one way a service builds its FastAPI app: health, readiness, metrics, errors, auth, tracing,
lifecycle."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from shared.errors import Unauthenticated
from shared.heap import freeze_startup_heap
from shared.logs import setup_logging
from shared.metrics import ServiceMetrics
from shared.outbox import TopicRouter
from shared.settings import ServiceSettings
from shared.tracing import setup_tracing
from shared.web.audit import audit_router
from shared.web.deps import reject_nul_characters
from shared.web.errors import install_error_handlers
from shared.web.middleware import RequestContextMiddleware
from shared.web.runtime import ConsumerSpec, ServiceRuntime, Worker


def create_service_app(
    settings: ServiceSettings,
    *,
    title: str,
    description: str = "",
    routers: Sequence[APIRouter] = (),
    consumers: Sequence[ConsumerSpec] = (),
    topic_router: TopicRouter | None = None,
    on_shutdown: Sequence[Callable[[], Awaitable[None]]] = (),
    workers: Sequence[Worker] = (),
    version: str = "0.1.0",
    secret_paths: tuple[str, ...] = (),
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        setup_logging(settings.service_name, settings.telemetry.log_level)
        setup_tracing(f"ledgerline-{settings.service_name}", settings.telemetry)
        runtime = ServiceRuntime.create(settings)
        app.state.runtime = runtime
        app.state.metrics = ServiceMetrics(runtime)
        await runtime.start(list(consumers), topic_router)
        for worker in workers:
            runtime.spawn(worker.run(runtime), worker.name)
        freeze_startup_heap()
        try:
            yield
        finally:
            await runtime.stop()
            for hook in on_shutdown:
                await hook()

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        dependencies=[Depends(reject_nul_characters)],
    )
    install_error_handlers(app)
    app.add_middleware(
        RequestContextMiddleware, service=settings.service_name, secret_paths=secret_paths
    )

    @app.get("/healthz", tags=["ops"], summary="Liveness: the process answers")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "service": settings.service_name}

    @app.get(
        "/readyz",
        tags=["ops"],
        summary="Readiness: database and Kafka reachable",
        responses={503: {"description": "not ready"}},
    )
    async def readyz() -> Any:
        runtime: ServiceRuntime = app.state.runtime
        checks = (
            await runtime.check_database(),
            await runtime.check_kafka(),
            runtime.check_workers(),
        )
        problems = [p for p in checks if p]
        relay = runtime.relay
        body = {
            "status": "ready" if not problems else "not_ready",
            "service": settings.service_name,
            "problems": problems,
            "relay_leader": relay.stats.is_leader if relay else None,
        }
        return JSONResponse(body, status_code=503 if problems else 200)

    @app.get(
        "/metrics",
        tags=["ops"],
        summary="Prometheus metrics (text exposition format)",
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}}},
    )
    async def metrics(
        authorization: str | None = Header(None, include_in_schema=False),
    ) -> Response:
        token = settings.metrics_token
        if token is not None and not hmac.compare_digest(
            (authorization or "").encode(), f"Bearer {token.get_secret_value()}".encode()
        ):
            raise Unauthenticated("/metrics needs the scraper's bearer token")
        service_metrics: ServiceMetrics = app.state.metrics
        return Response(await service_metrics.render(), media_type=CONTENT_TYPE_LATEST)

    for router in (*routers, audit_router()):
        app.include_router(router)
    return app
