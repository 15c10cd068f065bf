"""Identifiers, secrets and Arrow tables of an adversarial drop (files written by etl.generate.writer)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from etl.adversary.region import CITIES, ENTRY, MCCS, MODELS, RESP, TTYPE, utc_offset
from etl.adversary.traffic import CITY_BASE
from etl.adversary.world import World
from etl.generate.writer import write_table
from graph.vocabulary import EVENTS

__all__ = ["Names", "merchant_secrets", "ts_array", "transaction_tables", "reference_tables", "txn_ids"]

_COUNTRY = ("FR", "DE", "ES", "IT", "DE", "NL", "AT", "BE", "PT", "IE", "GR", "FI")
_DIAL = ("33", "49", "34", "39", "49", "31", "43", "32", "351", "353", "30", "358")
_SUFFIX = pa.array(["+00:00", "+01:00", "+02:00", "+03:00"])
_SERIAL = ("ING", "VFN", "PAX", "CST", "WLN")


def _affine(n: int, modulus: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct pseudo-random integers below ``modulus`` (a power of ten): an affine bijection."""
    a = int(rng.integers(modulus // 10, modulus // 3)) | 1
    while a % 5 == 0:
        a += 2
    return (a * np.arange(n, dtype=np.int64) % modulus + int(rng.integers(0, modulus))) % modulus


def _fixed(prefix: str, numbers: np.ndarray, width: int) -> pa.Array:
    text = pc.utf8_lpad(pc.cast(pa.array(np.asarray(numbers, np.int64)), pa.string()), width, "0")
    return pc.binary_join_element_wise(pa.scalar(prefix), text, "")


class Names:
    """String ids of a world's merchants, terminals and cards (index -> id), non-sequential."""

    def __init__(self, world: World, rng: np.random.Generator):
        self.merchant = _fixed("MID", _affine(world.n_merchants, 10 ** 12, rng), 12)
        self.terminal = _fixed("TID", _affine(world.n_terminals, 10 ** 8, rng), 8)
        self.pan = pc.cast(pa.array(world.c_pan), pa.string())

    def terminals_of(self, idx) -> pa.Array:
        return self.terminal.take(pa.array(np.asarray(idx, np.int64)))

    def merchants_of(self, idx) -> pa.Array:
        return self.merchant.take(pa.array(np.asarray(idx, np.int64)))

    def pans_of(self, idx) -> pa.Array:
        return self.pan.take(pa.array(np.asarray(idx, np.int64)))


def merchant_secrets(world: World, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """owner_id, phone, bank_account per merchant; chain members share all three (head office)."""
    n = world.n_merchants
    country = np.array(_COUNTRY, object)[world.m_city]
    owner = np.array([f"OWN-{c}-{v:09d}" for c, v in zip(country, rng.integers(0, 10 ** 9, n))], object)
    phone = np.array([f"+{_DIAL[c]} {a} {b:03d} {d:04d}" for c, a, b, d in
                      zip(world.m_city, rng.integers(1, 10, n), rng.integers(0, 1000, n), rng.integers(0, 10000, n))],
                     object)
    account = np.array([f"{c}{k:02d} {b:04d} {x:04d} {y:04d} {z:04d}" for c, k, b, x, y, z in
                        zip(country, rng.integers(10, 99, n), rng.integers(0, 10 ** 4, n), rng.integers(0, 10 ** 4, n),
                            rng.integers(0, 10 ** 4, n), rng.integers(0, 10 ** 4, n))], object)
    for c in np.unique(world.m_chain[world.m_chain >= 0]):
        members = np.flatnonzero(world.m_chain == c)
        owner[members], account[members] = owner[members[0]], account[members[0]]
        phone[members[: max(1, len(members) // 2)]] = phone[members[0]]
    return owner, phone, account


def ts_array(ts: np.ndarray, fmt: str, base_hours=None, *, mask: np.ndarray | None = None) -> pa.Array:
    """UTC seconds as Parquet timestamps, or ISO-8601 text: local wall time with its offset (EU DST) for
    ``base_hours`` (standard offset per value), else UTC with ``Z``."""
    ts = np.asarray(ts, np.int64)
    if fmt == "parquet":
        return pa.array(ts * 1_000_000, pa.timestamp("us", tz="UTC"), mask=mask)
    if base_hours is None:
        text = pc.strftime(pa.array(ts, pa.timestamp("s"), mask=mask), format="%Y-%m-%dT%H:%M:%SZ")
        return text
    off = utc_offset(ts, np.broadcast_to(base_hours, len(ts)))
    text = pc.strftime(pa.array(ts + off, pa.timestamp("s"), mask=mask), format="%Y-%m-%dT%H:%M:%S")
    return pc.binary_join_element_wise(text, _SUFFIX.take(pa.array(off // 3600)), "")


def _labels(values, codes) -> pa.Array:
    return pa.array(list(values)).take(pa.array(np.asarray(codes, np.int64)))


def _amount(cents: np.ndarray, fmt: str) -> pa.Array:
    if fmt == "parquet":
        return pa.array(cents / 100.0)
    frac = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), 2, "0")
    return pc.binary_join_element_wise(pc.cast(pa.array(cents // 100), pa.string()), frac, ".")


def txn_ids(n: int, seed: int) -> pa.Array:
    """Transaction ids in written order: ``E`` and 12 digits, unique and not sequential."""
    return _fixed("E", _affine(n, 10 ** 12, np.random.default_rng([seed, 12])), 12)


def transaction_tables(out: Path, rows: dict, order: np.ndarray, ids: pa.Array, world: World, names: Names,
                       fmt: str) -> list[Path]:
    """Write transactions in written order (``order``), one file per calendar month of the written ts."""
    obs = rows["obs"][order]
    month = obs.astype("datetime64[s]").astype("datetime64[M]")
    bounds = np.flatnonzero(np.concatenate([[True], month[1:] != month[:-1], [True]]))
    files = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        idx = order[a:b]
        term = rows["term"][idx]
        atc = rows["atc"][idx]
        table = pa.table({
            "txn_id": ids.slice(a, b - a),
            "ts": ts_array(rows["obs"][idx], fmt, CITY_BASE[world.m_city[world.t_merchant[term]]]),
            "pan": names.pans_of(rows["card"][idx]),
            "terminal_id": names.terminals_of(term),
            "merchant_id": names.merchants_of(world.t_merchant[term]),
            "amount": _amount(rows["amount"][idx], fmt),
            "currency": pa.array(np.full(len(idx), "EUR", object), pa.string()),
            "txn_type": _labels(TTYPE, rows["ttype"][idx]),
            "entry_mode": _labels(ENTRY, rows["entry"][idx]),
            "response_code": _labels(RESP, rows["resp"][idx]),
            "atc": pa.array(atc, pa.int64(), mask=atc < 0),
            "stan": pa.array(rows["stan"][idx], pa.int64()),
            "mcc": pc.cast(pa.array(rows["mcc"][idx]), pa.string()),
            "lat": pa.array(np.round(rows["lat"][idx], 6)),
            "lon": pa.array(np.round(rows["lon"][idx], 6)),
        })
        files.append(write_table(table, out / f"transactions-{month[a]}", fmt))
    return files


def reference_tables(world: World, names: Names, secrets, end_fw: np.ndarray, reports: pd.DataFrame,
                     report_txn: pa.Array | None, events: pd.DataFrame, fmt: str) -> dict[str, pa.Table]:
    """Merchants, terminals (end-of-period snapshot), approved firmware, fraud reports, terminal events."""
    owner, phone, account = secrets
    n_m = world.n_merchants
    city = np.array([c[0] for c in CITIES], object)[world.m_city]
    label = np.array([m[1] for m in MCCS], object)[world.m_mcc]
    base_m = CITY_BASE[world.m_city]
    merchants = pa.table({
        "merchant_id": names.merchant,
        "name": pa.array([f"{lb} {c} {i:05d}" for i, (lb, c) in enumerate(zip(label, city))]),
        "mcc": pc.cast(pa.array(world.mcc_code[world.m_mcc]), pa.string()),
        "owner_id": pa.array(owner.tolist(), pa.string()),
        "phone": pa.array(phone.tolist(), pa.string()),
        "bank_account": pa.array(account.tolist(), pa.string()),
        "address": pa.array([f"{1 + i * 7 % 199} Rue {c} {i % 40}" for i, c in enumerate(city)]),
        "city": pa.array(city.tolist(), pa.string()),
        "lat": pa.array(np.round(world.m_lat, 6)),
        "lon": pa.array(np.round(world.m_lon, 6)),
        "agent_id": pa.array([f"AGT-{c}-{a}" for c, a in zip(world.m_city, np.arange(n_m) % 3)]),
        "onboarded_at": ts_array(world.m_onboarded, fmt, base_m),
    })
    fw_now = np.where(end_fw >= 0, end_fw, world.t_fw0)
    base_t = CITY_BASE[world.m_city[world.t_merchant]]
    terminals = pa.table({
        "terminal_id": names.terminal,
        "merchant_id": names.merchants_of(world.t_merchant),
        "serial_no": pa.array([f"{_SERIAL[m]}{s:09d}" for m, s in
                               zip(world.t_model, _affine(world.n_terminals, 10 ** 9, np.random.default_rng(7)))]),
        "model": _labels([m[0] for m in MODELS], world.t_model),
        "firmware_hash": pa.array(world.fw_hash[fw_now].tolist(), pa.string()),
        "lat": pa.array(np.round(world.t_lat, 6)),
        "lon": pa.array(np.round(world.t_lon, 6)),
        "installed_at": ts_array(world.t_installed, fmt, base_t),
    })
    firmware = pa.table({"firmware_hash": pa.array(world.fw_hash.tolist(), pa.string()),
                         "model": _labels([m[0] for m in MODELS], world.fw_model),
                         "approved_at": ts_array(world.fw_approved, fmt)})
    card = reports["card"].to_numpy(np.int64)
    first = reports["first_fraud_at"].to_numpy(np.int64)
    base_c = CITY_BASE[world.c_city[card]]
    fraud = {"pan": names.pans_of(card),
             "reported_at": ts_array(reports["reported_at"].to_numpy(np.int64), fmt, base_c),
             "first_fraud_at": ts_array(np.maximum(first, 0), fmt, base_c, mask=first < 0),
             "fraud_type": pa.array(reports["fraud_type"].tolist(), pa.string())}
    if report_txn is not None:
        fraud["txn_id"] = report_txn
    ev = pa.table({"terminal_id": names.terminals_of(events["terminal"].to_numpy(np.int64)),
                   "ts": ts_array(events["ts"].to_numpy(np.int64), fmt),
                   "event": _labels(EVENTS, events["event"].to_numpy()),
                   "firmware_hash": pa.array(events["firmware_hash"].tolist(), pa.string()),
                   "ip": pa.array(events["ip"].tolist(), pa.string()),
                   "lat": pa.array(np.round(events["lat"].to_numpy(), 6)),
                   "lon": pa.array(np.round(events["lon"].to_numpy(), 6))})
    return {"merchants": merchants, "terminals": terminals, "approved_firmware": firmware,
            "fraud_reports": pa.table(fraud), "terminal_events": ev}
