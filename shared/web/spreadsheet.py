"""Cells of CSV exports that spreadsheets will open."""

from __future__ import annotations


def safe_cell(value: str | None) -> str:
    """Spreadsheet formula injection: a cell starting with = + - @ is read as a formula."""
    text_value = value or ""
    return "'" + text_value if text_value[:1] in ("=", "+", "-", "@") else text_value
