"""The detectors on Apache Spark (``--engine spark``): the same outputs as ``graph.scoring.run_detectors``.

No detector's maths is written a second time; Spark decides what each Python worker sees:

- **cloned cards** (per card, then run-wide): transactions hashed into card buckets; each bucket builds its
  own ``Projection`` and runs ``ClonedCardDetector.evidence`` (``groupBy(bucket).applyInPandas``); the driver
  runs ``ClonedCardDetector.decide`` once on the concatenated evidence (run-wide base rates, BH over every
  card scored), as the local engine does on the whole projection.
- **terminal integrity** (per terminal): transactions and registered terminals co-grouped by terminal
  bucket give each terminal's use of sequence numbers (``IntegrityDetector.stan_use``), from which the driver
  fits each model's rate (``stan_rates``); a second co-grouped pass gives each terminal's transaction evidence
  at its model's rate (``transaction_evidence``); the driver adds the evidence of the reference tables and
  decides over all terminals at once (``decide``: base rates per model, the false-discovery rule over the whole
  family), as ``IntegrityDetector.fit`` does.
- **skimming points**: the candidate subgraph is every transaction of a reported card and of a terminal a
  reported card used; the detector runs on it in the driver, with the two counts over *all* cards (active
  cards in the span, and ``active_days``, summed over card buckets) computed by Spark.
- **rings**: the run's hour and roundness counts (``suspicion_counts``, summed over partitions), then the
  transactions unusual enough to become edges by those counts (filtered in ``mapInPandas``), where the
  dense-block search and its randomised nulls run in the driver; the habit null's evidence, the ordinary
  visits (``ordinary_visits``: the other transactions counted per card and merchant, summed by a
  ``groupBy``) of the merchants of those edges, comes with them. **merchant networks**: the transactions of terminals seen with
  more than one merchant, plus the merchant table.

The driver must hold the two candidate subgraphs (``ScoreResult.seconds`` and the log give their sizes): on
the sample drops they are 5-60% of the transactions, bounded by how many terminals reported cards
touched. The per-card and per-terminal work never leaves the executors.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from graph.catalog import TXN_COLUMNS, committed_paths, staged_reference
from graph.detectors.cloned import ClonedCardDetector
from graph.detectors.compromise import exposed_cards
from graph.detectors.integrity import IntegrityDetector
from graph.detectors.rings import RingDetector
from graph.detectors.rings_nulls import ordinary_visits
from graph.detectors.rings_suspicion import N_LEVELS, suspicion, suspicion_counts
from graph.detectors.skimming import SkimmingDetector
from graph.kernels.skimming import active_days
from graph.projection import Projection, to_epoch_seconds
from graph.scoring import ScoreResult, assemble_outputs, fit_detector, timed
from graph.spark_session import bucket_column
from graph.vocabulary import ENTRY_MANUAL

__all__ = ["run_detectors_spark", "staged_transactions"]

log = logging.getLogger("posguard.score.spark")


def staged_transactions(spark, home: Path):
    """Every committed staged transaction as a Spark DataFrame (the columns the projection uses)."""
    paths = [str(p) for p in committed_paths(home, "transactions")]
    if not paths:
        return None
    return spark.read.parquet(*paths).select(*TXN_COLUMNS)


_TEXT = {"card_token", "terminal_id", "merchant_id", "reasons", "kind", "details"}


def _spark_schema(frame: pd.DataFrame):
    """A Spark schema for a detector's output frame (strings, floats, ints, timestamps, lists of strings)."""
    from pyspark.sql import types as T  # optional dependency (the [spark] extra)

    fields = []
    for name, dtype in frame.dtypes.items():
        if name in _TEXT:  # an empty frame may give text and list columns any dtype
            t = T.StringType()
        elif name.endswith("_ids"):
            t = T.ArrayType(T.StringType())
        elif pd.api.types.is_datetime64_any_dtype(dtype):
            t = T.TimestampType()
        elif pd.api.types.is_bool_dtype(dtype):
            t = T.BooleanType()
        elif pd.api.types.is_integer_dtype(dtype):
            t = T.LongType()
        elif pd.api.types.is_float_dtype(dtype):
            t = T.DoubleType()
        else:
            t = T.StringType()
        fields.append(T.StructField(name, t))
    return T.StructType(fields)


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    """Numpy-backed columns (Arrow-backed ones come back as chunked arrays, which Spark's writer refuses)."""
    out = {}
    for name, values in frame.items():
        if isinstance(values.dtype, pd.ArrowDtype) or str(values.dtype).startswith(("string", "str")):
            kind = getattr(values.dtype, "pyarrow_dtype", None)
            if kind is not None and str(kind).startswith("timestamp"):
                values = pd.Series(pd.to_datetime(values, utc=True).astype("datetime64[us, UTC]"), index=values.index)
            else:
                values = values.astype(object).where(values.notna(), None)
        out[name] = values
    return pd.DataFrame(out, index=frame.index)


