"""The results: one row per figure, each against its baseline and goal, written as
bench/results.md (for people, committed) and bench/results.json (everything measured).

A figure alone says little; the table puts each next to the floor the database sets for
the same work (the baseline) and the goal the issue states, and says whether it is met.
"""

import json
import math
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class GoalKind(StrEnum):
    RATIO_AT_LEAST = "ratio_at_least"
    RATIO_AT_MOST = "ratio_at_most"
    AT_MOST = "at_most"


@dataclass(frozen=True, slots=True)
class Goal:
    kind: GoalKind
    value: float
    text: str

    def met(self, figure: float, ratio: float | None) -> bool:
        if self.kind is GoalKind.AT_MOST:
            return figure <= self.value
        if ratio is None or math.isnan(ratio):
            return False
        if self.kind is GoalKind.RATIO_AT_LEAST:
            return ratio >= self.value
        return ratio <= self.value


@dataclass(frozen=True, slots=True)
class Row:
    scenario: str
    figure: float
    unit: str
    baseline: float | None = None
    baseline_label: str = ""
    goal: Goal | None = None
    errors: int = 0

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.figure / self.baseline

    @property
    def met(self) -> bool | None:
        """None without a goal; a row whose operations failed never meets its goal."""
        if self.goal is None:
            return None
        return self.errors == 0 and self.goal.met(self.figure, self.ratio)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "figure": self.figure,
            "unit": self.unit,
            "baseline": self.baseline,
            "baseline_label": self.baseline_label,
            "ratio": self.ratio,
            "goal": self.goal.text if self.goal else None,
            "met": self.met,
            "errors": self.errors,
        }


@dataclass
class ScenarioResult:
    name: str
    rows: list[Row]
    data: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    profile: list[str] = field(default_factory=list)
    """Markdown lines about a profile of the scenario, if one was taken."""


def _number(value: float, unit: str) -> str:
    if math.isnan(value):
        return "n/a"
    if unit == "ops/s":
        return f"{value:,.0f} {unit}"
    if unit == "ms" and value < 10:
        return f"{value:,.2f} {unit}"
    return f"{value:,.1f} {unit}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def table(rows: list[Row]) -> list[str]:
    lines = [
        "| scenario | figure | baseline | ratio | goal | met |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for row in rows:
        baseline = (
            f"{_number(row.baseline, row.unit)} ({row.baseline_label})"
            if row.baseline is not None
            else "-"
        )
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}"
        met = {None: "-", True: "yes", False: "**no**"}[row.met]
        figure = _number(row.figure, row.unit)
        if row.errors:
            figure += f" ({row.errors} errors)"
        lines.append(
            f"| {_cell(row.scenario)} | {figure} | {_cell(baseline)} | {ratio} | "
            f"{_cell(row.goal.text if row.goal else '-')} | {met} |"
        )
    return lines


def markdown(
    *, machine: dict[str, Any], settings: dict[str, Any], results: list[ScenarioResult]
) -> str:
    rows = [row for result in results for row in result.rows]
    goals = [row for row in rows if row.met is not None]
    met = sum(1 for row in goals if row.met)
    lines = [
        "# Benchmark results",
        "",
        "Written by `make bench` (`python -m bench`); the raw figures are in `bench/results.json`.",
        "",
        f"**Machine:** {machine['cores']} cores ({machine['cpu']}), {machine['python']}, "
        f"database {machine['database']}, {machine['platform']}, {machine['date']}, "
        f"load average {machine['load_average']} at the start. "
        f"Each measurement: {settings['warmup']:g} s warm-up, then {settings['seconds']:g} s; "
        f"the whole run took {settings['elapsed_seconds']:.0f} s.",
        "",
        *table(rows),
        "",
        f"{met} of {len(goals)} goals met.",
        "",
        "## What each row measures",
        "",
    ]
    for result in results:
        lines.extend(f"- {note}" for note in result.notes)
    for result in results:
        if result.profile:
            lines.extend(["", *result.profile])
    return "\n".join(lines) + "\n"


def write(
    directory: Path,
    *,
    machine: dict[str, Any],
    settings: dict[str, Any],
    results: list[ScenarioResult],
) -> None:
    (directory / "results.md").write_text(
        markdown(machine=machine, settings=settings, results=results)
    )
    document = {
        "machine": machine,
        "settings": settings,
        "rows": [row.as_json() for result in results for row in result.rows],
        "scenarios": {result.name: result.data for result in results},
    }
    (directory / "results.json").write_text(
        json.dumps(_finite(document), indent=2, default=str) + "\n"
    )


def _finite(value: Any) -> Any:
    """NaN (a percentile of nothing) as null: JSON has no NaN."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
