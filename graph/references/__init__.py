"""Slow, obviously correct plain-Python twins of the numba kernels, one module per detector family.

The tests compare every kernel with its reference, and ``posguard bench`` measures the kernels' speed
against them in the same run (BENCHMARKS.md); nothing else imports them.
"""