def _empty_transactions() -> pd.DataFrame:
    """A typed transaction frame with no rows (the projection's required columns)."""
    empty = pd.DataFrame({c: pd.Series([], dtype=object) for c in ("txn_id", "card_token", "terminal_id",
                                                                    "merchant_id", "entry_mode")})
    empty["ts"] = pd.Series([], dtype="datetime64[us, UTC]")
    return empty


def _empty_projection() -> Projection:
    """A projection without transactions (templates of the detectors' outputs, for the Spark schemas)."""
    return Projection.from_frames(_empty_transactions())


def _empty_output(name: str, params: dict) -> pd.DataFrame:
    """The detector's output on an empty projection: its columns and dtypes (for the Spark schema)."""
    return fit_detector(name, _empty_projection(), **params).result_


class _Totals:
    """Counts over every card for ``SkimmingDetector.fit(totals=...)``, computed by Spark."""

    def __init__(self, txns, buckets: int):
        self.txns, self.buckets = txns, buckets

    def visits(self, start: int, end: int) -> int:
        from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

        secs = F.col("ts").cast("long")
        return int(self.txns.where((secs >= start) & (secs < end)).count())

    def active_cards(self, start: int, end: int) -> int:
        from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

        secs = F.col("ts").cast("long")
        return int(self.txns.where((F.col("entry_mode") != "manual") & (secs >= start) & (secs < end))
                   .select("card_token").distinct().count())

    def active_days(self, day0: int, n_days: int, window: int) -> np.ndarray:
        from pyspark.sql import types as T  # optional dependency (the [spark] extra)

        def part(pdf: pd.DataFrame) -> pd.DataFrame:
            p = Projection.from_frames(pdf.drop(columns="_b"))
            days = active_days(p.card_indptr, p.txn_ts, np.ascontiguousarray(p.txn_entry != ENTRY_MANUAL), day0,
                               n_days, window)
            return pd.DataFrame({"days": [days.tolist()]})

        rows = (self.txns.select("txn_id", "ts", "card_token", "terminal_id", "merchant_id", "entry_mode")
                .withColumn("_b", bucket_column("card_token", self.buckets)).groupBy("_b")
                .applyInPandas(part, T.StructType([T.StructField("days", T.ArrayType(T.DoubleType()))])).collect())
        total = np.zeros(n_days + 1, dtype=np.float64)
        for row in rows:
            total += np.asarray(row["days"], dtype=np.float64)
        return total


def _cloned(spark, txns, reference: dict, params: dict, buckets: int, exposed: pd.DataFrame) -> pd.DataFrame:
    """Per card bucket the detector's evidence phase; its run-wide decision once, on the concatenated evidence
    and the skimming step's exposed cards."""
    terminals = spark.sparkContext.broadcast(reference["terminals"])
    reports = spark.sparkContext.broadcast(reference.get("fraud_reports"))
    template = ClonedCardDetector(**params).evidence(_empty_projection())

    def part(pdf: pd.DataFrame) -> pd.DataFrame:
        mine = reports.value  # the bucket's cards' reports (counterfeit reports are evidence)
        if mine is not None:
            mine = mine[mine["card_token"].isin(pdf["card_token"])]
        p = Projection.from_frames(pdf.drop(columns="_b"), terminals.value, fraud_reports=mine)
        return _plain(ClonedCardDetector(**params).evidence(p))

    evidence = (txns.withColumn("_b", bucket_column("card_token", buckets)).groupBy("_b")
                .applyInPandas(part, _spark_schema(template)).toPandas())
    evidence = pd.concat([template, evidence], ignore_index=True) if len(evidence) else template
    return ClonedCardDetector(**params).decide(evidence, exposed)


