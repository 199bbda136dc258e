"""How alert delivery retries (backoff, which HTTP answers are worth another attempt) and what it
records (error texts with the channels' secrets redacted).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import timedelta
from urllib.parse import urlsplit

BACKOFF_BASE_SECONDS = 30.0
BACKOFF_MAX_SECONDS = 3600.0
MAX_ATTEMPTS = 30  # transient failures: about a day of retries at the capped interval
TRANSIENT_4XX = {408, 425, 429}


def backoff(attempts: int) -> timedelta:
    """Wait before the next attempt after `attempts` failures: 30 s, 60 s, 2 min, ... capped 1 h."""
    exponent = max(attempts - 1, 0)
    seconds = min(BACKOFF_BASE_SECONDS * (2 ** min(exponent, 20)), BACKOFF_MAX_SECONDS)
    return timedelta(seconds=seconds)


def is_retryable(http_status: int | None, attempts: int) -> bool:
    """Timeouts, connection errors and 5xx retry (up to MAX_ATTEMPTS); other 4xx never do."""
    if attempts >= MAX_ATTEMPTS:
        return False
    if http_status is None or http_status >= 500:
        return True
    return http_status in TRANSIENT_4XX


_URL = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def redact_secrets(text: str, secrets: Sequence[str]) -> str:
    """Remove every secret, the path of every secret URL, and the path of any other URL."""
    out = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        out = out.replace(secret, "***")
        try:
            parts = urlsplit(secret)
        except ValueError:
            continue
        tail = parts.path + (f"?{parts.query}" if parts.query else "")
        if len(tail) > 1:
            out = out.replace(tail, "/***")
    return _URL.sub(lambda m: _scrub_url(m.group(0)), out)


def _scrub_url(url: str) -> str:
    """Keep scheme, host and port of a URL; drop credentials, path and query (tokens live there)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "***"
    base = f"{parts.scheme}://{parts.hostname or '?'}{f':{port}' if port else ''}"
    return base + ("/***" if parts.path not in ("", "/") or parts.query else "")
