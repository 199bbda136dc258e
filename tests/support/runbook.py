"""The runbook's SQL verbatim (steps 1-6), and the few rewrites the mart tests apply to it.

Checked against the runbook kept with the tests (tests/fixtures/cost-spike-runbook.md) by
tests/test_marts.py; used by the marts, ingestion and fault tests as the reference.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import psycopg

RUNBOOK = Path(__file__).resolve().parents[1] / "fixtures" / "cost-spike-runbook.md"
SHARED_RUNBOOK = Path(__file__).resolve().parents[3] / "shared" / "seed" / "cost-spike-runbook.md"
STEP_1 = """SELECT
  DATE_TRUNC('hour', created_at) as hour,
  COUNT(*) as requests,
  SUM(cost_usd) as total_cost,
  AVG(cost_usd) as avg_cost_per_request
FROM inference_events
WHERE created_at > NOW() - INTERVAL '48 hours'
GROUP BY 1
ORDER BY 1;"""

STEP_2 = """SELECT
  DATE_TRUNC('hour', created_at) as hour,
  COUNT(*) as requests,
  COUNT(DISTINCT user_id) as unique_users,
  SUM(cost_usd) as total_cost,
  SUM(cost_usd) / COUNT(*) as cost_per_request
FROM inference_events
WHERE created_at > NOW() - INTERVAL '48 hours'
GROUP BY 1
ORDER BY 1;"""

STEP_3_TRIGGERS = """SELECT
  DATE_TRUNC('hour', created_at) as hour,
  trigger_type,
  COUNT(*) as count,
  SUM(cost_usd) as cost
FROM inference_events
WHERE created_at > NOW() - INTERVAL '48 hours'
GROUP BY 1, 2
ORDER BY 1, 2;"""

STEP_3_RATIO = """SELECT
  DATE_TRUNC('day', created_at) as day,
  COUNT(*) as total,
  SUM(CASE WHEN trigger_type IN ('undo', 'retry', 'auto_save') THEN 1 ELSE 0 END) as hidden,
  SUM(CASE WHEN trigger_type IN ('undo', 'retry', 'auto_save') THEN 1 ELSE 0 END)::float / COUNT(*) as hidden_ratio
FROM inference_events
WHERE created_at > NOW() - INTERVAL '7 days'
GROUP BY 1
ORDER BY 1;"""  # noqa: E501

STEP_4 = """SELECT
  DATE_TRUNC('hour', created_at) as hour,
  AVG(input_tokens) as avg_input,
  AVG(output_tokens) as avg_output,
  PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY input_tokens) as p95_input,
  PERCENTILE_CONT(0.95) WITHIN GROUP (ORDER BY output_tokens) as p95_output
FROM inference_events
WHERE created_at > NOW() - INTERVAL '48 hours'
GROUP BY 1
ORDER BY 1;"""

STEP_5 = """SELECT
  DATE_TRUNC('day', created_at) as day,
  feature,
  COUNT(*) as requests,
  SUM(cost_usd) as total_cost,
  SUM(cost_usd) / COUNT(*) as cost_per_request
FROM inference_events
WHERE created_at > NOW() - INTERVAL '7 days'
GROUP BY 1, 2
ORDER BY 1, total_cost DESC;"""

STEP_6 = """SELECT
  tool_name,
  COUNT(*) as total_calls,
  SUM(CASE WHEN success = false THEN 1 ELSE 0 END) as failures,
  SUM(CASE WHEN success = false THEN 1 ELSE 0 END)::float / COUNT(*) as failure_rate,
  AVG(retries) as avg_retries
FROM tool_calls
WHERE created_at > NOW() - INTERVAL '48 hours'
GROUP BY 1
ORDER BY failures DESC;"""

WINDOW = re.compile(r"^WHERE created_at > NOW\(\) - INTERVAL '[^']+'\n", re.MULTILINE)


def without_window(sql: str) -> str:
    stripped = WINDOW.sub("", sql)
    assert stripped != sql
    return stripped


def matched_window(sql: str) -> str:
    matched = WINDOW.sub("WHERE created_at >= %(start)s AND created_at < %(end)s\n", sql)
    assert matched != sql
    return matched


def regrained(sql: str, to: str) -> str:
    source = "day" if to == "hour" else "hour"
    old = f"DATE_TRUNC('{source}', created_at) as {source}"
    assert old in sql
    return sql.replace(old, f"DATE_TRUNC('{to}', created_at) as {to}")


def runbook(url: str, sql: str, params: dict | None = None) -> list[tuple]:
    """Run a runbook query as the runbook does: on the raw tables, times in UTC."""
    with psycopg.connect(url) as conn:
        conn.execute("set timezone = 'UTC'")
        conn.execute("set search_path = raw")
        return conn.execute(sql, params).fetchall()


def as_day(value: datetime) -> object:
    return value.astimezone(UTC).date()


def recompute_expected(url: str, grain: str) -> list[tuple]:
    """Step 3's rows per hour or day: the ratio query (total, hidden, ratio), then the hidden
    requests' cost from the trigger query, as `recompute_hourly` / `recompute_daily` hold them."""
    ratio_sql = STEP_3_RATIO if grain == "day" else regrained(STEP_3_RATIO, "hour")
    triggers_sql = STEP_3_TRIGGERS if grain == "hour" else regrained(STEP_3_TRIGGERS, "day")
    key = (lambda v: v) if grain == "hour" else as_day
    ratio = {key(b): rest for b, *rest in runbook(url, without_window(ratio_sql))}
    hidden_cost: dict = defaultdict(int)
    for bucket, trigger, _count, cost in runbook(url, without_window(triggers_sql)):
        hidden_cost[key(bucket)] += cost if trigger in ("undo", "retry", "auto_save") else 0
    return [(b, *ratio[b], hidden_cost[b]) for b in sorted(ratio)]
