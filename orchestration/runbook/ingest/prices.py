"""The dated price table (dbt seed `model_prices`), built from the pinned `genai-prices` package.

The package ships its price data as Python (`genai_prices.data`); nothing is downloaded, ever:
`costwatch prices refresh` rewrites the CSV from the installed version, so a price change is a
package upgrade plus a reviewed diff of the seed. Users add or override prices in the
`model_prices_custom` seed (same columns), which wins over this one per model, provider and
usage type.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib.metadata import version
from pathlib import Path

from orchestration.core.database import PROJECT_ROOT

COLUMNS = (
    "model",
    "provider",
    "usage_type",
    "usd_per_token",
    "effective_from",
    "source",
    "is_default",
)
# genai-prices' keys (USD per million tokens) and costwatch's usage types.
USAGE_KEYS = {
    "input_mtok": "input",
    "output_mtok": "output",
    "cache_read_mtok": "cached_input",
    "cache_write_mtok": "cache_write",
}
# A price with no start date has always applied.
ALWAYS = date(1970, 1, 1)
SEEDS = PROJECT_ROOT / "dbt_project" / "seeds"
SEED_PATH = SEEDS / "model_prices.csv"
CUSTOM_SEED_PATH = SEEDS / "model_prices_custom.csv"


@dataclass(frozen=True)
class PriceRow:
    model: str
    provider: str
    usage_type: str
    usd_per_token: Decimal
    effective_from: date
    source: str
    is_default: bool = False


def model_names(model: object) -> list[str]:
    """The model's id and every exact name its match logic accepts (lower-cased, deduplicated).

    Suffix, substring and regex clauses cannot be listed, and a prefix is listed as itself:
    staging matches exact names (users add their aliases to `model_prices_custom`).
    """
    names = [str(model.id).lower()]

    def walk(clause: object) -> None:
        if hasattr(clause, "equals"):
            names.append(str(clause.equals).lower())
        elif hasattr(clause, "starts_with"):
            # the prefix itself names the model (`claude-3-5-haiku` for `claude-3-5-haiku-*`)
            names.append(str(clause.starts_with).lower().rstrip("-@.:/"))
        elif hasattr(clause, "or_"):
            for inner in clause.or_:
                walk(inner)

    walk(model.match)
    return list(dict.fromkeys(names))


def dated_prices(model: object) -> dict[date, object]:
    """{effective_from: ModelPrice} of a model: its fixed price, or its start-dated prices.

    genai-prices' rules: the last active conditional price wins, and the first one applies when
    none is active (so it has always applied). Time-of-day prices (off-peak discounts) are left
    out: the standard price applies.
    """
    prices = model.prices
    if not isinstance(prices, list):
        return {ALWAYS: prices}
    dated: dict[date, object] = {}
    for index, conditional in enumerate(prices):
        constraint = conditional.constraint
        if index == 0 or constraint is None:
            dated[ALWAYS] = conditional.prices
        elif hasattr(constraint, "start_date"):
            dated[constraint.start_date] = conditional.prices
    return dated


def _per_token(value: object) -> Decimal | None:
    if value is None:
        return None
    base = getattr(value, "base", value)  # tiered prices: the base tier
    if not isinstance(base, Decimal):
        return None
    return base / Decimal(1_000_000)


def package_version() -> str:
    return f"genai-prices=={version('genai-prices')}"


def price_rows(providers: Iterable[object] | None = None) -> list[PriceRow]:
    """Every token price of the installed genai-prices data, one row per name and usage type."""
    if providers is None:
        # Start-up time: genai-prices' data (0.2 s to import) loads for a price refresh only.
        from genai_prices.data import providers as shipped

        providers = shipped
    source = package_version()
    rows: dict[tuple[str, str, str, date], PriceRow] = {}
    for provider in providers:
        for model in provider.models:
            names = model_names(model)
            for effective_from, prices in dated_prices(model).items():
                values = getattr(prices, "__dict__", {})
                for key, usage_type in USAGE_KEYS.items():
                    per_token = _per_token(values.get(key))
                    if per_token is None:
                        continue
                    for name in names:
                        row = PriceRow(
                            name, provider.id, usage_type, per_token, effective_from, source
                        )
                        # The first model of a provider claiming a name keeps it.
                        rows.setdefault((name, provider.id, usage_type, effective_from), row)
    defaults = _default_providers({row.model for row in rows.values()}, providers)
    return sorted(
        (
            PriceRow(**{**row.__dict__, "is_default": defaults.get(row.model) == row.provider})
            for row in rows.values()
        ),
        key=lambda r: (r.model, r.provider, r.usage_type, r.effective_from),
    )


def _default_providers(names: set[str], providers: Iterable[object]) -> dict[str, str]:
    """The provider genai-prices picks for a model name given alone (its first party, mostly):
    the price used for an event whose provider is missing or has no price of its own."""
    # Start-up time: as in price_rows.
    from genai_prices.data_snapshot import DataSnapshot

    snapshot = DataSnapshot(providers=list(providers), from_auto_update=False)
    out: dict[str, str] = {}
    for name in sorted(names):
        try:
            provider, _ = snapshot.find_provider_model(name, None, None, None)
        except LookupError:
            continue
        out[name] = provider.id
    return out


def to_csv(rows: Iterable[PriceRow]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(
            (
                row.model,
                row.provider,
                row.usage_type,
                format(row.usd_per_token.normalize(), "f"),
                row.effective_from.isoformat(),
                row.source,
                "true" if row.is_default else "false",
            )
        )
    return out.getvalue()


def refresh(path: Path = SEED_PATH) -> int:
    """Rewrite the price seed from the installed package; return the number of rows."""
    rows = price_rows()
    path.write_text(to_csv(rows))
    if not CUSTOM_SEED_PATH.exists():
        CUSTOM_SEED_PATH.write_text(",".join(COLUMNS) + "\n")
    return len(rows)
