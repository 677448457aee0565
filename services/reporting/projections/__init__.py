"""The reporting read models: what the projector writes, and how a rebuild replaces them."""
