"""Write a generated drop and its truth as CSV or Parquet files, deterministically (pyarrow)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from etl.generate.config import CITIES, DAY, MCCS, MODELS, Plan, RESPONSES, T0, UTC_OFFSET_S
from etl.generate.entities import World
from etl.generate.rows import Rows
from graph.vocabulary import ENTRY_MODES, TXN_TYPES

__all__ = ["Ids", "write_table", "write_transactions", "reference_tables", "truth_table", "ts_array",
           "CHUNK_DAYS"]

CHUNK_DAYS = 7
# columns not worth a Parquet dictionary (almost every value distinct)
_UNIQUE_ISH = {"txn_id", "pan", "ts", "amount", "atc", "stan", "lat", "lon", "owner_id", "phone", "bank_account",
               "name", "address", "serial_no", "reported_at", "first_fraud_at", "installed_at", "onboarded_at"}
_SERIAL_PREFIX = ("PX", "PA", "VF", "IN", "NL")
_STREETS = ("Renmin", "Jiefang", "Zhongshan", "Nanjing", "Huaihai", "Jianshe", "Heping", "Xinhua")


class Ids:
    """String identifiers of a world's entities (index -> id)."""

    def __init__(self, world: World):
        self.merchant = pa.array([f"M{i:06d}" for i in range(world.n_merchants)])
        self.terminal = pa.array([f"T{i:07d}" for i in range(world.n_terminals)])
        self.pan = pc.cast(pa.array(world.c_pan), pa.string())


def ts_array(ts: np.ndarray, fmt: str, *, offset: bool = True, mask: np.ndarray | None = None) -> pa.Array:
    """UTC epoch seconds as Parquet timestamps (UTC) or ISO-8601 strings (local +08:00, or naive UTC)."""
    ts = np.asarray(ts, np.int64)
    if fmt == "parquet":
        return pa.array(ts * 1_000_000, pa.timestamp("us", tz="UTC"), mask=mask)
    local = ts + UTC_OFFSET_S if offset else ts
    text = pc.strftime(pa.array(local, pa.timestamp("s"), mask=mask), format="%Y-%m-%dT%H:%M:%S")
    return pc.binary_join_element_wise(text, "+08:00", "") if offset else text


def _labels(values, codes: np.ndarray) -> pa.Array:
    return pa.array(list(values)).take(pa.array(np.asarray(codes, np.int64)))


