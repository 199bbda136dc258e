"""What the environment switches on. Read when the incident step runs, never at import.

A setting costwatch cannot read disables only what it configures (CONTRACT section 6): a bad
`COSTWATCH_COST_CAP_USD` turns the cost cap off, a bad escalation delay turns escalation off, a
bad timeout or severity table falls back to its default, a dbt var of the wrong type is left to
its default and a `COSTWATCH_*` name costwatch does not read is named (orchestration/settings.py).
Each such problem is one line naming the variable (`IncidentSettings.problems`); the incident step
reports them as a `pipeline_failed` alert and fails, after opening incidents and paging as usual.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from orchestration.core.settings import setting_problems
from orchestration.runbook.incidents.severity import (
    SEVERITY_THRESHOLDS_USD,
    parse_severity_thresholds,
)

DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}

# What each external channel's variable is called (the endpoint, or PagerDuty's routing key).
CHANNEL_VARIABLES = {
    "webhook": "COSTWATCH_ALERT_WEBHOOK_URL",
    "slack": "COSTWATCH_SLACK_WEBHOOK_URL",
    "pagerduty": "COSTWATCH_PAGERDUTY_ROUTING_KEY",
    "leadership_slack": "COSTWATCH_ESCALATION_SLACK_WEBHOOK_URL",
    "leadership_webhook": "COSTWATCH_ESCALATION_WEBHOOK_URL",
}
# Leadership's channels get only escalations (the runbook: "within 1 hour: alert leadership").
LEADERSHIP_CHANNELS = ("leadership_slack", "leadership_webhook")


class SettingsError(ValueError):
    """A setting with a value costwatch cannot use; the message names the variable."""


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise SettingsError(f"{name} must be true or false, got {raw!r}")


def _number(env: Mapping[str, str], name: str, default: float, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None
    if value != value or value in (float("inf"), float("-inf")):
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:g}, got {raw!r}")
    return value


def _text(env: Mapping[str, str], name: str) -> str | None:
    value = (env.get(name) or "").strip()
    return value or None


def _severity(env: Mapping[str, str]) -> tuple[tuple[str, float], ...]:
    raw = _text(env, "COSTWATCH_SEVERITY_USD")
    if raw is None:
        return SEVERITY_THRESHOLDS_USD
    try:
        return parse_severity_thresholds(raw)
    except ValueError as err:
        raise SettingsError(f"COSTWATCH_SEVERITY_USD: {err}") from None


@dataclass(frozen=True)
class IncidentSettings:
    """Channels are on when their variable is set; the cost cap is off, then dry-run, by default."""

    webhook_url: str | None = None
    slack_webhook_url: str | None = None
    pagerduty_routing_key: str | None = None
    pagerduty_url: str = DEFAULT_PAGERDUTY_URL
    leadership_slack_url: str | None = None
    leadership_webhook_url: str | None = None
    cost_cap_enabled: bool = False
    cost_cap_dry_run: bool = True
    cost_cap_usd: float = 1000.0
    escalation_enabled: bool = True
    escalate_after_minutes: float = 60.0
    alert_timeout_seconds: float = 5.0
    # Spikes that ended this long before the newest data are recorded but page nobody (backfills).
    alert_window_hours: float = 24.0
    # A spike starting this soon after an incident was resolved reopens it (one incident, one
    # `reopened` alert) instead of opening a new one.
    reopen_within_hours: float = 6.0
    severity_thresholds_usd: tuple[tuple[str, float], ...] = SEVERITY_THRESHOLDS_USD
    # One line per setting that could not be read (each names its variable).
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IncidentSettings:
        """Read every setting; an unreadable one is a problem line, and disables only its part."""
        env = os.environ if environ is None else environ
        problems: list[str] = []

        def read(reader, *args, fallback):  # noqa: ANN001, ANN202 - a local helper
            try:
                return reader(env, *args)
            except SettingsError as err:
                problems.append(str(err))
                return fallback

        cap_usd = read(_number, "COSTWATCH_COST_CAP_USD", 1000.0, fallback=None)
        cap_enabled = read(_flag, "COSTWATCH_COST_CAP_ENABLED", False, fallback=False)
        # The dry-run flag guards a real action: unreadable means dry-run.
        cap_dry_run = read(_flag, "COSTWATCH_COST_CAP_DRY_RUN", True, fallback=True)
        escalate = read(_number, "COSTWATCH_ESCALATE_AFTER_MINUTES", 60.0, fallback=None)
        # A mistyped name or a dbt var dbt cannot use (it then runs on the default).
        problems += setting_problems(env)
        return cls(
            webhook_url=_text(env, "COSTWATCH_ALERT_WEBHOOK_URL"),
            slack_webhook_url=_text(env, "COSTWATCH_SLACK_WEBHOOK_URL"),
            pagerduty_routing_key=_text(env, "COSTWATCH_PAGERDUTY_ROUTING_KEY"),
            pagerduty_url=_text(env, "COSTWATCH_PAGERDUTY_URL") or DEFAULT_PAGERDUTY_URL,
            leadership_slack_url=_text(env, "COSTWATCH_ESCALATION_SLACK_WEBHOOK_URL"),
            leadership_webhook_url=_text(env, "COSTWATCH_ESCALATION_WEBHOOK_URL"),
            cost_cap_enabled=cap_enabled and cap_usd is not None,
            cost_cap_dry_run=cap_dry_run,
            cost_cap_usd=1000.0 if cap_usd is None else cap_usd,
            escalation_enabled=escalate is not None,
            escalate_after_minutes=60.0 if escalate is None else escalate,
            alert_timeout_seconds=read(
                _number, "COSTWATCH_ALERT_TIMEOUT_SECONDS", 5.0, 0.05, fallback=5.0
            ),
            alert_window_hours=read(_number, "COSTWATCH_ALERT_WINDOW_HOURS", 24.0, fallback=24.0),
            reopen_within_hours=read(_number, "COSTWATCH_REOPEN_WITHIN_HOURS", 6.0, fallback=6.0),
            severity_thresholds_usd=read(_severity, fallback=SEVERITY_THRESHOLDS_USD),
            problems=tuple(problems),
        )

    @property
    def channels(self) -> list[str]:
        """The on-call channels switched on (the Dagster log and ops.alerts are always on)."""
        out = []
        if self.webhook_url:
            out.append("webhook")
        if self.slack_webhook_url:
            out.append("slack")
        if self.pagerduty_routing_key:
            out.append("pagerduty")
        return out

    @property
    def leadership_channels(self) -> list[str]:
        """Leadership's own channels, which get the escalated alert."""
        out = []
        if self.leadership_slack_url:
            out.append("leadership_slack")
        if self.leadership_webhook_url:
            out.append("leadership_webhook")
        return out

    def configured(self, channel: str) -> bool:
        return channel == "log" or channel in self.channels or channel in self.leadership_channels

    @property
    def secrets(self) -> list[str]:
        """Values that must never reach a log line or a row."""
        values = (
            self.webhook_url,
            self.slack_webhook_url,
            self.pagerduty_routing_key,
            self.leadership_slack_url,
            self.leadership_webhook_url,
        )
        return [s for s in values if s]
