"""batchnorm ops (functional). Under construction."""

__all__: list[str] = []
