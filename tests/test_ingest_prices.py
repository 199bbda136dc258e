# ruff: noqa: E501
"""Dated prices (CONTRACT section 9): the seed is what the pinned genai-prices ships; staging
prices an event without a cost at the price in effect at created_at, cached input at its own
price, and agrees with genai-prices' own calculator; a model without a price is rejected as
unpriced_model, counted, listed and warned about, never priced at zero."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from genai_prices import Usage, calc_price

from orchestration.runbook.ingest import prices
from tests.test_marts_support import fetch, run_dbt


def test_the_seed_is_what_the_installed_package_ships(tmp_path: Path) -> None:
    generated = tmp_path / "model_prices.csv"
    generated.write_text(prices.to_csv(prices.price_rows()))
    assert generated.read_text() == prices.SEED_PATH.read_text(), "run `costwatch prices refresh`"


def test_price_rows_keep_dates_and_per_token_units() -> None:
    rows = {(r.model, r.provider, r.usage_type, r.effective_from): r for r in prices.price_rows()}
    always = prices.ALWAYS
    assert rows["gpt-4o", "openai", "input", always].usd_per_token == Decimal("0.0000025")
    assert rows["gpt-4o", "openai", "cached_input", always].usd_per_token == Decimal("0.00000125")
    assert rows["gpt-4o", "openai", "input", always].is_default
    changed = datetime(2026, 9, 10).date()
    assert rows["glm-5.3-flash", "zai", "input", always].usd_per_token == Decimal("7.5E-8")
    assert rows["glm-5.3-flash", "zai", "input", changed].usd_per_token == Decimal("1.5E-7")


# event_id, created_at, model, provider, input, cached, output, cost
EVENTS = [
    ("p1", datetime(2026, 3, 1, 10, 5, tzinfo=UTC), "gpt-4o", "openai", 1000, 400, 200, None),
    ("p2", datetime(2026, 3, 1, 10, 6, tzinfo=UTC), "claude-3-5-haiku", None, 5000, None, 300, None),
    ("p3", datetime(2026, 9, 9, 23, 0, tzinfo=UTC), "glm-5.3-flash", "zai", 2000, 500, 100, None),
    ("p4", datetime(2026, 9, 10, 1, 0, tzinfo=UTC), "glm-5.3-flash", "zai", 2000, 500, 100, None),
    ("p5", datetime(2026, 3, 1, 10, 7, tzinfo=UTC), "gpt-4o", "openai", 10, None, 10, Decimal("0.5")),
    ("p6", datetime(2026, 3, 1, 10, 8, tzinfo=UTC), "house-model-9", "acme", 10, None, 10, None),
    ("p7", datetime(2026, 3, 1, 10, 9, tzinfo=UTC), "house-model-9", "acme", 20, None, 5, None),
]  # fmt: skip


@pytest.fixture(scope="module")
def priced(module_db_url: str) -> str:
    with psycopg.connect(module_db_url) as conn:
        conn.cursor().executemany(
            "insert into raw.inference_events (event_id, created_at, user_id, session_id,"
            " feature, trigger_type, model, provider, input_tokens, cached_input_tokens,"
            " output_tokens, cost_usd) values (%s, %s, 'u', 's', 'chat', 'user', %s, %s, %s, %s,"
            " %s, %s)",
            EVENTS,
        )
    results = run_dbt(module_db_url, "build", select="+marts.runbook +marts.providers", check=False)
    statuses = {r["unique_id"].split(".")[2]: r["status"] for r in results["results"]}
    assert statuses["assert_every_model_is_priced"] == "warn"
    assert {s for name, s in statuses.items() if name != "assert_every_model_is_priced"} <= {
        "success",
        "pass",
    }
    return module_db_url


@pytest.mark.parametrize("event", [e for e in EVENTS if e[0] in ("p1", "p2", "p3", "p4")])
def test_priced_events_agree_with_genai_prices(priced: str, event: tuple) -> None:
    event_id, at, model, provider, tokens_in, cached, tokens_out, _ = event
    [(cost, source)] = fetch(
        priced,
        "select cost_usd, cost_source from staging.stg_raw__inference_events where event_id = %s",
        (event_id,),
    )
    usage = Usage(input_tokens=tokens_in, cache_read_tokens=cached or 0, output_tokens=tokens_out)
    expected = calc_price(
        usage, model, provider_id=provider, genai_request_timestamp=at
    ).total_price
    assert source == "priced"
    assert abs(cost - expected) <= Decimal("1e-12"), (event_id, cost, expected)


def test_the_price_in_effect_changes_on_its_date(priced: str) -> None:
    costs = dict(
        fetch(
            priced,
            "select event_id, cost_usd from staging.stg_raw__inference_events"
            " where event_id in ('p3', 'p4')",
        )
    )
    assert costs["p4"] == 2 * costs["p3"]  # the launch promotion ended on 2026-09-10


def test_a_provider_cost_is_kept(priced: str) -> None:
    assert fetch(
        priced,
        "select cost_usd, cost_source from staging.stg_raw__inference_events where event_id = 'p5'",
    ) == [(Decimal("0.5"), "provider")]


def test_a_model_without_price_is_rejected_counted_and_listed(priced: str) -> None:
    rejected = fetch(
        priced,
        "select event_id, reject_reason, cost_usd from marts.rejected_inference_events order by 1",
    )
    assert rejected == [("p6", "unpriced_model", None), ("p7", "unpriced_model", None)]
    assert fetch(priced, "select model, provider, events from marts.unpriced_models") == [
        ("house-model-9", "acme", 2)
    ]
    quality = fetch(
        priced,
        "select sum(raw_rows), sum(clean_rows), sum(rejected_rows), sum(duplicate_rows),"
        " sum(unpriced_rows), sum(priced_rows) from marts.data_quality_daily"
        " where source = 'inference_events'",
    )
    assert quality == [(7, 5, 2, 0, 2, 4)]
    assert fetch(priced, "select sum(priced_requests) from marts.provider_cost_daily") == [(4,)]
