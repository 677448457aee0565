"""The dunning service's consumer group: invoices and customers from the invoice service."""

from services.dunning.consumers.invoices import INVOICE_EVENTS, on_invoice_event
from shared.topics import event_topic
from shared.web.runtime import ConsumerSpec

CONSUMERS = [
    ConsumerSpec(
        "dunning.invoices",
        (event_topic("invoice", "invoice"), event_topic("invoice", "customer")),
        on_invoice_event,
        INVOICE_EVENTS,
    )
]
