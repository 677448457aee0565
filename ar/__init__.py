"""`ar`: the operator's command line (it may import services; the shared kernel may not)."""
