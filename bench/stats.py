"""Figures (repeated samples), rows of the results table, targets and their marks."""

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

MET, NOT_MET, NOT_MEASURED = "met", "not met", "not measured"


@dataclass(frozen=True)
class Figure:
    """One quantity measured once per repetition: its median, min and max."""

    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Figure":
        if not samples:
            raise ValueError("a figure needs at least one sample")
        return cls(tuple(float(s) for s in samples))

    @property
    def median(self) -> float:
        return float(statistics.median(self.samples))

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)


def ratios(subject: Sequence[float], baseline: Sequence[float]) -> Figure:
    """subject ÷ baseline, repetition by repetition (each pair was measured back to back)."""
    if len(subject) != len(baseline):
        raise ValueError("subject and baseline need the same repetitions")
    return Figure.of([s / b if b else float("inf") for s, b in zip(subject, baseline, strict=True)])


@dataclass(frozen=True)
class Row:
    """A figure and its ratio against the baseline measured in the same run."""

    group: str  # "B1"
    measure: str
    unit: str
    value: Figure
    baseline: str  # what it is compared with
    ratio: Figure | None  # value ÷ baseline, per repetition; None only for a baseline itself
    baseline_value: Figure | None = None
    baseline_unit: str = ""  # when not the figure's own unit


@dataclass(frozen=True)
class Target:
    """A target of the issue and whether this run met it."""

    group: str
    target: str  # "POST /add req/s at 32 clients ≥ 0.6× bare"
    got: str  # the figure that decides, as text
    mark: str  # MET, NOT_MET or NOT_MEASURED
    note: str = ""


def check(
    group: str, target: str, figure: Figure, unit: str, ok: Callable[[float], bool], note: str = ""
) -> Target:
    """A target decided by a figure's median."""
    got = f"{fmt(figure.median)}{unit} (min {fmt(figure.low)}, max {fmt(figure.high)})"
    return Target(group, target, got, MET if ok(figure.median) else NOT_MET, note)


def fmt(x: float) -> str:
    """A number with about three significant digits."""
    if math.isnan(x) or math.isinf(x):
        return str(x)
    a = abs(x)
    if a >= 1000:
        return f"{x:,.0f}"
    if a >= 100:
        return f"{x:.0f}"
    if a >= 10:
        return f"{x:.1f}"
    if a >= 1:
        return f"{x:.2f}"
    return f"{x:.3f}"


@dataclass
class Results:
    """Everything one run found."""

    rows: list[Row] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def add_rss_rows(
    results: Results,
    subject: tuple[str, str],
    baseline: tuple[str, str],
    samples: Sequence[tuple[str, Sequence[float], Sequence[float]]],
) -> None:
    """B7: a row and a ≤ 1.3× target for each (when, subject MiB, baseline MiB).

    `subject` and `baseline` are each (name in the row, name in the target).
    """
    for when, mib, base_mib in samples:
        ratio = ratios(mib, base_mib)
        results.rows.append(
            Row(
                "B7",
                f"{subject[0]}, {when}",
                "MiB",
                Figure.of(mib),
                f"{baseline[0]}, {when}",
                ratio,
                Figure.of(base_mib),
            )
        )
        target = f"{subject[1]} {when} ≤ 1.3× {baseline[1]}"
        results.targets.append(check("B7", target, ratio, "×", lambda x: x <= 1.3))
