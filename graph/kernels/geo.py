"""Great-circle geometry for numba kernels: haversine distance in kilometres."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = ["EARTH_RADIUS_KM", "haversine_km", "haversine_km_array"]

EARTH_RADIUS_KM = 6371.0088  # mean Earth radius (IUGG)


@njit(cache=True, inline="always")
def haversine_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in km between two points in degrees (NaN if any coordinate is NaN).

    Example
    -------
    >>> round(haversine_km(31.2304, 121.4737, 39.9042, 116.4074))  # Shanghai -> Beijing
    1067
    """
    p1 = math.radians(lat1)
    p2 = math.radians(lat2)
    dp = p2 - p1
    dl = math.radians(lon2 - lon1)
    a = math.sin(dp * 0.5) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl * 0.5) ** 2
    if a > 1.0:  # rounding; NaN passes through
        a = 1.0
    return 2.0 * EARTH_RADIUS_KM * math.asin(math.sqrt(a))


@njit(cache=True)
def haversine_km_array(lat1: np.ndarray, lon1: np.ndarray, lat2: np.ndarray, lon2: np.ndarray) -> np.ndarray:
    """Element-wise ``haversine_km`` over equal-length float64 arrays."""
    out = np.empty(lat1.shape[0], dtype=np.float64)
    for i in range(lat1.shape[0]):
        out[i] = haversine_km(lat1[i], lon1[i], lat2[i], lon2[i])
    return out
