"""Delivery over real HTTP: generic webhook, Slack incoming webhook, PagerDuty Events API v2.

Each attempt is bounded by the alert timeout. The result says whether it worked and, when not,
whether a later tick should try again: timeouts, connection errors and 5xx do; other 4xx and a
malformed URL do not. Error lines are built here and scrubbed of every secret.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from orchestration.incidents.payloads import is_retryable, redact_secrets
from orchestration.incidents.settings import IncidentSettings

EXTERNAL_CHANNELS = ("webhook", "slack", "pagerduty")
_VARIABLE = {
    "webhook": "COSTWATCH_ALERT_WEBHOOK_URL",
    "slack": "COSTWATCH_SLACK_WEBHOOK_URL",
    "pagerduty": "COSTWATCH_PAGERDUTY_URL",
}
USER_AGENT = "costwatch-alerts/1"


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
    }.get(channel)


def check_url(url: str, variable: str) -> str | None:
    """None when `url` is a usable http(s) URL, else the one-line reason (naming the variable)."""
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
    """One attempt to deliver `payload` on `channel`. Never raises for network trouble."""
    url = endpoint(channel, settings)
    if url is None:
        return Delivery(ok=False, error=f"channel {channel} is not configured", permanent=True)
    problem = check_url(url, _VARIABLE[channel])
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
        except (OSError, ValueError):
            body = ""
        error = redact_secrets(f"{channel}: HTTP {status}: {body}".rstrip(": "), settings.secrets)
        retry = status >= 500 or is_retryable(status, 0)
        return Delivery(ok=False, http_status=status, error=error, permanent=not retry)
    except TimeoutError:
        return Delivery(ok=False, error=f"{channel}: no answer within {timeout:g}s (timeout)")
    except urllib.error.URLError as err:
        if isinstance(err.reason, TimeoutError):
            return Delivery(ok=False, error=f"{channel}: no answer within {timeout:g}s (timeout)")
        reason = err.reason if isinstance(err.reason, str) else _describe(err.reason)
        error = redact_secrets(f"{channel}: connection failed: {reason}", settings.secrets)
        return Delivery(ok=False, error=error)
    except (OSError, ValueError) as err:  # reset connections, bad status lines, odd hosts
        error = redact_secrets(f"{channel}: connection failed: {_describe(err)}", settings.secrets)
        return Delivery(ok=False, error=error)


def _describe(err: BaseException) -> str:
    """An OS error without the URL or request that produced it."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror} ({type(err).__name__})"
    return type(err).__name__
