"""The credit service's consumer groups: what it learns from other services' streams."""

from services.credit.consumers.invoices import on_dunning_event, on_invoice_event
from services.credit.consumers.payments import on_payment_event
from shared.topics import event_topic
from shared.web.runtime import ConsumerSpec

CONSUMERS = [
    ConsumerSpec("credit.invoices", (event_topic("invoice", "invoice"),), on_invoice_event),
    ConsumerSpec("credit.payments", (event_topic("payments", "payment"),), on_payment_event),
    ConsumerSpec("credit.dunning", (event_topic("dunning", "dunning_case"),), on_dunning_event),
]
