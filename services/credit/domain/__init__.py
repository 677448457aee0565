"""The credit service's pure domain: the CreditAccount aggregate (one per tenant customer).

Nothing here does I/O, reads a clock or draws random numbers: instants and ids are passed in, so
every decision is a deterministic function of (state, command) and every state a fold of events.
"""
