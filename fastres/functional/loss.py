"""loss ops (functional). Under construction."""

__all__: list[str] = []
