"""One result row and one Markdown table for the engine and adapter benchmarks."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Row:
    benchmark: str
    case: str
    calls: int
    median_us: float
    best_round_median_us: float
    p90_us: float
    p99_us: float
    target_us: float | None = None


def print_table(rows: Iterable[Row], *, decimals: int) -> bool:
    """Print the rows as a Markdown table; True when a row missed its target."""
    print("| case | median | best round median | p90 | p99 | target |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    missed = False
    for row in rows:
        verdict = ""
        if row.target_us is not None:
            ok = row.median_us <= row.target_us
            missed |= not ok
            verdict = f"<= {row.target_us:g} us: " + ("ok" if ok else "MISSED")
        print(
            f"| {row.case} | {row.median_us:.{decimals}f} us "
            f"| {row.best_round_median_us:.{decimals}f} us "
            f"| {row.p90_us:.{decimals}f} us | {row.p99_us:.{decimals}f} us | {verdict} |"
        )
    return missed
