"""Audit and operations tooling over every service's kernel tables: the event hash chain, the
dead-letter register, event replay and causal traces."""
