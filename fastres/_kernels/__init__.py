"""Compiled kernels (private). Loops only: inputs are validated by ``fastres.functional``."""
