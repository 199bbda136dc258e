"""`costwatch seed`: each scenario's data has the signature it claims, measured with SQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from orchestration.runbook import seed as seeding
from orchestration.runbook.seed import INCIDENT_HOURS_BEFORE_END, SCENARIOS, UnknownScenario

END = datetime(2026, 11, 25, 16, tzinfo=UTC)  # a Wednesday afternoon
ONSET = END - timedelta(hours=INCIDENT_HOURS_BEFORE_END)
RATE = 200
DAYS = 8

# The incident's hours, and the same hours of day on the 7 days before.
AFTER = "created_at >= %(onset)s"
BEFORE = (
    "created_at < %(onset)s and created_at >= %(end)s - interval '7 days' "
    "and mod(extract(epoch from %(end)s - created_at)::numeric, 86400) "
    f"between 0.000001 and {INCIDENT_HOURS_BEFORE_END * 3600}"
)
PARAMS = {"onset": ONSET, "end": END}


@pytest.fixture(scope="module")
def conn(module_db_url: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(module_db_url) as connection:
        yield connection


def load(conn: psycopg.Connection, scenario: str, **kwargs) -> seeding.SeedSummary:
    conn.rollback()  # a failed assertion's query must not poison the next load
    args = {"days": DAYS, "events_per_hour": RATE, "seed": 1, "end": END, "replace": True}
    return seeding.seed(conn, scenario, **{**args, **kwargs})


def scalar(conn: psycopg.Connection, sql: str, params: dict | None = None):
    return conn.execute(sql, {**PARAMS, **(params or {})}).fetchone()[0]


def before_after(
    conn: psycopg.Connection, expr: str, *, table: str = "raw.inference_events", where: str = "true"
) -> tuple[float, float]:
    """`expr` over the incident's hours, and over the same hours of the 7 days before."""
    sql = f"select ({expr})::float from {table} where ({where}) and "
    return scalar(conn, sql + BEFORE), scalar(conn, sql + AFTER)


def hourly_ratio(conn: psycopg.Connection, expr: str, where: str = "true") -> float:
    """Mean per hour of `expr` in the incident over its mean in the same hours before."""
    sql = (
        "select avg(v) from (select date_trunc('hour', created_at) as h, ({expr})::float as v "
        "from raw.inference_events where ({where}) and {cond} group by 1) as per_hour"
    )
    before = scalar(conn, sql.format(expr=expr, where=where, cond=BEFORE))
    after = scalar(conn, sql.format(expr=expr, where=where, cond=AFTER))
    return after / before


def test_unknown_scenario_is_refused_and_changes_nothing(db_url: str) -> None:
    with psycopg.connect(db_url) as c:
        with pytest.raises(UnknownScenario) as info:
            seeding.seed(c, "meteor_strike", end=END)
        message = str(info.value)
        assert "meteor_strike" in message and "autosave_loop" in message
        assert "\n" not in message
        assert c.execute("select count(*) from raw.inference_events").fetchone()[0] == 0


def test_quiet_is_flat_and_sets_up_flags(conn: psycopg.Connection) -> None:
    summary = load(conn, "quiet")
    assert summary.onset is None
    assert summary.start == END - timedelta(days=DAYS) and summary.end == END
    assert scalar(conn, "select count(*) from raw.inference_events") == summary.inference_events
    assert scalar(conn, "select count(*) from raw.tool_calls") == summary.tool_calls
    assert 0.85 < hourly_ratio(conn, "sum(cost_usd)") < 1.15
    assert 0.85 < hourly_ratio(conn, "count(*)") < 1.15
    # Data covers [end - days, end) exactly.
    first, last = conn.execute(
        "select min(created_at), max(created_at) from raw.inference_events"
    ).fetchone()
    assert first >= END - timedelta(days=DAYS) and last < END
    flags = dict(conn.execute("select feature, protected from app.feature_flags").fetchall())
    assert len(flags) == 7 and flags["chat"] is True and sum(flags.values()) == 1
    # Routine changes only, none in the day before the (absent) incident.
    assert summary.change_events >= 2
    assert (
        scalar(
            conn,
            "select count(*) from raw.change_events where changed_at > %(end)s - '1 day'::interval",
        )
        == 0
    )  # noqa: E501


