"""On Spark: the marts the decisions read, copied into PostgreSQL after the build.

The incident step, the `cost_spikes` check, the triage report and `costwatch triage` read a few
small marts (one row per hour, per feature and hour, per spike) beside `ops.incidents` in
PostgreSQL, with SQL that joins them. On Spark the pass copies exactly those marts from the
warehouse's Parquet into PostgreSQL's schema `marts`, same names and columns, all of them in one
transaction (a reader sees the previous copy or the new one, never half), so everything that
decides and reports runs unchanged on either engine. A mart Spark does not build (not ported
yet) loses its stale copy, and the readers treat it as missing.
"""

import time

import dagster as dg

from orchestration.core.engine import DECISION_MARTS
from orchestration.defs.ops_views import INCIDENTS_GROUP
from orchestration.defs.resources import PostgresResource

DECISION_MARTS_KEY = dg.AssetKey(["postgres", "decision_marts"])


def decision_mart_assets(asset_keys: set[dg.AssetKey]) -> list[dg.AssetsDefinition]:
    """The copy, downstream of the marts it copies that this code location builds."""
    deps = [dg.AssetKey(["marts", name]) for name in DECISION_MARTS]
    deps = [key for key in deps if key in asset_keys]

    @dg.asset(
        key=DECISION_MARTS_KEY,
        deps=deps,
        group_name=INCIDENTS_GROUP,
        kinds={"spark", "postgres"},
        description=(
            "The marts the incident step and the triage report read, copied from Spark's "
            "warehouse into PostgreSQL's schema `marts` (same names and columns) in one "
            "transaction after every build."
        ),
    )
    def decision_marts(
        context: dg.AssetExecutionContext, database: PostgresResource
    ) -> dg.MaterializeResult:
        # Start-up time: pyarrow and DuckDB load only on the Spark path.
        from orchestration.core.spark_files import copy_marts_to_postgres

        started = time.monotonic()
        with database.connection() as conn:
            copied = copy_marts_to_postgres(conn, DECISION_MARTS, database.settings.environ)
        seconds = time.monotonic() - started
        missing = [name for name, rows in copied.items() if rows is None]
        rows = {name: count for name, count in copied.items() if count is not None}
        context.log.info(
            f"copied {len(rows)} marts ({sum(rows.values())} rows) into PostgreSQL in "
            f"{seconds:.2f}s" + (f"; not built on Spark: {', '.join(missing)}" if missing else "")
        )
        return dg.MaterializeResult(
            metadata={
                "rows": dg.MetadataValue.json(rows),
                "not_on_spark": ", ".join(missing),
                "seconds": round(seconds, 3),
            }
        )

    return [decision_marts]
