"""The adversarial generator's region: European cities and time zones, EU daylight saving, MCC mix, terminals.

Every constant here is chosen to differ from :mod:`etl.generate` (China, one UTC+8 zone, CNY).
"""

from __future__ import annotations

import zlib

import numpy as np

from graph.vocabulary import ENTRY_MODES, TXN_TYPES

__all__ = ["MINUTE", "HOUR", "DAY", "T0", "DST_START", "DST_END", "CITIES", "MCCS", "MODELS", "ENTRY", "TTYPE",
           "RESP", "PROFILES", "PLANE_KMH", "CRUISE_KMH", "stream", "utc_offset", "local_to_utc", "distance_km",
           "CHIP", "CONTACTLESS", "MAGSTRIPE", "FALLBACK", "MANUAL", "PURCHASE", "REFUND", "VOID", "PREAUTH",
           "COMPLETION", "mcc_index"]

MINUTE, HOUR, DAY = 60, 3600, 86400
T0 = int(np.datetime64("2026-02-16T00:00:00", "s").astype(np.int64))  # a Monday, UTC; the period spans DST
DST_START = int(np.datetime64("2026-03-29T01:00:00", "s").astype(np.int64))  # EU: same UTC instant everywhere
DST_END = int(np.datetime64("2026-10-25T01:00:00", "s").astype(np.int64))
PLANE_KMH = 900.0  # no genuine card moves faster than this between two transactions (gate to gate < 900 km/h)
CRUISE_KMH = 780.0  # block speed of a flight; plus airport time on both sides

# name, lat, lon, standard UTC offset (h), share of cards, city code; three time zones (UTC+0/+1/+2, DST +1)
CITIES = (("Paris", 48.8566, 2.3522, 1, 0.16, "PAR"), ("Berlin", 52.5200, 13.4050, 1, 0.13, "BER"),
          ("Madrid", 40.4168, -3.7038, 1, 0.12, "MAD"), ("Rome", 41.9028, 12.4964, 1, 0.10, "ROM"),
          ("Munich", 48.1351, 11.5820, 1, 0.07, "MUC"), ("Amsterdam", 52.3676, 4.9041, 1, 0.07, "AMS"),
          ("Vienna", 48.2082, 16.3738, 1, 0.06, "VIE"), ("Brussels", 50.8503, 4.3517, 1, 0.06, "BRU"),
          ("Lisbon", 38.7223, -9.1393, 0, 0.06, "LIS"), ("Dublin", 53.3498, -6.2603, 0, 0.05, "DUB"),
          ("Athens", 37.9838, 23.7275, 2, 0.07, "ATH"), ("Helsinki", 60.1699, 24.9384, 2, 0.05, "HEL"))

# hour-of-day profiles (local time): 0 retail (commute + lunch + after work), 1 food (lunch + late dinner),
# 2 night (bars, taxis: evening to 3 am), 3 transit (two sharp commute peaks)
PROFILES = np.array([
    [0.1, 0.05, 0.02, 0.02, 0.02, 0.1, 0.6, 1.6, 2.4, 2.6, 3.0, 3.6, 4.2, 3.8, 3.0, 3.0, 3.6, 4.6, 5.2, 4.2, 2.8,
     1.4, 0.6, 0.3],
    [0.4, 0.2, 0.05, 0.02, 0.02, 0.05, 0.3, 0.8, 1.0, 0.8, 0.8, 2.0, 5.5, 6.0, 3.0, 1.2, 1.0, 1.4, 2.6, 4.6, 5.8,
     5.0, 2.8, 1.2],
    [3.0, 2.6, 2.0, 1.2, 0.5, 0.2, 0.2, 0.3, 0.4, 0.4, 0.5, 0.6, 0.8, 0.8, 0.8, 0.8, 1.0, 1.4, 2.2, 3.0, 3.6, 4.0,
     4.2, 3.8],
    [0.1, 0.05, 0.02, 0.02, 0.3, 1.2, 4.0, 8.0, 9.0, 4.0, 1.6, 1.4, 1.6, 1.4, 1.4, 2.0, 4.0, 7.0, 8.0, 4.5, 2.2,
     1.4, 0.8, 0.4]])

