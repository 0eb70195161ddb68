"""Markdown tables of result rows, as the benchmarks and evaluation CLIs print them."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Mapping[str, str]) -> str:
    """One line per row: ``columns`` maps each header to a format string over the row's keys, e.g.
    ``{"PA-MPJPE median (cm)": "{median_cm:.1f}"}``."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell.format(**row) for cell in columns.values()) + " |" for row in rows]
    return "\n".join(lines)
