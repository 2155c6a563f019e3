"""What a benchmark scenario measures and reports: runs, figures, targets, results.

Every figure is the median of its runs (with min and max), each run recorded with the 1-minute
load average before and after it, because on a shared machine a figure means little without
the load it was taken under. A figure is paired with the baseline measured in the same run
and judged against a target: an absolute bound or a ratio to that baseline.
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from signoff.bench.env import BenchEnv

Better = Literal["higher", "lower"]
Verdict = Literal["met", "missed", "not built", "no target", "no data"]


def load_average() -> float:
    """The machine's 1-minute load average."""
    try:
        return os.getloadavg()[0]
    except OSError:  # not available on this platform
        return math.nan


def percentile(samples: Sequence[float], pct: float) -> float:
    """The `pct` percentile of `samples`, linearly interpolated (NaN for no samples)."""
    if not samples:
        return math.nan
    if not 0 <= pct <= 100:
        raise ValueError("percentile must be within 0..100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * pct / 100
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


@dataclass(frozen=True)
class Run:
    """One measured value and the load average around the run that produced it."""

    value: float
    load_before: float = math.nan
    load_after: float = math.nan

    def to_dict(self) -> dict[str, float]:
        return {"value": self.value, "load_before": self.load_before, "load_after": self.load_after}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        return cls(
            float(data["value"]),
            float(data.get("load_before", math.nan)),
            float(data.get("load_after", math.nan)),
        )


@dataclass(frozen=True)
class Measured:
    """One run of one measurement: every value it produced, with its load averages."""

    label: str
    values: dict[str, float]
    load_before: float
    load_after: float
    seconds: float


@dataclass
class Runs:
    """The runs of an `alternate` call, in the order they ran."""

    items: list[Measured] = field(default_factory=list)

    def series(self, label: str, key: str) -> list[Run]:
        """The runs of measurement `label`, value `key` of each."""
        runs = [
            Run(m.values[key], m.load_before, m.load_after) for m in self.items if m.label == label
        ]
        if not runs:
            raise KeyError(f"no runs of {label!r}")
        return runs

    def order(self) -> list[str]:
        """The labels in the order they ran (to show that baselines were alternated)."""
        return [m.label for m in self.items]


Measurement = Callable[[], Awaitable[dict[str, float]]]


async def alternate(repeats: int, **measurements: Measurement) -> Runs:
    """Run each measurement `repeats` times, interleaved, and record the load around each run.

    The order rotates every round (A B, B A, A B, ...) so that neither side always runs
    first, on a warmer cache or a calmer machine. Each measurement returns named values
    (e.g. ``{"throughput": ..., "p99_ms": ...}``).
    """
    if repeats < 1 or not measurements:
        raise ValueError("need at least one repeat and one measurement")
    labels = list(measurements)
    runs = Runs()
    for round_no in range(repeats):
        shift = round_no % len(labels)
        for label in labels[shift:] + labels[:shift]:
            before, started = load_average(), time.perf_counter()
            values = await measurements[label]()
            runs.items.append(
                Measured(
                    label,
                    {k: float(v) for k, v in values.items()},
                    before,
                    load_average(),
                    time.perf_counter() - started,
                )
            )
    return runs


@dataclass(frozen=True)
class Target:
    """What a figure must reach: an absolute bound, or a ratio to its same-run baseline.

    Judged on medians. ``Target.ratio_at_least(0.4)`` means "at least 40% of the baseline".
    """

    kind: Literal["at_least", "at_most", "ratio_at_least", "ratio_at_most"]
    bound: float

    @classmethod
    def at_least(cls, bound: float) -> Target:
        return cls("at_least", bound)

    @classmethod
    def at_most(cls, bound: float) -> Target:
        return cls("at_most", bound)

    @classmethod
    def ratio_at_least(cls, ratio: float) -> Target:
        return cls("ratio_at_least", ratio)

    @classmethod
    def ratio_at_most(cls, ratio: float) -> Target:
        return cls("ratio_at_most", ratio)

    @property
    def is_ratio(self) -> bool:
        return self.kind.startswith("ratio")

    def describe(self, unit: str) -> str:
        """The target in words, e.g. ``< 50 ms`` or ``>= 40% of baseline``."""
        op = "≥" if self.kind.endswith("at_least") else "≤"
        if self.is_ratio:
            if self.bound <= 1 and self.kind == "ratio_at_least":
                return f"{op} {self.bound:.0%} of baseline"
            return f"{op} {self.bound:g}x baseline"
        return f"{op} {_fmt(self.bound)} {unit}".rstrip()

    def met_by(self, value: float, baseline: float | None) -> bool | None:
        """Whether `value` meets the target (None when it cannot be judged)."""
        if math.isnan(value):
            return None
        if self.is_ratio:
            if baseline is None or math.isnan(baseline) or baseline == 0:
                return None
            value = value / baseline
        if self.kind.endswith("at_least"):
            return value >= self.bound
        return value <= self.bound

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "bound": self.bound}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Target:
        return cls(data["kind"], float(data["bound"]))


