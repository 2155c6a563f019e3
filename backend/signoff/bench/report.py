"""`docs/benchmarks.json` (raw runs) and `docs/benchmarks.md` (rendered from it).

Each scenario has its own entry; writing the results of some scenarios replaces their entries
and keeps the others, so re-running one scenario updates its section without erasing the rest.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from signoff.bench.machine import machine_line
from signoff.bench.model import Figure, ScenarioResult, fmt

FORMAT = 1

HEADER = """# Benchmarks

Written by `signoff bench` from `docs/benchmarks.json`; do not edit by hand. Run it from a
clean clone after the README's set-up:

```sh
signoff bench                      # every scenario, full sizes
signoff bench decisions export     # only these; the other sections stay as they are
signoff bench --quick decisions    # small sizes: a development run, not a measurement
signoff bench --list               # the scenarios
signoff bench --profile decisions  # also py-spy every process it starts (summary in the log dir)
```

How to read the tables: every figure is the **median of its runs** with the min and max; the
1-minute **load average** before → after each run is listed beside it, since a figure taken
on a busy machine is not comparable with one taken on a quiet machine. Each figure sits beside
its **baseline measured in the same run**, alternated with it (A B, B A, A B), and its
**target** is judged on medians: met, missed (with why and what would fix it), or not built.
"""


def load(path: Path) -> dict[str, Any]:
    """The stored results (an empty document when there are none yet)."""
    if path.exists():
        data: dict[str, Any] = json.loads(path.read_text())
        if data.get("format") == FORMAT:
            return data
    return {"format": FORMAT, "scenarios": {}}


def record(data: dict[str, Any], result: ScenarioResult, run: dict[str, Any]) -> None:
    """Put one scenario's result (and how it was run) into `data`, replacing its last one."""
    data["scenarios"][result.name] = {"result": result.to_dict(), "run": run}


def save(data: dict[str, Any], json_path: Path, markdown_path: Path) -> None:
    """Write the JSON and the Markdown rendered from it."""
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(_finite(data), indent=1, sort_keys=False) + "\n")
    markdown_path.write_text(render(data))


def _finite(value: Any) -> Any:
    """JSON has no NaN: store unknown numbers as null."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


_NUMERIC = {"value", "load_before", "load_after"}


def _revive(data: Any) -> Any:
    """Turn the nulls of stored runs back into NaN."""
    if isinstance(data, dict):
        return {
            k: (math.nan if v is None and k in _NUMERIC else _revive(v)) for k, v in data.items()
        }
    if isinstance(data, list):
        return [_revive(v) for v in data]
    return data


def render(data: dict[str, Any]) -> str:
    """The whole `docs/benchmarks.md`."""
    entries = [
        (ScenarioResult.from_dict(_revive(e["result"])), e["run"])
        for e in data.get("scenarios", {}).values()
    ]
    parts = [HEADER]
    if entries:
        parts.append(_summary(entries))
    for result, run in entries:
        parts.append(_section(result, run))
    return "\n".join(parts).rstrip() + "\n"


def _summary(entries: list[tuple[ScenarioResult, dict[str, Any]]]) -> str:
    lines = [
        "## Summary",
        "",
        "| scenario | figure | median | target | verdict |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result, run in entries:
        label = f"[{result.name}](#{_anchor(result)})"
        if run.get("quick"):
            label += " (dev run)"
        if run.get("error"):
            lines.append(f"| {label} | — | — | — | **failed** |")
            continue
        for figure in result.figures:
            if figure.target is None and not figure.not_built:
                continue
            lines.append(
                f"| {label} | {figure.name} | {_value(figure)} | {_target(figure)} | "
                f"{_verdict(figure)} |"
            )
    return "\n".join(lines) + "\n"


def _anchor(result: ScenarioResult) -> str:
    """The anchor GitHub gives the section's heading: punctuation dropped, spaces to hyphens."""
    text = f"{result.name} {result.title}".strip().lower()
    kept = "".join(c for c in text if c.isalnum() or c in " -_")
    return kept.replace(" ", "-")


