"""Sizes of an adversarial drop and its world: merchants (chains, heavy-tailed popularity), terminals, cards."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from etl.adversary.region import CITIES, DAY, MCCS, MODELS, T0, distance_km

__all__ = ["AdvPlan", "make_plan", "World", "build_world", "HABITS"]

HABITS = 6  # habitual merchants per card (drawn with repetition)
_BINS = np.array([453201, 476173, 492181, 535522, 518652, 400115, 541333, 455673], np.int64)


@dataclass(frozen=True)
class AdvPlan:
    """Sizes of one adversarial drop."""

    seed: int
    txns: int
    days: int
    n_cards: int
    n_terminals: int
    fmt: str
    plant: bool
    n_skimmers: int
    n_at_terminal: int
    n_rings: int
    n_per_case: int
    txn_labels: bool

    @property
    def t_end(self) -> int:
        """End of the period (exclusive), UTC epoch seconds."""
        return T0 + self.days * DAY


def make_plan(seed: int, txns: int = 250_000, fmt: str | None = None, plant: bool = True,
              txn_labels: bool = False) -> AdvPlan:
    """Sizes for about ``txns`` transactions over 90 days (~31 per card, 4 cards per terminal).

    Raises
    ------
    ValueError
        For fewer than 20,000 transactions, a negative seed or an unknown format.
    """
    n = int(txns)
    if n < 20_000:
        raise ValueError(f"the adversarial generator needs at least 20000 txns, got {n}")
    if int(seed) < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    fmt = fmt or ("csv" if n <= 300_000 else "parquet")
    if fmt not in ("csv", "parquet"):
        raise ValueError(f"fmt must be 'csv' or 'parquet', got {fmt!r}")
    n_cards = n // 31
    growth = (n / 250_000) ** 0.35
    return AdvPlan(seed=int(seed), txns=n, days=90, n_cards=n_cards, n_terminals=max(400, n_cards // 4), fmt=fmt,
                   plant=bool(plant), n_skimmers=max(2, round(3 * growth)), n_at_terminal=max(2, round(3 * growth)),
                   n_rings=max(1, round(2 * growth)), n_per_case=max(2, round(3 * growth)),
                   txn_labels=bool(txn_labels))


@dataclass
class World:
    """Entities as arrays (index = position)."""

    m_city: np.ndarray
    m_mcc: np.ndarray
    m_pop: np.ndarray
    m_lat: np.ndarray
    m_lon: np.ndarray
    m_chain: np.ndarray  # -1 or chain number (chains share owner, phone and account legitimately)
    m_onboarded: np.ndarray
    m_term_lo: np.ndarray
    m_term_n: np.ndarray
    city_lo: np.ndarray
    city_hi: np.ndarray
    m_cum: np.ndarray
    t_merchant: np.ndarray
    t_lat: np.ndarray
    t_lon: np.ndarray
    t_model: np.ndarray
    t_installed: np.ndarray
    t_fw0: np.ndarray  # firmware index at the start of the period
    fw_model: np.ndarray
    fw_approved: np.ndarray
    fw_hash: np.ndarray
    c_pan: np.ndarray
    c_city: np.ndarray
    c_weight: np.ndarray
    c_habit: np.ndarray
    c_contactless: np.ndarray  # preference for contactless
    c_atc0: np.ndarray
    mcc_code: np.ndarray  # code of each MCCS row

    @property
    def n_merchants(self) -> int:
        return len(self.m_city)

    @property
    def n_terminals(self) -> int:
        return len(self.t_merchant)

    @property
    def n_cards(self) -> int:
        return len(self.c_pan)

    def draw_merchants(self, city: np.ndarray, u: np.ndarray) -> np.ndarray:
        """Merchants by popularity within each row's city (``u`` uniform)."""
        lo_i, hi_i = self.city_lo[city], self.city_hi[city]
        lo = np.where(lo_i > 0, self.m_cum[np.maximum(lo_i - 1, 0)], 0.0)
        m = np.searchsorted(self.m_cum, lo + u * (self.m_cum[hi_i - 1] - lo), side="right")
        return np.clip(m, lo_i, hi_i - 1).astype(np.int64)

    def draw_terminal(self, merchant: np.ndarray, u: np.ndarray) -> np.ndarray:
        """One of each merchant's terminals (lanes), uniformly."""
        return self.m_term_lo[merchant] + (u * self.m_term_n[merchant]).astype(np.int64)


def _luhn(base: np.ndarray) -> np.ndarray:
    """Append the Luhn check digit to 15-digit integers."""
    x, total = base.copy(), np.zeros(len(base), np.int64)
    for pos in range(15):
        d = x % 10
        x //= 10
        if pos % 2 == 0:
            d = 2 * d - 9 * (d > 4)
        total += d
    return base * 10 + (10 - total % 10) % 10


