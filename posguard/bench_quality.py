"""`posguard bench --quality`: detection quality on fresh drops of both generators, planted and clean."""

from __future__ import annotations

import logging
import math
import tempfile
import time
from pathlib import Path

import pandas as pd

from etl.adversary import generate_adversarial
from etl.generate import generate as generate_standard
from graph.detectors.significance import REPORT_Q
from graph.evaluation import load_truth, projection_from_drop
from graph.quality import average_precision, drop_quality, early_warning, naive_point_ranking, reporting_rate_curve
from graph.scoring import run_detectors

__all__ = ["run_quality", "quality_markdown", "curve_markdown", "GENERATORS", "REPORTING_RATES"]

log = logging.getLogger("posguard.bench")

GENERATORS = ("standard", "adversarial")
# Shares of the skimmers' cloned victims reported, for the reporting-rate curve of the skimming points.
REPORTING_RATES = (0.05, 0.1, 0.25, 0.5, 1.0)
# The columns of BENCHMARKS.md's "Detection quality" table, in order.
_COLUMNS = ["generator", "seed", "txns", "planted", "skimming_recall_top", "at_terminal_average_precision",
            "at_terminal_naive_ap",
            "cloned_precision_at_k", "cloned_reported", "cloned_planted", "ring_jaccard_min", "largest_ring_members",
            "terminal_recall", "terminal_false_per_kind_per_2000_max", "alerts_critical", "alerts_high",
            "high_critical_precision", "high_critical_false", "unreported_clones", "early_warned", "warning_days",
            "score_s"]


def _generate(generator: str, out: Path, seed: int, txns: int, clean: bool) -> None:
    """A drop from one of the generators (``posguard generate --generator NAME``)."""
    if generator not in GENERATORS:
        raise ValueError(f"no generator {generator!r}; choose from {', '.join(GENERATORS)}")
    make = generate_standard if generator == "standard" else generate_adversarial
    make(out, seed=seed, txns=txns, plant=not clean)


def run_quality(key: str, *, generators=GENERATORS, seeds=(21, 22, 23), txns: int = 250_000,
                clean_txns: int = 1_000_000, params: dict | None = None, root: Path | None = None,
                curve: bool = True) -> tuple[list[dict], list[dict]]:
    """Generate, score (no Neo4j: projection straight from the drop) and measure drops of every generator.

    Parameters
    ----------
    key : tokenization key (the drops' PANs are tokenized with it, as the ETL would)
    generators : which generators to run; seeds : one planted drop per seed and generator
    txns : size of each planted drop; clean_txns : size of one clean drop per generator (0: none)
    params : per-detector parameters, the same for every generator
    curve : also measure the skimming points when only a share of the cloned victims is reported

    Returns
    -------
    (rows, curve_rows): one row per drop (generator, seed, txns, planted and the
    ``graph.quality.drop_quality`` figures, ``score_s`` the seconds of projection and scoring), and one row per
    planted drop and reporting rate (``graph.quality.reporting_rate_curve``, reported points: q <= 0.05).
    """
    rows, curve_rows = [], []
    with tempfile.TemporaryDirectory(dir=root) as tmp:
        plan = [(g, s, txns, True) for g in generators for s in seeds]
        plan += [(g, seeds[0], clean_txns, False) for g in generators if clean_txns]
        for generator, seed, size, planted in plan:
            drop = Path(tmp) / f"{generator}-{seed}-{size}-{'planted' if planted else 'clean'}"
            _generate(generator, drop, seed, size, clean=not planted)
            started = time.perf_counter()
            projection = projection_from_drop(drop, key)
            result = run_detectors(projection, params=params)
            seconds = time.perf_counter() - started
            figures = drop_quality(result.frames, drop, key, n_terminals=projection.n_terminals)
            row = {"generator": generator, "seed": seed, "txns": projection.n_txns, "planted": planted,
                   **figures, "score_s": round(seconds, 1)}
            at_terminal = set(load_truth(drop, key).get("compromise_points", pd.DataFrame(columns=["terminal_id", "mode"]))
                              .query("mode == 'at_terminal'")["terminal_id"]) if planted else set()
            if at_terminal:
                row["at_terminal_naive_ap"] = average_precision(naive_point_ranking(projection), at_terminal)
            if planted and (drop / "truth" / "fraud_txns.parquet").exists():
                warning = early_warning(drop, key, params=params)
                row.update(early_warned=warning.get("warned"), warning_days=warning.get("median_warning_days"),
                           unreported_clones=warning.get("unreported_clones"))
            log.info("quality %s seed %s (%s): %s", generator, seed, "planted" if planted else "clean",
                     {k: row.get(k) for k in _COLUMNS[4:]})
            rows.append(row)
            if curve and planted:
                truth = load_truth(drop, key)
                skim = (params or {}).get("skimming", {})
                table = reporting_rate_curve(projection, truth, rates=REPORTING_RATES, seed=seed, alpha=REPORT_Q,
                                             **skim)
                curve_rows += [{"generator": generator, "seed": seed, **r} for r in table.to_dict("records")]
    return rows, curve_rows


def curve_markdown(rows: list[dict]) -> str:
    """The reporting-rate curve as a table: per generator and rate, the points' precision and recall (mean)."""
    frame = pd.DataFrame(rows)
    if frame.empty:
        return ""
    g = frame.groupby(["generator", "rate"]).agg(drops=("seed", "size"), reported=("reported", "mean"),
                                                 precision=("precision", "mean"), recall=("recall", "mean"),
                                                 recall_top=("recall_top", "mean")).reset_index()
    lines = ["| generator | share of victims reported | drops | reports (mean) | precision | recall | in top max(5, k) |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r in g.itertuples(index=False):
        lines.append(f"| {r.generator} | {r.rate:.0%} | {r.drops} | {r.reported:.0f} | {_cell(r.precision)} | "
                     f"{_cell(r.recall)} | {_cell(r.recall_top)} |")
    return "\n".join(lines) + "\n"


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))
    return str(value)


def quality_markdown(rows: list[dict]) -> str:
    """The figures as BENCHMARKS.md's table (one row per drop; "-" where a figure does not apply)."""
    frame = pd.DataFrame(rows)
    columns = [c for c in _COLUMNS if c in frame.columns]
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(_cell(row.get(c)) for c in columns) + " |")
    return "\n".join(lines) + "\n"
