"""transforms (being written)."""
