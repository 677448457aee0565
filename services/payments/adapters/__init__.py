"""Payments-service adapters: invoice balances, statement parsers."""

SCHEMA = "payments"
