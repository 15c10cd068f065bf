"""Constants, scale plans and small shared helpers of the synthetic drop generator."""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass

import numpy as np

from graph.vocabulary import (ENTRY_CHIP, ENTRY_CONTACTLESS, ENTRY_FALLBACK, ENTRY_MAGSTRIPE, ENTRY_MANUAL,
                              TYPE_COMPLETION, TYPE_PREAUTH, TYPE_PURCHASE, TYPE_REFUND, TYPE_VOID)

__all__ = ["DAY", "HOUR", "MINUTE", "UTC_OFFSET_S", "T0", "CITIES", "MCCS", "MODELS",
           "RESPONSES", "SCALES", "Plan", "make_plan", "stream", "haversine_km",
           "CHIP", "CONTACTLESS", "MAGSTRIPE", "FALLBACK", "MANUAL", "PURCHASE", "REFUND", "VOID", "PREAUTH",
           "COMPLETION", "P_NORMAL", "P_COUNTERFEIT", "P_GENUINE", "P_REPLAY", "P_REGRESSION", "P_RING",
           "P_VOID_SPIKE", "P_RELOCATED", "HOUR_WEIGHTS", "STAN_MAX"]

MINUTE, HOUR, DAY = 60, 3600, 86400
UTC_OFFSET_S = 8 * HOUR  # China Standard Time; every city below is in it
T0 = int(np.datetime64("2026-03-01T00:00:00", "s").astype(np.int64)) - UTC_OFFSET_S  # local midnight, UTC s
STAN_MAX = 999_999

# name, lat, lon, share of cards and merchants
CITIES = (("Shanghai", 31.2304, 121.4737, 0.14), ("Beijing", 39.9042, 116.4074, 0.13),
          ("Shenzhen", 22.5431, 114.0579, 0.10), ("Guangzhou", 23.1291, 113.2644, 0.10),
          ("Chengdu", 30.5728, 104.0668, 0.09), ("Hangzhou", 30.2741, 120.1551, 0.07),
          ("Wuhan", 30.5928, 114.3055, 0.07), ("Xi'an", 34.3416, 108.9398, 0.06),
          ("Nanjing", 32.0603, 118.7969, 0.06), ("Chongqing", 29.5630, 106.5516, 0.08),
          ("Tianjin", 39.3434, 117.3616, 0.06), ("Suzhou", 31.2989, 120.5853, 0.04))

# mcc, label, share of merchants, median amount (CNY), log-sd of amount, popularity factor
MCCS = ((5411, "Supermarket", 0.22, 80.0, 0.8, 3.0), (5812, "Restaurant", 0.22, 90.0, 0.7, 1.5),
        (5541, "Fuel", 0.07, 300.0, 0.4, 1.5), (5311, "Department Store", 0.06, 350.0, 0.9, 2.0),
        (5999, "Shop", 0.14, 120.0, 1.0, 0.6), (7011, "Hotel", 0.04, 600.0, 0.6, 0.5),
        (4121, "Taxi", 0.05, 45.0, 0.5, 1.0), (5732, "Electronics", 0.05, 1500.0, 0.9, 0.6),
        (5944, "Jewelry", 0.03, 3000.0, 1.0, 0.4), (5912, "Pharmacy", 0.05, 70.0, 0.7, 1.0),
        (5691, "Clothing", 0.05, 400.0, 0.8, 0.8), (6011, "Cash Services", 0.01, 1000.0, 0.6, 0.3),
        (6051, "Quasi Cash", 0.01, 2000.0, 0.8, 0.3))

MODELS = ("PAX S90", "PAX A920", "Verifone VX520", "Ingenico iCT250", "Newland SP630")
# the projection's codes (graph.vocabulary), drawn directly by the generator
CHIP, CONTACTLESS, MAGSTRIPE, FALLBACK, MANUAL = (ENTRY_CHIP, ENTRY_CONTACTLESS, ENTRY_MAGSTRIPE, ENTRY_FALLBACK,
                                               ENTRY_MANUAL)