def test_realistic_baseline(conn: psycopg.Connection) -> None:
    load(conn, "quiet")
    by_hour = dict(
        conn.execute(
            "select extract(hour from created_at)::int, count(*) from raw.inference_events "
            "where extract(isodow from created_at) < 6 group by 1"
        ).fetchall()
    )
    assert 2.5 < max(by_hour.values()) / min(by_hour.values()) < 4.5  # daily cycle
    weekend = scalar(
        conn,
        "select (count(*) filter (where extract(isodow from created_at) >= 6) / 2.0) "
        "/ (count(*) filter (where extract(isodow from created_at) < 6) / 5.0) "
        "from raw.inference_events where created_at >= '2026-11-23' and created_at < '2026-11-25' "
        "or created_at >= '2026-11-18' and created_at < '2026-11-23'",
    )
    assert 0.55 < float(weekend) < 0.75
    hidden = scalar(
        conn, "select avg((trigger_type <> 'user')::int)::float from raw.inference_events"
    )
    assert 0.05 < hidden < 0.11
    browsers = scalar(
        conn,
        "select avg((user_agent like 'Mozilla/%%')::int)::float from raw.inference_events",
    )
    assert 0.9 < browsers < 0.98
    chat = scalar(conn, "select avg((feature = 'chat')::int)::float from raw.inference_events")
    assert 0.35 < chat < 0.45
    # Cost is the models' list price of the tokens.
    mismatch = scalar(
        conn,
        "select count(*) from raw.inference_events where model = 'gpt-4o' and "
        "cost_usd <> round((input_tokens * 2.50 + output_tokens * 10.00) / 1e6, 8)",
    )
    assert mismatch == 0
    # Tool calls belong to their event, seconds after it, with the event's feature.
    orphans = scalar(
        conn,
        "select count(*) from raw.tool_calls t left join raw.inference_events e using (event_id) "
        "where e.event_id is null or e.feature <> t.feature or t.created_at < e.created_at "
        "or t.created_at > e.created_at + interval '10 seconds'",
    )
    assert orphans == 0
    sessions_per_user = scalar(
        conn,
        "select count(*)::float / count(distinct session_id) from raw.inference_events",
    )
    assert sessions_per_user > 2


@pytest.mark.parametrize("scenario", [s for s in SCENARIOS if s not in ("quiet", "blip")])
def test_every_incident_raises_cost_clearly(conn: psycopg.Connection, scenario: str) -> None:
    summary = load(conn, scenario)
    assert summary.onset == ONSET
    assert hourly_ratio(conn, "sum(cost_usd)") > 1.4
    # Before the onset, the data is that of a quiet week.
    before = conn.execute(
        "select count(*) from raw.inference_events where created_at < %(onset)s", PARAMS
    ).fetchone()[0]
    load(conn, "quiet")
    quiet = conn.execute(
        "select count(*) from raw.inference_events where created_at < %(onset)s", PARAMS
    ).fetchone()[0]
    assert abs(before - quiet) <= quiet * 0.001


def test_traffic_surge_is_new_users_at_flat_cost_per_request(conn: psycopg.Connection) -> None:
    load(conn, "traffic_surge")
    assert hourly_ratio(conn, "count(*)") > 1.7
    assert hourly_ratio(conn, "count(distinct user_id)") > 1.6
    before, after = before_after(conn, "avg(cost_usd)")
    assert 0.85 < after / before < 1.15
    before, after = before_after(conn, "avg((trigger_type <> 'user')::int)")
    assert abs(after - before) < 0.03


