"""The cost cap (the runbook's escalation query): off by default, dry-run by default once on,
only a registered, unprotected feature carrying half the excess; one decision per incident
and hour; every decision in ops.actions."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from orchestration.runbook.incidents import engine
from orchestration.runbook.incidents.settings import IncidentSettings
from tests.test_incidents_support import T0, Marts, rows

NOW = T0 + timedelta(hours=6, minutes=5)
LAST_HOUR = T0 + timedelta(hours=5)
# Per feature: cost in the last complete hour, and its baseline. The hour costs $31 against a
# $10 baseline ($21 excess): summarize carries $17 of it.
FEATURES = {"chat": (8.0, 5.0), "summarize": (20.0, 3.0), "autocomplete": (3.0, 2.0)}
FLAGS = "('chat', true, true), ('summarize', true, false), ('autocomplete', true, false)"


def write_feature_baseline(url: str, features: dict, flags: str = FLAGS) -> None:
    """marts.feature_cost_baseline_hourly as dbt builds it (its columns), for the last hour."""
    with psycopg.connect(url) as conn:
        conn.execute("delete from app.feature_flags")
        if flags:
            conn.execute(
                f"insert into app.feature_flags (feature, enabled, protected) values {flags}"
            )
        conn.execute(
            "create table if not exists marts.feature_cost_baseline_hourly (hour timestamptz,"
            " feature text, requests bigint, total_cost_usd numeric, baseline_cost_usd float8,"
            " baseline_observations bigint, excess_cost_usd numeric, is_elevated boolean)"
        )
        conn.execute("truncate marts.feature_cost_baseline_hourly")
        for feature, (now_cost, base_cost) in features.items():
            conn.execute(
                "insert into marts.feature_cost_baseline_hourly"
                " values (%s, %s, 100, %s, %s, 7, %s, %s)",
                (LAST_HOUR, feature, now_cost, base_cost, now_cost - base_cost, True),
            )


@pytest.fixture
def capped(db_url):
    """A $31 hour (above a $25 cap); summarize carries most of the excess."""
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    write_feature_baseline(db_url, FEATURES)
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
    assert detail["feature_excess_usd"] == 17
    assert detail["reason"] == "feature summarize carries $17.00 of $21.00 excess"
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


LIVE = {
    "COSTWATCH_COST_CAP_ENABLED": "1",
    "COSTWATCH_COST_CAP_DRY_RUN": "0",
    "COSTWATCH_COST_CAP_USD": "25",
}


@pytest.mark.parametrize(
    ("features", "flags_sql", "why"),
    [
        # A protected feature carrying $900 of excess never gets a small one switched off.
        ({"chat": (25.0, 5.0), "summarize": (3.4, 3.0)}, FLAGS, "feature chat is protected"),
        # The top feature carries less than half of the hour's $21 excess.
        (
            {"summarize": (9.0, 3.0), "autocomplete": (8.0, 2.0), "chat": (12.0, 5.0)},
            "('summarize', true, false), ('autocomplete', true, false), ('chat', true, false)",
            "less than half",
        ),
        # A feature the app never registered is never inserted as disabled.
        ({"translate": (25.0, 5.0)}, FLAGS, "feature translate is not registered"),
    ],
)
def test_nothing_is_disabled_unless_the_contract_allows_and_the_decision_says_why(
    db_url, features, flags_sql, why
):
    Marts(db_url).append(10, 10, 10, 30, 32, 31)
    write_feature_baseline(db_url, features, flags_sql)
    before = flags(db_url)
    report = engine.tick(db_url, now=NOW, settings=IncidentSettings.from_env(LIVE))
    (line,) = report.actions
    assert line.startswith("cost cap: $31.00 in 05:00, nothing disabled: ") and why in line
    assert flags(db_url) == before
    ((action, feature, dry_run, detail),) = actions(db_url)
    assert (action, feature, dry_run) == ("cost_cap_no_candidate", None, False)
    assert why in detail["reason"]
    # one decision per incident and hour
    engine.tick(db_url, now=NOW + timedelta(minutes=20), settings=IncidentSettings.from_env(LIVE))
    assert len(actions(db_url)) == 1


def test_under_the_cap_nothing_happens(capped):
    settings = IncidentSettings.from_env(
        {"COSTWATCH_COST_CAP_ENABLED": "true", "COSTWATCH_COST_CAP_DRY_RUN": "false"}
    )  # the default $1000 cap
    engine.tick(capped, now=NOW, settings=settings)
    assert actions(capped) == [] and all(flags(capped).values())