def _integrity(spark, txns, reference: dict, params: dict, buckets: int) -> pd.DataFrame:
    """Per terminal bucket, ``IntegrityDetector.stan_use`` (the bucket's transactions and registered terminals),
    the models' rates from all of them in the driver (``stan_rates``), per terminal bucket
    ``transaction_evidence`` at those rates; then, in the driver, ``event_evidence`` over the reference tables and
    one ``decide`` over every terminal: the same phases as ``IntegrityDetector.fit``."""
    det = IntegrityDetector(**params)
    terms = reference["terminals"] if reference["terminals"] is not None else pd.DataFrame(
        {"terminal_id": pd.Series([], dtype=object)})
    bucket_of = _buckets_of(spark, terms["terminal_id"].drop_duplicates(), buckets)
    shared = spark.sparkContext.broadcast({"terminals": terms, "merchants": reference["merchants"]})
    term_df = spark.createDataFrame(terms.assign(_b=terms["terminal_id"].map(bucket_of).astype("int64"))[
        ["terminal_id", "_b"]], "terminal_id string, _b long")
    keyed = txns.withColumn("_b", bucket_column("terminal_id", buckets).cast("long"))

    def bucket(left: pd.DataFrame, right: pd.DataFrame) -> Projection:
        """The bucket's transactions and registered terminals (every merchant, for the registered MCC)."""
        registered = shared.value["terminals"]
        return Projection.from_frames(left.drop(columns="_b"),
                                      registered[registered["terminal_id"].isin(set(right["terminal_id"]))],
                                      shared.value["merchants"])

    def use(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
        return _plain(det.stan_use(bucket(left, right)))

    use_template = det.stan_use(_empty_projection())
    used = (keyed.select("txn_id", "ts", "card_token", "terminal_id", "stan", "_b").groupBy("_b")
            .cogroup(term_df.groupBy("_b")).applyInPandas(use, _spark_schema(use_template)).toPandas())
    rates = det.stan_rates(pd.concat([use_template, used], ignore_index=True) if len(used) else use_template)

    def evidence(left: pd.DataFrame, right: pd.DataFrame) -> pd.DataFrame:
        return _plain(det.transaction_evidence(bucket(left, right), rates))

    template = det.transaction_evidence(_empty_projection())
    stats = (keyed.groupBy("_b").cogroup(term_df.groupBy("_b"))
             .applyInPandas(evidence, _spark_schema(template)).toPandas())
    stats = pd.concat([template, stats], ignore_index=True) if len(stats) else template
    # the reference tables as the local engine's projection holds them (latest registration per key)
    ref = Projection.from_frames(_empty_transactions(), reference["terminals"], reference["merchants"], None,
                                 reference["approved_firmware"], reference["terminal_events"])
    ids = np.sort(stats["terminal_id"].astype(object).to_numpy())
    return det.decide(stats, det.event_evidence(ids, ref.terminals, ref.terminal_events, ref.approved_firmware))


def _buckets_of(spark, ids: pd.Series, buckets: int) -> dict:
    """terminal id -> bucket, by the same Spark expression that buckets the transactions."""
    if not len(ids):
        return {}
    frame = spark.createDataFrame(pd.DataFrame({"terminal_id": ids.astype(object).to_numpy()}), "terminal_id string")
    return {r[0]: r[1] for r in frame.withColumn("_b", bucket_column("terminal_id", buckets)).collect()}


def _skimming(spark, txns, reference: dict, params: dict, buckets: int):
    from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

    reports = reference["fraud_reports"]
    reported = reports["card_token"].dropna().unique() if reports is not None else np.zeros(0, dtype=object)
    cards_df = spark.createDataFrame(pd.DataFrame({"card_token": reported.astype(object)}), "card_token string")
    touched = txns.join(F.broadcast(cards_df), "card_token").select("terminal_id").distinct()
    sub = (txns.join(F.broadcast(cards_df.withColumn("_r", F.lit(True))), "card_token", "left")
           .join(F.broadcast(touched.withColumn("_t", F.lit(True))), "terminal_id", "left")
           .where(F.col("_r") | F.col("_t")).select(*TXN_COLUMNS).toPandas())
    log.info("skimming subgraph: %s transactions", f"{len(sub):,}")
    p = Projection.from_frames(sub, **reference)
    det = SkimmingDetector(**params).fit(p, totals=_Totals(txns, buckets))
    # exposed cards need the whole history of every card seen at an accepted point: add those cards' other
    # transactions to the subgraph (the points do not change: every terminal they use is complete already)
    visitors = det.exposed_["card_token"].drop_duplicates()
    if len(visitors):
        more = spark.createDataFrame(pd.DataFrame({"card_token": visitors.astype(object).to_numpy()}),
                                     "card_token string")
        extra = txns.join(F.broadcast(more), "card_token").select(*TXN_COLUMNS).toPandas()
        full = pd.concat([sub, extra], ignore_index=True).drop_duplicates("txn_id")
        det.exposed_ = exposed_cards(Projection.from_frames(full, **reference), det.result_,
                                     reissue_p=det.reissue_p, far_km=det.far_km)
    return det.result_, det.exposed_, len(sub)


def _rings(spark, txns, reference: dict, params: dict):
    from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

    det = RingDetector(**params)
    schema = txns.schema

    def arrays(pdf: pd.DataFrame):
        return pdf["amount"].to_numpy(np.float64, na_value=np.nan), to_epoch_seconds(pdf["ts"])

    def counts(batches):  # evidence phase: the run's hour and roundness counts, summed below
        for pdf in batches:
            yield pd.DataFrame({"counts": [suspicion_counts(*arrays(pdf)).tolist()]})

    total = np.zeros(24 + N_LEVELS, dtype=np.int64)
    for row in txns.select("ts", "amount").mapInPandas(counts, "counts array<long>").collect():
        total += np.asarray(row["counts"], dtype=np.int64)

    def suspicious(batches):  # decision phase: the transactions that become edges, by the run's counts
        for pdf in batches:
            yield pdf[det.keep(suspicion(*arrays(pdf), total))]

    def ordinary(batches):  # the habit null's evidence: the other transactions per card and merchant
        for pdf in batches:
            rest = pdf[~det.keep(suspicion(*arrays(pdf), total))]
            yield ordinary_visits(rest["card_token"], rest["merchant_id"])

    sub = txns.mapInPandas(suspicious, schema).toPandas()
    log.info("ring subgraph: %s suspicious transactions", f"{len(sub):,}")
    edge_merchants = sub["merchant_id"].dropna().unique().astype(object)
    merchants = spark.createDataFrame(pd.DataFrame({"merchant_id": edge_merchants}), "merchant_id string")
    visits = (txns.select("ts", "amount", "card_token", "merchant_id")
              .mapInPandas(ordinary, "card_token string, merchant_id string, n long")
              .join(F.broadcast(merchants), "merchant_id")
              .groupBy("card_token", "merchant_id").agg(F.sum("n").alias("n")).toPandas())
    p = Projection.from_frames(sub, reference["terminals"], reference["merchants"])
    return det.fit(p, counts=total, visits=visits).result_, len(sub)


def _networks(spark, txns, reference: dict, params: dict):
    from pyspark.sql import functions as F  # optional dependency (the [spark] extra)

    terms = reference["terminals"]
    pairs = txns.select("terminal_id", "merchant_id")
    if terms is not None and len(terms):
        registered = spark.createDataFrame(terms[["terminal_id", "merchant_id"]].astype(object),
                                           "terminal_id string, merchant_id string")
        pairs = pairs.unionByName(registered.join(txns.select("terminal_id").distinct(), "terminal_id"))
    shared = pairs.groupBy("terminal_id").agg(F.countDistinct("merchant_id").alias("n")).where("n > 1")
    sub = txns.join(F.broadcast(shared.select("terminal_id")), "terminal_id").select(*TXN_COLUMNS).toPandas()
    p = Projection.from_frames(sub, **reference)
    return fit_detector("networks", p, **params).result_, len(sub)


def run_detectors_spark(spark, home: Path, *, created_at: datetime | None = None, params: dict | None = None,
                        buckets: int | None = None) -> ScoreResult:
    """Every detector over the staged data of ``home``, on Spark; the same ``ScoreResult`` as the local engine.

    Parameters
    ----------
    spark : pyspark.sql.SparkSession
    home : Path
        POSGUARD_HOME whose committed staging is scored.
    created_at : datetime, optional
        Timestamp of the alerts (default now, UTC).
    params : dict, optional
        Per-detector parameters, as for ``graph.scoring.run_detectors``.
    buckets : int, optional
        Card and terminal buckets (default: 4 per core of the session, at least 8).

    Returns
    -------
    ScoreResult
        ``seconds`` per detector, plus ``subgraph_*`` sizes (transactions held by the driver).
    """
    params = params or {}
    created_at = created_at or datetime.now(timezone.utc)
    buckets = buckets or max(8, 4 * spark.sparkContext.defaultParallelism)
    txns = staged_transactions(spark, home)
    if txns is None:
        raise ValueError(f"nothing is staged in {home}")
    txns = txns.persist()
    reference = staged_reference(home)
    seconds: dict[str, float] = {}

    def step(name, func):
        return timed(seconds, name, func, log)

    tables = {}
    tables["skimming"], tables["exposed_cards"], seconds["subgraph_skimming_txns"] = step(
        "skimming", lambda: _skimming(spark, txns, reference, params.get("skimming", {}), buckets))
    tables["cloned"] = step("cloned", lambda: _cloned(spark, txns, reference, params.get("cloned", {}), buckets,
                                                      tables["exposed_cards"]))
    tables["rings"], seconds["subgraph_rings_txns"] = step(
        "rings", lambda: _rings(spark, txns, reference, params.get("rings", {})))
    tables["networks"], seconds["subgraph_networks_txns"] = step(
        "networks", lambda: _networks(spark, txns, reference, params.get("networks", {})))
    tables["integrity"] = step(
        "integrity", lambda: _integrity(spark, txns, reference, params.get("integrity", {}), buckets))
    txns.unpersist()
    frames = step("alerts", lambda: assemble_outputs(tables, created_at))
    return ScoreResult(frames=frames, seconds=seconds, created_at=created_at)
