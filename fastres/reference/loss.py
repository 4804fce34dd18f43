"""loss ops (reference). Under construction."""

__all__: list[str] = []