def test_bot_traffic_is_few_scripted_users(conn: psycopg.Connection) -> None:
    load(conn, "bot_traffic")
    assert hourly_ratio(conn, "count(*)") > 1.7
    bots = "user_agent like 'python-requests/2.31%%' or user_agent like 'Scrapy/%%'"
    before, after = before_after(conn, f"avg(({bots})::int)")
    assert before == 0 and after > 0.35
    n_bots = scalar(conn, f"select count(distinct user_id) from raw.inference_events where {bots}")
    assert 5 <= n_bots <= 20
    assert scalar(
        conn, f"select bool_and(trigger_type = 'user') from raw.inference_events where {bots}"
    )  # noqa: E501
    before, after = before_after(conn, "avg(cost_usd)")
    assert 0.85 < after / before < 1.15
    top_share = (
        "select sum(n)::float / (select count(*) from raw.inference_events where {c}) from "
        "(select count(*) as n from raw.inference_events where {c} group by user_id "
        "order by n desc limit 10) as top"
    )
    assert scalar(conn, top_share.format(c=AFTER)) > 3 * scalar(conn, top_share.format(c=BEFORE))


def test_autosave_loop_is_hidden_recompute_in_existing_sessions(conn: psycopg.Connection) -> None:
    load(conn, "autosave_loop")
    before, after = before_after(conn, "avg((trigger_type = 'auto_save')::int)")
    assert before < 0.06 and after > 0.4
    assert 0.85 < hourly_ratio(conn, "count(distinct user_id)") < 1.2
    strangers = scalar(
        conn,
        "select count(*) from raw.inference_events a where trigger_type = 'auto_save' and "
        f"{AFTER} and not exists (select 1 from raw.inference_events b where "
        "b.session_id = a.session_id and b.user_id = a.user_id and b.feature = a.feature "
        "and b.created_at < a.created_at)",
    )
    assert strangers == 0
    kind, gap = conn.execute(
        "select kind, %(onset)s - changed_at from raw.change_events "
        "where changed_at > %(onset)s - interval '24 hours'",
        PARAMS,
    ).fetchone()
    assert kind == "ux" and timedelta(hours=1) <= gap <= timedelta(hours=3)


def test_undo_storm_is_undo_share(conn: psycopg.Connection) -> None:
    load(conn, "undo_storm")
    before, after = before_after(conn, "avg((trigger_type = 'undo')::int)")
    assert before < 0.04 and after > 0.3
    assert 0.85 < hourly_ratio(conn, "count(distinct user_id)") < 1.2


def test_context_bloat_is_input_tokens(conn: psycopg.Connection) -> None:
    load(conn, "context_bloat")
    before, after = before_after(conn, "avg(input_tokens)")
    assert after / before > 2.8
    before, after = before_after(conn, "percentile_cont(0.95) within group (order by input_tokens)")
    assert after / before > 2.5
    before, after = before_after(conn, "avg(output_tokens)")
    assert 0.85 < after / before < 1.15
    assert 0.85 < hourly_ratio(conn, "count(*)") < 1.15
    assert (
        scalar(
            conn,
            "select kind from raw.change_events where changed_at > %(onset)s - '1 day'::interval",
        )
        == "prompt_template"
    )  # noqa: E501


def test_model_change_is_output_tokens_and_pricier_model(conn: psycopg.Connection) -> None:
    load(conn, "model_change")
    before, after = before_after(conn, "avg(output_tokens)", where="feature = 'chat'")
    assert after / before > 2.5
    before, after = before_after(conn, "avg(output_tokens)")
    assert after / before > 1.6
    before, after = before_after(conn, "avg((model = 'gpt-4o')::int)", where="feature = 'chat'")
    assert before < 0.35 and after > 0.75
    assert 0.85 < hourly_ratio(conn, "count(*)") < 1.15
    before, after = before_after(conn, "avg(input_tokens)")
    assert 0.85 < after / before < 1.15


def test_feature_abuse_is_one_feature(conn: psycopg.Connection) -> None:
    load(conn, "feature_abuse")
    assert hourly_ratio(conn, "count(*)", where="feature = 'summarize'") > 5
    assert 0.85 < hourly_ratio(conn, "count(*)", where="feature <> 'summarize'") < 1.15
    excess = (
        "select (select sum(cost_usd) from raw.inference_events where {w} and "
        + AFTER
        + ") - (select sum(cost_usd) from raw.inference_events where {w} and "
        + BEFORE
        + ") / 7"
    )
    share = scalar(conn, excess.format(w="feature = 'summarize'")) / scalar(
        conn, excess.format(w="true")
    )
    assert share > 0.8


