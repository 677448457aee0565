"""The invoice service's pure domain: payment terms, line totals, the invoice and customer aggregates.

Nothing here does I/O, reads a clock or draws random numbers: dates and ids are passed in, so
every decision is a deterministic function of (state, command) and every state a fold of events.
"""
