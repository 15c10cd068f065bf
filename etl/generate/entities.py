"""The synthetic world: cities, merchants, terminals, firmware and cards, as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etl.generate.config import CITIES, DAY, MCCS, MODELS, T0, Plan, haversine_km

__all__ = ["World", "build_world", "sample_in_city", "luhn_complete", "affine_unique", "BINS", "HABITS"]

BINS = np.array([622202, 621700, 622848, 623668, 628288, 625911, 427020, 436742, 518710, 552599], np.int64)
BIN_WEIGHTS = np.array([0.16, 0.14, 0.12, 0.1, 0.1, 0.08, 0.1, 0.08, 0.06, 0.06])
HABITS = 5  # habitual merchants per card (with repetition, so some cards have fewer)


@dataclass
class World:
    """Entities of one drop; index arrays refer to positions (merchant i is ``m_*[i]``)."""

    city_name: np.ndarray
    city_lat: np.ndarray
    city_lon: np.ndarray
    city_dist: np.ndarray  # (n_cities, n_cities) km
    m_city: np.ndarray
    m_lat: np.ndarray
    m_lon: np.ndarray
    m_mcc: np.ndarray  # index into MCCS
    m_pop: np.ndarray
    m_cum: np.ndarray  # cumulative popularity, merchants sorted by city
    city_lo: np.ndarray  # first merchant of each city
    city_hi: np.ndarray  # one past the last merchant of each city
    m_owner: np.ndarray
    m_phone: np.ndarray
    m_bank: np.ndarray
    m_agent: np.ndarray
    m_onboarded: np.ndarray
    m_term_lo: np.ndarray
    m_term_n: np.ndarray
    t_merchant: np.ndarray
    t_lat: np.ndarray
    t_lon: np.ndarray
    t_model: np.ndarray
    t_fw: np.ndarray  # index into fw_* (registered firmware at the start of the period)
    t_installed: np.ndarray
    t_serial: np.ndarray
    fw_hash: np.ndarray
    fw_model: np.ndarray
    fw_approved: np.ndarray
    c_pan: np.ndarray
    c_city: np.ndarray
    c_magonly: np.ndarray
    c_weight: np.ndarray
    c_habit: np.ndarray  # (n_cards, HABITS) merchant indices
    c_atc0: np.ndarray

    @property
    def n_merchants(self) -> int:
        return len(self.m_city)

    @property
    def n_terminals(self) -> int:
        return len(self.t_merchant)

    @property
    def n_cards(self) -> int:
        return len(self.c_pan)

    def sample_merchants(self, city: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Merchants drawn by popularity within each row's city (``u`` uniform in [0, 1))."""
        return sample_in_city(self.m_cum, self.city_lo, self.city_hi, city, u)

    def pick_terminal(self, merchant: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One of each merchant's terminals, uniformly (``u`` uniform in [0, 1))."""
        return (self.m_term_lo[merchant] + (u * self.m_term_n[merchant]).astype(np.int64)).astype(np.int32)


def sample_in_city(m_cum, city_lo, city_hi, city, u) -> np.ndarray:
    """Merchant indices drawn by popularity (cumulative ``m_cum``) within each row's city."""
    lo_i, hi_i = city_lo[city], city_hi[city]
    lo = np.where(lo_i > 0, m_cum[np.maximum(lo_i - 1, 0)], 0.0)
    hi = m_cum[hi_i - 1]
    m = np.searchsorted(m_cum, lo + u * (hi - lo), side="right")
    return np.clip(m, lo_i, hi_i - 1).astype(np.int32)


def luhn_complete(base: np.ndarray, digits: int = 15) -> np.ndarray:
    """Append the Luhn check digit to ``digits``-digit integers (vectorised)."""
    x = np.asarray(base, np.int64).copy()
    total = np.zeros(len(x), np.int64)
    for pos in range(digits):  # pos 0 = rightmost digit of the base, doubled once the check digit is appended
        d = x % 10
        x //= 10
        if pos % 2 == 0:
            d = d * 2
            d = np.where(d > 9, d - 9, d)
        total += d
    return np.asarray(base, np.int64) * 10 + (10 - total % 10) % 10


def affine_unique(n: int, modulus: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct pseudo-random integers in [0, modulus) (an affine permutation; modulus = 10**k)."""
    a = int(rng.integers(modulus // 10, modulus // 3)) | 1
    while a % 5 == 0:
        a += 2
    b = int(rng.integers(0, modulus))
    i = np.arange(n, dtype=object) if modulus * n > 2 ** 62 else np.arange(n, dtype=np.int64)
    return np.asarray((a * i + b) % modulus, dtype=np.int64)


def _merchants(plan: Plan, rng: np.random.Generator, n_cities: int):
    share = np.array([c[3] for c in CITIES])
    m_city = np.sort(rng.choice(n_cities, size=plan.n_merchants, p=share / share.sum())).astype(np.int16)
    for c in range(n_cities):  # every city gets merchants
        if not np.any(m_city == c):
            m_city[rng.integers(len(m_city))] = c
    m_city = np.sort(m_city)
    mcc_share = np.array([m[2] for m in MCCS])
    m_mcc = rng.choice(len(MCCS), size=plan.n_merchants, p=mcc_share / mcc_share.sum()).astype(np.int8)
    factor = np.array([m[5] for m in MCCS])[m_mcc]
    zipf = 1.0 / rng.permutation(np.arange(1, plan.n_merchants + 1)) ** 0.9
    m_pop = zipf * factor * rng.lognormal(0.0, 0.3, plan.n_merchants)
    return m_city, m_mcc, m_pop


def _firmware(rng: np.random.Generator):
    hashes, models, approved = [], [], []
    for m, name in enumerate(MODELS):
        for v, when in enumerate((-260, -120, 10)):  # v3 is approved on day 10 of the period
            hashes.append("".join(f"{b:02x}" for b in rng.integers(0, 256, 32)))
            models.append(m)
            approved.append(T0 + when * DAY + int(rng.integers(9, 18)) * 3600)
    return np.array(hashes, dtype=object), np.array(models, np.int8), np.array(approved, np.int64)


def build_world(plan: Plan, rng: np.random.Generator) -> World:
    """Build every entity of a drop.

    Parameters
    ----------
    plan : Plan
        Sizes.
    rng : numpy.random.Generator
        The world's random stream.

    Returns
    -------
    World
    """
    n_cities = len(CITIES)
    c_lat = np.array([c[1] for c in CITIES])
    c_lon = np.array([c[2] for c in CITIES])
    city_dist = haversine_km(c_lat[:, None], c_lon[:, None], c_lat[None, :], c_lon[None, :])
    m_city, m_mcc, m_pop = _merchants(plan, rng, n_cities)
    n_m = len(m_city)
    jitter = np.clip(rng.normal(0.0, 0.05, (n_m, 2)), -0.125, 0.125)  # within ~17 km of the centre
    m_lat = c_lat[m_city] + jitter[:, 0]
    m_lon = c_lon[m_city] + jitter[:, 1] / np.cos(np.radians(c_lat[m_city]))
    m_cum = np.cumsum(m_pop)
    city_lo = np.searchsorted(m_city, np.arange(n_cities), side="left")
    city_hi = np.searchsorted(m_city, np.arange(n_cities), side="right")
    m_owner = 110_000_000_000_000_000 + affine_unique(n_m, 10 ** 17, rng) * 5
    m_phone = 13_000_000_000 + affine_unique(n_m, 10 ** 9, rng) * 6  # distinct, 13x..18x
    m_bank = 6_217_000_000_000_000_000 + affine_unique(n_m, 10 ** 15, rng)
    m_agent = rng.integers(0, plan.n_agents, n_m).astype(np.int16)
    m_onboarded = T0 - rng.integers(60, 2000, n_m) * DAY - rng.integers(0, DAY, n_m)
    # terminals: busy merchants have more of them
    rank = np.argsort(np.argsort(-m_pop))
    n_term = rng.choice([1, 2, 3], size=n_m, p=[0.6, 0.3, 0.1])
    n_term[rank < max(3, n_m // 20)] = 3
    t_merchant = np.repeat(np.arange(n_m, dtype=np.int32), n_term)
    m_term_lo = np.concatenate([[0], np.cumsum(n_term)[:-1]]).astype(np.int64)
    n_t = len(t_merchant)
    t_lat = m_lat[t_merchant] + rng.normal(0.0, 0.0002, n_t)
    t_lon = m_lon[t_merchant] + rng.normal(0.0, 0.0002, n_t)
    t_model = rng.integers(0, len(MODELS), n_t).astype(np.int8)
    fw_hash, fw_model, fw_approved = _firmware(rng)
    t_fw = (t_model.astype(np.int64) * 3 + (rng.random(n_t) < 0.7)).astype(np.int16)  # v1 or v2
    t_installed = np.minimum(m_onboarded[t_merchant] + rng.integers(0, 200, n_t) * DAY + rng.integers(0, DAY, n_t),
                             T0 - DAY)
    t_installed = np.minimum(np.maximum(t_installed, fw_approved[t_fw] + rng.integers(DAY, 60 * DAY, n_t)),
                             T0 - DAY + rng.integers(0, DAY // 2, n_t))
    t_serial = affine_unique(n_t, 10 ** 8, rng)
    # cards
    share = np.array([c[3] for c in CITIES])
    c_city = rng.choice(n_cities, size=plan.n_cards, p=share / share.sum()).astype(np.int16)
    bins = BINS[rng.choice(len(BINS), size=plan.n_cards, p=BIN_WEIGHTS)]
    c_pan = luhn_complete(bins * 1_000_000_000 + affine_unique(plan.n_cards, 10 ** 9, rng))
    c_magonly = rng.random(plan.n_cards) < 0.03
    c_weight = rng.lognormal(0.0, 0.8, plan.n_cards)
    home = np.repeat(c_city, HABITS)  # habitual merchants: by popularity within the home city
    c_habit = sample_in_city(m_cum, city_lo, city_hi, home, rng.random(len(home))).reshape(plan.n_cards, HABITS)
    c_atc0 = rng.integers(5, 3000, plan.n_cards).astype(np.int64)
    return World(city_name=np.array([c[0] for c in CITIES], dtype=object), city_lat=c_lat, city_lon=c_lon,
                 city_dist=city_dist, m_city=m_city, m_lat=m_lat, m_lon=m_lon, m_mcc=m_mcc, m_pop=m_pop,
                 m_cum=m_cum, city_lo=city_lo, city_hi=city_hi, m_owner=m_owner, m_phone=m_phone, m_bank=m_bank,
                 m_agent=m_agent, m_onboarded=m_onboarded, m_term_lo=m_term_lo, m_term_n=n_term.astype(np.int64),
                 t_merchant=t_merchant, t_lat=t_lat, t_lon=t_lon, t_model=t_model, t_fw=t_fw,
                 t_installed=t_installed, t_serial=t_serial, fw_hash=fw_hash, fw_model=fw_model,
                 fw_approved=fw_approved, c_pan=c_pan, c_city=c_city, c_magonly=c_magonly, c_weight=c_weight,
                 c_habit=c_habit, c_atc0=c_atc0)