def test_tool_outage_is_one_tool_and_retries(conn: psycopg.Connection) -> None:
    load(conn, "tool_outage")
    before, after = before_after(
        conn, "avg((not success)::int)", table="raw.tool_calls", where="tool_name = 'web_search'"
    )
    assert before < 0.05 and 0.45 < after < 0.65
    before, after = before_after(
        conn, "avg(retries)", table="raw.tool_calls", where="tool_name = 'web_search'"
    )
    assert before < 0.5 and after > 2.5
    _, other = before_after(
        conn, "avg((not success)::int)", table="raw.tool_calls", where="tool_name <> 'web_search'"
    )
    assert other < 0.05
    before, after = before_after(conn, "avg((trigger_type = 'retry')::int)")
    assert before < 0.04 and after > 0.3
    retried = scalar(
        conn,
        f"select array_agg(distinct feature) from raw.inference_events where {AFTER} "
        "and trigger_type = 'retry' and feature <> 'search_answer'",
    )
    assert hourly_ratio(conn, "count(*)", where="feature = 'search_answer'") > 5
    assert hourly_ratio(conn, "count(*)", where="feature <> 'search_answer'") < 1.15, retried


def test_blip_is_one_hour(conn: psycopg.Connection) -> None:
    load(conn, "blip")
    onset_hour = "created_at >= %(onset)s and created_at < %(onset)s + interval '1 hour'"
    base = (
        "select avg(c) from (select sum(cost_usd) as c from raw.inference_events, "
        "generate_series(1, 7) as d where created_at >= %(onset)s - make_interval(days => d) "
        "and created_at < %(onset)s - make_interval(days => d) + interval '1 hour' "
        "group by d) as days"
    )
    cost = scalar(conn, f"select sum(cost_usd) from raw.inference_events where {onset_hour}")
    assert float(cost) / float(scalar(conn, base)) > 2.0
    later_hours = "mod(extract(epoch from %(end)s - created_at)::numeric, 86400) <= 32400"
    assert 0.8 < hourly_ratio(conn, "sum(cost_usd)", where=later_hours) < 1.25


def test_same_arguments_same_rows_and_ids_never_collide(conn: psycopg.Connection) -> None:
    digest = (
        "select md5(string_agg(concat_ws('|', event_id, created_at, user_id, session_id, feature, "
        "trigger_type, model, input_tokens, output_tokens, cost_usd, user_agent), ',' "
        "order by event_id)) from raw.inference_events"
    )
    tools = (
        "select md5(string_agg(concat_ws('|', t.*), ',' order by call_id)) from raw.tool_calls t"
    )
    load(conn, "undo_storm", days=4)
    first = scalar(conn, digest), scalar(conn, tools)
    load(conn, "undo_storm", days=4)
    assert (scalar(conn, digest), scalar(conn, tools)) == first
    # Appending other arguments adds rows whose ids never collide with the first load's.
    load(conn, "undo_storm", days=4, seed=2, replace=False)
    load(conn, "tool_outage", days=4, replace=False)
    load(conn, "undo_storm", days=4, end=END - timedelta(days=1), replace=False)
    for table, key in (("raw.inference_events", "event_id"), ("raw.tool_calls", "call_id"),
                       ("raw.change_events", "change_id")):  # fmt: skip
        total, distinct = conn.execute(
            f"select count(*), count(distinct {key}) from {table}"
        ).fetchone()
        assert total == distinct, table


def test_replace_empties_raw_tables_but_keeps_flags(conn: psycopg.Connection) -> None:
    one = load(conn, "quiet", days=2)
    conn.execute("update app.feature_flags set enabled = false where feature = 'translate'")
    conn.commit()
    load(conn, "quiet", days=2, seed=3, replace=False)
    doubled = scalar(conn, "select count(*) from raw.inference_events")
    assert doubled > one.inference_events * 1.8
    assert (
        scalar(conn, "select enabled from app.feature_flags where feature = 'translate'") is False
    )
    again = load(conn, "quiet", days=2)
    assert scalar(conn, "select count(*) from raw.inference_events") == again.inference_events
    assert again.inference_events == one.inference_events
    assert scalar(conn, "select count(*) from app.feature_flags") == 7


