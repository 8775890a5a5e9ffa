"""visualize (being written)."""
