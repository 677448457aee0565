"""Dunning-service adapters: e-mail, SMTP."""

SCHEMA = "dunning"
