"""conv ops (see STYLE.md)."""
from __future__ import annotations

__all__ = []
