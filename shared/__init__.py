"""Ledgerline shared kernel: the pieces every service stands on.

Imports no service. Pure value types (money, events) sit beside the Postgres/Kafka adapters
(event store, outbox relay, consumer runtime) so each service gets one obvious way to do them.
"""
