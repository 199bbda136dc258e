"""Seeds a pass need not load again: dbt reloads every seed on every build, and the price seed
(10k rows) takes it ~8 s. Each seed table carries its file's checksum as its comment (a
post-hook in dbt_project.yml); a seed whose table already holds that checksum is left out."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import psycopg

MARK = "costwatch-seed-checksum "


def seed_checksums(manifest: Mapping[str, Any]) -> dict[str, tuple[str, str]]:
    """{seed name: (schema, sha256 of its file)} from dbt's manifest."""
    return {
        node["name"]: (node["schema"], node["checksum"]["checksum"])
        for node in manifest.get("nodes", {}).values()
        if node.get("resource_type") == "seed"
    }


def unchanged_seeds(url: str, manifest_path: Path) -> list[str]:
    """Seeds whose table already holds the current file (empty when anything is unreadable)."""
    try:
        seeds = seed_checksums(json.loads(manifest_path.read_text()))
    except (OSError, ValueError, KeyError):
        return []
    return loaded_seeds(url, seeds)


def loaded_seeds(url: str, seeds: Mapping[str, tuple[str, str]]) -> list[str]:
    """Of `seeds` ({name: (schema, checksum)}), those whose table holds that checksum (empty
    when the database cannot say)."""
    try:
        if not seeds:
            return []
        with psycopg.connect(url, connect_timeout=5) as conn:
            rows = conn.execute(
                "select name, obj_description(to_regclass(format('%%I.%%I', schema, name)),"
                " 'pg_class') from unnest(%s::text[], %s::text[]) as s(name, schema)",
                (list(seeds), [schema for schema, _ in seeds.values()]),
            ).fetchall()
    except (OSError, ValueError, KeyError, psycopg.Error):
        return []
    return sorted(name for name, comment in rows if comment == MARK + seeds[name][1])


# The price seeds' columns as dbt creates them (column_types in seeds/_seeds_prices.yml).
PRICE_SEED_COLUMNS = (
    "model text, provider text, usage_type text, usd_per_token numeric, effective_from date,"
    " source text, is_default boolean"
)
PRICE_SEEDS = ("model_prices", "model_prices_custom")


def file_checksum(path: Path) -> str:
    """dbt's checksum of a seed file under 1 MiB: sha256 of its stripped text."""
    return hashlib.sha256(path.read_text(encoding="utf-8").strip().encode("utf-8")).hexdigest()


def load_missing_price_seeds(
    conn: psycopg.Connection, seeds_dir: Path, schema: str = "staging"
) -> None:
    """Create and fill the price seed tables when missing (COPY: milliseconds, where `dbt seed`
    takes seconds), marked with their checksum so that a pass does not load them again.
    `dbt run` alone (no seeds) then works on a database `db init` prepared. An existing table
    is never touched: dbt owns it and reloads it when its file changes."""
    for name in PRICE_SEEDS:
        path = seeds_dir / f"{name}.csv"
        if not path.exists():
            continue
        exists = conn.execute("select to_regclass(%s)", (f"{schema}.{name}",)).fetchone()[0]
        if exists is not None:
            continue
        table = f'"{schema}"."{name}"'
        conn.execute(f"create table {table} ({PRICE_SEED_COLUMNS})")
        with conn.cursor().copy(f"copy {table} from stdin with (format csv, header true)") as copy:
            copy.write(path.read_bytes())
        conn.execute(f"comment on table {table} is '{MARK}{file_checksum(path)}'")


# On Spark the seed tables carry no comment costwatch can read without a Spark session: the
# pass records each seed's checksum once dbt loaded it (`spark/seeds.json` under COSTWATCH_HOME),
# and a seed whose table folder is there with that checksum is left out, as on PostgreSQL.


def _spark_seed_file(spark_home: Path) -> Path:
    return spark_home / "seeds.json"


def unchanged_spark_seeds(spark_home: Path, manifest_path: Path) -> list[str]:
    """Seeds the local Spark warehouse already holds as their current file."""
    try:
        seeds = seed_checksums(json.loads(manifest_path.read_text()))
        loaded = json.loads(_spark_seed_file(spark_home).read_text())
    except (OSError, ValueError, KeyError):
        return []
    warehouse = spark_home / "warehouse"
    return sorted(
        name
        for name, (schema, checksum) in seeds.items()
        if loaded.get(name) == checksum and (warehouse / f"{schema}.db" / name).is_dir()
    )


def record_spark_seeds(
    spark_home: Path, manifest_path: Path, run_results: Mapping[str, Any]
) -> None:
    """Note the checksum of every seed dbt loaded in this build (nothing without a manifest)."""
    try:
        seeds = seed_checksums(json.loads(manifest_path.read_text()))
    except (OSError, ValueError, KeyError):
        return
    try:
        loaded = json.loads(_spark_seed_file(spark_home).read_text())
    except (OSError, ValueError):
        loaded = {}
    for result in run_results.get("results", []):
        kind, _, name = result.get("unique_id", "").partition(".costwatch.")
        if kind == "seed" and name in seeds:
            if result.get("status") == "success":
                loaded[name] = seeds[name][1]
            else:
                loaded.pop(name, None)
    spark_home.mkdir(parents=True, exist_ok=True)
    scratch = _spark_seed_file(spark_home).with_suffix(".tmp")
    scratch.write_text(json.dumps(loaded, sort_keys=True))
    scratch.replace(_spark_seed_file(spark_home))
