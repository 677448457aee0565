"""The five Ledgerline services; each owns its schema and talks to the others through events and REST."""

SERVICE_PORTS: dict[str, int] = {
    "invoice": 8101,
    "payments": 8102,
    "credit": 8103,
    "dunning": 8104,
    "reporting": 8105,
}
