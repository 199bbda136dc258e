"""The cost cap (the runbook's escalation query): off by default, dry-run by default once on,
never a protected feature, one decision per complete hour, every decision in ops.actions."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from orchestration.incidents import engine
from orchestration.incidents.settings import IncidentSettings
from tests.test_incidents_support import T0, Marts, rows

NOW = T0 + timedelta(hours=6, minutes=5)
LAST_HOUR = T0 + timedelta(hours=5)
# Cost in the last complete hour, and on the same hour of each of the 7 days before.
FEATURES = {"chat": (15.0, 5.0), "summarize": (10.0, 3.0), "autocomplete": (3.0, 2.0)}


@pytest.fixture
def capped(db_url):
    """A $31 hour (above a $25 cap); chat carries most excess but is protected."""
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "insert into app.feature_flags (feature, enabled, protected) values "
            "('chat', true, true), ('summarize', true, false), ('autocomplete', true, false)"
        )
        conn.execute(
            "create table marts.feature_cost_hourly (hour timestamptz, feature text, "
            "requests bigint, total_cost_usd numeric, cost_per_request_usd numeric)"
        )
        for feature, (now_cost, base_cost) in FEATURES.items():
            conn.execute(
                "insert into marts.feature_cost_hourly values (%s, %s, 100, %s, null)",
                (LAST_HOUR, feature, now_cost),
            )
            for day in range(1, 8):
                conn.execute(
                    "insert into marts.feature_cost_hourly values (%s, %s, 100, %s, null)",
                    (LAST_HOUR - timedelta(days=day), feature, base_cost),
                )
    return db_url


def flags(url: str) -> dict[str, bool]:
    return dict(rows(url, "select feature, enabled from app.feature_flags"))


def actions(url: str) -> list[tuple]:
    return rows(url, "select action, feature, dry_run, detail from ops.actions order by action_id")


def test_off_by_default(capped):
    report = engine.tick(
        capped, now=NOW, settings=IncidentSettings.from_env({"COSTWATCH_COST_CAP_USD": "25"})
    )
    assert report.actions == [] and actions(capped) == []
    assert all(flags(capped).values())


def test_on_means_dry_run_recorded_once_per_hour_flags_untouched(capped):
    settings = IncidentSettings.from_env(
        {"COSTWATCH_COST_CAP_ENABLED": "true", "COSTWATCH_COST_CAP_USD": "25"}
    )
    report = engine.tick(capped, now=NOW, settings=settings)
    assert report.actions == ["cost cap: would disable feature summarize ($31.00 in 05:00)"]
    engine.tick(capped, now=NOW + timedelta(minutes=10), settings=settings)
    ((action, feature, dry_run, detail),) = actions(capped)
    assert (action, feature, dry_run) == ("cost_cap_disable_feature", "summarize", True)
    assert detail["hour_cost_usd"] == 31 and detail["cost_cap_usd"] == 25
    assert detail["feature_excess_usd"] == 7
    assert detail["skipped"] == [{"feature": "chat", "excess_usd": 10.0, "reason": "protected"}]
    assert all(flags(capped).values())


def test_live_disables_the_top_unprotected_feature_and_records_it(capped):
    settings = IncidentSettings.from_env(
        {
            "COSTWATCH_COST_CAP_ENABLED": "true",
            "COSTWATCH_COST_CAP_DRY_RUN": "false",
            "COSTWATCH_COST_CAP_USD": "25",
        }
    )
    report = engine.tick(capped, now=NOW, settings=settings)
    assert report.actions == ["cost cap: disabled feature summarize ($31.00 in 05:00)"]
    assert flags(capped) == {"chat": True, "summarize": False, "autocomplete": True}
    assert rows(capped, "select updated_by from app.feature_flags where feature = 'summarize'") == [
        ("costwatch cost cap",)
    ]
    ((action, feature, dry_run, _),) = actions(capped)
    assert (action, feature, dry_run) == ("cost_cap_disable_feature", "summarize", False)
    (applied,) = rows(capped, "select mitigation_applied from ops.incidents")
    assert applied[0].startswith("cost cap disabled feature summarize at ")
    assert rows(capped, "select incident_id is not null from ops.actions") == [(True,)]


def test_only_protected_features_carry_excess_nothing_is_disabled(capped):
    with psycopg.connect(capped) as conn:
        conn.execute("update app.feature_flags set protected = true")
    settings = IncidentSettings.from_env(
        {
            "COSTWATCH_COST_CAP_ENABLED": "1",
            "COSTWATCH_COST_CAP_DRY_RUN": "0",
            "COSTWATCH_COST_CAP_USD": "25",
        }
    )
    report = engine.tick(capped, now=NOW, settings=settings)
    assert report.actions == ["cost cap: $31.00 in 05:00, no feature to disable"]
    assert all(flags(capped).values())
    ((action, feature, dry_run, detail),) = actions(capped)
    assert (action, feature, dry_run) == ("cost_cap_no_candidate", None, False)
    assert len(detail["skipped"]) == 3


def test_under_the_cap_nothing_happens(capped):
    settings = IncidentSettings.from_env(
        {"COSTWATCH_COST_CAP_ENABLED": "true", "COSTWATCH_COST_CAP_DRY_RUN": "false"}
    )  # the default $1000 cap
    engine.tick(capped, now=NOW, settings=settings)
    assert actions(capped) == [] and all(flags(capped).values())


def test_without_feature_marts_it_reads_raw_events_like_the_runbook(db_url):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    with psycopg.connect(db_url) as conn:
        conn.execute("insert into app.feature_flags (feature, protected) values ('chat', true)")
        events = [(LAST_HOUR, "chat", 1.0), (LAST_HOUR, "translate", 9.0)]
        events += [(LAST_HOUR - timedelta(days=d), "translate", 1.0) for d in range(1, 8)]
        for at, feature, cost in events:
            conn.execute(
                "insert into raw.inference_events (event_id, created_at, feature, cost_usd) "
                "values (gen_random_uuid()::text, %s + interval '10 minutes', %s, %s)",
                (at, feature, cost),
            )
    settings = IncidentSettings.from_env(
        {
            "COSTWATCH_COST_CAP_ENABLED": "true",
            "COSTWATCH_COST_CAP_DRY_RUN": "false",
            "COSTWATCH_COST_CAP_USD": "25",
        }
    )
    engine.tick(db_url, now=NOW, settings=settings)
    assert flags(db_url) == {"chat": True, "translate": False}
