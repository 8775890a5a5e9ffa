"""dataloaders (being written)."""
__all__ = []
