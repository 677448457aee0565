"""Pure reporting calculations: no I/O."""
