"""`generate --generator adversarial`: world, genuine noise, planted cases, counters, reports, files, truth."""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl.adversary.counters import assign_atc, assign_stan
from etl.adversary.events import firmware_updates, terminal_events
from etl.adversary.fraud import plant_at_terminal, plant_rings, plant_skimmers
from etl.adversary.output import Names, merchant_secrets, reference_tables, transaction_tables, txn_ids
from etl.adversary.region import stream
from etl.adversary.reports import apply_blocking, card_reports
from etl.adversary.rows import AT_TERMINAL, FRAUD_KINDS, GENUINE, concat, take
from etl.adversary.terminals import (choose_cases, legit_moves, plan_unapproved, plant_unrecorded_moves,
                                     trace_gap_mask)
from etl.adversary.traffic import genuine_traffic, make_flights
from etl.adversary.world import build_world, make_plan
from etl.generate.core import DROP_KINDS, TRUTH_SCHEMAS, GenerateResult
from etl.generate.writer import write_table

__all__ = ["generate_adversarial", "ADV_TRUTH_SCHEMAS"]

log = logging.getLogger("posguard.generate")

_TS = pa.timestamp("us", tz="UTC")
ADV_TRUTH_SCHEMAS = {
    **TRUTH_SCHEMAS,
    "compromise_points": pa.schema([("terminal_id", pa.string()), ("merchant_id", pa.string()),
                                    ("mode", pa.string()), ("window_start", _TS), ("window_end", _TS)]),
    "fraud_txns": pa.schema([("txn_id", pa.string()), ("pan", pa.string()), ("kind", pa.string())]),
    "compromised_cards": pa.schema([("pan", pa.string()), ("terminal_id", pa.string()), ("mode", pa.string()),
                                    ("compromised_at", _TS), ("first_fraud_at", _TS)]),
}


def _utc(seconds) -> pa.Array:
    return pa.array(np.asarray(seconds, np.int64) * 1_000_000, _TS)


class _Plants:
    """What the planting steps produced (empty for a clean drop)."""

    def __init__(self, n_terminals: int):
        self.skimmers = pd.DataFrame(columns=["terminal", "window_start", "window_end"])
        self.victims = pd.DataFrame(columns=["card", "terminal", "skimmed_at"])
        self.points = pd.DataFrame(columns=["terminal", "window_start", "window_end", "style"])
        self.pre_window = pd.DataFrame({"terminal": pd.Series(dtype=np.int64), "ts": pd.Series(dtype=np.int64),
                                        "event": pd.Series(dtype=object), "new_ip": pd.Series(dtype=bool)})
        self.rings = pd.DataFrame(columns=["ring_id", "kind", "member_type", "member"])
        self.cases = pd.DataFrame({"terminal": pd.Series(dtype=np.int64), "kind": pd.Series(dtype=object)})
        self.unapproved = pd.DataFrame({"terminal": pd.Series(dtype=np.int64), "ts": pd.Series(dtype=np.int64),
                                        "firmware_hash": pd.Series(dtype=object)})
        self.blocked_t = np.zeros(n_terminals, bool)

    def of_kind(self, kind: str) -> np.ndarray:
        return self.cases.loc[self.cases["kind"] == kind, "terminal"].to_numpy(np.int64)


