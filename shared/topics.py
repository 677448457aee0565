"""Topic naming: one topic per service and aggregate, `ar.<service>.<aggregate>.v<major>`.

The services' aggregates are listed here so that deploy and the CLI can create every topic
(explicit partitions, infinite retention) before anything produces: auto-creation is off.
"""

from __future__ import annotations

MAJOR_VERSION = 1
DLQ_SUFFIX = ".dlq"

SERVICE_AGGREGATES: dict[str, tuple[str, ...]] = {
    "invoice": ("invoice", "customer", "terms_template"),
    "payments": ("payment", "bank_statement"),
    "credit": ("credit_account", "credit_policy"),
    "dunning": ("dunning_case", "dunning_policy"),
    "reporting": (),
    "portal": ("portal_access",),
}


def event_topic(service: str, aggregate: str, major: int = MAJOR_VERSION) -> str:
    return f"ar.{service}.{aggregate}.v{major}"


def dlq_topic(topic: str) -> str:
    return topic + DLQ_SUFFIX


def all_event_topics() -> list[str]:
    return [
        event_topic(service, aggregate)
        for service, aggregates in SERVICE_AGGREGATES.items()
        for aggregate in aggregates
    ]