# mcc, label, share of merchants, median EUR, log-sd, popularity factor, hour profile, offline-capable
MCCS = ((5411, "Grocery", 0.20, 32.0, 0.8, 3.0, 0, 0), (5499, "Convenience", 0.08, 9.0, 0.7, 1.5, 0, 0),
        (5812, "Restaurant", 0.16, 38.0, 0.6, 1.0, 1, 0), (5814, "Fast Food", 0.07, 11.0, 0.5, 2.0, 1, 0),
        (5813, "Bar", 0.05, 18.0, 0.6, 0.8, 2, 0), (4111, "Transit", 0.02, 4.5, 0.6, 12.0, 3, 1),
        (5541, "Fuel", 0.05, 60.0, 0.4, 1.6, 0, 0), (5912, "Pharmacy", 0.05, 17.0, 0.8, 1.0, 0, 0),
        (5651, "Clothing", 0.08, 55.0, 0.8, 0.7, 0, 0), (5311, "Department Store", 0.03, 70.0, 1.0, 2.5, 0, 0),
        (5732, "Electronics", 0.03, 180.0, 1.0, 0.6, 0, 0), (5944, "Jewelry", 0.015, 400.0, 1.0, 0.3, 0, 0),
        (7011, "Hotel", 0.04, 210.0, 0.6, 0.5, 1, 0), (7523, "Parking", 0.03, 7.0, 0.5, 1.2, 3, 1),
        (4121, "Taxi", 0.03, 22.0, 0.5, 0.8, 2, 0), (5999, "Misc Retail", 0.045, 30.0, 1.0, 0.6, 0, 0))

# model, share, nightly maintenance reboot (local 02:00-04:00), STAN consumed by the daily batch close
MODELS = (("Ingenico Move/5000", 0.30, 1, 1), ("Verifone V400m", 0.25, 0, 0), ("PAX A77", 0.20, 0, 1),
          ("Castles S1F2", 0.15, 1, 0), ("Worldline Valina", 0.10, 0, 0))

ENTRY = ENTRY_MODES  # the contract's words (graph.vocabulary); this generator draws codes 0-4
CHIP, CONTACTLESS, MAGSTRIPE, FALLBACK, MANUAL = range(5)
TTYPE = TXN_TYPES
PURCHASE, REFUND, VOID, PREAUTH, COMPLETION = range(5)
RESP = ("00", "05", "51", "55", "91")

_MCC_POS = {m[0]: i for i, m in enumerate(MCCS)}


def mcc_index(code: int) -> int:
    """Position of an MCC code in :data:`MCCS`."""
    return _MCC_POS[code]


def stream(seed: int, name: str) -> np.random.Generator:
    """An independent deterministic random stream per (seed, stage), salted apart from :mod:`etl.generate`."""
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(
        [int(seed), 0xAD7E, zlib.crc32(("adversary/" + name).encode())])))


def utc_offset(ts: np.ndarray, base_hours: np.ndarray) -> np.ndarray:
    """Seconds east of UTC at UTC instants ``ts`` for cities of standard offset ``base_hours`` (EU DST rule)."""
    ts = np.asarray(ts, np.int64)
    return (np.asarray(base_hours, np.int64) * HOUR + HOUR * ((ts >= DST_START) & (ts < DST_END))).astype(np.int64)


def local_to_utc(local: np.ndarray, base_hours: np.ndarray) -> np.ndarray:
    """UTC instants of local wall-clock seconds (the spring-forward gap maps an hour later, as clocks do)."""
    local = np.asarray(local, np.int64)
    guess = local - np.asarray(base_hours, np.int64) * HOUR
    return local - utc_offset(guess, base_hours)


def distance_km(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Great-circle distance in km, vectorised."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    h = (np.sin((p2 - p1) / 2) ** 2
         + np.cos(p1) * np.cos(p2) * np.sin(np.radians(np.asarray(lon2) - np.asarray(lon1)) / 2) ** 2)
    return 2 * 6371.0 * np.arcsin(np.sqrt(np.minimum(h, 1.0)))