def generate_adversarial(out_dir: str | Path, *, seed: int = 0, txns: int = 250_000, plant: bool = True,
                         fmt: str | None = None, txn_labels: bool = False) -> GenerateResult:
    """Write an adversarial synthetic drop (see :mod:`etl.adversary`) with its truth in ``out_dir/truth/``.

    The drop is written to a temporary sibling folder first; then ``out_dir`` is created by renaming it, or,
    if it exists, its drop and truth files are replaced (other files are left alone).

    Parameters
    ----------
    out_dir : str or Path
    seed : int
        Same seed and arguments, same bytes.
    txns : int
        Approximate number of transactions (at least 20,000); 90 days, ~31 per card, 4 cards per terminal.
    plant : bool
        ``False``: genuine traffic and noise only, empty truth tables.
    fmt : {"csv", "parquet"}, optional
        Default CSV (local times with their UTC offsets) up to 300k transactions, else Parquet.
    txn_labels : bool
        Write one fraud report row per fraudulent transaction of a reported card, with a ``txn_id`` column
        (each row its own ``reported_at``, a minute apart); default one row per card.

    Returns
    -------
    etl.generate.core.GenerateResult
    """
    t_start = time.perf_counter()
    plan = make_plan(seed, txns, fmt, plant, txn_labels)
    out = Path(out_dir)
    world = build_world(plan, stream(seed, "world"))
    flights = make_flights(world, plan, stream(seed, "flights"))
    rows = genuine_traffic(world, flights, plan, stream(seed, "traffic"))
    owner, phone, account = merchant_secrets(world, stream(seed, "secrets"))
    log.info("generate (adversarial): %d genuine transactions of %d cards (%.1fs)", len(rows["ts"]),
             world.n_cards, time.perf_counter() - t_start)
    p = _Plants(world.n_terminals)
    if plant:
        rows = _plant(world, flights, rows, plan, p, phone, account)
    moves = legit_moves(world, rows, plan, p.blocked_t, stream(seed, "moves"))
    reports = card_reports(world, plan, rows, dict(zip(p.points["terminal"], p.points["style"])),
                           stream(seed, "reports"))
    rows = apply_blocking(rows, reports, world.n_cards)
    rng_c = stream(seed, "counters")
    assign_atc(rows, world, rng_c)
    assign_stan(rows, world, rng_c)
    rows = take(rows, trace_gap_mask(rows, p.of_kind("trace_gap"), stream(seed, "trace_gaps")))
    blocked_upd = p.blocked_t.copy()
    blocked_upd[p.unapproved["terminal"].to_numpy(np.int64)] = True
    updates = firmware_updates(world, plan, blocked_upd, stream(seed, "updates"))
    events, end_fw = terminal_events(world, plan, updates, moves, p.unapproved, p.pre_window,
                                     stream(seed, "events"))
    order = np.lexsort((rows["stan"], rows["term"], rows["obs"]))
    ids = txn_ids(len(order), plan.seed)
    names = Names(world, stream(seed, "names"))
    reports, report_txn = _report_rows(rows, order, ids, reports, txn_labels)
    log.info("generate (adversarial): %d transactions; writing %s (%.1fs)", len(order), plan.fmt,
             time.perf_counter() - t_start)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "truth").mkdir(parents=True)
    files = transaction_tables(tmp, rows, order, ids, world, names, plan.fmt)
    tables = reference_tables(world, names, (owner, phone, account), end_fw, reports, report_txn, events, plan.fmt)
    files += [write_table(t, tmp / kind, plan.fmt) for kind, t in tables.items()]
    truth = _truth(world, names, rows, order, ids, p)
    for name, table in truth.items():
        pq.write_table(table, tmp / "truth" / f"{name}.parquet")
    _install(tmp, out)
    counts = {"transactions": len(order), **{k: t.num_rows for k, t in tables.items()},
              **{f"truth/{k}": t.num_rows for k, t in truth.items()}}
    log.info("generate (adversarial): wrote %s in %.1fs", out, time.perf_counter() - t_start)
    files = [out / f.name for f in files] + [out / "truth" / f"{n}.parquet" for n in truth]
    return GenerateResult(out_dir=out, counts=counts, truth={k: t.to_pandas() for k, t in truth.items()},
                          files=files)


