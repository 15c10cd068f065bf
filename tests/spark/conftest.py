"""A real Spark session in local[2] mode for the engine tests (pyspark from PyPI, Java from the machine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from etl.generate import generate
from graph.settings import Settings
from graph.spark_session import spark_session


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    home = tmp_path_factory.mktemp("spark-home")
    session = spark_session(Settings.from_env({"POSGUARD_HOME": str(home), "POSGUARD_SPARK_MASTER": "local[2]"}))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def sample_drop(tmp_path_factory) -> Path:
    """A generated drop (seed 3, about 20k transactions, planted cases of every kind)."""
    out = tmp_path_factory.mktemp("spark-drop") / "drop"
    generate(out, seed=3, scale="small")
    return out
