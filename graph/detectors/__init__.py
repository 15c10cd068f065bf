"""Detector classes: parameters in __init__, fit(projection) -> self, results as DataFrames (import the module)."""

__all__: list[str] = []