def build_world(plan: AdvPlan, rng: np.random.Generator) -> World:
    """Merchants sorted by city, lanes per merchant growing with popularity, firmware history, cards."""
    n_c, n_city = plan.n_cards, len(CITIES)
    share = np.array([c[4] for c in CITIES])
    share = share / share.sum()
    mshare = np.array([m[2] for m in MCCS])
    mshare = mshare / mshare.sum()
    # candidate merchants; lanes ~ popularity^0.55 (transit kiosks stay at 1-2 lanes); keep until n_terminals
    cand = plan.n_terminals * 2
    m_city = np.sort(rng.choice(n_city, cand, p=share))
    m_mcc = rng.choice(len(MCCS), cand, p=mshare)
    pop = (rng.pareto(1.0, cand) + 1.0) * np.array([m[5] for m in MCCS])[m_mcc]
    lanes = np.clip(np.round(pop ** 0.45 * rng.uniform(0.6, 1.2, cand)), 1, 24).astype(np.int64)
    lanes = np.where(np.isin(m_mcc, [5, 13]), np.minimum(lanes, 2), lanes)
    order = rng.permutation(cand)
    keep_n = int(np.searchsorted(np.cumsum(lanes[order]), plan.n_terminals)) + 1
    keep = np.sort(order[:keep_n])
    m_city, m_mcc, pop, lanes = m_city[keep], m_mcc[keep], pop[keep], lanes[keep]
    n_m = len(m_city)
    c_lat = np.array([c[1] for c in CITIES])
    c_lon = np.array([c[2] for c in CITIES])
    m_lat = c_lat[m_city] + rng.normal(0, 0.045, n_m)
    m_lon = c_lon[m_city] + rng.normal(0, 0.065, n_m)
    city_lo = np.searchsorted(m_city, np.arange(n_city), "left")
    city_hi = np.searchsorted(m_city, np.arange(n_city), "right")
    # legitimate chains: 3% of merchants in 8-12 chains sharing owner/phone/account across cities
    m_chain = np.full(n_m, -1, np.int64)
    n_chain = int(rng.integers(8, 13))
    chained = rng.choice(n_m, max(n_chain * 3, n_m * 3 // 100), replace=False)
    m_chain[chained] = rng.integers(0, n_chain, len(chained))
    m_onboarded = T0 - rng.integers(30, 12 * 365, n_m) * DAY
    m_term_lo = np.concatenate([[0], np.cumsum(lanes)[:-1]])
    n_t = int(lanes.sum())
    t_merchant = np.repeat(np.arange(n_m), lanes)
    t_lat = m_lat[t_merchant] + rng.normal(0, 0.00008, n_t)
    t_lon = m_lon[t_merchant] + rng.normal(0, 0.00008, n_t)
    t_model = rng.choice(len(MODELS), n_t, p=np.array([m[1] for m in MODELS]))
    # firmware: 5 versions per model; v4 approved ~2 months before the period, v5 during it
    n_mod = len(MODELS)
    fw_model = np.repeat(np.arange(n_mod), 5)
    ver = np.tile(np.arange(5), n_mod)
    fw_approved = np.where(ver < 4, T0 - (4 - ver) * rng.integers(150, 400, 5 * n_mod) * DAY // 2,
                           T0 + rng.integers(15, 40, 5 * n_mod) * DAY) + rng.integers(0, DAY, 5 * n_mod)
    fw_hash = np.array([f"{b:016x}" for b in rng.integers(0, 2 ** 62, 5 * n_mod)], dtype=object)
    t_installed = np.maximum(m_onboarded[t_merchant], T0 - rng.integers(60, 5 * 365, n_t) * DAY) \
        + rng.integers(0, DAY, n_t)
    t_ver = rng.choice([2, 3, 3, 3, 3, 3, 3], n_t)  # most on v4 (index 3) today, installed long before it
    t_fw0 = t_model * 5 + t_ver
    # cards
    c_city = rng.choice(n_city, n_c, p=share)
    # distinct account numbers: a random subset of 10**9 (hence distinct PANs whatever the BIN)
    account = np.unique(rng.integers(0, 10 ** 9, 2 * n_c))[:n_c]
    pan = _luhn(rng.choice(_BINS, n_c) * 10 ** 9 + rng.permutation(account))
    m_cum = np.cumsum(pop)
    world = World(m_city=m_city, m_mcc=m_mcc, m_pop=pop, m_lat=m_lat, m_lon=m_lon, m_chain=m_chain,
                  m_onboarded=m_onboarded, m_term_lo=m_term_lo, m_term_n=lanes, city_lo=city_lo, city_hi=city_hi,
                  m_cum=m_cum, t_merchant=t_merchant, t_lat=t_lat, t_lon=t_lon, t_model=t_model,
                  t_installed=t_installed, t_fw0=t_fw0, fw_model=fw_model, fw_approved=fw_approved,
                  fw_hash=fw_hash, c_pan=pan, c_city=c_city,
                  c_weight=rng.lognormal(0.0, 0.75, n_c), c_habit=np.zeros((n_c, HABITS), np.int64),
                  c_contactless=rng.beta(2.0, 2.0, n_c), c_atc0=rng.integers(5, 900, n_c),
                  mcc_code=np.array([m[0] for m in MCCS], np.int16))
    world.c_habit = world.draw_merchants(np.repeat(c_city, HABITS), rng.random(n_c * HABITS)).reshape(n_c, HABITS)
    assert np.all(distance_km(m_lat, m_lon, c_lat[m_city], c_lon[m_city]) < 60)
    return world
