"""Fixtures for kernel tests that need a running app built from the kernel."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from conftest import admin_dsn
from shared.settings import ServiceSettings
from shared.tests.notes_app import notes_router
from shared.web.app import create_service_app


@pytest.fixture
async def app(scratch_schema: str) -> AsyncIterator[FastAPI]:
    settings = ServiceSettings(
        service_name=scratch_schema, database_url=admin_dsn(), run_relay=False, run_consumers=False
    )
    application = create_service_app(settings, title="test", routers=[notes_router()])
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as c:
        yield c
