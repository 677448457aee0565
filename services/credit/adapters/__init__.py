"""Credit-service adapters: projections from other services' streams, exchange rates."""

SCHEMA = "credit"
