"""The payments service's consumer groups: what it learns from other services' streams."""

from services.payments.consumers.invoices import INVOICE_EVENTS, invoice_handler
from services.payments.domain.matching import MatchingPolicy
from shared.topics import event_topic
from shared.web.runtime import ConsumerSpec


def consumers(policy: MatchingPolicy) -> list[ConsumerSpec]:
    return [
        ConsumerSpec(
            "payments.invoices",
            (event_topic("invoice", "invoice"),),
            invoice_handler(policy),
            INVOICE_EVENTS,
        )
    ]
