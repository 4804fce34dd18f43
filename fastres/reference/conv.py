"""conv ops (reference). Under construction."""

__all__: list[str] = []
