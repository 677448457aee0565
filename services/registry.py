"""What the operator tooling needs to know about each service without starting it: its
settings and the consumer groups (with their handlers) it runs."""

from __future__ import annotations

import importlib
from collections.abc import Callable

from services import SERVICE_PORTS
from shared.settings import ServiceSettings
from shared.web.runtime import ConsumerSpec

SERVICES: tuple[str, ...] = tuple(SERVICE_PORTS)


def settings_of(service: str) -> ServiceSettings:
    if service not in SERVICE_PORTS:
        raise ValueError(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    module = importlib.import_module(f"services.{service}.config")
    settings: ServiceSettings = getattr(module, f"{service.capitalize()}Settings")()
    return settings


def _invoice(_: ServiceSettings) -> list[ConsumerSpec]:
    from services.invoice.consumers.handlers import CONSUMERS

    return list(CONSUMERS)


def _payments(settings: ServiceSettings) -> list[ConsumerSpec]:
    from services.payments.config import PaymentsSettings
    from services.payments.consumers import consumers

    assert isinstance(settings, PaymentsSettings)
    return consumers(settings.matching_policy())


def _credit(_: ServiceSettings) -> list[ConsumerSpec]:
    from services.credit.consumers import CONSUMERS

    return list(CONSUMERS)


def _dunning(_: ServiceSettings) -> list[ConsumerSpec]:
    from services.dunning.consumers import CONSUMERS

    return list(CONSUMERS)


def _reporting(settings: ServiceSettings) -> list[ConsumerSpec]:
    from services.reporting.config import ReportingSettings
    from services.reporting.consumers import consumers

    assert isinstance(settings, ReportingSettings)
    return consumers(settings.schema_name, journal=settings.run_journal)


def _portal(_: ServiceSettings) -> list[ConsumerSpec]:
    return []  # reads the other services over REST when a customer asks; consumes nothing


_CONSUMERS: dict[str, Callable[[ServiceSettings], list[ConsumerSpec]]] = {
    "invoice": _invoice,
    "payments": _payments,
    "credit": _credit,
    "dunning": _dunning,
    "reporting": _reporting,
    "portal": _portal,
}


def consumer_specs(service: str, settings: ServiceSettings | None = None) -> list[ConsumerSpec]:
    """The consumer groups the service runs, exactly as its app builds them."""
    return _CONSUMERS[service](settings or settings_of(service))
