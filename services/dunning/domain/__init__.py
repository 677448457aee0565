"""Pure dunning logic: policies, timing, the per-customer case."""
