"""The synthetic product that `costwatch seed` simulates: features, models, prices, tools, clients.

Numbers are chosen to look like a real LLM product so the runbook's queries give plausible
answers: list prices per million tokens, a skewed feature mix, mostly browser traffic.
"""

from __future__ import annotations

# Per 1M tokens, USD (input, output): public list prices.
MODEL_PRICES: dict[str, tuple[float, float]] = {
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4o": (2.50, 10.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
}
MODELS: tuple[str, ...] = tuple(MODEL_PRICES)

# Share of sessions per feature.
FEATURE_WEIGHTS: dict[str, float] = {
    "chat": 0.40,
    "summarize": 0.15,
    "code_assist": 0.13,
    "doc_qa": 0.11,
    "search_answer": 0.10,
    "translate": 0.06,
    "email_draft": 0.05,
}
FEATURES: tuple[str, ...] = tuple(FEATURE_WEIGHTS)

# Which model serves a session of each feature.
FEATURE_MODELS: dict[str, dict[str, float]] = {
    "chat": {"gpt-4o-mini": 0.60, "gpt-4o": 0.25, "claude-3-5-haiku": 0.15},
    "summarize": {"gpt-4o-mini": 0.50, "claude-3-5-haiku": 0.30, "gpt-4o": 0.20},
    "code_assist": {"claude-sonnet-4": 0.45, "gpt-4o": 0.25, "gpt-4o-mini": 0.30},
    "doc_qa": {"gpt-4o-mini": 0.50, "claude-3-5-haiku": 0.30, "gpt-4o": 0.20},
    "search_answer": {"gpt-4o-mini": 0.60, "gpt-4o": 0.40},
    "translate": {"gpt-4o-mini": 0.80, "claude-3-5-haiku": 0.20},
    "email_draft": {"gpt-4o-mini": 0.70, "claude-sonnet-4": 0.30},
}

# Median (input, output) tokens per request; drawn lognormal around them.
TOKEN_MEDIANS: dict[str, tuple[int, int]] = {
    "chat": (800, 250),
    "summarize": (2000, 300),
    "code_assist": (2000, 600),
    "doc_qa": (2500, 300),
    "search_answer": (1500, 350),
    "translate": (600, 600),
    "email_draft": (500, 350),
}
INPUT_SIGMA = 0.6
OUTPUT_SIGMA = 0.5

TRIGGERS: tuple[str, ...] = ("user", "undo", "retry", "auto_save")
# Baseline hidden recompute: a few percent, as in a healthy product.
TRIGGER_WEIGHTS: tuple[float, ...] = (0.925, 0.02, 0.025, 0.03)

# Features that call a tool, and the tool's health: baseline failure rate, median latency (ms).
FEATURE_TOOL: dict[str, str] = {
    "search_answer": "web_search",
    "doc_qa": "vector_lookup",
    "code_assist": "code_exec",
    "email_draft": "calendar_api",
}
TOOL_FAILURE_RATE: dict[str, float] = {
    "web_search": 0.02,
    "vector_lookup": 0.005,
    "code_exec": 0.03,
    "calendar_api": 0.01,
}
TOOL_LATENCY_MS: dict[str, float] = {
    "web_search": 450.0,
    "vector_lookup": 80.0,
    "code_exec": 1200.0,
    "calendar_api": 250.0,
}
# Tool calls per inference of a tool-using feature: 0, 1, 2 or 3.
TOOL_CALLS_PER_EVENT: tuple[float, ...] = (0.15, 0.50, 0.25, 0.10)

# Clients: mostly browsers, a few API clients (the company's own SDK among them).
USER_AGENTS: dict[str, float] = {
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36": 0.37,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36": 0.17,
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/18.1 Safari/605.1.15": 0.12,
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1": 0.08,
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0": 0.08,
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0": 0.10,
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36": 0.03,
    "python-requests/2.32.3": 0.015,
    "okhttp/4.12.0": 0.01,
    "costwatch-sdk/1.4": 0.02,
}
BOT_USER_AGENTS: tuple[str, ...] = ("python-requests/2.31.0", "Scrapy/2.11.0 (+https://scrapy.org)")
SDK_USER_AGENT = "costwatch-sdk/1.4"

# Routine changes sprinkled over the period (noise the diagnosis must not blame).
ROUTINE_CHANGES: tuple[tuple[str, str | None, str], ...] = (
    ("deploy", None, "release {n}: dependency bumps and UI fixes"),
    ("config", "doc_qa", "vector index rebuilt nightly at 02:00 instead of 03:00"),
    ("deploy", "chat", "release {n}: chat markdown rendering"),
    ("config", None, "request timeout raised 30s -> 45s"),
    ("deploy", "code_assist", "release {n}: syntax highlighting for Rust"),
    ("feature_flag", "translate", "flag translate_glossary enabled for all tenants"),
)
