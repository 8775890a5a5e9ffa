"""optimizers (being written)."""
