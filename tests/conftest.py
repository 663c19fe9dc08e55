"""Fixtures shared by every test package: one local Spark session for the whole run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.settings import Settings

REPO = Path(__file__).resolve().parent.parent
EXAMPLE_POLICIES = REPO / "examples" / "policies"


@pytest.fixture(scope="session")
def example_policies() -> Path:
    """The folder of example policy files shipped in examples/policies."""
    return EXAMPLE_POLICIES


@pytest.fixture(scope="session")
def spark_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A home folder for the session's Spark warehouse and Derby files."""
    return tmp_path_factory.mktemp("spark-home")


@pytest.fixture(scope="session")
def spark(spark_home: Path) -> Iterator[object]:
    """The one local Spark session of the test run (2 cores, UTC)."""
    from gateway.spark import create_spark_session

    settings = Settings(
        home=spark_home,
        spark_master="local[2]",
        spark_conf={"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2"},
    )
    session = create_spark_session(settings, app_name="gateway-tests")
    yield session
    session.stop()
