"""Pure payment, allocation and statement logic: no I/O."""
