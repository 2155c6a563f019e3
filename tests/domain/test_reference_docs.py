import re
from datetime import UTC, datetime
from pathlib import Path

import yaml

from signoff.domain.calendar import WALL_CLOCK
from signoff.domain.simulation import simulate
from signoff.domain.states import StepState
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
