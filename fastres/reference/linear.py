"""linear ops (reference). Under construction."""

__all__: list[str] = []