def _section(result: ScenarioResult, run: dict[str, Any]) -> str:
    lines = [f"## {result.name} {result.title}".rstrip(), ""]
    if run.get("quick"):
        lines += [
            "> **Development run** (`--quick` sizes, on a shared machine): these numbers prove "
            "that the scenario works; they are not a measurement.",
            "",
        ]
    lines.append(
        f"Taken {run.get('started_at', '?')} in {run.get('seconds', 0):.0f} s, "
        f"{run.get('repeats', '?')} runs per figure, on {machine_line(run.get('machine', {}))}."
    )
    if result.parameters:
        params = ", ".join(f"{k} = {v}" for k, v in result.parameters.items())
        lines.append(f"Parameters: {params}.")
    lines.append("")
    if run.get("error"):
        lines += ["**The scenario failed:**", "", "```", str(run["error"]).rstrip(), "```", ""]
    if result.figures:
        lines += [
            "| figure | median | min - max | load avg per run | same-run baseline | ratio | "
            "target | verdict |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [_row(f) for f in result.figures]
        lines.append("")
    missed = [f for f in result.figures if f.verdict == "missed"]
    if missed:
        lines += ["Missed targets:", ""]
        lines += _missed(missed)
    not_built = [f for f in result.figures if f.not_built]
    if not_built:
        lines += [f"- **{f.name}**: not built yet — {f.not_built}" for f in not_built]
        lines.append("")
    if result.notes:
        lines += ["Notes:", ""]
        lines += [f"- {note}" for note in result.notes]
        lines.append("")
    return "\n".join(lines)


def _sentences(text: str) -> list[str]:
    """`text` cut after each ". " (a decimal point is never followed by a space)."""
    parts = text.split(". ")
    return [p + "." for p in parts[:-1]] + [parts[-1]]


def _missed(missed: list[Figure]) -> list[str]:
    """Why each missed figure misses. Figures whose explanations differ only in their first
    sentence (the figure's own numbers) share the rest: it is written once, after them."""
    groups: dict[str, list[tuple[Figure, str]]] = {}
    for figure in missed:
        first, *others = _sentences(figure.if_missed or "no explanation given.")
        groups.setdefault(" ".join(others), []).append((figure, first))
    lines: list[str] = []
    for shared, members in groups.items():
        if len(members) == 1 or not shared:
            lines += [
                f"- **{f.name}**: {f.if_missed or 'no explanation given.'}" for f, _ in members
            ]
            lines.append("")
            continue
        lines += [f"- **{f.name}**: {first}" for f, first in members]
        lines += ["", f"Why, for each of the {len(members)} figures above: {shared}", ""]
    return lines


def _value(figure: Figure) -> str:
    if figure.not_built:
        return "not built"
    return f"{fmt(figure.median)} {figure.unit}".rstrip()


def _row(figure: Figure) -> str:
    if figure.not_built:
        spread, loads = "—", "—"
    else:
        spread = f"{fmt(figure.minimum)} - {fmt(figure.maximum)}"
        loads = ", ".join(f"{fmt(r.load_before)}→{fmt(r.load_after)}" for r in figure.runs)
    base = "—"
    if figure.baseline is not None:
        b = figure.baseline
        base = f"{b.name}: {_value(b)}"
        if b.values:
            base += f" ({fmt(b.minimum)} - {fmt(b.maximum)})"
    ratio = figure.ratio
    ratio_text = f"{ratio:.2f}" if ratio is not None and not math.isnan(ratio) else "—"
    return (
        f"| {figure.name} | {_value(figure)} | {spread} | {loads} | {base} | {ratio_text} | "
        f"{_target(figure)} | {_verdict(figure)} |"
    )


def _target(figure: Figure) -> str:
    return figure.target.describe(figure.unit) if figure.target is not None else "—"


def _verdict(figure: Figure) -> str:
    verdict = figure.verdict
    return {"met": "met", "missed": "**missed**", "not built": "*not built*"}.get(verdict, verdict)
