"""Pure formatting for the triage report: escaping, numbers, Markdown tables.

No database, no Dagster: every function takes plain values and returns text, so the report's
look is unit-tested on its own (tests/test_triage_formatting.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

# C0 and C1 control characters, DEL, and the Unicode line/paragraph separators.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# Characters that can start Markdown markup anywhere in a line: emphasis, code, links and
# images (escaping the brackets is enough for those), tables, strikethrough, headings.
_MD_SPECIAL = re.compile(r"([\\`*_\[\]|~#])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}
# Longest name (feature, tool, user agent, change description) shown in the report.
NAME_MAX_CHARS = 200


def strip_control(text: Any) -> str:
    """The text on one line: control characters (newlines included) become spaces."""
    return _CONTROL.sub(" ", "" if text is None else str(text))


def shorten(text: str, limit: int = NAME_MAX_CHARS) -> str:
    """A value from the data cut to `limit` characters (with an ellipsis), so a 100 KB feature
    name or user agent never floods the report."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape_md(text: Any) -> str:
    """`text` (a feature, a tool, a user agent...) safe to put inside Markdown or a table cell.

    HTML special characters become entities (so `<script>` is shown, never run), Markdown
    punctuation is backslash-escaped (so `*_[]()|` never format, link or split a table), and
    control characters are removed, so a name stays on its line.
    """
    out = shorten(strip_control(text))
    out = "".join(_HTML.get(ch, ch) for ch in out)
    out = _MD_SPECIAL.sub(r"\\\1", out)
    # A leading "-", "+", "=", "N." or "N)" would start a list or a heading underline.
    out = re.sub(r"^(\s*)([-+=])", r"\1\\\2", out)
    out = re.sub(r"^(\s*\d+)([.)])", r"\1\\\2", out)
    return out


def escape_slack(text: Any, keep_newlines: bool = False) -> str:
    """`text` safe inside a Slack mrkdwn message: `&`, `<`, `>` escaped (so a name can never
    become a link, a mention or `<!channel>`), control characters removed (newlines too unless
    `keep_newlines`, for a multi-line fix)."""
    raw = "" if text is None else str(text)
    if keep_newlines:
        out = "\n".join(strip_control(line) for line in raw.replace("\r\n", "\n").split("\n"))
    else:
        out = strip_control(raw)
    return out.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def code_safe(text: Any) -> str:
    """A name safe inside a Markdown code span or block: no backticks, one line, not huge."""
    return shorten(strip_control(text)).replace("`", "'")


def money(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    number = float(value)
    sign = "-" if number < 0 else ""
    return f"{sign}${abs(number):,.{digits}f}"


def signed_money(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    number = float(value)
    return ("+" if number >= 0 else "-") + f"${abs(number):,.{digits}f}"


def pct(value: Any, digits: int = 0) -> str:
    """A fraction (0.25) as a percentage (25%)."""
    if value is None:
        return "n/a"
    return f"{float(value) * 100:.{digits}f}%"


def signed_pct(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{float(value) * 100:+.{digits}f}%"


def number(value: Any, digits: int = 0) -> str:
    if value is None:
        return "n/a"
    return f"{float(value):,.{digits}f}"


def change(before: Any, after: Any) -> str:
    """How `after` compares to `before`, as a relative change (`+42%`, `x3.1`)."""
    if before is None or after is None:
        return "n/a"
    before, after = float(before), float(after)
    if before == 0:
        return "new" if after > 0 else "flat"
    ratio = after / before
    if ratio >= 2:
        return f"x{ratio:.1f}"
    return signed_pct(ratio - 1)


def when(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%Y-%m-%d %H:%M} UTC"
    return "n/a" if value is None else escape_md(value)


def hour_label(value: Any) -> str:
    if isinstance(value, datetime):
        return f"{value:%m-%d %H:%M}"
    return escape_md(value)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], align: str = "") -> list[str]:
    """A Markdown table; cells are used as given (escape names before), `align` per column
    ('l' or 'r', default right for every column but the first)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(sep) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(str(cell) for cell in row) + " |")
    return lines
