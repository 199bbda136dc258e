"""A Spark session in this process over the built marts: the expectation suites on Spark.

dbt-spark's session (dbt's own process: orchestration/defs/resources.py) keeps the warehouse's
tables in a Derby metastore that admits one JVM (../shared/SPARK.md). This session never opens
it: its catalog is in memory, and `marts.<name>` there is a view over that mart's Parquet folder
in the warehouse (day partitions found from the folder names), made again at every call, so it
reads what the last build wrote. It starts once per process (a JVM: ~15-20 s), only when a
suite runs on Spark.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Mapping
from typing import Any

from orchestration.core.spark_files import mart_folder, spark_marts

_lock = threading.Lock()
# The session's settings as dbt's (profiles.yml's spark target) where they change a result.
SESSION_CONF = {
    "spark.master": "local[2]",
    "spark.app.name": "costwatch-checks",
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.catalogImplementation": "in-memory",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.shuffle.partitions": "4",
    "spark.driver.memory": "1g",
}


def marts_session(environ: Mapping[str, str] | None = None) -> Any:
    """This process's Spark session with every built mart of the local warehouse as a view
    `marts.<name>` (pyspark's SparkSession)."""
    # Start-up time: pyspark (and its JVM) only for a suite on Spark.
    from pyspark.sql import SparkSession

    with _lock:
        spark = SparkSession.getActiveSession()
        if spark is None:
            builder = SparkSession.builder
            for key, value in SESSION_CONF.items():
                builder = builder.config(key, value)
            # A scratch warehouse: `create database` must not write into the working folder.
            scratch = tempfile.mkdtemp(prefix="costwatch-spark-")
            spark = builder.config("spark.sql.warehouse.dir", scratch).getOrCreate()
        spark.sql("create database if not exists marts")
        for name in spark_marts(environ):
            folder = str(mart_folder(name, environ=environ)).replace("`", "``")
            spark.sql(f"create or replace view marts.`{name}` as select * from parquet.`{folder}`")
    return spark
