"""numba kernels over contiguous arrays, one module per detector family (import the module you need)."""

__all__: list[str] = []
