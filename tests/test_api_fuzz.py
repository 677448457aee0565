"""Schemathesis against every service's OpenAPI: for each operation, generated requests (valid
ones, then a few invalid ones) never get a 5xx and every documented answer matches its schema.

Each app runs in-process, API-only (no relay, consumers or scheduler: read models fed by Kafka
stay empty, which is fine here), on the real Postgres, in one event-loop thread started for this
module; every app's lifespan runs once. The caller is a fresh random tenant holding every scope.
Generation is derandomized (no shrinking, to bound the run time), so a failure reproduces; the
test id names the service and the operation, the failure prints a curl command.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import ExitStack, asynccontextmanager
from functools import cache
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from anyio.from_thread import BlockingPortal, start_blocking_portal
from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance
from schemathesis.specs.openapi.schemas import OpenApiSchema
from starlette.routing import BaseRoute

from services.credit.api.app import create_app as credit_app
from services.credit.config import CreditSettings
from services.dunning.api.app import create_app as dunning_app
from services.dunning.config import DunningSettings
from services.invoice.adapters.credit_client import CreditCheckClient
from services.invoice.api.app import create_app as invoice_app
from services.invoice.application.commands import OVERRIDE_SCOPE
from services.invoice.config import InvoiceSettings
from services.payments.api.app import create_app as payments_app
from services.payments.config import PaymentsSettings
from services.portal.api.app import create_app as portal_app
from services.portal.config import PortalSettings
from services.reporting.api.app import create_app as reporting_app
from services.reporting.config import ReportingSettings
from shared.migrations import upgrade
from shared.settings import ServiceSettings
from shared.testing import HostRoutes, bearer
from shared.web.deps import Requires

pytestmark = [
    pytest.mark.integration,
    # schemathesis' own strategies draw from `random`; not ours to fix
    pytest.mark.filterwarnings("ignore::hypothesis.errors.HypothesisDeprecationWarning"),
]

SERVICES = ("invoice", "credit", "payments", "dunning", "reporting", "portal")
# The services the portal calls (issuing a link asks the invoice service for the customer): it
# reaches them in-process at http://<name>, the same apps the fuzzer calls, started before it.
PORTAL_UPSTREAMS = ("invoice", "payments", "dunning", "reporting")
# per operation; the whole file runs in about two minutes on two cores
VALID_EXAMPLES = 40
INVALID_EXAMPLES = 10
CHECKS = [not_a_server_error, response_schema_conformance]
BASE_URL = "http://testserver"


def _api_routes(routes: Sequence[BaseRoute]) -> Iterator[APIRoute]:
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        included = getattr(route, "original_router", None)  # an included router (FastAPI 0.16x)
        if included is not None:
            yield from _api_routes(included.routes)


def all_scopes(*apps: FastAPI) -> set[str]:
    """Every scope the apps' routes require, and the one the invoice service checks inside the
    issue command (overriding a refused credit check)."""
    found = {OVERRIDE_SCOPE}

    def walk(dependant: Dependant) -> None:
        if isinstance(dependant.call, Requires):
            found.update(dependant.call.scopes)
        for sub in dependant.dependencies:
            walk(sub)

    for app in apps:
        for route in _api_routes(app.routes):
            walk(route.dependant)
    return found


def service_settings(service: str) -> ServiceSettings:
    """API only: no relay, consumers or scheduler."""
    match service:
        case "invoice":
            return InvoiceSettings(run_relay=False, run_consumers=False)
        case "credit":
            return CreditSettings(run_relay=False, run_consumers=False)
        case "payments":
            return PaymentsSettings(run_relay=False, run_consumers=False)
        case "dunning":
            return DunningSettings(run_relay=False, run_consumers=False, run_scheduler=False)
        case "portal":
            return PortalSettings(
                run_relay=False,
                run_consumers=False,
                invoice_url="http://invoice",
                payments_url="http://payments",
                dunning_url="http://dunning",
                reporting_url="http://reporting",
            )
        case _:
            return ReportingSettings(run_relay=False, run_consumers=False)


def _with_credit(invoices: FastAPI, credit: FastAPI) -> None:
    """The invoice app's lifespan also runs the credit app it calls for credit checks."""
    inner = invoices.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async with credit.router.lifespan_context(credit), inner(app) as state:
            yield state

    invoices.router.lifespan_context = lifespan


def build_app(service: str) -> FastAPI:
    """A new app of the service; the invoice app checks credit with an in-process credit app."""
    settings = service_settings(service)
    match service:
        case "invoice":
            credit = build_app("credit")
            client = CreditCheckClient("http://credit", transport=httpx.ASGITransport(app=credit))
            app = invoice_app(settings, client)  # type: ignore[arg-type]
            _with_credit(app, credit)
            return app
        case "credit":
            return credit_app(settings)  # type: ignore[arg-type]
        case "payments":
            return payments_app(settings)  # type: ignore[arg-type]
        case "dunning":
            return dunning_app(settings)  # type: ignore[arg-type]
        case "portal":
            # its upstreams are the fuzzed apps themselves (Apps.client starts them first)
            routes = HostRoutes({name: app_of(name) for name in PORTAL_UPSTREAMS})
            return portal_app(settings, transport=routes)  # type: ignore[arg-type]
        case _:
            return reporting_app(settings)  # type: ignore[arg-type]


