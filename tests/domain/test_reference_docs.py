import re
from datetime import UTC, datetime
from pathlib import Path

import yaml

from signoff.domain.calendar import WALL_CLOCK
from signoff.domain.dependencies import Outcome, failure_outcome
from signoff.domain.simulation import simulate
from signoff.domain.states import StepState
from signoff.domain.template_model import Dependency, DependencyEffect, Resolution
from signoff.domain.template_parsing import _STEP_KEYS, _TEMPLATE_KEYS
from signoff.domain.templates import parse_template, plan_to_template

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reference" / "templates.md"


def yaml_blocks():
    return [yaml.safe_load(b) for b in re.findall(r"```yaml\n(.*?)```", DOC.read_text(), re.S)]


def test_full_example_in_docs_parses_and_branches_work():
    defn = parse_template(yaml_blocks()[0])
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)
    payload = {"vendor": "ACME", "annual_value": 10}
    standard = simulate(
        defn, payload, now=now, calendar=WALL_CLOCK, requester="r", decisions={"route": "standard"}
    )
    assert standard.step("legal").state is StepState.SKIPPED
    assert standard.step("finance").state is StepState.APPROVED
    assert standard.step("done").state is StepState.APPROVED
    assert standard.outcome == "approved"
    high = simulate(
        defn,
        payload,
        now=now,
        calendar=WALL_CLOCK,
        requester="r",
        decisions={"route": "high-value"},
    )
    assert high.step("finance").state is StepState.SKIPPED
    assert high.step("legal").state is StepState.APPROVED


def test_plan_example_in_docs_adopts_onto_the_demo_base():
    base = parse_template(
        yaml.safe_load((ROOT / "backend/signoff/demo/agent-plan.yaml").read_text())
    )
    defn = plan_to_template(yaml_blocks()[1], base)
    assert defn.topological_order() == ["lookup", "email"]


def test_a_plan_goes_ahead_with_the_steps_people_approved():
    base = parse_template(
        yaml.safe_load((ROOT / "backend/signoff/demo/agent-plan.yaml").read_text())
    )
    defn = plan_to_template(
        {
            "steps": [
                {"key": "a", "action": "create_event", "risk": "medium"},
                {"key": "b", "action": "update_task", "risk": "medium"},
            ]
        },
        base,
    )
    result = simulate(
        defn,
        {},
        now=datetime(2026, 1, 5, tzinfo=UTC),
        calendar=WALL_CLOCK,
        requester="agent",
        decisions={"b": "reject"},
    )
    assert result.outcome == "approved"
    assert [s.state.value for s in result.steps] == ["approved", "rejected"]


def table_after(heading: str) -> list[list[str]]:
    """The rows (cells stripped) of the first table after `heading` in templates.md."""
    section = DOC.read_text().split(f"\n{heading}\n", 1)[1]
    rows: list[list[str]] = []
    for line in section.splitlines():
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip("|").split("|")])
        elif rows:
            break
    return [row for row in rows[1:] if not set(row[0]) <= set("- ")]


def documented_keys(heading: str) -> set[str]:
    return {key for row in table_after(heading) for key in re.findall(r"`(\w+)`", row[0])}


def test_the_key_tables_name_every_key_the_parser_accepts_and_no_other():
    assert documented_keys("## Top-level keys") == _TEMPLATE_KEYS
    assert documented_keys("## Step keys") == _STEP_KEYS


#: The words of the dependency table, and what the progression calls them.
WORDS = {
    "go on without it": Outcome.NONE,
    "skip this step": Outcome.SKIP,
    "go on with the fallback value": Outcome.FALLBACK,
    "hold until a person chooses": Outcome.ASK_USER,
}


def test_the_dependency_table_is_what_the_progression_does():
    rows = table_after("When an upstream step is rejected, expired or failed:")
    assert [row[0] for row in rows] == [f"`{r.value}`" for r in Resolution]
    for row in rows:
        resolution = Resolution(row[0].strip("`"))
        for effect, cell in zip(DependencyEffect, row[1:], strict=True):
            dep = Dependency("up", effect, resolution)
            text = re.sub(r"\s*\(seed 003.*\)$", "", cell)
            if text.startswith("wait"):  # until the upstream is final (skipped or cancelled)
                assert (failure_outcome(dep, False), failure_outcome(dep, True)) == (
                    Outcome.WAIT,
                    Outcome.SKIP,
                ), (resolution, effect)
            else:
                assert failure_outcome(dep, False) is WORDS[text], (resolution, effect)
                assert failure_outcome(dep, True) is WORDS[text], (resolution, effect)
