"""The column-by-column comparison of the two engines' marts (tests/support/spark.py:
assert_same_mart) fails on the differences Spark makes silently (../shared/SPARK.md, "Same text,
different result"). No JVM: PostgreSQL's rows of a cost mart, and the same rows as Spark returns
them when a model casts a cost through `::float` (a 32-bit float there), through `::numeric`
(decimal(10,0) there), divides integers, or turns '-infinity' into null. Without this, a
comparison that passed on every mart could be one that cannot fail.
"""

from __future__ import annotations

import struct
from copy import deepcopy
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from tests.support.spark import assert_same_mart

START = datetime(2026, 3, 1, tzinfo=UTC)


def _postgres_rows() -> list[dict]:
    """24 hours of a cost mart as psycopg returns them (numeric as Decimal, counts as int)."""
    rows = []
    for i in range(24):
        requests = 40 + 7 * i
        cost = Decimal("0.00137") * requests + Decimal(i) / Decimal(997)
        rows.append(
            {
                "hour": START + timedelta(hours=i),
                "day": date(2026, 3, 1),
                "feature": "autosave" if i % 2 else "chat",
                "requests": requests,
                "half_requests": requests // 2,  # PostgreSQL: integer division
                "total_cost_usd": cost,
                "avg_cost_per_request_usd": cost / requests,
                "first_seen": START - timedelta(days=30),
            }
        )
    return rows


def _as_spark(rows: list[dict]) -> list[dict]:
    """The same rows as pyarrow reads them from Spark's Parquet: doubles for the costs."""
    out = deepcopy(rows)
    for row in out:
        row["total_cost_usd"] = float(row["total_cost_usd"])
        row["avg_cost_per_request_usd"] = float(row["avg_cost_per_request_usd"])
    out.reverse()  # Parquet files keep no order
    return out


def _float32(value: float) -> float:
    """What Spark's FloatType (`::float`) stores: the nearest 32-bit float."""
    return struct.unpack("f", struct.pack("f", value))[0]


def _decimal_10_0(value: float) -> Decimal:
    """What Spark's `::numeric` (decimal(10,0)) keeps of a value: rounded half up to units."""
    return Decimal(repr(value)).quantize(Decimal(1), rounding=ROUND_HALF_UP)


def test_the_same_rows_in_another_order_and_types_compare_equal() -> None:
    assert_same_mart("cost_hourly", _postgres_rows(), _as_spark(_postgres_rows()))


def _mutated(column: str, change) -> list[dict]:
    rows = _as_spark(_postgres_rows())
    for row in rows:
        row[column] = change(row[column], row)
    return rows


CASES = {
    "32-bit ::float": (
        "avg_cost_per_request_usd",
        lambda value, _row: _float32(value),
        "on Spark",
    ),
    "decimal(10,0) ::numeric": (
        "total_cost_usd",
        lambda value, _row: _decimal_10_0(value),
        "on Spark",
    ),
    "int / int is a double": (
        "half_requests",
        lambda _value, row: row["requests"] / 2,
        "integer",
    ),
    "'-infinity' becomes null": (
        "first_seen",
        lambda value, row: None if row["feature"] == "chat" else value,
        "None on Spark",
    ),
    "a date read back as text": (
        "day",
        lambda value, _row: value.isoformat(),
        "str on Spark, date on PostgreSQL",
    ),
}


@pytest.mark.parametrize("case", CASES)
def test_the_comparison_fails_on_a_silent_difference(case: str) -> None:
    column, change, message = CASES[case]
    expected = _postgres_rows()
    actual = _mutated(column, change)
    with pytest.raises(AssertionError, match=message) as failure:
        assert_same_mart("cost_hourly", expected, actual)
    assert f"cost_hourly.{column}" in str(failure.value)


def test_a_float32_cost_per_request_is_within_an_absolute_1e9() -> None:
    """Why the tolerance is relative: a cost per request (~2e-3 dollars) through a 32-bit
    float agrees to about 7 digits, so it is off by less than 1e-9 dollars (an absolute 1e-9,
    as the comparison had, passed it: the float32 case above failed to fail) and prints alike,
    yet it is off by more than 1e-9 of itself."""
    value = float(_postgres_rows()[5]["avg_cost_per_request_usd"])
    assert abs(_float32(value) - value) < 1e-9
    assert abs(_float32(value) - value) > 1e-9 * value


def test_one_wrong_cell_among_many_fails() -> None:
    actual = _as_spark(_postgres_rows())
    actual[7]["total_cost_usd"] = _float32(actual[7]["total_cost_usd"])
    with pytest.raises(AssertionError, match="total_cost_usd"):
        assert_same_mart("cost_hourly", _postgres_rows(), actual)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda rows: rows[:-1], "23 rows, expected 24"),
        (lambda rows: [{k: v for k, v in r.items() if k != "day"} for r in rows], "columns"),
        (lambda rows: [], "no rows on Spark"),
    ],
)
def test_missing_rows_or_columns_fail(change, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        assert_same_mart("cost_hourly", _postgres_rows(), change(_as_spark(_postgres_rows())))