@dataclass
class Figure:
    """One reported figure: its runs, its same-run baseline and its target."""

    name: str
    unit: str
    better: Better
    runs: list[Run] = field(default_factory=list)
    baseline: Figure | None = None
    target: Target | None = None
    if_missed: str = ""
    not_built: str = ""

    @classmethod
    def missing(cls, name: str, unit: str, better: Better, reason: str, **kw: Any) -> Figure:
        """A figure whose feature does not exist yet; reported as "not built"."""
        return cls(name, unit, better, not_built=reason or "not built yet", **kw)

    @classmethod
    def none_allowed(cls, name: str, runs: list[Run], if_missed: str) -> Figure:
        """A count that must be 0 in every run (missed timers, failed deliveries, ...)."""
        return cls(name, "", "lower", runs, target=Target.at_most(0), if_missed=if_missed)

    @property
    def values(self) -> list[float]:
        return [r.value for r in self.runs if not math.isnan(r.value)]

    @property
    def median(self) -> float:
        return statistics.median(self.values) if self.values else math.nan

    @property
    def minimum(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def maximum(self) -> float:
        return max(self.values) if self.values else math.nan

    @property
    def ratio(self) -> float | None:
        """Median over the baseline's median, when there is a baseline."""
        if self.baseline is None or not self.baseline.median or math.isnan(self.baseline.median):
            return None
        return self.median / self.baseline.median

    @property
    def verdict(self) -> Verdict:
        if self.not_built:
            return "not built"
        if not self.values:
            return "no data"
        if self.target is None:
            return "no target"
        base = self.baseline.median if self.baseline is not None else None
        met = self.target.met_by(self.median, base)
        if met is None:
            return "no data"
        return "met" if met else "missed"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "unit": self.unit,
            "better": self.better,
            "runs": [r.to_dict() for r in self.runs],
            "median": self.median,
            "min": self.minimum,
            "max": self.maximum,
            "baseline": self.baseline.to_dict() if self.baseline is not None else None,
            "target": self.target.to_dict() if self.target is not None else None,
            "verdict": self.verdict,
            "if_missed": self.if_missed,
            "not_built": self.not_built,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Figure:
        return cls(
            name=data["name"],
            unit=data["unit"],
            better=data["better"],
            runs=[Run.from_dict(r) for r in data.get("runs", [])],
            baseline=cls.from_dict(data["baseline"]) if data.get("baseline") else None,
            target=Target.from_dict(data["target"]) if data.get("target") else None,
            if_missed=data.get("if_missed", ""),
            not_built=data.get("not_built", ""),
        )


@dataclass
class ScenarioResult:
    """What one scenario reports: figures, the sizes it used, and free-text notes."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)

    def add(self, figure: Figure) -> Figure:
        self.figures.append(figure)
        return figure

    def note(self, text: str) -> None:
        self.notes.append(text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "figures": [f.to_dict() for f in self.figures],
            "notes": list(self.notes),
            "parameters": dict(self.parameters),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ScenarioResult:
        return cls(
            name=data["name"],
            title=data["title"],
            figures=[Figure.from_dict(f) for f in data.get("figures", [])],
            notes=list(data.get("notes", [])),
            parameters=dict(data.get("parameters", {})),
        )


@dataclass(frozen=True)
class Scenario:
    """A benchmark scenario: a module of `signoff.bench.scenarios` exposes one as SCENARIO."""

    name: str
    title: str
    run: Callable[[BenchEnv], Awaitable[ScenarioResult]]
    description: str = ""

    def result(self) -> ScenarioResult:
        """An empty result named after this scenario."""
        return ScenarioResult(self.name, self.title)


def _fmt(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def fmt(value: float) -> str:
    """A figure's value, rounded for reading."""
    return _fmt(value)
