"""checkpoint (being written)."""
