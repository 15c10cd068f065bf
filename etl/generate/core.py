"""`generate`: wire world, traffic, planted cases, counters and writers into one deterministic drop."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from etl.generate.config import make_plan, stream
from etl.generate.counters import assign_atc, assign_stan, spread_terminal_seconds, stan_starts
from etl.generate.entities import build_world
from etl.generate.events import terminal_events
from etl.generate.plants_cards import fill_clone_atc, fraud_reports, plant_atc_clones, plant_skimmers
from etl.generate.plants_rings import plant_networks, plant_rings
from etl.generate.plants_terminals import (KINDS, choose_case_terminals, plant_clock_skew, plant_mcc_mismatch,
                                           plant_relocations, plant_unapproved_firmware, plant_void_spikes,
                                           trace_gap_keep)
from etl.generate.rows import concat, take
from etl.generate.traffic import derived_rows, make_trips, normal_traffic
from etl.generate.writer import Ids, reference_tables, truth_table, write_table, write_transactions

__all__ = ["GenerateResult", "generate", "TRUTH_SCHEMAS", "DROP_KINDS"]

log = logging.getLogger("posguard.generate")

DROP_KINDS = ("transactions", "terminals", "merchants", "fraud_reports", "approved_firmware", "terminal_events")
_TS = pa.timestamp("us", tz="UTC")
TRUTH_SCHEMAS = {
    "skimmers": pa.schema([("terminal_id", pa.string()), ("window_start", _TS), ("window_end", _TS)]),
    "cloned_cards": pa.schema([("pan", pa.string()), ("source", pa.string())]),
    "rings": pa.schema([("ring_id", pa.string()), ("kind", pa.string()), ("member_type", pa.string()),
                        ("member_id", pa.string())]),
    "terminal_cases": pa.schema([("terminal_id", pa.string()), ("kind", pa.string())]),
}


@dataclass
class GenerateResult:
    """What :func:`generate` wrote: the drop directory, row counts per kind, and the truth tables."""

    out_dir: Path
    counts: dict[str, int]
    truth: dict[str, pd.DataFrame] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)


def _utc(seconds) -> pd.Series:
    return pd.to_datetime(np.asarray(seconds, np.int64), unit="s", utc=True).astype("datetime64[us, UTC]")


def generate(out_dir: str | Path, *, seed: int = 0, scale: str = "small", txns: int | None = None,
             plant: bool = True, fmt: str | None = None) -> GenerateResult:
    """Write a synthetic drop that follows the data contract, with its planted cases in ``out_dir/truth/``.

    Parameters
    ----------
    out_dir : str or Path
        Directory to write (created). Files in it that the ETL would read as part of the drop (names starting
        with a kind, ending in .csv or .parquet) and truth/*.parquet are replaced; other files are left alone.
    seed : int
        Random seed; the same seed (and arguments) gives byte-identical files.
    scale : {"small", "medium", "large"}
        About 20k transactions over 60 days, or 1M / 10M over 90 days.
    txns : int, optional
        Approximate transaction count overriding the scale's.
    plant : bool
        Plant skimmers, cloned cards, rings, merchant networks and terminal cases; ``False`` gives a clean
        drop (ordinary traffic and a few unrelated background fraud reports) and empty truth tables.
    fmt : {"csv", "parquet"}, optional
        File format; default CSV up to 100k transactions, Parquet above.

    Returns
    -------
    GenerateResult

    Raises
    ------
    ValueError
        For an unknown scale or format, a negative seed or fewer than 1,000 transactions.

    Example
    -------
    >>> generate("/tmp/drop", seed=1, scale="small").counts["transactions"]  # doctest: +SKIP
    20240
    """
    t_start = time.perf_counter()
    plan = make_plan(seed, scale, txns, fmt, plant)
    out = Path(out_dir)
    (out / "truth").mkdir(parents=True, exist_ok=True)
    _remove_stale(out)
    world = build_world(plan, stream(seed, "world"))
    nets = plant_networks(world, plan, stream(seed, "networks")) if plant else None
    trips = make_trips(world, plan, stream(seed, "trips"))
    rows = normal_traffic(world, trips, plan, stream(seed, "traffic"))
    rows = concat(rows, derived_rows(world, trips, rows, plan, stream(seed, "derived")))
    log.info("generate: %d ordinary transactions of %d cards (%.1fs)", len(rows["ts"]), world.n_cards,
             time.perf_counter() - t_start)
    planted = _plant(world, trips, rows, plan, nets) if plant else _Planted.nothing(world, rows)
    rows = planted.rows
    rng_c = stream(seed, "counters")
    spread_terminal_seconds(rows)
    assign_stan(rows, stan_starts(np.bincount(rows["term"], minlength=world.n_terminals), rng_c))
    assign_atc(rows, world.c_atc0, rng_c)
    fill_clone_atc(rows, rng_c)
    rows = take(rows, trace_gap_keep(rows, planted.trace_gaps, stream(seed, "trace_gaps")))
    idle = np.bincount(rows["card"], minlength=world.n_cards) == 0
    reports = fraud_reports(world, plan, planted.victims, planted.clone_first, planted.taken_cards | idle,
                            stream(seed, "reports"))
    events = terminal_events(world, plan, planted.relocations, planted.unapproved, stream(seed, "events"))
    log.info("generate: %d transactions with planted cases; writing %s (%.1fs)", len(rows["ts"]), plan.fmt,
             time.perf_counter() - t_start)
    ids = Ids(world)
    files = write_transactions(out, rows, ids, plan)
    tables = reference_tables(world, ids, reports, events, plan.fmt)
    files += [write_table(t, out / kind, plan.fmt) for kind, t in tables.items()]
    for name, schema in TRUTH_SCHEMAS.items():
        path = out / "truth" / f"{name}.parquet"
        pq.write_table(truth_table(planted.truth[name], schema), path)
        files.append(path)
    counts = {"transactions": len(rows["ts"]), **{k: t.num_rows for k, t in tables.items()},
              **{f"truth/{k}": len(v) for k, v in planted.truth.items()}}
    log.info("generate: wrote %s in %.1fs", out, time.perf_counter() - t_start)
    return GenerateResult(out_dir=out, counts=counts, truth=planted.truth, files=files)


def _remove_stale(out: Path) -> None:
    """Delete drop and truth files of an earlier run, so that a new drop never mixes with an old one."""
    stale = [p for p in out.iterdir() if p.is_file() and p.name.startswith(DROP_KINDS)
             and p.suffix in (".csv", ".parquet")] + sorted((out / "truth").glob("*.parquet"))
    for path in sorted(stale):
        path.unlink()
    if stale:
        log.info("generate: removed %d files of an earlier drop in %s", len(stale), out)


@dataclass
class _Planted:
    """Rows with the planted cases, and what later steps need to know about them."""

    rows: dict
    truth: dict[str, pd.DataFrame]
    taken_cards: np.ndarray  # cards in a planted case (no background report for them)
    victims: pd.DataFrame  # card, terminal, first_fraud of skimmed cards
    clone_first: pd.DataFrame  # card, first_fraud of ATC clones
    relocations: pd.DataFrame
    unapproved: pd.DataFrame
    trace_gaps: np.ndarray

    @classmethod
    def nothing(cls, world, rows) -> "_Planted":
        truth = {name: pd.DataFrame({f.name: pd.Series(dtype=object) for f in schema})
                 for name, schema in TRUTH_SCHEMAS.items()}
        return cls(rows=rows, truth=truth, taken_cards=np.zeros(world.n_cards, bool),
                   victims=pd.DataFrame(columns=["card", "terminal", "first_fraud"]),
                   clone_first=pd.DataFrame(columns=["card", "first_fraud"]),
                   relocations=pd.DataFrame(columns=["terminal", "start", "end", "city", "lat", "lon"]),
                   unapproved=pd.DataFrame(columns=["terminal", "ts", "firmware_hash"]),
                   trace_gaps=np.zeros(0, np.int64))


def _plant(world, trips, rows, plan, nets) -> _Planted:
    """Card fraud first (its victims are ordinary cards), then rings, then terminal cases on untouched terminals."""
    seed = plan.seed
    taken = np.zeros(world.n_cards, bool)
    skim_rows, skimmers, victims = plant_skimmers(world, trips, rows, plan, stream(seed, "skimmers"))
    taken[victims["card"].to_numpy(np.int64)] = True
    clone_rows, clones = plant_atc_clones(world, trips, rows, plan, taken, stream(seed, "clones"))
    taken[clones] = True
    clone_first = (pd.DataFrame({"card": clone_rows["card"], "first_fraud": clone_rows["ts"]})
                   .groupby("card", as_index=False)["first_fraud"].min())
    net_m = np.zeros(world.n_merchants, bool)
    net_m[nets["member"].to_numpy(np.int64)] = True
    ring_rows, rings = plant_rings(world, trips, plan, taken, net_m, stream(seed, "rings"))
    taken[rings.loc[rings["member_type"] == "card", "member"].to_numpy(np.int64)] = True
    rows = concat(rows, skim_rows, clone_rows, ring_rows)
    excluded = np.zeros(world.n_terminals, bool)
    excluded[skimmers["terminal"].to_numpy(np.int64)] = True
    ring_m = rings.loc[rings["member_type"] == "merchant", "member"].to_numpy(np.int64)
    excluded[np.isin(world.t_merchant, np.concatenate([ring_m, np.flatnonzero(net_m)]))] = True
    rng = stream(seed, "terminal_cases")
    cases = choose_case_terminals(world, rows, plan, excluded, rng)
    of = {k: cases.loc[cases["kind"] == k, "terminal"].to_numpy(np.int64) for k in KINDS}
    rows, relocations = plant_relocations(world, trips, rows, of["relocation"], plan, rng)
    rows = plant_void_spikes(world, trips, rows, of["void_spike"], plan, rng)
    plant_mcc_mismatch(world, rows, of["mcc_mismatch"], plan, rng)
    rows = plant_clock_skew(world, trips, rows, of["clock_skew"], plan, rng)
    unapproved = plant_unapproved_firmware(world, rows, of["unapproved_firmware"], plan, rng)
    return _Planted(rows=rows, truth=_truth_frames(world, skimmers, victims, clones, nets, rings, cases),
                    taken_cards=taken, victims=victims, clone_first=clone_first, relocations=relocations,
                    unapproved=unapproved, trace_gaps=of["trace_gap"])


def _truth_frames(world, skimmers, victims, clones, nets, rings, cases) -> dict[str, pd.DataFrame]:
    ids = Ids(world)
    term_id = np.array(ids.terminal.to_pylist(), dtype=object)
    merch_id = np.array(ids.merchant.to_pylist(), dtype=object)
    pan = world.c_pan.astype(str).astype(object)
    skim = pd.DataFrame({"terminal_id": term_id[skimmers["terminal"].to_numpy(np.int64)],
                         "window_start": _utc(skimmers["window_start"]),
                         "window_end": _utc(skimmers["window_end"])})
    cloned = pd.concat([pd.DataFrame({"pan": pan[victims["card"].to_numpy(np.int64)], "source": "skimmer"}),
                        pd.DataFrame({"pan": pan[np.asarray(clones, np.int64)], "source": "atc_clone"})],
                       ignore_index=True)
    both = pd.concat([rings, nets], ignore_index=True)
    member = both["member"].to_numpy(np.int64)
    kind = both["member_type"].to_numpy()
    member_id = np.where(kind == "card", pan[np.minimum(member, len(pan) - 1)],
                         np.where(kind == "merchant", merch_id[np.minimum(member, len(merch_id) - 1)],
                                  term_id[np.minimum(member, len(term_id) - 1)]))
    ring_frame = pd.DataFrame({"ring_id": both["ring_id"], "kind": both["kind"], "member_type": kind,
                               "member_id": member_id})
    case_frame = pd.DataFrame({"terminal_id": term_id[cases["terminal"].to_numpy(np.int64)],
                               "kind": cases["kind"].to_numpy()})
    return {"skimmers": skim, "cloned_cards": cloned, "rings": ring_frame, "terminal_cases": case_frame}