def _plant(world, flights, rows, plan, p: _Plants, phone, account) -> dict:
    """Skimmers, at-terminal compromises, rings, then tampered terminals on terminals none of them touched."""
    seed = plan.seed
    taken = np.zeros(world.n_cards, bool)
    clone_parts, p.skimmers, p.victims = plant_skimmers(world, rows, plan, taken, p.blocked_t,
                                                        stream(seed, "skimmers"))
    p.blocked_t[p.skimmers["terminal"].to_numpy(np.int64)] = True
    at_parts, p.points, p.pre_window = plant_at_terminal(world, rows, plan, taken, p.blocked_t, flights,
                                                         stream(seed, "at_terminal"))
    p.blocked_t[p.points["terminal"].to_numpy(np.int64)] = True
    ring_parts, p.rings, ring_m = plant_rings(world, rows, plan, taken, p.blocked_t, flights, phone, account,
                                              stream(seed, "rings"))
    p.blocked_t[np.isin(world.t_merchant, ring_m)] = True
    rows = concat(rows, *clone_parts, *at_parts, *ring_parts)
    fraud_terms = np.unique(rows["term"][rows["fraud"] > GENUINE])
    blocked = p.blocked_t.copy()
    blocked[fraud_terms] = True
    rng = stream(seed, "cases")
    p.cases = choose_cases(world, rows, plan, blocked, rng)
    p.blocked_t[p.cases["terminal"].to_numpy(np.int64)] = True
    rows = plant_unrecorded_moves(world, rows, p.of_kind("relocation"), plan, rng)
    p.unapproved = plan_unapproved(world, p.of_kind("unapproved_firmware"), plan, rng)
    return rows


def _report_rows(rows, order, ids, reports: pd.DataFrame, txn_labels: bool):
    """Per-card reports, or (``txn_labels``) one row per fraudulent transaction before the card's report."""
    if not txn_labels:
        return reports, None
    fraud = order[rows["fraud"][order] > GENUINE]
    pos = np.flatnonzero(rows["fraud"][order] > GENUINE)
    tx = pd.DataFrame({"card": rows["card"][fraud], "ts": rows["ts"][fraud], "pos": pos})
    merged = reports.merge(tx, on="card", how="left")
    merged = merged[merged["pos"].isna() | (merged["ts"] < merged["reported_at"])]
    merged = merged.sort_values(["reported_at", "card", "ts", "pos"], kind="stable", na_position="first")
    nth = merged.groupby("card").cumcount().to_numpy()
    merged = merged.assign(reported_at=merged["reported_at"].to_numpy(np.int64) + 60 * nth)
    has = merged["pos"].notna().to_numpy()
    txn = ids.take(pa.array(np.where(has, merged["pos"].fillna(0).to_numpy(np.int64), 0)))
    txn = pa.array(np.where(has, np.asarray(txn.to_pylist(), object), None).tolist(), pa.string())
    return merged.reset_index(drop=True), txn


