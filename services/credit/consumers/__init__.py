"""The credit service's consumer groups: what it learns from other services' streams."""

from services.credit.consumers.invoices import (
    DUNNING_EVENTS,
    INVOICE_EVENTS,
    on_dunning_event,
    on_invoice_event,
)
from services.credit.consumers.payments import PAYMENT_EVENTS, on_payment_event
from shared.topics import event_topic
from shared.web.runtime import ConsumerSpec

CONSUMERS = [
    ConsumerSpec(
        "credit.invoices", (event_topic("invoice", "invoice"),), on_invoice_event, INVOICE_EVENTS
    ),
    ConsumerSpec(
        "credit.payments", (event_topic("payments", "payment"),), on_payment_event, PAYMENT_EVENTS
    ),
    ConsumerSpec(
        "credit.dunning",
        (event_topic("dunning", "dunning_case"),),
        on_dunning_event,
        DUNNING_EVENTS,
    ),
]