PURCHASE, REFUND, VOID, PREAUTH, COMPLETION = TYPE_PURCHASE, TYPE_REFUND, TYPE_VOID, TYPE_PREAUTH, TYPE_COMPLETION
RESPONSES = ("00", "05", "51", "55")

# provenance of a generated row (never written): normal traffic or one of the planted patterns
P_NORMAL, P_COUNTERFEIT, P_GENUINE, P_REPLAY, P_REGRESSION, P_RING, P_VOID_SPIKE, P_RELOCATED = range(8)

# relative card-present activity per local hour 00..23
HOUR_WEIGHTS = np.array([0.3, 0.15, 0.1, 0.08, 0.08, 0.2, 0.6, 1.5, 2.5, 3.0, 3.5, 4.5, 5.5, 4.5, 3.5, 3.5,
                         4.0, 5.0, 6.0, 6.5, 5.5, 4.0, 2.5, 1.0])

SCALES = {"small": 20_000, "medium": 1_000_000, "large": 10_000_000}


@dataclass(frozen=True)
class Plan:
    """Sizes of one synthetic drop, derived from the transaction count."""

    seed: int
    txns: int
    days: int
    n_cards: int
    n_merchants: int
    n_agents: int
    fmt: str
    plant: bool
    n_skimmers: int
    n_per_case: int
    n_rings: int
    n_networks: int
    n_atc_clones: int
    n_background_reports: int

    @property
    def t_end(self) -> int:
        """End of the period (exclusive), UTC epoch seconds."""
        return T0 + self.days * DAY


def make_plan(seed: int, scale: str = "small", txns: int | None = None, fmt: str | None = None,
              plant: bool = True) -> Plan:
    """Sizes for ``scale`` or for an explicit transaction count.

    Parameters
    ----------
    seed : int
        Random seed (>= 0).
    scale : {"small", "medium", "large"}
        Named size: about 20k, 1M or 10M transactions.
    txns : int, optional
        Transaction count overriding the scale's.
    fmt : {"csv", "parquet"}, optional
        Output format; default CSV up to 100k transactions, Parquet above.
    plant : bool
        Whether planted cases are generated.

    Returns
    -------
    Plan

    Raises
    ------
    ValueError
        For an unknown scale or format, a negative seed or fewer than 1,000 transactions.
    """
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {sorted(SCALES)}")
    n = int(SCALES[scale] if txns is None else txns)
    if n < 1000:
        raise ValueError(f"txns must be at least 1000, got {n}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    fmt = fmt or ("csv" if n <= 100_000 else "parquet")
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    days = 60 if n <= 100_000 else 90
    per_card = 8.0 if days == 60 else 14.0
    n_cards = max(300, int(n / per_card))
    growth = max(0.0, math.log10(n / 20_000))  # 0 at small, 1.7 at medium, 2.7 at large
    return Plan(seed=int(seed), txns=n, days=days, n_cards=n_cards,
                n_merchants=max(80, n_cards // 6), n_agents=int(np.clip(n_cards // 60, 8, 60)), fmt=fmt,
                plant=bool(plant), n_skimmers=int(round(4 + 2 * growth)),
                n_per_case=int(round(2 + 0.75 * growth)), n_rings=2 if growth < 1 else 3,
                n_networks=2 if growth < 2 else 3, n_atc_clones=int(round(5 * 10 ** (growth / 2))),
                n_background_reports=max(8, n_cards // 250))


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent, deterministic random stream per (seed, stage name)."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(seed), zlib.crc32(name.encode())])))


def haversine_km(lat1, lon1, lat2, lon2):
    """Great-circle distance in km (vectorised over numpy arrays)."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    a = (np.sin((p2 - p1) / 2) ** 2
         + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.asarray(lon2) - np.asarray(lon1)) / 2) ** 2)
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
