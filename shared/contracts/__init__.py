"""Published language: event payloads other services consume, versioned in one place.

A service that emits an event defines its payload here; consumers import it from here, never
from the emitting service. Importing a module registers its payloads in the process registry.
"""
