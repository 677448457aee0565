"""The Ledgerline services (five AR services and the customer portal); each owns its schema and talks to the others through events and REST."""

SERVICE_PORTS: dict[str, int] = {
    "invoice": 8101,
    "payments": 8102,
    "credit": 8103,
    "dunning": 8104,
    "reporting": 8105,
    "portal": 8106,
}