@cache
def app_of(service: str) -> FastAPI:
    return build_app(service)


def _operations() -> Iterator[tuple[str, str, str]]:
    for service in SERVICES:
        for path, methods in app_of(service).openapi()["paths"].items():
            for method in methods:
                yield service, method.upper(), path


OPERATIONS = list(_operations())


class Apps:
    """The services' apps, each started (lifespan) on first use in one event-loop thread."""

    def __init__(self, portal: BlockingPortal, stack: ExitStack) -> None:
        self.portal = portal
        self.stack = stack
        self.clients: dict[str, httpx.AsyncClient] = {}

    def client(self, service: str) -> httpx.AsyncClient:
        if service not in self.clients:
            for upstream in PORTAL_UPSTREAMS if service == "portal" else ():
                self.client(upstream)  # the apps the portal calls, started before it
            app = app_of(service)
            self.portal.call(upgrade, service, service_settings(service).dsn())
            self.stack.enter_context(
                self.portal.wrap_async_context_manager(app.router.lifespan_context(app))
            )
            # a crash is answered 500 (and reported with its request), not raised in the test
            transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
            client = httpx.AsyncClient(transport=transport, base_url=BASE_URL)
            self.stack.enter_context(self.portal.wrap_async_context_manager(client))
            self.clients[service] = client
        return self.clients[service]

    def request(self, service: str, method: str, url: str, **kwargs: Any) -> httpx.Response:
        request = self.client(service).build_request(method, url, **kwargs)
        response: httpx.Response = self.portal.call(self.client(service).send, request)
        return response

    def send(self, service: str, case: schemathesis.Case[Any], headers: dict[str, str]) -> Any:
        """The generated request, exactly as schemathesis would put it on the wire."""
        kwargs = case.as_transport_kwargs(base_url=BASE_URL, headers=dict(headers))
        fields = ("method", "url", "headers", "params", "cookies", "data", "json", "files")
        wire = requests.Request(**{k: kwargs[k] for k in fields if k in kwargs}).prepare()
        headers = {
            k: v if isinstance(v, str) else v.decode("latin-1") for k, v in wire.headers.items()
        }
        assert wire.body is None or isinstance(wire.body, str | bytes)
        request = httpx.Request(str(wire.method), str(wire.url), headers=headers, content=wire.body)
        return self.portal.call(self.client(service).send, request)


@pytest.fixture(scope="module")
def apps() -> Iterator[Apps]:
    with start_blocking_portal() as portal, ExitStack() as stack:
        yield Apps(portal, stack)


@cache
def schema_of(service: str) -> OpenApiSchema:
    return schemathesis.openapi.from_dict(app_of(service).openapi())


def auth_headers(tenant: str) -> dict[str, str]:
    return bearer(tenant, all_scopes(*(app_of(s) for s in SERVICES)), "fuzzer")


def _has_input(operation: Any) -> bool:
    """Anything to make invalid besides the (fixed) bearer token."""
    inputs = [p for p in operation.iter_parameters() if p.name.lower() != "authorization"]
    return bool(inputs) or len(operation.body) > 0


def _fuzz(
    apps: Apps, service: str, operation: Any, mode: schemathesis.GenerationMode, examples: int
) -> None:
    headers = auth_headers(TENANT)

    @given(case=operation.as_strategy(generation_mode=mode, headers=dict(headers)))
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: schemathesis.Case[Any]) -> None:
        response = apps.send(service, case, headers)
        case.validate_response(response, checks=CHECKS, headers=dict(headers))

    run()


TENANT = f"fz{uuid.uuid4().hex[:10]}"


@pytest.mark.parametrize(
    ("service", "method", "path"), OPERATIONS, ids=[f"{s}:{m} {p}" for s, m, p in OPERATIONS]
)
def test_operation_never_fails_on_the_server(
    apps: Apps, service: str, method: str, path: str
) -> None:
    operation = schema_of(service)[path][method]
    _fuzz(apps, service, operation, schemathesis.GenerationMode.POSITIVE, VALID_EXAMPLES)
    if _has_input(operation):
        try:
            _fuzz(apps, service, operation, schemathesis.GenerationMode.NEGATIVE, INVALID_EXAMPLES)
        except Unsatisfiable:
            pass  # nothing of it can be made invalid (e.g. a free-text path parameter)


def test_every_service_is_fuzzed_with_every_scope() -> None:
    assert {s for s, _, _ in OPERATIONS} == set(SERVICES)
    assert len(OPERATIONS) >= 100, len(OPERATIONS)
    scopes = all_scopes(*(app_of(s) for s in SERVICES))
    assert {"invoices:write", "credit:approve", "reporting:admin", "ops:replay"} <= scopes
    assert {"portal:read", "portal:write"} <= scopes


# ---- what fuzzing found: each is now a clean 422 -------------------------------------------------

