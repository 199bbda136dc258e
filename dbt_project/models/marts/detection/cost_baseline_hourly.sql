{#-
  Runbook step 1, every hour: its cost against a seasonal, robust baseline that follows the
  product's level, and the spike it belongs to.

  Why one file past 300 lines: a quarter of it is this explanation, and the rest is one recursive
  walk (`walk`): hour h's level, profile and spike state are computed from the walk's state at
  h - 1, so the walk cannot be split into models (each would need the other's previous row).
  Its input is int_detection_hourly.

  Baseline of hour h = profile x level (a multiplicative model: cost = level x profile(day type,
  hour of day)).
  - Profile: the median of the last `spike_baseline_days` usable observations of the same hour of
    day on earlier days of the same day type (weekday, or weekend = the ISO weekdays
    `spike_weekend_isodow`, UTC), looking back at most `spike_baseline_lookback_days` days. Weekend
    traffic often runs at 30-70% of weekdays: a Saturday is compared with Saturdays and Sundays,
    a Tuesday with weekdays only. Each observation is stored divided by the level in force when
    it was seen, so a profile made of days two weeks old does not lag a growing product.
    Fewer than `spike_min_baseline_observations` observations: no baseline, never a spike hour
    (the learning period: about 3 weekdays, and the first 3 weekend days; whatever weekday the
    data starts on, the first weekdays after the first weekend are judged against weekdays).
  - Level: the median, over the last `spike_level_hours` usable hours that had a profile (within
    `spike_level_lookback_hours`), of cost / profile. Growth or decline of a few % a day moves it
    with a lag of ~12 hours (1-3%), so it is no spike. The level stops at the current run of
    hours above the threshold (at most `spike_level_guard_hours` back) while no spike is
    confirmed, so an incident's first hours do not raise their own baseline. With fewer than
    `spike_level_min_hours` such hours (a new installation, a long gap) the previous level
    carries on (1.0 at first).
  Usable observation: a complete hour with data that is not left out as a spike hour (below).
  Left-out hours are skipped, not counted: the level and the profile are made of the last usable
  hours, so leaving a spike out never makes the baseline lag (no feedback).

  Spike hour: a complete hour with data whose cost is more than `spike_threshold_pct` above its
  baseline and more than the noise floor above it: the larger of `spike_min_excess_usd` and
  `spike_noise_sigmas` standard errors of (cost - baseline). The standard error is that of the
  profile's observations (sqrt of the median of their session-cost variances, each stored divided
  by level^2, times the level; an hour's own error would grow with the spike it is meant to
  judge) times sqrt(1 + pi / (2 n) + pi / (2 m)) for the error of a median of n profile and m
  level observations, so a young baseline asks for more.
  Severe spike hour: at least `spike_severe_pct` above baseline and more than
  `spike_severe_noise_factor` noise floors above it.

  Spike: confirmed by `spike_min_hours` consecutive spike hours, or by `spike_min_severe_hours`
  consecutive severe ones (one hour alone never confirms, however high: a blip opens nothing, and
  its hour is `is_suspected_spike` meanwhile). `spike_start` is the first of the consecutive
  hours above baseline * (1 + pct) and more than `spike_lead_noise_share` noise floors above it
  that lead into the confirming run (an incident's first hours may be within the noise floor;
  at most 23 hours back). A spike ends after `spike_end_hours` consecutive hours that are not
  even above baseline * (1 + pct): an hour above it but within the noise is a dip that does not
  end the spike (nor split it in two). A gap hour or the hour still filling is never a spike hour.

  Leaving out spike hours is recursive (whether h is in a spike depends on baselines, which depend
  on whether earlier hours were in a spike), so the model walks the hours in order with a
  recursive CTE carrying the last hours' observations: `history` (cost / level), `noise_history`
  (variance / level^2), each over `spike_baseline_lookback_days` days, and `ratio_history`
  (cost / profile) over `spike_level_lookback_hours`, each null when the hour is no observation.
  When a run is confirmed as a spike, its hours are nulled in the histories, as are dip hours once
  the spike resumes after them, up to `spike_max_excluded_hours` after the spike's start: a spike
  lasting longer is a new level (a launch, a new customer), whose hours then teach the level, so
  it becomes the new normal about 13 hours later (within 24-48 hours of the step) and the spike
  ends. Only spikes found with at least `spike_min_history_days_to_exclude` days of data before
  them are left out (a young baseline's mistake must not keep it young). Every decision about
  hour h uses hours up to h only: the walk is exact and causal, a replay hour by hour gives the
  same table. Cost: three array shifts and two small medians per hour; rebuilt every run.
  tests/support/detection.py is the same walk in Python (the tests compare them).
  The walk's SQL is macro cost_baseline_walk: PostgreSQL's as above, and a Spark variant
  (macros/detection/spark_cost_baseline_walk.sql) making the same decisions with arrays.
-#}

{{ cost_baseline_walk() }}