def _amount(cents: np.ndarray, fmt: str) -> pa.Array:
    if fmt == "parquet":
        return pa.array(cents / 100.0)
    units = pc.cast(pa.array(cents // 100), pa.string())
    frac = pc.utf8_lpad(pc.cast(pa.array(cents % 100), pa.string()), 2, "0")
    return pc.binary_join_element_wise(units, frac, ".")


def write_table(table: pa.Table, path: Path, fmt: str) -> Path:
    """Write one table; returns the path with its extension."""
    path = path.with_suffix("." + ("csv" if fmt == "csv" else "parquet"))
    if fmt == "csv":
        pcsv.write_csv(table, path, pcsv.WriteOptions(include_header=True))
    else:
        low_cardinality = [c for c in table.column_names if c not in _UNIQUE_ISH]
        pq.write_table(table, path, compression="zstd", use_dictionary=low_cardinality)
    return path


def write_transactions(out: Path, rows: Rows, ids: Ids, plan: Plan) -> list[Path]:
    """Write transactions in files of ``CHUNK_DAYS`` local days, sorted by observed time; txn_id in that order.

    Chunks are built and written by two threads (pyarrow releases the GIL); each file is deterministic.
    """
    obs = rows["ts"] - rows["shift"]
    order = np.lexsort((rows["stan"], rows["term"], obs))
    chunk = np.clip((obs[order] - T0) // DAY // CHUNK_DAYS, 0, None)
    bounds = np.flatnonzero(np.concatenate([[True], chunk[1:] != chunk[:-1], [True]]))

    def one(a: int, b: int) -> Path:
        idx = order[a:b]
        table = _transactions_table(rows, idx, obs[idx], np.arange(a, b, dtype=np.int64), ids, plan)
        date = np.datetime64(T0 + UTC_OFFSET_S + int(chunk[a]) * CHUNK_DAYS * DAY, "s").astype("datetime64[D]")
        return write_table(table, out / f"transactions-{date}", plan.fmt)

    with ThreadPoolExecutor(max_workers=2) as pool:
        return list(pool.map(one, bounds[:-1], bounds[1:]))


def _transactions_table(rows: Rows, idx: np.ndarray, obs: np.ndarray, seq: np.ndarray, ids: Ids,
                        plan: Plan) -> pa.Table:
    fmt = plan.fmt
    txn_id = pc.binary_join_element_wise(f"TX{plan.seed}-", pc.utf8_lpad(pc.cast(pa.array(seq), pa.string()),
                                                                         10, "0"), "")
    atc = rows["atc"][idx]
    return pa.table({
        "txn_id": txn_id,
        "ts": ts_array(obs, fmt),
        "pan": ids.pan.take(pa.array(rows["card"][idx].astype(np.int64))),
        "terminal_id": ids.terminal.take(pa.array(rows["term"][idx].astype(np.int64))),
        "merchant_id": ids.merchant.take(pa.array(rows["merch"][idx].astype(np.int64))),
        "amount": _amount(rows["amount"][idx], fmt),
        "currency": pa.array(np.full(len(idx), "CNY", object), pa.string()),
        "txn_type": _labels(TXN_TYPES, rows["ttype"][idx]),
        "entry_mode": _labels(ENTRY_MODES, rows["entry"][idx]),
        "response_code": _labels(RESPONSES, rows["resp"][idx]),
        "atc": pa.array(atc, pa.int64(), mask=atc < 0),
        "stan": pa.array(rows["stan"][idx], pa.int64()),
        "mcc": pc.cast(pa.array(rows["mcc"][idx]), pa.string()),
        "lat": pa.array(np.round(rows["lat"][idx], 6)),
        "lon": pa.array(np.round(rows["lon"][idx], 6)),
    })


def reference_tables(world: World, ids: Ids, reports: pd.DataFrame, events: pd.DataFrame,
                     fmt: str) -> dict[str, pa.Table]:
    """Merchants, terminals, approved firmware, fraud reports and terminal events as Arrow tables."""
    city = [CITIES[c][0] for c in world.m_city]
    mcc = [MCCS[i] for i in world.m_mcc]
    merchants = pa.table({
        "merchant_id": ids.merchant,
        "name": pa.array([f"{c} {m[1]} {i:06d}" for i, (c, m) in enumerate(zip(city, mcc))]),
        "mcc": pa.array([str(m[0]) for m in mcc]),
        "owner_id": pc.cast(pa.array(world.m_owner), pa.string()),
        "phone": pc.cast(pa.array(world.m_phone), pa.string()),
        "bank_account": pc.cast(pa.array(world.m_bank), pa.string()),
        "address": pa.array([f"No. {1 + (i * 37) % 997} {_STREETS[i % len(_STREETS)]} Road, {c}"
                             for i, c in enumerate(city)]),
        "city": pa.array(city),
        "lat": pa.array(np.round(world.m_lat, 6)),
        "lon": pa.array(np.round(world.m_lon, 6)),
        "agent_id": pa.array([f"AG{a:03d}" for a in world.m_agent]),
        "onboarded_at": ts_array(world.m_onboarded, fmt),
    })
    terminals = pa.table({
        "terminal_id": ids.terminal,
        "merchant_id": ids.merchant.take(pa.array(world.t_merchant.astype(np.int64))),
        "serial_no": pa.array([f"{_SERIAL_PREFIX[m]}{s:08d}" for m, s in zip(world.t_model, world.t_serial)]),
        "model": _labels(MODELS, world.t_model),
        "firmware_hash": pa.array(world.fw_hash[world.t_fw].tolist(), pa.string()),
        "lat": pa.array(np.round(world.t_lat, 6)),
        "lon": pa.array(np.round(world.t_lon, 6)),
        "installed_at": ts_array(world.t_installed, fmt),
    })
    firmware = pa.table({"firmware_hash": pa.array(world.fw_hash.tolist(), pa.string()),
                         "model": _labels(MODELS, world.fw_model),
                         "approved_at": ts_array(world.fw_approved, fmt)})
    first = reports["first_fraud_at"].to_numpy(np.int64)
    fraud = pa.table({"pan": ids.pan.take(pa.array(reports["card"].to_numpy(np.int64))),
                      "reported_at": ts_array(reports["reported_at"].to_numpy(np.int64), fmt),
                      "first_fraud_at": ts_array(first, fmt, mask=first < 0),
                      "fraud_type": pa.array(reports["fraud_type"].tolist(), pa.string())})
    ev = pa.table({"terminal_id": ids.terminal.take(pa.array(events["terminal"].to_numpy(np.int64))),
                   "ts": ts_array(events["ts"].to_numpy(np.int64), fmt, offset=False),  # CSV: naive = UTC
                   "event": pa.array(events["event"].tolist(), pa.string()),
                   "firmware_hash": pa.array(events["firmware_hash"].tolist(), pa.string()),
                   "ip": pa.array(events["ip"].tolist(), pa.string()),
                   "lat": pa.array(np.round(events["lat"].to_numpy(), 6)),
                   "lon": pa.array(np.round(events["lon"].to_numpy(), 6))})
    return {"merchants": merchants, "terminals": terminals, "approved_firmware": firmware,
            "fraud_reports": fraud, "terminal_events": ev}


def truth_table(frame: pd.DataFrame, schema: pa.Schema) -> pa.Table:
    """A truth DataFrame as an Arrow table with a fixed schema (also when empty)."""
    return pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