def _truth(world, names: Names, rows, order, ids, p: _Plants) -> dict[str, pa.Table]:
    s = ADV_TRUTH_SCHEMAS
    skim_t = p.skimmers["terminal"].to_numpy(np.int64)
    fraud_pos = np.flatnonzero(rows["fraud"][order] > GENUINE)
    fraud_rows = order[fraud_pos]
    cloned = np.unique(rows["card"][fraud_rows][rows["fraud"][fraud_rows] == 1])
    ring_frame = p.rings
    mt = ring_frame["member_type"].to_numpy(object)
    mem = ring_frame["member"].to_numpy(np.int64)
    member_id = np.empty(len(mem), object)
    for kind, get in (("card", names.pans_of), ("merchant", names.merchants_of), ("terminal", names.terminals_of)):
        sel = mt == kind
        member_id[sel] = np.asarray(get(mem[sel]).to_pylist(), object)
    pts_t = np.concatenate([skim_t, p.points["terminal"].to_numpy(np.int64)])
    mode = ["skimming"] * len(skim_t) + ["at_terminal"] * len(p.points)
    ws = np.concatenate([p.skimmers["window_start"].to_numpy(np.int64), p.points["window_start"].to_numpy(np.int64)])
    we = np.concatenate([p.skimmers["window_end"].to_numpy(np.int64), p.points["window_end"].to_numpy(np.int64)])
    kinds = np.array([FRAUD_KINDS.get(k, "") for k in range(4)], object)
    victims = _compromised(rows, p)
    tables = {
        "skimmers": pa.table({"terminal_id": names.terminals_of(skim_t),
                              "window_start": _utc(p.skimmers["window_start"].to_numpy(np.int64)),
                              "window_end": _utc(p.skimmers["window_end"].to_numpy(np.int64))}),
        "cloned_cards": pa.table({"pan": names.pans_of(cloned),
                                  "source": pa.array(["skimmer"] * len(cloned), pa.string())}),
        "rings": pa.table({"ring_id": pa.array(ring_frame["ring_id"].tolist(), pa.string()),
                           "kind": pa.array(ring_frame["kind"].tolist(), pa.string()),
                           "member_type": pa.array(mt.tolist(), pa.string()),
                           "member_id": pa.array(member_id.tolist(), pa.string())}),
        "terminal_cases": pa.table({"terminal_id": names.terminals_of(p.cases["terminal"].to_numpy(np.int64)),
                                    "kind": pa.array(p.cases["kind"].tolist(), pa.string())}),
        "compromise_points": pa.table({"terminal_id": names.terminals_of(pts_t),
                                       "merchant_id": names.merchants_of(world.t_merchant[pts_t]),
                                       "mode": pa.array(mode, pa.string()), "window_start": _utc(ws),
                                       "window_end": _utc(we)}),
        "fraud_txns": pa.table({"txn_id": ids.take(pa.array(fraud_pos)),
                                "pan": names.pans_of(rows["card"][fraud_rows]),
                                "kind": pa.array(kinds[rows["fraud"][fraud_rows]].tolist(), pa.string())}),
    }
    tables["compromised_cards"] = pa.table({
        "pan": names.pans_of(victims["card"].to_numpy(np.int64)),
        "terminal_id": names.terminals_of(victims["terminal"].to_numpy(np.int64)),
        "mode": pa.array(victims["mode"].tolist(), pa.string()),
        "compromised_at": _utc(victims["compromised_at"].to_numpy(np.int64)),
        "first_fraud_at": pa.array(victims["first_fraud_at"].to_numpy(np.int64) * 1_000_000, _TS,
                                   mask=victims["first_fraud_at"].to_numpy(np.int64) < 0)})
    return {k: t.cast(s[k]) for k, t in tables.items()}


def _compromised(rows, p: _Plants) -> pd.DataFrame:
    """Every card compromised at a planted point, also those whose fraud falls after the period (exposed only):
    card, terminal, mode, compromised_at (skim visit or first fraud at the terminal), first_fraud_at (-1: none)."""
    fraud = rows["fraud"] > GENUINE
    first = pd.Series(rows["ts"][fraud]).groupby(rows["card"][fraud]).min()
    at = rows["fraud"] == AT_TERMINAL
    at_frame = (pd.DataFrame({"card": rows["card"][at], "terminal": rows["term"][at],
                              "compromised_at": rows["ts"][at]})
                .groupby(["card", "terminal"], as_index=False)["compromised_at"].min().assign(mode="at_terminal"))
    skim = p.victims.rename(columns={"skimmed_at": "compromised_at"}).assign(mode="skimming")
    frame = pd.concat([skim, at_frame], ignore_index=True)[["card", "terminal", "mode", "compromised_at"]]
    frame = frame.astype({"card": np.int64, "terminal": np.int64, "compromised_at": np.int64})
    frame["first_fraud_at"] = first.reindex(frame["card"].to_numpy()).fillna(-1).to_numpy(np.int64)
    return frame.sort_values(["mode", "terminal", "compromised_at", "card"], kind="stable").reset_index(drop=True)


def _install(tmp: Path, out: Path) -> None:
    """Rename the finished temporary folder to ``out``, or replace the drop and truth files inside ``out``."""
    if not out.exists():
        os.replace(tmp, out)
        return
    (out / "truth").mkdir(exist_ok=True)
    stale = [f for f in out.iterdir() if f.is_file() and f.name.startswith(DROP_KINDS)
             and f.suffix in (".csv", ".parquet")] + list((out / "truth").glob("*.parquet"))
    for f in sorted(stale):
        f.unlink()
    for f in sorted((tmp / "truth").iterdir()):
        os.replace(f, out / "truth" / f.name)
    for f in sorted(tmp.iterdir()):
        if f.is_file():
            os.replace(f, out / f.name)
    shutil.rmtree(tmp)
