"""The common shape of detectors: parameters in __init__, fit(projection) -> self, results as DataFrames."""

from __future__ import annotations

import inspect

import numpy as np
import pandas as pd

__all__ = ["BaseDetector", "NotFittedError", "to_timestamps"]


class NotFittedError(RuntimeError):
    """A result was asked of a detector before ``fit``."""


def to_timestamps(seconds) -> pd.Series:
    """int64 seconds since the epoch -> UTC timestamps; negative values and int64 max become NaT.

    Example
    -------
    >>> to_timestamps([0, -1]).tolist()
    [Timestamp('1970-01-01 00:00:00+0000', tz='UTC'), NaT]
    """
    s = np.asarray(seconds, dtype=np.int64)
    bad = (s < 0) | (s == np.iinfo(np.int64).max)
    out = pd.to_datetime(np.where(bad, 0, s), unit="s", utc=True)
    return pd.Series(out.where(~bad), dtype="datetime64[us, UTC]")


class BaseDetector:
    """Base class: subclasses store their constructor arguments verbatim and implement ``fit``.

    Scores are "higher = more suspicious" everywhere; fitted results are attributes ending in ``_``, the
    reported table always ``result_`` (with the columns of the output named by ``output``).
    """

    name: str = ""  # the registry's key, the TOML table of its parameters and the alerts' detector
    output: str = ""  # the output file (graph.catalog.OUTPUT_SCHEMAS) its ``result_`` rows go to
    result_ = None

    def get_params(self) -> dict:
        """The constructor parameters and their current values."""
        names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
        return {name: getattr(self, name) for name in names}

    def fit(self, projection) -> "BaseDetector":  # pragma: no cover - interface
        """Learn from a ``graph.projection.Projection`` and return self."""
        raise NotImplementedError

    def _fitted(self, attr: str):
        value = getattr(self, attr, None)
        if value is None:
            raise NotFittedError(f"{type(self).__name__}.{attr} is only available after fit()")
        return value

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"
