"""Delivery over real HTTP: generic webhook, Slack incoming webhook, PagerDuty Events API v2, and
leadership's own Slack and webhook for escalations.

One attempt never raises: whatever goes wrong (a timeout, a reset, a server answering garbage,
`http.client.BadStatusLine`, an odd URL, anything) becomes a `Delivery` saying whether a later
attempt may work. URLs are checked as strictly as `http.client` does before anything is sent.
Error lines are built here and scrubbed of every secret.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from orchestration.runbook.incidents.retry import is_retryable, redact_secrets
from orchestration.runbook.incidents.settings import CHANNEL_VARIABLES, IncidentSettings

EXTERNAL_CHANNELS = ("webhook", "slack", "pagerduty", "leadership_slack", "leadership_webhook")
# The message format each channel takes (leadership's channels reuse on-call's formats).
FORMAT = {
    "log": "log",
    "webhook": "webhook",
    "slack": "slack",
    "pagerduty": "pagerduty",
    "leadership_slack": "slack",
    "leadership_webhook": "webhook",
}
USER_AGENT = "costwatch-alerts/1"
# What http.client refuses in a URL (its _contains_disallowed_url_pchar_re), plus non-ASCII.
_DISALLOWED = re.compile(r"[\x00-\x20\x7f-\U0010ffff]")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A webhook that redirects is misconfigured: report the 3xx, do not follow it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: ANN001
        return None


# urllib, not requests: it logs nothing, so no debug logger can print a webhook's secret path.
_OPENER = urllib.request.build_opener(_NoRedirect)


@dataclass(frozen=True)
class Delivery:
    ok: bool
    http_status: int | None = None
    error: str | None = None
    permanent: bool = False  # a failure no retry can fix (bad URL, 4xx)

    def retryable(self, attempts: int) -> bool:
        return not self.ok and not self.permanent and is_retryable(self.http_status, attempts)


def endpoint(channel: str, settings: IncidentSettings) -> str | None:
    return {
        "webhook": settings.webhook_url,
        "slack": settings.slack_webhook_url,
        "pagerduty": settings.pagerduty_url if settings.pagerduty_routing_key else None,
        "leadership_slack": settings.leadership_slack_url,
        "leadership_webhook": settings.leadership_webhook_url,
    }.get(channel)


def _variable(channel: str) -> str:
    return "COSTWATCH_PAGERDUTY_URL" if channel == "pagerduty" else CHANNEL_VARIABLES[channel]


def check_url(url: str, variable: str) -> str | None:
    """None when `url` is a usable http(s) URL, else the one-line reason (naming the variable)."""
    if _DISALLOWED.search(url):
        return f"{variable} contains a space, a control or a non-ASCII character"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        return f"{variable} is not a valid URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{variable} is not an http(s) URL"
    return None


def wire_body(channel: str, payload: dict[str, Any], settings: IncidentSettings) -> dict[str, Any]:
    """What goes on the wire: the stored payload, plus PagerDuty's routing key."""
    if channel == "pagerduty":
        return {"routing_key": settings.pagerduty_routing_key, **payload}
    return payload


def deliver(channel: str, payload: dict[str, Any], settings: IncidentSettings) -> Delivery:
    """One attempt to deliver `payload` on `channel`. Never raises."""
    try:
        return _deliver(channel, payload, settings)
    except Exception as err:  # noqa: BLE001 - one attempt must never stop the others
        error = redact_secrets(f"{channel}: failed: {_describe(err)}", settings.secrets)
        return Delivery(ok=False, error=error)


def _deliver(channel: str, payload: dict[str, Any], settings: IncidentSettings) -> Delivery:
    url = endpoint(channel, settings)
    if url is None:
        return Delivery(ok=False, error=f"channel {channel} is not configured", permanent=True)
    problem = check_url(url, _variable(channel))
    if problem:
        return Delivery(ok=False, error=problem, permanent=True)
    timeout = settings.alert_timeout_seconds
    request = urllib.request.Request(
        url,
        data=json.dumps(wire_body(channel, payload, settings), default=str).encode(),
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT},
        method="POST",
    )
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            response.read(65536)
            return Delivery(ok=True, http_status=response.status)
    except urllib.error.HTTPError as err:
        status = err.code
        try:
            body = " ".join(err.read(2048).decode(errors="replace").split())[:200]
        except Exception:  # noqa: BLE001 - the body is only a hint
            body = ""
        error = redact_secrets(f"{channel}: HTTP {status}: {body}".rstrip(": "), settings.secrets)
        retry = status >= 500 or is_retryable(status, 0)
        return Delivery(ok=False, http_status=status, error=error, permanent=not retry)
    except TimeoutError:
        return Delivery(ok=False, error=f"{channel}: no answer within {timeout:g}s (timeout)")
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            return Delivery(ok=False, error=f"{channel}: no answer within {timeout:g}s (timeout)")
        reason = _describe(err.reason) if isinstance(err.reason, BaseException) else "refused"
        error = redact_secrets(f"{channel}: connection failed: {reason}", settings.secrets)
        return Delivery(ok=False, error=error)


def _describe(err: BaseException) -> str:
    """An error without the URL or request that produced it (those may hold a secret)."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror} ({type(err).__name__})"
    return type(err).__name__
