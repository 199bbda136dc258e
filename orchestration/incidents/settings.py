"""What the environment switches on. Read when a tick runs, never at import."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from orchestration.incidents.payloads import SEVERITY_THRESHOLDS_USD, parse_severity_thresholds

DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


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
    cost_cap_enabled: bool = False
    cost_cap_dry_run: bool = True
    cost_cap_usd: float = 1000.0
    escalate_after_minutes: float = 60.0
    alert_timeout_seconds: float = 5.0
    # Spikes that ended this long before the newest data are recorded but page nobody (backfills).
    alert_window_hours: float = 24.0
    severity_thresholds_usd: tuple[tuple[str, float], ...] = SEVERITY_THRESHOLDS_USD

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> IncidentSettings:
        env = os.environ if environ is None else environ
        return cls(
            webhook_url=_text(env, "COSTWATCH_ALERT_WEBHOOK_URL"),
            slack_webhook_url=_text(env, "COSTWATCH_SLACK_WEBHOOK_URL"),
            pagerduty_routing_key=_text(env, "COSTWATCH_PAGERDUTY_ROUTING_KEY"),
            pagerduty_url=_text(env, "COSTWATCH_PAGERDUTY_URL") or DEFAULT_PAGERDUTY_URL,
            cost_cap_enabled=_flag(env, "COSTWATCH_COST_CAP_ENABLED", False),
            cost_cap_dry_run=_flag(env, "COSTWATCH_COST_CAP_DRY_RUN", True),
            cost_cap_usd=_number(env, "COSTWATCH_COST_CAP_USD", 1000.0),
            escalate_after_minutes=_number(env, "COSTWATCH_ESCALATE_AFTER_MINUTES", 60.0),
            alert_timeout_seconds=_number(
                env, "COSTWATCH_ALERT_TIMEOUT_SECONDS", 5.0, minimum=0.05
            ),
            alert_window_hours=_number(env, "COSTWATCH_ALERT_WINDOW_HOURS", 24.0),
            severity_thresholds_usd=_severity(env),
        )

    @property
    def channels(self) -> list[str]:
        """The external channels switched on (the Dagster log and ops.alerts are always on)."""
        out = []
        if self.webhook_url:
            out.append("webhook")
        if self.slack_webhook_url:
            out.append("slack")
        if self.pagerduty_routing_key:
            out.append("pagerduty")
        return out

    @property
    def secrets(self) -> list[str]:
        """Values that must never reach a log line or a row."""
        return [
            s for s in (self.webhook_url, self.slack_webhook_url, self.pagerduty_routing_key) if s
        ]