def test_load_time_at_the_default_rate(db_url: str) -> None:
    with psycopg.connect(db_url) as c:
        started = time.perf_counter()
        summary = seeding.seed(c, "autosave_loop", end=END)
        seconds = time.perf_counter() - started
    print(
        f"\n14 days at {seeding.DEFAULT_EVENTS_PER_HOUR}/h: {summary.inference_events:,} events, "
        f"{summary.tool_calls:,} tool calls loaded in {seconds:.2f} s"
    )
    assert summary.inference_events > 300_000


# --------------------------------------------------------------------------- traffic shapes
# Measured on the generator's own rows (no database): hourly costs and counts per hour.

MONDAY = datetime(2026, 11, 2, tzinfo=UTC)


def _hourly(data: seeding.SeedData, start: datetime, hours: int, what: str = "count"):
    import numpy as np

    index = (data.events.t - int(start.timestamp() * 1e6)) // 3_600_000_000
    weights = None if what == "count" else data.costs()
    return np.bincount(index, weights=weights, minlength=hours)[:hours]


def _gen(scenario: str = "quiet", days: int = 14, rate: int = 400, **kwargs):
    end = kwargs.pop("end", MONDAY + timedelta(days=days))
    return seeding.generate(
        scenario, start=end - timedelta(days=days), end=end, events_per_hour=rate, seed=3, **kwargs
    )


@pytest.mark.parametrize("ratio", [0.3, 0.5, 1.0])
def test_weekend_ratio_sets_weekend_traffic(ratio: float) -> None:
    data = _gen(shape=seeding.TrafficShape(weekend_ratio=ratio))
    counts = _hourly(data, MONDAY, 14 * 24).reshape(14, 24).sum(axis=1)
    weekday = counts[[d for d in range(14) if d % 7 < 5]].mean()
    weekend = counts[[d for d in range(14) if d % 7 >= 5]].mean()
    assert weekend / weekday == pytest.approx(ratio, rel=0.06)
    # events_per_hour stays the mean over a week
    assert counts.sum() / (14 * 24) == pytest.approx(400, rel=0.03)


@pytest.mark.parametrize("growth", [0.03, -0.04])
def test_daily_growth_compounds(growth: float) -> None:
    data = _gen(shape=seeding.TrafficShape(daily_growth=growth, weekend_ratio=1.0))
    daily = _hourly(data, MONDAY, 14 * 24).reshape(14, 24).sum(axis=1)
    per_week = daily[7:].sum() / daily[:7].sum()
    assert per_week == pytest.approx((1 + growth) ** 7, rel=0.04)


def test_step_lasts_from_its_time() -> None:
    step_at = MONDAY + timedelta(days=9, hours=10)
    data = _gen(shape=seeding.TrafficShape(step_factor=1.8, step_at=step_at, weekend_ratio=1.0))
    plain = _gen(shape=seeding.TrafficShape(weekend_ratio=1.0))
    a, b = _hourly(data, MONDAY, 14 * 24), _hourly(plain, MONDAY, 14 * 24)
    k = 9 * 24 + 10
    assert a[:k].sum() == b[:k].sum()  # the same product before the step
    assert a[k:].sum() / b[k:].sum() == pytest.approx(1.8, rel=0.04)
    with pytest.raises(seeding.ShapeError, match="step"):
        seeding.TrafficShape(step_factor=2.0)


def test_onset_is_explicit_and_checked() -> None:
    onset = MONDAY + timedelta(days=12, hours=3)  # a Saturday night
    data = _gen("traffic_surge", onset=onset)
    plain = _gen("quiet")
    a, b = _hourly(data, MONDAY, 14 * 24), _hourly(plain, MONDAY, 14 * 24)
    k = 12 * 24 + 3
    assert (a[:k] == b[:k]).all() and a[k:].sum() / b[k:].sum() > 1.8
    with pytest.raises(seeding.ShapeError, match="outside"):
        # checked before the connection is used
        seeding.seed(None, "traffic_surge", days=2, end=END, onset=END)  # type: ignore[arg-type]


