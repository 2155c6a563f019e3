"""The typed input of an agent plan (`SubmitItemInput.agentPlan`).

It is read into the document `domain/templates.py::plan_to_template` reads, the same one the
untyped `plan` JSON gives, so both spellings get exactly the same validation and make the
same steps; problem paths (`plan.steps[1].depends_on[0].step`) point into it either way.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.scalars import JSON

from signoff.api.enums import DependencyEffect, Resolution, RiskLevel


@strawberry.input(description="How a plan step depends on an earlier one.")
class AgentPlanDependencyInput:
    step: str = strawberry.field(description="Key of the upstream step.")
    effect: DependencyEffect = strawberry.field(
        default=DependencyEffect.BLOCKS, description="How much it needs the upstream step."
    )
    resolution: Resolution = strawberry.field(
        default=Resolution.WAIT, description="What to do when the upstream step does not succeed."
    )
    fallback: JSON | None = strawberry.field(
        default=None,
        description="With resolution FALLBACK: the value to go on with (its shape is the "
        "step's params').",
    )
    when: str | None = strawberry.field(
        default=None, description="A condition on the upstream step's result, if any."
    )


@strawberry.input(description="One step of an agent plan: what it will do.")
class AgentPlanStepInput:
    key: str = strawberry.field(description="Key, unique in the plan.")
    action: str = strawberry.field(description="What the step will do (`send_email`).")
    name: str | None = strawberry.field(
        default=None, description="Display name (default: the description, else the action)."
    )
    description: str | None = strawberry.field(default=None, description="What it is for.")
    params: JSON | None = strawberry.field(
        default=None,
        description="The action's parameters (an object; its shape is the action's).",
    )
    risk: RiskLevel | None = strawberry.field(
        default=None,
        description="The risk the agent declares; signoff may assess it higher, never lower.",
    )
    depends_on: list[AgentPlanDependencyInput] | None = strawberry.field(
        default=None, description="Earlier steps it depends on."
    )
    expected_outcome: str | None = strawberry.field(
        default=None, description="What should be true once it ran."
    )
    estimated_time: str | None = strawberry.field(
        default=None, description="How long it should take, as the agent puts it."
    )
    required_permissions: list[str] | None = strawberry.field(
        default=None, description="Permissions the action needs where it runs."
    )


@strawberry.input(description="An agent plan: the steps an agent asks to be allowed to take.")
class AgentPlanInput:
    title: str | None = strawberry.field(
        default=None, description="The plan's title (default: the template's name)."
    )
    summary: str | None = strawberry.field(default=None, description="What the plan does.")
    steps: list[AgentPlanStepInput] = strawberry.field(description="Its steps, in order.")


def _dependency(dep: AgentPlanDependencyInput) -> dict[str, Any]:
    document: dict[str, Any] = {
        "step": dep.step,
        "effect": dep.effect.value,
        "resolution": dep.resolution.value,
    }
    if dep.fallback is not None:
        document["fallback"] = dep.fallback
    if dep.when is not None:
        document["when"] = dep.when
    return document


def plan_document(plan: AgentPlanInput) -> dict[str, Any]:
    """The plan as the document `plan_to_template` reads (what the untyped `plan` carries)."""
    steps = []
    for step in plan.steps:
        document: dict[str, Any] = {"key": step.key, "action": step.action}
        optional = {
            "name": step.name,
            "description": step.description,
            "params": step.params,
            "risk": step.risk.value if step.risk is not None else None,
            "expected_outcome": step.expected_outcome,
            "estimated_time": step.estimated_time,
            "required_permissions": step.required_permissions,
        }
        document.update({k: v for k, v in optional.items() if v is not None})
        if step.depends_on is not None:
            document["depends_on"] = [_dependency(d) for d in step.depends_on]
        steps.append(document)
    document = {"steps": steps}
    if plan.title is not None:
        document["title"] = plan.title
    if plan.summary is not None:
        document["summary"] = plan.summary
    return document
