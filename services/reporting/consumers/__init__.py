"""The reporting service's consumer groups: the projections (every topic whose facts the
reports need) and the journal (the invoice and payment streams, which carry every financial
event). Two groups, so that one stalled on an event never holds up the other."""

from services.reporting.domain.postings import POSTING_EVENT_TYPES
from services.reporting.projections.journal import JournalProjector
from services.reporting.projections.projector import PROJECTED_TYPES, Projector
from services.reporting.projections.tables import Tables
from shared.topics import event_topic
from shared.web.runtime import ConsumerSpec

TOPICS = (
    event_topic("invoice", "invoice"),
    event_topic("invoice", "customer"),
    event_topic("payments", "payment"),
)

JOURNAL_TOPICS = (
    event_topic("invoice", "invoice"),
    event_topic("payments", "payment"),
)


def consumers(schema: str, *, journal: bool = True) -> list[ConsumerSpec]:
    specs = [
        ConsumerSpec("reporting.projections", TOPICS, Projector(Tables(schema)), PROJECTED_TYPES)
    ]
    if journal:
        specs.append(
            ConsumerSpec(
                "reporting.journal", JOURNAL_TOPICS, JournalProjector(schema), POSTING_EVENT_TYPES
            )
        )
    return specs
