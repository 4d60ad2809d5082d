"""Usage as CSV: exactly the series the Usage page charts and ``GET /api/usage`` returns."""

from __future__ import annotations

import csv
import io

from usage.models import Granularity
from usage.selectors import UsageSummary

COLUMNS = (
    "start",
    "provider",
    "model",
    "requests",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "cost_usd",
)
# A cell starting with one of these is a formula to Excel, LibreOffice and Sheets.
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def cost_usd(micros: int) -> str:
    """Micro-dollars as an exact decimal string of dollars: 12345678 → ``"12.345678"``."""
    dollars, rest = divmod(micros, 1_000_000)
    return f"{dollars}.{rest:06d}"


def _cell(text: str) -> str:
    """Provider-chosen text as a cell no spreadsheet runs as a formula (OWASP's advice:
    a leading single quote)."""
    return f"'{text}" if text.startswith(_FORMULA_STARTS) else text


def usage_csv_filename(summary: UsageSummary) -> str:
    return f"kay-usage-{summary.start:%Y-%m-%d}-to-{summary.end:%Y-%m-%d}-{summary.granularity}.csv"


def usage_csv(summary: UsageSummary) -> str:
    """The summary's series as CSV, one row per time bucket, provider and model, oldest
    first, with a header row. Columns:

    - ``start``: the bucket's start, UTC: ``YYYY-MM-DD`` for days,
      ``YYYY-MM-DDTHH:MM:SSZ`` for hours;
    - ``provider``, ``model``: as the provider names them (a value that would start a
      spreadsheet formula gets a leading ``'``);
    - ``requests``, ``input_tokens`` (including cached), ``output_tokens``,
      ``cached_tokens``: integers;
    - ``cost_usd``: dollars as an exact decimal string with six decimals.

    The rows add up to the summary's totals."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    daily = summary.granularity == Granularity.DAY
    for point in summary.series:
        figures = point.figures
        writer.writerow(
            (
                f"{point.start:%Y-%m-%d}" if daily else f"{point.start:%Y-%m-%dT%H:%M:%SZ}",
                _cell(point.provider),
                _cell(point.model),
                figures.requests,
                figures.input_tokens,
                figures.output_tokens,
                figures.cached_tokens,
                cost_usd(figures.cost_micros),
            )
        )
    return out.getvalue()
