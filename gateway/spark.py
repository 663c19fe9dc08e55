"""The SparkSession factory: `local[*]` by default, any master and conf by setting, always UTC.

Java 17 or newer is checked before Spark starts, so a machine without it gets one clear
sentence naming the package to install instead of a JVM stack trace.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from gateway.errors import RequirementMissing
from gateway.settings import Settings

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

__all__ = ["DELTA_SPARK_CLASS", "create_spark_session", "delta_spark_available", "java_version"]

log = logging.getLogger(__name__)

DELTA_SPARK_CLASS = "io.delta.sql.DeltaSparkSessionExtension"
_INSTALL_HINT = (
    "Spark 4 needs Java 17 or newer: install it (Debian/Ubuntu: `apt-get install "
    "openjdk-17-jre-headless`; macOS: `brew install openjdk@17`) or set JAVA_HOME"
)

# Settings that make local runs reproducible and Delta files readable by delta-rs and Feast.
_BASE_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.driver.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.executor.extraJavaOptions": "-Duser.timezone=UTC",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.ansi.enabled": "false",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.sources.partitionOverwriteMode": "dynamic",
}


def java_version() -> int:
    """The major version of the Java runtime Spark would use; RequirementMissing when absent."""
    java_home = os.environ.get("JAVA_HOME")
    found = Path(java_home, "bin", "java") if java_home else shutil.which("java")
    java = str(found) if found else None
    if not java or not Path(java).exists():
        raise RequirementMissing(f"no Java runtime found. {_INSTALL_HINT}")
    try:
        result = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RequirementMissing(f"could not run {java}: {exc}. {_INSTALL_HINT}") from None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', result.stderr + result.stdout)
    if not match:
        raise RequirementMissing(f"could not read the version of {java}. {_INSTALL_HINT}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0" style
        major = int(match.group(2))
    return major


def require_java() -> None:
    """Raise RequirementMissing unless Java 17+ is available."""
    major = java_version()
    if major < 17:
        raise RequirementMissing(f"found Java {major}. {_INSTALL_HINT}")


def create_spark_session(
    settings: Settings, app_name: str = "data-governance-gateway"
) -> SparkSession:
    """Start (or reuse) the SparkSession that settings describe."""
    require_java()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.master(settings.spark_master).appName(app_name)
    conf = dict(_BASE_CONF)
    conf["spark.driver.memory"] = settings.spark_driver_memory
    if settings.spark_master.startswith("local"):
        # Python workers must run this interpreter (Arrow UDFs need its pandas and pyarrow).
        conf["spark.pyspark.python"] = sys.executable
        conf["spark.pyspark.driver.python"] = sys.executable
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        conf.setdefault("spark.sql.shuffle.partitions", "8")
        conf["spark.sql.warehouse.dir"] = str((settings.home / "spark-warehouse").resolve())
        conf["spark.driver.extraJavaOptions"] += (
            f" -Dderby.system.home={(settings.home / 'derby').resolve()}"
        )
    conf.update(settings.spark_conf)
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    log.info("spark session started: master=%s version=%s", settings.spark_master, session.version)
    return session


def delta_spark_available(session: SparkSession) -> bool:
    """True when Delta's JVM connector (delta-spark) is on this session's classpath."""
    try:
        jvm = session._jvm
        if jvm is None:
            return False
        jvm.java.lang.Class.forName(DELTA_SPARK_CLASS)
    except Exception:  # noqa: BLE001 - py4j raises its own error types for a missing class
        return False
    extensions = session.conf.get("spark.sql.extensions", "") or ""
    return DELTA_SPARK_CLASS in extensions