NUL = "a\x00b"
FOUND: list[tuple[str, str, str, Any, list[str | int]]] = [
    # text with U+0000, which PostgreSQL cannot store, reached the database (500)
    (
        "payments",
        "POST",
        "/v1/customer-aliases",
        {"name": NUL, "customer_id": "c-1"},
        ["body", "name"],
    ),
    ("dunning", "GET", "/v1/messages?customer_id=%00", None, ["query", "customer_id"]),
    ("dunning", "GET", "/v1/customers/c%001/dunning", None, ["path", "customer_id"]),
    (
        "credit",
        "PUT",
        "/v1/customers/c-1/credit-policy",
        {"documents": [{"name": "n", "kind": "k", "received_on": "2026-01-01", "reference": NUL}]},
        ["body", "documents", 0, "reference"],
    ),
    # dates whose arithmetic left Python's date range (500: OverflowError). The last two were
    # found by hand on existing objects (the fuzzer only reaches unknown ids): issuing a draft
    # on 9999-12-31, and a promise whose grace days every dunning run adds to its date
    ("reporting", "GET", "/v1/reports/customers?as_of=0001-01-31", None, ["query", "as_of"]),
    ("reporting", "GET", "/v1/reports/dso?from=0001-01-01&to=0001-02-01", None, ["query", "from"]),
    ("reporting", "GET", "/v1/reports/forecast?as_of=9999-12-31", None, ["query", "as_of"]),
    ("dunning", "GET", "/v1/dunning/preview?on=9999-12-31", None, ["query", "on"]),
    (
        "invoice",
        "POST",
        f"/v1/invoices/{uuid.UUID(int=1)}/issue",
        {"issue_date": "9999-12-31"},
        ["body", "issue_date"],
    ),
    (
        "dunning",
        "POST",
        "/v1/customers/c-1/promises",
        {
            "invoice_ids": [str(uuid.UUID(int=1))],
            "amount": {"amount": 100, "currency": "EUR"},
            "promised_date": "9999-12-30",
        },
        ["body", "promised_date"],
    ),
    # a portal customer id any non-blank text: "^" failed the event's stream id (500), a control
    # character made the invoice service's URL invalid (500); now the ids every service takes
    (
        "portal",
        "POST",
        "/v1/customers/%5E/portal-links/revoke",
        {"reason": "r"},
        ["path", "customer_id"],
    ),
    ("portal", "POST", "/v1/portal-links", {"customer_id": "c\x11%"}, ["body", "customer_id"]),
]


@pytest.mark.parametrize(
    ("service", "method", "url", "body", "loc"), FOUND, ids=[f"{f[0]}:{f[1]} {f[2]}" for f in FOUND]
)
def test_what_fuzzing_found_is_refused_with_422(
    apps: Apps, service: str, method: str, url: str, body: Any, loc: list[str | int]
) -> None:
    headers = auth_headers(TENANT)
    r = apps.request(service, method, url, json=body, headers=headers)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "validation_failed"
    assert loc in [e["loc"] for e in error["details"]["errors"]], error


def test_a_backslash_u0000_that_is_text_is_accepted(apps: Apps) -> None:
    """Only a real U+0000 is refused, not the six characters \\u0000 written as text."""
    body = {"name": "Payer \\u0000 Ltd", "customer_id": "c-1"}
    r = apps.request(
        "payments", "POST", "/v1/customer-aliases", json=body, headers=auth_headers(TENANT)
    )
    assert r.status_code == 201, r.text


def test_the_portal_issues_a_link_for_a_customer_of_the_invoice_service(apps: Apps) -> None:
    """The fuzzer's customer ids are unknown (404): here the portal's call to the in-process
    invoice service finds the customer, and the link is issued and listed."""
    headers = auth_headers(TENANT)
    customer_id = f"c-{uuid.uuid4().hex[:12]}"
    customer = {
        "customer_id": customer_id,
        "name": "Portal Customer",
        "email": "ap@portal.example",
        "currency": "EUR",
        "billing_address": {
            "line1": "1 Main St",
            "city": "Berlin",
            "postal_code": "10115",
            "country": "DE",
        },
    }
    r = apps.request("invoice", "POST", "/v1/customers", json=customer, headers=headers)
    assert r.status_code == 201, r.text
    body = {"customer_id": customer_id, "ttl_days": 7}
    r = apps.request("portal", "POST", "/v1/portal-links", json=body, headers=headers)
    assert r.status_code == 201, r.text
    link = r.json()
    assert link["customer_id"] == customer_id and link["revoked_at"] is None, link
    assert "/p/" in link["url"], link
    r = apps.request("portal", "GET", f"/v1/customers/{customer_id}/portal-links", headers=headers)
    assert r.status_code == 200, r.text
    assert [item["link_id"] for item in r.json()["items"]] == [link["link_id"]]
    # "." is a dot segment: the invoice service's answer is its list of customers, not one
    r = apps.request(
        "portal", "POST", "/v1/portal-links", json={"customer_id": "."}, headers=headers
    )
    assert r.status_code == 404, r.text
