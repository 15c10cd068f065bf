"""Run every detector of the registry over one projection and assemble the outputs and the alert queue."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial

import pandas as pd

from graph.detectors import DETECTORS
from graph.queue import build_alerts

__all__ = ["ScoreResult", "run_detectors", "fit_detector", "assemble_outputs", "timed"]

log = logging.getLogger("posguard.score")

@dataclass
class ScoreResult:
    """The outputs of one scoring run, as DataFrames, with seconds per detector."""

    frames: dict[str, pd.DataFrame]
    seconds: dict[str, float] = field(default_factory=dict)
    created_at: datetime | None = None

    def summary(self) -> str:
        f = self.frames
        return (f"{len(f['skimming_points'])} skimming points, {len(f['cloned_cards'])} cloned cards, "
                f"{f['rings']['ring_id'].nunique() if len(f['rings']) else 0} rings, "
                f"{len(f['terminal_findings'])} terminal findings, {len(f['alerts'])} alerts")


def timed(seconds: dict, name: str, func, logger: logging.Logger = log):
    """``func()``, its seconds recorded as ``seconds[name]`` and logged (both engines time their steps so)."""
    started = time.perf_counter()
    out = func()
    seconds[name] = time.perf_counter() - started
    logger.info("%s: %.2fs", name, seconds[name])
    return out


def fit_detector(name: str, projection, *, inputs: dict | None = None, **params):
    """The detector ``name`` (a key of ``graph.detectors.DETECTORS``) built with ``params`` and fitted on
    ``projection`` (and ``inputs``, keyword arguments of its ``fit``: another detector's results). Without
    ``inputs`` the cloned-card detector gets the exposed cards of the skimming detector (default parameters) on
    the same projection, as ``run_detectors`` gives it, so that one detector alone reports what scoring does.

    Example
    -------
    >>> fit_detector("cloned", projection, max_speed_kmh=700).result_  # doctest: +SKIP
    """
    if name not in DETECTORS:
        raise ValueError(f"no detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if inputs is None and name == "cloned":
        inputs = {"exposed": fit_detector("skimming", projection).exposed_}
    return DETECTORS[name](**params).fit(projection, **(inputs or {}))


def run_detectors(projection, *, created_at: datetime | None = None, params: dict | None = None) -> ScoreResult:
    """Fit every detector on ``projection`` and assemble the outputs and the alert queue.

    Parameters
    ----------
    projection : graph.projection.Projection
        Built once and shared by every detector.
    created_at : datetime, optional
        Timestamp of the alerts (default now, UTC).
    params : dict, optional
        Per-detector constructor parameters: keys ``skimming``, ``cloned``, ``rings``, ``networks``,
        ``integrity``.

    Returns
    -------
    ScoreResult
    """
    params = params or {}
    created_at = created_at or datetime.now(timezone.utc)
    seconds: dict[str, float] = {}
    tables = {}
    for name in DETECTORS:
        inputs = {"exposed": tables["exposed_cards"]} if name == "cloned" else None  # skimming runs first
        fitted = timed(seconds, name, partial(fit_detector, name, projection, inputs=inputs, **params.get(name, {})))
        tables[name] = fitted.result_
        if name == "skimming":  # the cards exposed at its accepted points of compromise
            tables["exposed_cards"] = fitted.exposed_
    frames = timed(seconds, "alerts", lambda: assemble_outputs(tables, created_at))
    return ScoreResult(frames=frames, seconds=seconds, created_at=created_at)



def assemble_outputs(tables: dict[str, pd.DataFrame], created_at: datetime) -> dict[str, pd.DataFrame]:
    """The six outputs of the contract from the detectors' result tables, the alert queue built from them.

    Parameters
    ----------
    tables : dict
        The result table of each detector by its ``DETECTORS`` name (``skimming``, ``cloned``, ``rings``,
        ``networks``, ``integrity``) and the skimming detector's ``exposed_cards``.
    created_at : datetime
        Timestamp of the alerts.

    Returns
    -------
    dict
        ``OUTPUT_SCHEMAS`` name -> frame: both ring families in one ``rings`` table, and ``alerts``.
    """
    rings = pd.concat([tables["rings"], tables["networks"]], ignore_index=True)
    alerts = build_alerts(tables["skimming"], tables["cloned"], rings, tables["integrity"], created_at,
                          tables["exposed_cards"])
    return {"skimming_points": tables["skimming"], "cloned_cards": tables["cloned"], "rings": rings,
            "terminal_findings": tables["integrity"], "exposed_cards": tables["exposed_cards"], "alerts": alerts}