def test_ramp_reaches_full_strength_over_its_hours() -> None:
    onset = MONDAY + timedelta(days=10, hours=8)
    full = _gen("traffic_surge", onset=onset, rate=1000)
    ramp = _gen("traffic_surge", onset=onset, rate=1000, ramp_hours=6)
    plain = _gen("quiet", rate=1000)
    k = 10 * 24 + 8
    hours = 14 * 24
    extra_full = (
        _hourly(full, MONDAY, hours)[k : k + 10] - _hourly(plain, MONDAY, hours)[k : k + 10]
    )
    extra_ramp = (
        _hourly(ramp, MONDAY, hours)[k : k + 10] - _hourly(plain, MONDAY, hours)[k : k + 10]
    )
    share = extra_ramp / extra_full
    assert share[0] < 0.2 and 0.35 < share[2] < 0.65 and share[6:].min() > 0.85
    assert (share[1:6] > share[:5] - 0.05).all()  # rising


@pytest.mark.parametrize("scenario", ["context_bloat", "tool_outage", "model_change"])
def test_ramp_and_magnitude_for_changes_of_the_events(scenario: str) -> None:
    onset = MONDAY + timedelta(days=10, hours=8)
    k, hours = 10 * 24 + 8, 14 * 24
    plain = _hourly(_gen("quiet", rate=1000), MONDAY, hours, "cost")[k : k + 10]
    full = _hourly(_gen(scenario, onset=onset, rate=1000), MONDAY, hours, "cost")[k : k + 10]
    ramp = _hourly(_gen(scenario, onset=onset, rate=1000, ramp_hours=8), MONDAY, hours, "cost")
    half = _hourly(_gen(scenario, onset=onset, rate=1000, magnitude=0.5), MONDAY, hours, "cost")
    excess_full = full - plain
    excess_ramp = ramp[k : k + 10] - plain
    assert excess_ramp[:2].sum() < 0.45 * excess_full[:2].sum()
    assert excess_ramp[8:].sum() == pytest.approx(excess_full[8:].sum(), rel=0.25)
    # magnitude scales the growth (tokens, retries); model_change's switch of model stays whole
    assert 0.3 < (half[k : k + 10] - plain).sum() / excess_full.sum() < 0.8


def test_defaults_unchanged_by_the_shape_options() -> None:
    """The options' defaults are the product as always simulated: same rows, same ids."""
    a = _gen("autosave_loop", days=3, rate=100)
    b = _gen(
        "autosave_loop", days=3, rate=100, shape=seeding.TrafficShape(weekend_ratio=0.65),
        ramp_hours=None, magnitude=1.0,
    )  # fmt: skip
    assert list(a.inference_rows()) == list(b.inference_rows())
    assert list(a.tool_rows()) == list(b.tool_rows())


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--weekend-ratio", "0", "weekend ratio must be between"),
        ("--daily-growth", "50%", "daily growth must be between"),
        ("--step-factor", "2", "needs the time it starts"),
        ("--ramp-hours", "-1", "ramp hours must be between"),
        ("--onset", "2001-01-01T00:00", "outside the seeded period"),
    ],
)
def test_seed_cli_rejects_bad_shapes_in_one_line(
    cli_env: dict[str, str], option: str, value: str, message: str
) -> None:
    from tests.conftest import run_costwatch

    result = run_costwatch("seed", "--scenario", "traffic_surge", "--days", "2", option, value,
                           env=cli_env)  # fmt: skip
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_seed_cli_shapes(cli_env: dict[str, str], db_url: str) -> None:
    from tests.conftest import run_costwatch

    result = run_costwatch(
        "seed", "--scenario", "undo_storm", "--days", "3", "--events-per-hour", "80",
        "--end", "2026-11-20T12:00", "--weekend-ratio", "0.4", "--daily-growth", "2%",
        "--onset", "2026-11-19T20:00", "--ramp-hours", "6", "--magnitude", "1.5",
        env=cli_env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "incident from 2026-11-19 20:00" in result.stdout
    with psycopg.connect(db_url) as c:
        first_undo = c.execute(
            "select min(created_at) from raw.inference_events where trigger_type = 'undo' "
            "and created_at >= '2026-11-19 20:00+00'"
        ).fetchone()[0]
    assert first_undo < datetime(2026, 11, 19, 21, tzinfo=UTC)
