"""The reporting service's consumer group: every topic whose facts the reports need."""

from services.reporting.projections.projector import Projector
from services.reporting.projections.tables import Tables
from shared.topics import event_topic
from shared.web.runtime import ConsumerSpec

TOPICS = (
    event_topic("invoice", "invoice"),
    event_topic("invoice", "customer"),
    event_topic("payments", "payment"),
)


def consumers(schema: str) -> list[ConsumerSpec]:
    return [ConsumerSpec("reporting.projections", TOPICS, Projector(Tables(schema)))]
