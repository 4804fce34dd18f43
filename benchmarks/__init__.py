"""Benchmarks: fastres kernels and training steps against the NumPy reference and PyTorch."""
